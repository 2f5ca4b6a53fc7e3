"""Domain layer: trade-surveillance models, pure and stdlib only, run live and in back-tests alike.

Each model takes order events in event time and returns `Finding`s: the model's kind, the
subject (account or owner), the symbol, the window, a score 0–100 and the evidence (ExecIDs,
ClOrdIDs, thresholds and the computed figures). A finding's `key` is derived from the input
(model, subject, symbol, window), so a replay or a restart yields the same key and the alert
made from it is stored once. State is bounded: every window expires in event time.

Models here (issue 6):
- `SelfMatchModel` (WASH_TRADE): two fills on opposite sides of the same trade, matched by
  TrdMatchID (880), else by symbol, price and quantity within `window_ns` (1 s), whose accounts
  are the same or share an owner.
- `RoundTripModel` (WASH_TRADE, round trips): an owner's intraday position in a symbol goes
  out and back to flat at least `min_round_trips` (10) times in one UTC day while the net
  change stays within `max_net_fraction` (10 %) of the volume each way.
- `OrderToTradeModel` (EXCESSIVE_OTR): orders per trade of an account in one UTC day above
  `max_ratio` (15) with at least `min_orders` (20) orders; judged when the day is over.
- `OwnershipMissingModel` (OWNERSHIP_MISSING): a fill of an account with no owner on record
  (wash detection across accounts is blind there); once per account and day.
- `SpoofingModel` (SPOOFING, layering at two or more prices): resting volume opposite a fill
  ≥ K (5) × the fill, and ≥ 80 % of it cancelled (or cut by replaces) within T (15 s) of
  the fill. An order is known by its OrderID (37) through replaces and cancels, however the
  venue names it in ClOrdID (11) and OrigClOrdID (41) (`OrderChains`).
- `MarkingTheCloseModel` (MARKING_THE_CLOSE): an account's volume in the last M (30) minutes
  before the close ≥ 5 % of the symbol's volume then, or ≥ 1 % of its day volume.
- `PumpAndDumpModel` (PUMP_AND_DUMP): buys > X (5 %) of the symbol's day volume; raised when
  it then sells ≥ Y (20 %) above its average buy within Z (48 h).
A symbol's day volume (`DayVolume`) is the venue's: TradeVolume (269=B) from the market data,
plus the trades printed after it; the trades seen when the venue reports none.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
WASH_TRADE = "WASH_TRADE"
EXCESSIVE_OTR = "EXCESSIVE_OTR"
OWNERSHIP_MISSING = "OWNERSHIP_MISSING"


@dataclass(frozen=True, slots=True)
class Fill:
    """A trade of one account, from an execution report (ExecType F)."""

    exec_id: str
    account: str
    symbol: str
    side: str  # Side (54): "1" buy, else sell
    qty: Decimal
    px: Decimal
    ts_ns: int
    cl_ord_id: str = ""
    trd_match_id: str | None = None

    @property
    def buy(self) -> bool:
        return self.side == "1"


@dataclass(frozen=True, slots=True)
class Finding:
    """What a model found: enough to make an alert and to explain it."""

    kind: str
    key: str
    subject: str
    symbol: str | None
    ts_ns: int
    score: int
    evidence: Mapping[str, Any] = field(default_factory=dict)
    subject_is_owner: bool = False  # the subject is an owner (across accounts), not an account


def day_of(ts_ns: int) -> int:
    return ts_ns // NS_PER_DAY


class SelfMatchModel:
    """WASH_TRADE by self-match: both sides of one trade belong to one account or owner."""

    def __init__(self, owners: Mapping[str, str], window_ns: int = NS_PER_S) -> None:
        self.owners = owners
        self.window_ns = window_ns
        self._by_match: dict[str, Fill] = {}
        self._match_seen: deque[tuple[int, str]] = deque()
        self._recent: dict[str, deque[Fill]] = {}
        self._arrived: deque[tuple[int, str]] = deque()  # (ts, symbol) of `_recent`'s fills

    def _related(self, a: Fill, b: Fill) -> str | None:
        """The shared subject of two fills (account or owner), or None."""
        if a.account == b.account:
            return a.account
        owner_a, owner_b = self.owners.get(a.account), self.owners.get(b.account)
        if owner_a is not None and owner_a == owner_b:
            return owner_a
        return None

    def _finding(self, a: Fill, b: Fill, subject: str, how: str) -> Finding:
        first, second = sorted((a, b), key=lambda f: f.exec_id)
        return Finding(
            WASH_TRADE,
            f"self:{first.exec_id}:{second.exec_id}",
            subject,
            a.symbol,
            max(a.ts_ns, b.ts_ns),
            90 if a.account == b.account else 80,
            {
                "pattern": "self-match",
                "matched_by": how,
                "exec_ids": [first.exec_id, second.exec_id],
                "cl_ord_ids": [first.cl_ord_id, second.cl_ord_id],
                "accounts": [first.account, second.account],
                "owner": subject,
                "qty": a.qty,
                "px": a.px,
                "window_ns": self.window_ns,
            },
            subject_is_owner=a.account != b.account,
        )

    def on_fill(self, fill: Fill) -> list[Finding]:
        self._expire(fill.ts_ns)
        if fill.trd_match_id:
            other = self._by_match.get(fill.trd_match_id)
            if other is None:
                self._by_match[fill.trd_match_id] = fill
                self._match_seen.append((fill.ts_ns, fill.trd_match_id))
                return []
            if other.buy == fill.buy:
                return []
            subject = self._related(other, fill)
            return [self._finding(other, fill, subject, "TrdMatchID(880)")] if subject else []
        recent = self._recent.setdefault(fill.symbol, deque())
        found: list[Finding] = []
        for other in recent:
            if (
                other.buy != fill.buy
                and other.px == fill.px
                and other.qty == fill.qty
                and fill.ts_ns - other.ts_ns <= self.window_ns
            ):
                subject = self._related(other, fill)
                if subject:
                    found.append(self._finding(other, fill, subject, "symbol, price, quantity"))
                    break
        recent.append(fill)
        self._arrived.append((fill.ts_ns, fill.symbol))
        return found

    def _expire(self, now_ns: int) -> None:
        horizon = now_ns - self.window_ns
        seen = self._match_seen
        while seen and seen[0][0] < horizon:
            _, match_id = seen.popleft()
            self._by_match.pop(match_id, None)
        # Fills leave in arrival order (each symbol's deque is in that order too), so expiry
        # touches only what expires, not every symbol on every fill.
        arrived = self._arrived
        while arrived and arrived[0][0] < horizon:
            _, symbol = arrived.popleft()
            recent = self._recent[symbol]
            recent.popleft()
            if not recent:
                del self._recent[symbol]

    def __len__(self) -> int:
        return len(self._by_match) + sum(len(r) for r in self._recent.values())


@dataclass
class _Trip:
    net: Decimal = Decimal(0)
    bought: Decimal = Decimal(0)
    sold: Decimal = Decimal(0)
    round_trips: int = 0
    exec_ids: list[str] = field(default_factory=list)
    fired: bool = False


class RoundTripModel:
    """WASH_TRADE by round trips: an owner goes out and back to flat many times a day."""

    def __init__(
        self,
        owners: Mapping[str, str],
        min_round_trips: int = 10,
        max_net_fraction: Decimal = Decimal("0.10"),
        max_evidence: int = 50,
    ) -> None:
        self.owners = owners
        self.min_round_trips = min_round_trips
        self.max_net_fraction = max_net_fraction
        self.max_evidence = max_evidence
        self._day = -1
        self._trips: dict[tuple[str, str], _Trip] = {}

    def on_fill(self, fill: Fill) -> list[Finding]:
        day = day_of(fill.ts_ns)
        if day != self._day:  # a new UTC day: yesterday's trips are done (bounded state)
            self._day = day
            self._trips.clear()
        owner = self.owners.get(fill.account, fill.account)
        trip = self._trips.setdefault((owner, fill.symbol), _Trip())
        before = trip.net
        signed = fill.qty if fill.buy else -fill.qty
        trip.net += signed
        if fill.buy:
            trip.bought += fill.qty
        else:
            trip.sold += fill.qty
        if len(trip.exec_ids) < self.max_evidence:
            trip.exec_ids.append(fill.exec_id)
        # Back to flat, or through it: the position went out and came back.
        if before != 0 and (trip.net == 0 or (trip.net > 0) != (before > 0)):
            trip.round_trips += 1
        each_way = min(trip.bought, trip.sold)
        if (
            trip.fired
            or trip.round_trips < self.min_round_trips
            or abs(trip.net) > self.max_net_fraction * each_way
        ):
            return []
        trip.fired = True
        score = min(100, 50 + 5 * (trip.round_trips - self.min_round_trips))
        return [
            Finding(
                WASH_TRADE,
                f"trips:{owner}:{fill.symbol}:{day}",
                owner,
                fill.symbol,
                fill.ts_ns,
                score,
                {
                    "pattern": "round trips",
                    "round_trips": trip.round_trips,
                    "net_position": trip.net,
                    "bought": trip.bought,
                    "sold": trip.sold,
                    "min_round_trips": self.min_round_trips,
                    "max_net_fraction": self.max_net_fraction,
                    "day": day,
                    "exec_ids": list(trip.exec_ids),
                },
                subject_is_owner=fill.account in self.owners,
            )
        ]

    def __len__(self) -> int:
        return len(self._trips)


@dataclass
class _Activity:
    orders: int = 0
    trades: int = 0
    cl_ord_ids: list[str] = field(default_factory=list)


class OrderToTradeModel:
    """EXCESSIVE_OTR: orders per trade of an account in one UTC day, judged when it is over."""

    def __init__(self, max_ratio: int = 15, min_orders: int = 20, max_evidence: int = 50) -> None:
        self.max_ratio = max_ratio
        self.min_orders = min_orders
        self.max_evidence = max_evidence
        self._day = -1
        self._accounts: dict[str, _Activity] = {}

    def _roll(self, ts_ns: int) -> list[Finding]:
        day = day_of(ts_ns)
        if day == self._day:
            return []
        findings = self.close_day() if self._day >= 0 else []
        self._day = day
        return findings

    def on_order(self, account: str, cl_ord_id: str, ts_ns: int) -> list[Finding]:
        """A new order or a replace (each counts as an order message)."""
        findings = self._roll(ts_ns)
        activity = self._accounts.setdefault(account, _Activity())
        activity.orders += 1
        if len(activity.cl_ord_ids) < self.max_evidence:
            activity.cl_ord_ids.append(cl_ord_id)
        return findings

    def on_fill(self, fill: Fill) -> list[Finding]:
        findings = self._roll(fill.ts_ns)
        self._accounts.setdefault(fill.account, _Activity()).trades += 1
        return findings

    def close_day(self) -> list[Finding]:
        """Judge the day so far (called at day rollover, and at the end of a replay)."""
        findings = []
        day_end = (self._day + 1) * NS_PER_DAY - 1
        for account in sorted(self._accounts):
            a = self._accounts[account]
            ratio = Decimal(a.orders) / max(1, a.trades)
            if a.orders >= self.min_orders and ratio > self.max_ratio:
                score = min(100, int(50 + 50 * (ratio - self.max_ratio) / self.max_ratio))
                findings.append(
                    Finding(
                        EXCESSIVE_OTR, f"otr:{account}:{self._day}", account, None, day_end,
                        score,
                        {"orders": a.orders, "trades": a.trades,
                         "ratio": ratio.quantize(Decimal("0.01")), "max_ratio": self.max_ratio,
                         "min_orders": self.min_orders, "day": self._day,
                         "cl_ord_ids": list(a.cl_ord_ids)},
                    )
                )  # fmt: skip
        self._accounts.clear()
        return findings

    def __len__(self) -> int:
        return len(self._accounts)


class OwnershipMissingModel:
    """OWNERSHIP_MISSING: an account trades with no owner on record; once per account and day."""

    def __init__(self, owners: Mapping[str, str]) -> None:
        self.owners = owners
        self._day = -1
        self._seen: set[str] = set()

    def on_fill(self, fill: Fill) -> list[Finding]:
        day = day_of(fill.ts_ns)
        if day != self._day:
            self._day = day
            self._seen.clear()
        if self.owners.get(fill.account) or fill.account in self._seen:
            return []
        self._seen.add(fill.account)
        return [
            Finding(
                OWNERSHIP_MISSING, f"owner:{fill.account}:{day}", fill.account, fill.symbol,
                fill.ts_ns, 40,
                {"account": fill.account, "exec_id": fill.exec_id, "day": day,
                 "why": "no owner on record: wash detection across accounts is blind here"},
            )
        ]  # fmt: skip


SPOOFING = "SPOOFING"
MARKING_THE_CLOSE = "MARKING_THE_CLOSE"


@dataclass
class _Resting:
    side: str
    qty: Decimal
    px: Decimal | None
    ts_ns: int


@dataclass
class _Suspect:
    """A fill against which the account had a large opposite side resting: watched for T s."""

    fill: Fill
    orders: dict[str, _Resting]  # the opposite side resting at the fill
    volume: Decimal
    cancelled: Decimal = Decimal(0)
    cancelled_ids: list[str] = field(default_factory=list)


class SpoofingModel:
    """SPOOFING (and layering): a large one-sided book, a small fill on the other side, then
    most of the large side cancelled within `window_ns` of the fill.

    Fires when the resting volume on the side opposite a fill is at least `size_multiple` (K=5)
    times the fill and at least `cancel_fraction` (80 %) of that volume is cancelled within
    `window_ns` (T=15 s) after the fill; resting orders at two or more prices make it layering.
    A replace (150=5) that cuts an order's quantity cancels the cut (`on_replace`). Orders are
    keyed by the ClOrdID they were placed with, whatever the venue puts in 11 later.

    State is bounded in event time: an order resting longer than `max_resting_ns` (a day) is
    forgotten (spoofing is about orders that come and go within seconds; a GTC order resting for
    weeks, or one whose end was never reported, must not grow the state forever).
    """

    def __init__(
        self,
        size_multiple: Decimal = Decimal(5),
        cancel_fraction: Decimal = Decimal("0.80"),
        window_ns: int = 15 * NS_PER_S,
        max_resting_ns: int = NS_PER_DAY,
    ) -> None:
        self.size_multiple = size_multiple
        self.cancel_fraction = cancel_fraction
        self.window_ns = window_ns
        self.max_resting_ns = max_resting_ns
        self._resting: dict[tuple[str, str], dict[str, _Resting]] = {}
        # (placed at, key, ClOrdID) in arrival order: expiry touches only what expires.
        self._placed: deque[tuple[int, tuple[str, str], str]] = deque()
        self._suspects: dict[tuple[str, str], list[_Suspect]] = {}

    def on_order(self, account: str, symbol: str, cl_ord_id: str, side: str, qty: Decimal,
                 px: Decimal | None, ts_ns: int) -> list[Finding]:  # fmt: skip
        """A new order, resting under `cl_ord_id` (see `on_replace` for new terms)."""
        self._expire(ts_ns)
        key = (account, symbol)
        self._resting.setdefault(key, {})[cl_ord_id] = _Resting(side, qty, px, ts_ns)
        self._placed.append((ts_ns, key, cl_ord_id))
        return []

    def on_replace(self, account: str, symbol: str, cl_ord_id: str, side: str, qty: Decimal,
                   px: Decimal | None, ts_ns: int) -> list[Finding]:  # fmt: skip
        """The new terms of a resting order (ExecType 150=5), known by `cl_ord_id` as before.

        It rests on with `qty` at `px`. What the replace takes off the book counts as
        cancelled: FIX has no partial cancel, a client cancels part of an order by replacing
        it with a smaller OrderQty (38).
        """
        self._expire(ts_ns)
        key = (account, symbol)
        found = []
        for suspect in self._suspects.get(key, []):
            order = suspect.orders.get(cl_ord_id)
            if order is None or ts_ns - suspect.fill.ts_ns > self.window_ns or qty >= order.qty:
                continue
            suspect.cancelled += order.qty - qty
            order.qty = qty  # a later cancel takes what is left
            if cl_ord_id not in suspect.cancelled_ids:
                suspect.cancelled_ids.append(cl_ord_id)
            if suspect.cancelled >= self.cancel_fraction * suspect.volume:
                found.append(self._finding(account, suspect, ts_ns))
        self._forget(key, found)
        self.on_order(account, symbol, cl_ord_id, side, qty, px, ts_ns)
        return found

    def _forget(self, key: tuple[str, str], found: list[Finding]) -> None:
        """Stop watching the suspects that fired."""
        if found:
            fired = {f.key for f in found}
            self._suspects[key] = [
                s for s in self._suspects[key] if self._key(key[0], s) not in fired
            ]

    def on_done(self, account: str, symbol: str, cl_ord_id: str, ts_ns: int) -> None:
        """The order left the book without a client cancel (expired, rejected, done for the
        day): it stops resting, and its leaving is not counted as a cancel."""
        self._expire(ts_ns)
        self._take((account, symbol), cl_ord_id)

    def _take(self, key: tuple[str, str], cl_ord_id: str) -> _Resting | None:
        """Remove an order from the book (and the account's book when it empties)."""
        orders = self._resting.get(key)
        if orders is None:
            return None
        order = orders.pop(cl_ord_id, None)
        if not orders:
            del self._resting[key]
        return order

    def resting(self) -> int:
        return sum(len(orders) for orders in self._resting.values())

    def on_cancel(self, account: str, symbol: str, cl_ord_id: str, ts_ns: int) -> list[Finding]:
        self._expire(ts_ns)
        key = (account, symbol)
        resting = self._take(key, cl_ord_id)
        if resting is None:
            return []
        found = []
        for suspect in self._suspects.get(key, []):
            order = suspect.orders.get(cl_ord_id)
            if order is None or ts_ns - suspect.fill.ts_ns > self.window_ns:
                continue
            suspect.cancelled += order.qty
            if cl_ord_id not in suspect.cancelled_ids:  # not already cut by a replace
                suspect.cancelled_ids.append(cl_ord_id)
            if suspect.cancelled >= self.cancel_fraction * suspect.volume:
                found.append(self._finding(account, suspect, ts_ns))
        self._forget(key, found)
        return found

    def on_fill(self, fill: Fill) -> list[Finding]:
        self._expire(fill.ts_ns)
        key = (fill.account, fill.symbol)
        resting = self._resting.get(key, {})
        order = resting.get(fill.cl_ord_id)
        if order is not None:  # the filled order rests with less, or leaves
            order.qty -= fill.qty
            if order.qty <= 0:
                self._take(key, fill.cl_ord_id)
        opposite = {
            cl: _Resting(r.side, r.qty, r.px, r.ts_ns)
            for cl, r in resting.items()
            if (r.side == "1") != fill.buy
        }
        volume = sum((r.qty for r in opposite.values()), Decimal(0))
        if opposite and volume >= self.size_multiple * fill.qty:
            self._suspects.setdefault(key, []).append(_Suspect(fill, opposite, volume))
        return []

    def _key(self, account: str, s: _Suspect) -> str:
        return f"spoof:{account}:{s.fill.symbol}:{s.fill.exec_id}"

    def _finding(self, account: str, s: _Suspect, ts_ns: int) -> Finding:
        prices = sorted({str(o.px) for o in s.orders.values() if o.px is not None})
        layering = len(prices) >= 2
        ratio = s.volume / s.fill.qty
        score = min(100, int(60 + 4 * (ratio - self.size_multiple)) + (10 if layering else 0))
        return Finding(
            SPOOFING, self._key(account, s), account, s.fill.symbol, ts_ns, max(60, score),
            {"pattern": "layering" if layering else "spoofing", "fill_exec_id": s.fill.exec_id,
             "fill_qty": s.fill.qty, "fill_side": s.fill.side,
             "opposite_volume": s.volume, "size_multiple": ratio.quantize(Decimal("0.01")),
             "cancelled_volume": s.cancelled,
             "cancelled_fraction": (s.cancelled / s.volume).quantize(Decimal("0.01")),
             "cancelled_cl_ord_ids": list(s.cancelled_ids), "price_levels": prices,
             "window_ns": self.window_ns,
             "thresholds": {"size_multiple": self.size_multiple,
                            "cancel_fraction": self.cancel_fraction}},
        )  # fmt: skip

    def _expire(self, now_ns: int) -> None:
        placed = self._placed
        too_old = now_ns - self.max_resting_ns
        while placed and placed[0][0] < too_old:
            ts_ns, key, cl_ord_id = placed.popleft()
            order = self._resting.get(key, {}).get(cl_ord_id)
            if order is not None and order.ts_ns == ts_ns:  # not re-placed (replaced) since
                self._take(key, cl_ord_id)
        horizon = now_ns - self.window_ns
        for key in list(self._suspects):
            kept = [s for s in self._suspects[key] if s.fill.ts_ns >= horizon]
            if kept:
                self._suspects[key] = kept
            else:
                del self._suspects[key]

    def __len__(self) -> int:
        return sum(len(s) for s in self._suspects.values())


def _decimal(volume: float) -> Decimal:
    """A market-data volume (float, exact for whole shares) as the evidence's Decimal."""
    return Decimal(repr(volume))


TRADE_VOLUME = "TradeVolume (269=B)"
TRADES_SEEN = "trades seen (269=2)"


class DayVolume:
    """The market's volume of each symbol in the current UTC day: the venue's figure if it
    reports one, else the trades seen.

    FIX 4.4 MDEntryType (269) B, "Trade Volume", is the venue's cumulative volume of the
    symbol's trading session. A venue sends it in the full refresh (35=W) a feed starts with,
    and in incremental refreshes (35=X) as the session's volume grows. The day volume is the
    latest such figure plus the trades (269=2) printed after it; for a symbol the venue
    reports no figure for (a venue that only prints trades), it is the trades printed since
    the model's day began. A feed that joins mid-day, or a file that holds only the day's last
    minutes, is thus judged against the day's volume, not the minutes it saw.

    Volumes are floats, like the market data they come from (exact for whole shares); the
    owning model clears them when its day ends.

    Example:
        >>> v = DayVolume()
        >>> v.update("ACME", 300.0)
        >>> v.of("ACME"), v.source("ACME")
        (300.0, 'trades seen (269=2)')
        >>> v.update("ACME", 0.0, 2_000_000.0)  # a snapshot (35=W) of the day so far
        >>> v.update("ACME", 100.0)
        >>> v.of("ACME"), v.source("ACME")
        (2000100.0, 'TradeVolume (269=B)')
    """

    __slots__ = ("_reported", "_traded")

    def __init__(self) -> None:
        self._reported: dict[str, float] = {}  # the venue's latest TradeVolume (269=B)
        self._traded: dict[str, float] = {}  # trades printed since it (or since the day began)

    def clear(self) -> None:
        self._reported.clear()
        self._traded.clear()

    def update(self, symbol: str, traded: float, day_volume: float | None = None) -> None:
        """Trades of `traded` shares printed, then, if given, the venue's day volume (269=B),
        which counts every trade printed before it."""
        if traded:
            seen = self._traded
            seen[symbol] = seen.get(symbol, 0.0) + traded
        if day_volume is not None:
            self._reported[symbol] = day_volume
            self._traded[symbol] = 0.0

    def of(self, symbol: str) -> float:
        return self._reported.get(symbol, 0.0) + self._traded.get(symbol, 0.0)

    def source(self, symbol: str) -> str:
        return TRADE_VOLUME if symbol in self._reported else TRADES_SEEN

    def __len__(self) -> int:
        return len(self._traded)


class MarkingTheCloseModel:
    """MARKING_THE_CLOSE: an account's volume in the last `window_ns` (30 min) before the close
    is ≥ `window_share` (5 %) of the symbol's volume in that window, or ≥ `day_share` (1 %) of
    its day volume; judged when event time passes the close (`close_ns_of_day`, ns after
    midnight UTC).

    The window volume is the trades (269=2) seen in the window. The day volume is the venue's
    (`DayVolume`: TradeVolume, 269=B, plus the trades after it; the trades seen when the venue
    reports none). The day share is there to catch an account that is large against the
    stock's whole day; against only the trades seen by a feed that joined inside the window,
    it would be the window share at a fifth of its threshold (1 % instead of 5 %), hence the
    venue's figure whenever there is one. A symbol whose day volume is under
    `min_symbol_volume` is too thin to judge shares of.

    Buys and sells count alike: the closing price values every position in the stock, and a
    seller can depress it as a buyer can lift it. An account that sells a tenth of a thin
    stock's closing window into the close (the dump of a pump, a minute before the close) is
    flagged with the buyers, as an analyst would want it.
    """

    def __init__(
        self,
        close_ns_of_day: int = 21 * 3600 * NS_PER_S,
        window_ns: int = 30 * 60 * NS_PER_S,
        window_share: Decimal = Decimal("0.05"),
        day_share: Decimal = Decimal("0.01"),
        min_symbol_volume: Decimal = Decimal(1000),
    ) -> None:
        self.close_ns_of_day = close_ns_of_day
        self.window_ns = window_ns
        self.window_share = window_share
        self.day_share = day_share
        self.min_symbol_volume = min_symbol_volume
        self._day = -1
        self._judged = False
        # The current day's bounds in event time; an event in [_day_ns, _quiet_until_ns) has
        # nothing to roll or judge (the hot path: one comparison).
        self._day_ns = 0
        self._window_ns = 0
        self._close_ns = 0
        self._quiet_until_ns = 0
        self._volume = DayVolume()
        self._window_volume: dict[str, float] = {}
        self._account_volume: dict[tuple[str, str], Decimal] = {}
        self._exec_ids: dict[tuple[str, str], list[str]] = {}

    def _roll(self, ts_ns: int) -> list[Finding]:
        """Judge the day once event time passes its close; start a new day when it begins."""
        day = day_of(ts_ns)
        findings: list[Finding] = []
        past_close = day > self._day or ts_ns % NS_PER_DAY >= self.close_ns_of_day
        if self._day >= 0 and not self._judged and past_close:
            findings = self.judge()
            self._judged = True
        if day != self._day:
            self._day = day
            self._judged = False
            self._day_ns = day * NS_PER_DAY
            self._close_ns = self._day_ns + self.close_ns_of_day
            self._window_ns = self._close_ns - self.window_ns
            self._volume.clear()
            self._window_volume.clear()
            self._account_volume.clear()
            self._exec_ids.clear()
        if self._judged or ts_ns % NS_PER_DAY >= self.close_ns_of_day:
            self._quiet_until_ns = self._day_ns + NS_PER_DAY
        else:
            self._quiet_until_ns = self._close_ns
        return findings

    def on_market(
        self, symbol: str, traded: float, ts_ns: int, day_volume: float | None = None
    ) -> list[Finding]:
        """Trades of `traded` shares of the symbol printed on the market (269=2, all
        participants), then, if given, the venue's day volume (269=B), which counts them."""
        findings = self._roll(ts_ns) if not self._day_ns <= ts_ns < self._quiet_until_ns else []
        self._volume.update(symbol, traded, day_volume)
        if traded and self._window_ns <= ts_ns < self._close_ns:
            window = self._window_volume
            window[symbol] = window.get(symbol, 0.0) + traded
        return findings

    def on_market_trade(self, symbol: str, qty: float, ts_ns: int) -> list[Finding]:
        """A trade of the symbol on the market (all participants), from market data."""
        return self.on_market(symbol, qty, ts_ns)

    def on_day_volume(self, symbol: str, volume: float, ts_ns: int) -> list[Finding]:
        """The venue's day volume of the symbol (TradeVolume, 269=B, in a 35=W or 35=X)."""
        return self.on_market(symbol, 0.0, ts_ns, volume)

    def on_fill(self, fill: Fill) -> list[Finding]:
        ts_ns = fill.ts_ns
        findings = self._roll(ts_ns) if not self._day_ns <= ts_ns < self._quiet_until_ns else []
        if self._window_ns <= ts_ns < self._close_ns:
            key = (fill.account, fill.symbol)
            self._account_volume[key] = self._account_volume.get(key, Decimal(0)) + fill.qty
            ids = self._exec_ids.setdefault(key, [])
            if len(ids) < 50:
                ids.append(fill.exec_id)
        return findings

    def judge(self) -> list[Finding]:
        """The findings of the current day's closing window (at the close, or end of input)."""
        close_ns = self._day * NS_PER_DAY + self.close_ns_of_day
        findings = []
        for (account, symbol), volume in sorted(self._account_volume.items()):
            window = _decimal(self._window_volume.get(symbol, 0.0))
            day_volume = _decimal(self._volume.of(symbol))
            if day_volume < self.min_symbol_volume:
                continue  # too thin a market to judge shares
            window_share = volume / window if window else Decimal(1)
            day_share = volume / day_volume
            if window_share < self.window_share and day_share < self.day_share:
                continue
            score = min(100, int(50 + 100 * window_share))
            findings.append(
                Finding(
                    MARKING_THE_CLOSE, f"close:{account}:{symbol}:{self._day}", account, symbol,
                    close_ns, score,
                    {"account_volume": volume, "window_volume": window, "day_volume": day_volume,
                     "day_volume_source": self._volume.source(symbol),
                     "window_share": window_share.quantize(Decimal("0.0001")),
                     "day_share": day_share.quantize(Decimal("0.0001")),
                     "thresholds": {"window_share": self.window_share,
                                    "day_share": self.day_share},
                     "window_ns": self.window_ns,
                     "exec_ids": list(self._exec_ids[(account, symbol)])},
                )
            )  # fmt: skip
        return findings


PUMP_AND_DUMP = "PUMP_AND_DUMP"


@dataclass
class _Accumulation:
    bought: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    first_ns: int = 0
    exec_ids: list[str] = field(default_factory=list)
    flagged: bool = False
    dumped: bool = False


class PumpAndDumpModel:
    """PUMP_AND_DUMP: an account's buys in a symbol exceed `volume_share` (X=5 %) of the
    symbol's day volume (score 60); raised (a second finding, score 90) if it then sells at
    ≥ `rise` (Y=20 %) above its average buy price within `within_ns` (Z=48 h) of its first buy.

    The day volume is the venue's (`DayVolume`: TradeVolume, 269=B, from the snapshot a feed
    starts with and the refreshes after it, plus the trades printed since; the trades printed
    since the start of the UTC day for a symbol the venue reports no volume for). A live model
    compares the buys with the day's volume so far: judged against the few minutes a feed has
    seen, an ordinary order on a liquid stock would look like a large share of its day.
    `min_symbol_volume` keeps the first trades of a day from deciding alone.

    The accumulation finding (score 60) is a watch, not a verdict: pump-and-dump schemes are
    run in thinly traded stocks, where a position is built, the price pushed up and the
    position sold into the rise, and a buyer of more than X of a thin stock's day volume
    holds the first part of that. It fires for any such buyer, whatever the buyer goes on to
    do (an account that buys 8 % of a thin stock's day to mark its close is one, and its
    MARKING_THE_CLOSE alert is best read next to this one); the dump (score 90) is the
    pattern itself.
    """

    def __init__(
        self,
        volume_share: Decimal = Decimal("0.05"),
        rise: Decimal = Decimal("0.20"),
        within_ns: int = 48 * 3600 * NS_PER_S,
        min_symbol_volume: Decimal = Decimal(10_000),
    ) -> None:
        self.volume_share = volume_share
        self.rise = rise
        self.within_ns = within_ns
        self.min_symbol_volume = min_symbol_volume
        self._day = -1
        self._day_ns = 0  # the current UTC day is [_day_ns, _day_ns + NS_PER_DAY)
        self._volume = DayVolume()
        self._positions: dict[tuple[str, str], _Accumulation] = {}
        self._started: deque[tuple[int, tuple[str, str]]] = deque()

    def _roll(self, ts_ns: int) -> None:
        if not self._day_ns <= ts_ns < self._day_ns + NS_PER_DAY:
            self._day = day_of(ts_ns)
            self._day_ns = self._day * NS_PER_DAY
            self._volume.clear()
        # Bounded: accumulations older than Z are forgotten, oldest first (they are queued in
        # the order they began, so expiry touches only what expires).
        started = self._started
        if started and started[0][0] < ts_ns - self.within_ns:
            horizon = ts_ns - self.within_ns
            while started and started[0][0] < horizon:
                first_ns, key = started.popleft()
                acc = self._positions.get(key)
                if acc is not None and acc.first_ns == first_ns:
                    del self._positions[key]

    def on_market(
        self, symbol: str, traded: float, ts_ns: int, day_volume: float | None = None
    ) -> list[Finding]:
        """Trades of `traded` shares of the symbol printed on the market (269=2, all
        participants), then, if given, the venue's day volume (269=B), which counts them."""
        started = self._started
        if not self._day_ns <= ts_ns < self._day_ns + NS_PER_DAY or (
            started and started[0][0] < ts_ns - self.within_ns
        ):
            self._roll(ts_ns)
        self._volume.update(symbol, traded, day_volume)
        return []

    def on_market_trade(self, symbol: str, qty: float, ts_ns: int) -> list[Finding]:
        return self.on_market(symbol, qty, ts_ns)

    def on_day_volume(self, symbol: str, volume: float, ts_ns: int) -> list[Finding]:
        """The venue's day volume of the symbol (TradeVolume, 269=B, in a 35=W or 35=X)."""
        return self.on_market(symbol, 0.0, ts_ns, volume)

    def on_fill(self, fill: Fill) -> list[Finding]:
        self._roll(fill.ts_ns)
        key = (fill.account, fill.symbol)
        acc = self._positions.get(key)
        if fill.buy:
            if acc is None:
                acc = self._positions[key] = _Accumulation(first_ns=fill.ts_ns)
                self._started.append((fill.ts_ns, key))
            acc.bought += fill.qty
            acc.cost += fill.qty * fill.px
            if len(acc.exec_ids) < 50:
                acc.exec_ids.append(fill.exec_id)
            if acc.flagged:
                return []
            volume = _decimal(self._volume.of(fill.symbol))
            if volume < self.min_symbol_volume or acc.bought <= self.volume_share * volume:
                return []
            acc.flagged = True
            return [self._finding(fill, acc, "accumulation", 60, volume)]
        if acc is None or not acc.flagged or acc.dumped or not acc.bought:
            return []
        average = acc.cost / acc.bought
        if fill.px < average * (1 + self.rise):
            return []
        acc.dumped = True
        return [self._finding(fill, acc, "dump", 90, _decimal(self._volume.of(fill.symbol)))]

    def _finding(
        self, fill: Fill, acc: _Accumulation, stage: str, score: int, volume: Decimal
    ) -> Finding:
        average = (acc.cost / acc.bought).quantize(Decimal("0.0001"))
        evidence: dict[str, Any] = {
            "stage": stage, "bought": acc.bought, "average_buy_px": average,
            "symbol_day_volume": volume,
            "day_volume_source": self._volume.source(fill.symbol),
            "first_buy_ns": acc.first_ns, "exec_ids": list(acc.exec_ids),
            "thresholds": {"volume_share": self.volume_share, "rise": self.rise,
                           "within_ns": self.within_ns},
        }  # fmt: skip
        if stage == "dump":
            evidence |= {"sell_exec_id": fill.exec_id, "sell_px": fill.px,
                         "rise": (fill.px / average - 1).quantize(Decimal("0.0001"))}  # fmt: skip
        return Finding(
            PUMP_AND_DUMP, f"pump:{fill.account}:{fill.symbol}:{acc.first_ns}:{stage}",
            fill.account, fill.symbol, fill.ts_ns, score, evidence,
        )  # fmt: skip


class OrderChains:
    """Which order an execution report is about, however the venue names it.

    An order keeps its OrderID (37) through replaces and cancels. Reported the standard FIX 4.4
    way, its ClOrdID (11) changes with each replace (the new id in 11, the one it replaces in
    OrigClOrdID (41)), and a cancel carries the cancel request's id in 11 and the order's
    current one in 41; some venues echo the order's own ClOrdID in 11 instead, without 41.
    The models know an order by the ClOrdID it was placed with, whichever way the venue
    reports: `known` finds it by OrderID when the order was seen, else by 41 on a cancel or
    replace, else by 11.

    Bounded in event time: an order not placed or replaced for `max_age_ns` (a day) is
    forgotten, as `SpoofingModel` forgets it (an order whose end was never reported must not
    grow the state forever).
    """

    __slots__ = ("_by_order_id", "_placed", "max_age_ns")

    def __init__(self, max_age_ns: int = NS_PER_DAY) -> None:
        self.max_age_ns = max_age_ns
        # OrderID -> (the ClOrdID the models know it by, when it was last placed or replaced)
        self._by_order_id: dict[str, tuple[str, int]] = {}
        self._placed: deque[tuple[int, str]] = deque()  # (ts, OrderID) in arrival order

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """A snapshot of an earlier release held OrderID -> ClOrdID only."""
        slots = state[1]
        self.max_age_ns = slots.get("max_age_ns", NS_PER_DAY)
        self._placed = slots.get("_placed", deque())
        self._by_order_id = {
            order_id: (value, 0) if type(value) is str else value
            for order_id, value in slots["_by_order_id"].items()
        }

    def known(self, order_id: str, cl_ord_id: str, orig_cl_ord_id: str | None,
              exec_type: str) -> str:  # fmt: skip
        seen = self._by_order_id.get(order_id) if order_id else None
        if seen is not None:
            return seen[0]
        if exec_type in ("4", "5") and orig_cl_ord_id:
            return orig_cl_ord_id
        return cl_ord_id

    def placed(self, order_id: str, key: str, ts_ns: int) -> None:
        """A new order (150=0) or a replace (150=5) of the order `known` as `key`: it is known
        by the ClOrdID it was first placed with from now on."""
        if not order_id:
            return
        seen = self._by_order_id.get(order_id)
        self._by_order_id[order_id] = (key if seen is None else seen[0], ts_ns)
        placed = self._placed
        placed.append((ts_ns, order_id))
        horizon = ts_ns - self.max_age_ns
        while placed and placed[0][0] < horizon:
            at, old = placed.popleft()
            seen = self._by_order_id.get(old)
            if seen is not None and seen[1] == at:  # not placed again since
                del self._by_order_id[old]

    def ended(self, order_id: str) -> None:
        """Cancelled, filled, rejected or expired: nothing more will come for it."""
        self._by_order_id.pop(order_id, None)

    def __len__(self) -> int:
        return len(self._by_order_id)
