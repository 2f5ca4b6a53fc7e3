"""Domain layer, surveillance: wash trades, by self-match (`SelfMatchModel`) and by round trips
(`RoundTripModel`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from domain.surveillance.findings import NS_PER_S, WASH_TRADE, Fill, Finding, day_of


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
