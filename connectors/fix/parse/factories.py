"""The decoder's event factories: its frozen events built without the frozen dataclass
`__init__` (`domain.frozen.fast_factory`).

The hot paths make one `MdEntry` per market-data entry, one event per symbol and one
`ExecutionReport` per 35=8, and call these positionally in field order (`map` over columns).
"""

from __future__ import annotations

from domain.events import ExecutionReport, MarketDataIncrement, MarketDataSnapshot, MdEntry
from domain.frozen import fast_factory

_MD_ENTRY_FIELDS = ("entry_type", "action", "price", "size", "entry_id")
_SNAPSHOT_FIELDS = ("symbol", "ts_event", "entries", "rpt_seq", "crossed")
_INCREMENT_FIELDS = ("symbol", "ts_event", "entries", "rpt_seq")
_EXEC_REPORT_FIELDS = (
    "exec_id", "order_id", "cl_ord_id", "orig_cl_ord_id", "exec_type", "ord_status", "account",
    "symbol", "side", "order_qty", "ord_type", "price", "stop_px", "last_qty", "last_px",
    "cum_qty", "leaves_qty", "avg_px", "ts_event", "trd_match_id", "exec_ref_id", "text",
    "poss_dup", "raw", "source",
)  # fmt: skip

_make_md_entry = fast_factory(MdEntry, _MD_ENTRY_FIELDS)
_make_snapshot = fast_factory(MarketDataSnapshot, _SNAPSHOT_FIELDS)
_make_increment = fast_factory(MarketDataIncrement, _INCREMENT_FIELDS)
_make_execution_report = fast_factory(ExecutionReport, _EXEC_REPORT_FIELDS)
