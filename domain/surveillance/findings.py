"""Domain layer, surveillance: what the models read (`Fill`) and what they find (`Finding`, by
kind), and the UTC day of an event time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.ledger import is_buy

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
WASH_TRADE = "WASH_TRADE"
EXCESSIVE_OTR = "EXCESSIVE_OTR"
OWNERSHIP_MISSING = "OWNERSHIP_MISSING"
SPOOFING = "SPOOFING"
MARKING_THE_CLOSE = "MARKING_THE_CLOSE"
PUMP_AND_DUMP = "PUMP_AND_DUMP"


@dataclass(frozen=True, slots=True)
class Fill:
    """A trade of one account, from an execution report (ExecType F)."""

    exec_id: str
    account: str
    symbol: str
    side: str  # Side (54): a buy by domain.ledger.is_buy (1, 3), else a sell
    qty: Decimal
    px: Decimal
    ts_ns: int
    cl_ord_id: str = ""
    trd_match_id: str | None = None

    @property
    def buy(self) -> bool:
        return is_buy(self.side)


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
