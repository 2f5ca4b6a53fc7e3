"""The `account_margin` row the margin logic produces (`domain.margin_shard`) and the margin
sink writes (`sinks.margin`, which re-exports it under its old name)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.pickling import tuple_pickled


@tuple_pickled
@dataclass(frozen=True, slots=True)
class MarginRow:
    """One `account_margin` row."""

    account: str
    equity: Decimal
    gross_value: Decimal
    ratio: Decimal | None
    state: str
    event_ns: int
    call_since_ns: int | None = None
    excess: Decimal | None = None  # equity over the maintenance requirement (not a column)
    # held symbols valued at their last sound mark, their book stale (issue 21; not a column)
    stale_marks: tuple[str, ...] = ()
