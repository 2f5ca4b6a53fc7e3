"""Domain layer: the trader's order-status push — an execution report as the edge's `order` frame.

`{"type":"order","account","cl_ord_id","order_id","symbol","side","status","exec_type",
"last_qty","last_px","cum_qty","leaves_qty","avg_px","reason","ts"}` (CONTRACT.md):
- `status`: the order's state after the report, by OrdStatus (39) member name (NEW,
  PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED, PENDING_NEW, …); a replace (150=5) is
  REPLACED whatever 39 says, because that is what the trader needs to see happen (FIX 4.4 sends
  the order's state in 39 on a replace: NEW or PARTIALLY_FILLED).
- `exec_type`: ExecType (150) member name (NEW, TRADE, CANCELED, REPLACED, REJECTED, EXPIRED,
  TRADE_CANCEL for a bust, TRADE_CORRECT, …).
- `side`: BUY, SELL, SELL_SHORT, SELL_SHORT_EXEMPT, or the wire value when another.
- quantities and prices: JSON numbers written from the report's exact decimal text (no float
  on the way); `reason`: Text (58) when the venue gave one (rejects, cancels), else null;
  `ts`: the event time, epoch milliseconds.
Pure and stdlib only; the frame text is built once here and fanned out by the edge as is.
"""

from __future__ import annotations

import json
from decimal import Decimal

from domain.events import ExecutionReport
from domain.orders import ExecType, OrdStatus

_STATUS = {s.value: s.name for s in OrdStatus}
_EXEC_TYPE = {e.value: e.name for e in ExecType}
_SIDE = {"1": "BUY", "2": "SELL", "5": "SELL_SHORT", "6": "SELL_SHORT_EXEMPT"}


def _number(value: Decimal | None) -> str:
    """A decimal as a JSON number literal, exact (`Decimal('100.250')` -> `100.250`)."""
    if value is None or not value.is_finite():
        return "null"
    text = str(value)
    if "E" in text:  # scientific form (tiny or huge values): write the digits out
        text = format(value, "f")
    return text if text != "-0" else "0"


_PLAIN = frozenset(" !#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`"
                   "abcdefghijklmnopqrstuvwxyz{|}~")  # fmt: skip
_dumps = json.dumps


def _string(value: str | None) -> str:
    """A JSON string; identifiers (the usual case) without json.dumps' per-call overhead."""
    if value is None:
        return "null"
    if _PLAIN.issuperset(value):
        return f'"{value}"'
    return _dumps(value)


def order_status(report: ExecutionReport) -> str:
    """The order's state the trader sees after `report` (see the module docstring)."""
    if report.exec_type == ExecType.REPLACED:
        return "REPLACED"
    return _STATUS.get(report.ord_status, report.ord_status)


def order_frame(report: ExecutionReport) -> str | None:
    """The `order` frame of an execution report, as JSON text; None for a report without an
    account (no trader can own it).

    >>> from decimal import Decimal as D
    >>> r = ExecutionReport("E1", "O1", "C1", None, "8", "8", "ACC1", "ACME", "1", D(100), "2",
    ...                     D("10.5"), None, D(0), D(0), D(0), D(0), D(0),
    ...                     1_764_081_000_000_000_000, text="price outside the band")
    >>> doc = json.loads(order_frame(r))
    >>> doc["status"], doc["exec_type"], doc["side"], doc["reason"], doc["ts"]
    ('REJECTED', 'REJECTED', 'BUY', 'price outside the band', 1764081000000)
    """
    account = report.account
    if not account:
        return None
    # Hand-formatted: ~3x faster than json.dumps of a dict, for every execution report booked.
    return (
        f'{{"type":"order","account":{_string(account)},"cl_ord_id":{_string(report.cl_ord_id)}'
        f',"order_id":{_string(report.order_id)},"symbol":{_string(report.symbol)}'
        f',"side":{_string(_SIDE.get(report.side) or report.side)}'
        f',"status":{_string(order_status(report))}'
        f',"exec_type":{_string(_EXEC_TYPE.get(report.exec_type) or report.exec_type)}'
        f',"exec_id":{_string(report.exec_id)},"reason":{_string(report.text or None)}'
        f',"last_qty":{_number(report.last_qty)},"last_px":{_number(report.last_px)}'
        f',"cum_qty":{_number(report.cum_qty)},"leaves_qty":{_number(report.leaves_qty)}'
        f',"avg_px":{_number(report.avg_px)},"ts":{report.ts_event // 1_000_000}}}'
    )
