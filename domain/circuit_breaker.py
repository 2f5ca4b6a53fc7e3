"""Domain layer: the market-wide index circuit breaker (issue 19; design 5.6/5.7).

Pure state, stdlib only, event time only. `CircuitBreaker` follows an index: the venue's index
symbol, or a basket of symbols (a weighted mean of each one's last trade over its previous
close). When the index is 10 / 15 / 20 % below its previous close it trips level 1 / 2 / 3 and
returns a `CircuitBreakerStatus` HALTED with the halt's end (`until_ns`): 45 minutes, 1 hour 45
minutes, the rest of the day (the session's close). `on_time` returns the OPEN status once
event time reaches that end. Each level trips once per UTC day; a deeper level during a halt
raises the level and keeps the later end.

Previous close of each followed symbol, first match wins: the venue's ClosingPrice (269=5) or
SettlementPrice (269=6) while the symbol has not traded today; else its own last trade of the
previous day (at the day roll). Without one a symbol takes no part (a basket) or nothing trips
(the index symbol).

Across a restart (`BreakerOpening`, applied by `restore` at the first event the breaker sees):
the state is rebuilt from what the stores hold, not kept in Bytewax recovery snapshots. The
breaker runs in the sharder (`flows.stops.with_market_status`), a stateless flat_map on the
worker that decoded the batch, where the batches are still in stream order; as a Bytewax
stateful step it would need one key for the whole market (every decoded batch moved to one
worker and pickled on the way: the whole pipeline serialised there) or one per input partition
(a basket split between partitions, and still an exchange of every batch). Its state is small
and all of it is in the stores already: each followed symbol's previous close and last trade
(the quotes flow's `quote:{SYMBOL}`) and the levels tripped today with their ends (the
CIRCUIT_BREAKER alerts, one per level and day). A resumed run starts with the events after its
snapshot, so only what happened before its first event counts: a trip or a last trade stored
at or after that time is the killed run's, replayed again (the trip repeats, its alert, row and
status idempotent); a stored quote at or after it gives today's previous close but not the
last trade (a basket member counts at its close until it trades again).

>>> cb = CircuitBreaker(BreakerPolicy(index_symbol="IDX"))
>>> cb.on_price("IDX", 100.0, 0, close=True) is None
True
>>> cb.on_price("IDX", 95.0, 1) is None
True
>>> status = cb.on_price("IDX", 89.9, 2)
>>> status.state, status.level, status.until_ns == 2 + 45 * 60 * 10**9
('HALTED', 1, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.events import (
    HALTED,
    MARKET,
    MD_CLOSE,
    MD_NEW,
    MD_TRADE,
    OPEN,
    MarketDataIncrement,
    MarketDataSnapshot,
)

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
MD_SETTLEMENT = "6"  # SettlementPrice (269=6)
_MD_TYPES = (MarketDataIncrement, MarketDataSnapshot)
_PRICES = frozenset((MD_TRADE, MD_CLOSE, MD_SETTLEMENT))  # the entries the breaker reads
SOURCE = "circuit_breaker"  # the `source` of its halts (trading_halts, market:status)


@dataclass(frozen=True, slots=True)
class BreakerLevel:
    """One level: trips at `decline` (a fraction) below the previous close; halts for
    `halt_ns`, or to the session's close when None."""

    level: int
    decline: float
    halt_ns: int | None


DESIGN_LEVELS = (
    BreakerLevel(1, 0.10, 45 * 60 * NS_PER_S),
    BreakerLevel(2, 0.15, 105 * 60 * NS_PER_S),
    BreakerLevel(3, 0.20, None),
)
"""The design's levels (5.7 "Circuit Breakers (Market-Wide)"): 10 % 45 min, 15 % 1 h 45 min,
20 % the rest of the day."""


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """What the breaker follows.

    Attributes:
        index_symbol: the venue's index symbol; wins over `basket` when both are set.
        basket: (symbol, weight) pairs: the index is the weighted mean of last / previous close.
        levels: the levels, shallowest first.
        session_close_ns: the session's close as ns after midnight UTC (level 3's end).
    """

    index_symbol: str | None = None
    basket: tuple[tuple[str, float], ...] = ()
    levels: tuple[BreakerLevel, ...] = DESIGN_LEVELS
    session_close_ns: int = 21 * 3600 * NS_PER_S

    @property
    def enabled(self) -> bool:
        return bool(self.index_symbol or self.basket)

    @property
    def weights(self) -> dict[str, float]:
        """Each followed symbol's weight."""
        if self.index_symbol:
            return {self.index_symbol: 1.0}
        return dict(self.basket)


@dataclass(frozen=True, slots=True)
class CircuitBreakerStatus:
    """The breaker's market-wide status: a trip (HALTED, with its end) or the reopening (OPEN).

    Attributes:
        state: HALTED or OPEN.
        level: the level tripped (the one that ends, for OPEN).
        until_ns: when the halt ends (event time); None for OPEN.
        reason: a line for people (banner, trading_halts.reason).
        ts_event: the event time of the price that tripped it, or of the first event at or
            after the end.
        decline: the index's fall below its previous close (a fraction), at a trip.
        index_value / reference: the index and its previous close (a basket: the weighted
            ratio and 1.0), at a trip.
    """

    state: str
    level: int
    until_ns: int | None
    reason: str
    ts_event: int
    decline: float | None = None
    index_value: float | None = None
    reference: float | None = None

    @property
    def symbol(self) -> str:
        """The scope "market": the flows broadcast it to every shard, as a 35=h."""
        return MARKET


@dataclass(frozen=True, slots=True)
class StoredQuote:
    """A followed symbol's latest quote as the stores hold it (`quote:{SYMBOL}`).

    Attributes:
        ts_ns: its event time; prev_close / ltp: its day's previous close and last trade;
        traded: that day had a trade (the quote has an open).
    """

    symbol: str
    ts_ns: int
    prev_close: float | None
    ltp: float | None
    traded: bool


@dataclass(frozen=True, slots=True)
class StoredTrip:
    """A level tripped, as its CIRCUIT_BREAKER alert holds it: the trip's event time and the
    halt's end (None: unknown)."""

    level: int
    ts_ns: int
    until_ns: int | None


@dataclass(frozen=True, slots=True)
class BreakerOpening:
    """What the stores hold for the breaker when a run starts (module docstring)."""

    quotes: tuple[StoredQuote, ...] = ()
    trips: tuple[StoredTrip, ...] = ()


@dataclass(slots=True)
class _Member:
    weight: float
    prev_close: float | None = None
    ltp: float | None = None
    day: int = -1
    traded_today: bool = False
    weighted: float = 0.0  # its part of the index's sums (weight x ratio; 0 without a close)

    def ratio(self) -> float:
        """last / previous close today; 1.0 before the day's first trade."""
        if not self.traded_today or self.ltp is None or not self.prev_close:
            return 1.0
        return self.ltp / self.prev_close


@dataclass(slots=True)
class CircuitBreaker:
    """The breaker's state: each followed symbol's prices, the levels tripped today, the
    running halt."""

    policy: BreakerPolicy
    members: dict[str, _Member] = field(default_factory=dict)
    day: int = -1  # the UTC day of the levels tripped
    tripped: int = 0  # the deepest level tripped that day
    until_ns: int | None = None  # the running halt's end
    halt_level: int = 0
    # the index's sums over the members with a previous close, kept as each one moves (a
    # basket's trade costs O(1), not a pass over the basket)
    total_weight: float = 0.0
    weighted_sum: float = 0.0
    opening: BreakerOpening | None = None  # applied by `restore` at the first event

    def __post_init__(self) -> None:
        if not self.members:
            self.members = {s: _Member(w) for s, w in self.policy.weights.items() if w > 0}

    def restore(self, ts_ns: int) -> None:
        """Apply the stores' `opening` as of `ts_ns`, the first event's time (once): the
        state an uninterrupted run had before that event, as far as the stores tell."""
        opening, self.opening = self.opening, None
        if opening is None:
            return
        day = ts_ns // NS_PER_DAY
        for quote in opening.quotes:
            member = self.members.get(quote.symbol)
            if member is None or member.day >= 0:
                continue  # not followed, or seen already
            had_close = bool(member.prev_close)
            if quote.ts_ns < ts_ns:  # its state before the first event
                member.day, member.prev_close = quote.ts_ns // NS_PER_DAY, quote.prev_close
                member.ltp = quote.ltp
                member.traded_today = quote.traded and quote.ltp is not None
            elif quote.ts_ns // NS_PER_DAY == day and quote.prev_close:
                member.day, member.prev_close = day, quote.prev_close  # the last trade: later
            else:
                continue
            self._refresh(member, had_close)
        for trip in opening.trips:
            if trip.ts_ns >= ts_ns or trip.ts_ns // NS_PER_DAY != day:
                continue  # another day's, or replayed after the first event: trips again
            self.day, self.tripped = day, max(self.tripped, trip.level)
            until = trip.until_ns
            if until is not None and until >= ts_ns and (self.until_ns or 0) < until:
                self.until_ns, self.halt_level = until, trip.level

    @property
    def _shallowest(self) -> float:
        return self.policy.levels[0].decline if self.policy.levels else 2.0

    def follows(self, symbol: str) -> bool:
        return symbol in self.members

    def decline(self) -> float | None:
        """The index's fall below its previous close (a fraction; negative when above), or
        None while no followed symbol has a previous close."""
        if not self.total_weight:
            return None
        return 1.0 - self.weighted_sum / self.total_weight

    def _refresh(self, member: _Member, had_close: bool) -> None:
        if had_close:
            self.total_weight -= member.weight
        self.weighted_sum -= member.weighted
        member.weighted = member.weight * member.ratio() if member.prev_close else 0.0
        if member.prev_close:
            self.total_weight += member.weight
        self.weighted_sum += member.weighted

    def on_price(
        self, symbol: str, price: float, ts_ns: int, close: bool = False
    ) -> CircuitBreakerStatus | None:
        """A followed symbol's trade (or, with `close`, the venue's 269=5/6) at event time
        `ts_ns`; return the trip it causes, if any."""
        member = self.members.get(symbol)
        if member is None:
            return None
        day = ts_ns // NS_PER_DAY
        had_close = bool(member.prev_close)
        if day != member.day:
            if member.day >= 0 and member.traded_today:
                member.prev_close = member.ltp  # our own close at the day roll
            member.day, member.traded_today = day, False
        if close:
            if not member.traded_today:
                member.prev_close = price  # the venue's close of the previous session
            self._refresh(member, had_close)
            return None
        member.ltp, member.traded_today = price, True
        self._refresh(member, had_close)
        return self._judge(ts_ns, day)

    def _judge(self, ts_ns: int, day: int) -> CircuitBreakerStatus | None:
        if day != self.day:
            self.day, self.tripped = day, 0
        total = self.total_weight
        if not total:
            return None
        decline = 1.0 - self.weighted_sum / total
        if decline < self._shallowest:
            return None  # the usual trade: no level near
        hit = None
        for level in self.policy.levels:
            if decline >= level.decline:
                hit = level
        if hit is None or hit.level <= self.tripped:
            return None
        self.tripped = hit.level
        if hit.halt_ns is not None:
            until = ts_ns + hit.halt_ns
        else:
            until = day * NS_PER_DAY + self.policy.session_close_ns
            if until <= ts_ns:
                until = (day + 1) * NS_PER_DAY  # tripped after the close: to the day's end
        if self.until_ns is not None and self.until_ns > until:
            until = self.until_ns
        self.until_ns, self.halt_level = until, hit.level
        ratio = 1.0 - decline
        index = self.members.get(self.policy.index_symbol or "")
        value, reference = (index.ltp, index.prev_close) if index else (ratio, 1.0)
        return CircuitBreakerStatus(
            HALTED, hit.level, until,
            f"index circuit breaker level {hit.level}: {decline * 100:.2f} % below the "
            "previous close",
            ts_ns, decline, value, reference,
        )  # fmt: skip

    def on_time(self, ts_ns: int) -> CircuitBreakerStatus | None:
        """Event time reached `ts_ns`: the OPEN status if the running halt ended by then."""
        until = self.until_ns
        if until is None or ts_ns < until:
            return None
        self.until_ns = None
        level = self.halt_level
        # dated at the end itself, not at the later message that showed it had passed
        return CircuitBreakerStatus(
            OPEN, level, None, f"index circuit breaker level {level} ended", until
        )


def evaluate_breaker(
    breaker: CircuitBreaker, events: list, seqs: list[int]
) -> list[tuple[int, int, CircuitBreakerStatus]]:
    """Run the breaker over a batch of decoded events in stream order; return its statuses as
    `(seq, side, status)`: side 1 goes after the event numbered `seq` (the trade that tripped
    it), -1 before it (the first event at or after the halt's end: it sees the market open).

    The cost per event is a type check and a set lookup; only the followed symbols' market data
    is looked into.
    """
    out: list[tuple[int, int, CircuitBreakerStatus]] = []
    members = breaker.members
    if breaker.opening is not None:  # the run's first batch: from its first event's time on
        first = next((e.ts_event for e in events if getattr(e, "ts_event", None)), None)
        if first is not None:
            breaker.restore(first)
    for event, seq in zip(events, seqs, strict=True):
        if breaker.until_ns is not None:
            ts = getattr(event, "ts_event", None)
            if ts is not None:
                status = breaker.on_time(ts)
                if status is not None:
                    out.append((seq, -1, status))
        if type(event) not in _MD_TYPES or event.symbol not in members:
            continue
        ts = event.ts_event
        for entry in event.entries:
            kind = entry.entry_type
            if kind not in _PRICES or entry.price is None or entry.action != MD_NEW:
                continue  # mostly bids and offers
            if kind == MD_TRADE:
                status = breaker.on_price(event.symbol, entry.price, ts)
                if status is not None:
                    out.append((seq, 1, status))
            elif kind == MD_CLOSE or kind == MD_SETTLEMENT:
                breaker.on_price(event.symbol, entry.price, ts, close=True)
    return out
