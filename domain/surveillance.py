"""Domain layer: trade-surveillance models, pure and stdlib only, run live and in back-tests alike.

Each model takes order events in event time and returns `Finding`s: the model's kind, the
subject (account or owner), the symbol, the window, a score 0–100 and the evidence (ExecIDs,
ClOrdIDs, thresholds and the computed figures). A finding's `key` is derived from the input
(model, subject, symbol, window), so a replay or a restart yields the same key and the alert
made from it is stored once. State is bounded: every window expires in event time.

Models here (issue 6; more follow):
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
        return found

    def _expire(self, now_ns: int) -> None:
        horizon = now_ns - self.window_ns
        seen = self._match_seen
        while seen and seen[0][0] < horizon:
            _, match_id = seen.popleft()
            self._by_match.pop(match_id, None)
        for symbol in list(self._recent):
            recent = self._recent[symbol]
            while recent and recent[0].ts_ns < horizon:
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
