"""Domain layer: the market's status: market-wide and per symbol, halts and price bands (issue 19).

Pure state, stdlib only. `MarketStatusBook.apply(event)` takes a decoded `SecurityStatus`
(35=f, one symbol) or `TradingSessionStatus` (35=h, the whole market) and returns the
`MarketStatusChanged` to publish (None when nothing a reader sees changed: the same state
again with the same reason and band). Times are the events' (`ts_event`), never the clock.

- A symbol trades when the market is OPEN and the symbol is OPEN (`trading(symbol)`); a
  symbol never heard of is OPEN. The stop engine (`flows.stops`) holds its triggers while a
  symbol does not trade and evaluates them again at the first price after it does.
- A 35=f without a state (an indication, or a band alone) keeps the state and updates the band.
- `since_ns` is when the current state began (the event that set it); a band or reason update
  within the same state keeps it.
- The index circuit breaker (`domain.circuit_breaker`) halts the market too. Which source wins
  (docs/operations.md): the venue's own status is authoritative. A breaker trip halts an OPEN
  market (source "circuit_breaker", with `level` and `until`); when the venue has the market
  HALTED or CLOSED already, the trip changes nothing here. Any later 35=h replaces a breaker
  halt (a venue resume ends it early, a venue halt takes it over); the breaker's own reopening
  ends only its own halt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.circuit_breaker import SOURCE as BREAKER
from domain.circuit_breaker import CircuitBreakerStatus
from domain.events import HALTED, MARKET, OPEN, SecurityStatus, TradingSessionStatus

VENUE = "venue"


@dataclass(slots=True)
class ScopeStatus:
    """The state of one scope ("market" or a symbol): OPEN, HALTED or CLOSED."""

    state: str = OPEN
    reason: str | None = None
    since_ns: int = 0
    low_limit_px: float | None = None
    high_limit_px: float | None = None
    source: str = VENUE  # who set the state: "venue" or "circuit_breaker"
    level: int | None = None  # the breaker's level and end, while its halt runs
    until_ns: int | None = None

    def __setstate__(self, state: tuple[None, dict]) -> None:
        # States pickled before the breaker (recovery snapshots) load as the venue's.
        self.source, self.level, self.until_ns = VENUE, None, None
        for name, value in state[1].items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class MarketStatusChanged:
    """A scope's new status, as `market:status` / `symbol:status:{SYMBOL}` and the edge's
    `market_status` frame carry it.

    Attributes:
        scope: "market" or the symbol.
        state: OPEN, HALTED or CLOSED.
        previous: the state before.
        reason: the venue's reason (HaltReasonChar (327), Text (58)), or None.
        since_ns: when the state began (int UTC ns, event time).
        low_limit_px / high_limit_px: the price band (LowLimitPrice (1148) / HighLimitPrice
            (1149)), or None.
        ts_event: the event's time.
        level / until: the circuit breaker's level and the halt's end (event time ns), or
            None (a venue's status).
        source / previous_source: who set the state, and the one before ("venue",
            "circuit_breaker"): a halt of one source ends and another's starts when it changes.
    """

    scope: str
    state: str
    previous: str
    reason: str | None
    since_ns: int
    low_limit_px: float | None
    high_limit_px: float | None
    ts_event: int
    level: int | None = None
    until: int | None = None
    source: str = VENUE
    previous_source: str = VENUE

    @property
    def halt_started(self) -> bool:
        """A halt of `source` starts (from OPEN, or taking over another source's)."""
        return self.state != OPEN and (self.previous == OPEN or self.source != self.previous_source)

    @property
    def halt_ended(self) -> bool:
        """A halt of `previous_source` ends (OPEN again, or another source took over)."""
        return self.previous != OPEN and (self.state == OPEN or self.source != self.previous_source)

    def to_json(self) -> dict:
        """The contract's market_status fields (`ts` and `until` in epoch milliseconds)."""
        return {
            "type": "market_status",
            "scope": self.scope,
            "state": self.state,
            "reason": self.reason,
            "level": self.level,
            "until": None if self.until is None else self.until // 1_000_000,
            "ts": self.ts_event // 1_000_000,
            "since": self.since_ns // 1_000_000,
            "lower_band": self.low_limit_px,
            "upper_band": self.high_limit_px,
            "source": self.source,
        }


@dataclass(slots=True)
class MarketStatusBook:
    """The market-wide status and each symbol's, as the venue last said."""

    market: ScopeStatus = field(default_factory=ScopeStatus)
    symbols: dict[str, ScopeStatus] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)  # symbols whose state is not OPEN

    @property
    def any_halt(self) -> bool:
        """Whether some symbol, or the market, does not trade (the hot path's one check)."""
        return self.market.state != OPEN or bool(self.stopped)

    def trading(self, symbol: str) -> bool:
        """Whether `symbol` trades: the market and the symbol are OPEN."""
        return self.market.state == OPEN and symbol not in self.stopped

    def state_of(self, symbol: str) -> str:
        """The symbol's effective state: the market's when the market is not OPEN."""
        if self.market.state != OPEN:
            return self.market.state
        status = self.symbols.get(symbol)
        return OPEN if status is None else status.state

    def apply(
        self, event: SecurityStatus | TradingSessionStatus | CircuitBreakerStatus
    ) -> MarketStatusChanged | None:
        """Apply one decoded status, or the breaker's; return what changed, or None."""
        kind = type(event)
        if kind is CircuitBreakerStatus:
            return self._breaker(event)
        if kind is TradingSessionStatus:
            return _update(self.market, MARKET, event.state, event.reason, None, None,
                           event.ts_event)  # fmt: skip
        status = self.symbols.get(event.symbol)
        if status is None:
            status = self.symbols[event.symbol] = ScopeStatus()
        change = _update(
            status, event.symbol, event.state, event.reason, event.low_limit_px,
            event.high_limit_px, event.ts_event,
        )  # fmt: skip
        if status.state == OPEN:
            self.stopped.discard(event.symbol)
        else:
            self.stopped.add(event.symbol)
        return change

    def expire(self, ts_ns: int) -> MarketStatusChanged | None:
        """The breaker's halt ends by itself once event time reaches its `until`: the OPEN
        change, or None. The flows get the breaker's reopening as an event before that; this
        is for a state that outlived the breaker (a run resumed from a snapshot)."""
        market = self.market
        until = market.until_ns
        if market.source != BREAKER or until is None or ts_ns < until:
            return None
        reason = f"index circuit breaker level {market.level} ended"
        return self._breaker(CircuitBreakerStatus(OPEN, market.level or 0, None, reason, until))

    def _breaker(self, event: CircuitBreakerStatus) -> MarketStatusChanged | None:
        market = self.market
        if event.state == HALTED:
            if market.state != OPEN and market.source != BREAKER:
                return None  # the venue's own halt or close stands (module docstring)
            if (
                market.source == BREAKER
                and market.until_ns == event.until_ns
                and (market.level == event.level)
            ):
                return None
        elif market.source != BREAKER or market.state == OPEN:
            return None  # not its halt (the venue took over, or ended it early)
        level = event.level if event.state == HALTED else None
        return _update(market, MARKET, event.state, event.reason, None, None, event.ts_event,
                       BREAKER, level, event.until_ns)  # fmt: skip


def _update(
    status: ScopeStatus,
    scope: str,
    state: str | None,
    reason: str | None,
    low: float | None,
    high: float | None,
    ts_ns: int,
    source: str = VENUE,
    level: int | None = None,
    until: int | None = None,
) -> MarketStatusChanged | None:
    previous, previous_source = status.state, status.source
    if source == BREAKER and state == OPEN:
        source = VENUE  # the breaker's halt is over: the market is as the venue left it, OPEN
    new_state = previous if state is None else state
    new_low = status.low_limit_px if low is None else low
    new_high = status.high_limit_px if high is None else high
    new_reason = reason if (reason is not None or state is not None) else status.reason
    if (new_state, new_reason, new_low, new_high, source, level, until) == (
        previous, status.reason, status.low_limit_px, status.high_limit_px, status.source,
        status.level, status.until_ns,
    ):  # fmt: skip
        return None
    if new_state != previous or source != previous_source:
        status.since_ns = ts_ns
    status.state, status.reason = new_state, new_reason
    status.low_limit_px, status.high_limit_px = new_low, new_high
    status.source, status.level, status.until_ns = source, level, until
    return MarketStatusChanged(
        scope, new_state, previous, new_reason, status.since_ns, new_low, new_high, ts_ns,
        level, until, source, previous_source,
    )  # fmt: skip
