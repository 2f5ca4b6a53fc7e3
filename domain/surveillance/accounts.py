"""Domain layer, surveillance: an account's day, judged whole: too many orders per trade
(`OrderToTradeModel`), and trades with no owner on record (`OwnershipMissingModel`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from domain.surveillance.findings import (
    EXCESSIVE_OTR,
    NS_PER_DAY,
    OWNERSHIP_MISSING,
    Fill,
    Finding,
    day_of,
)


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
