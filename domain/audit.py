"""Domain layer: audit-trail records, one per order event, as the `audit_log` table stores them.

Pure and stdlib only. `audit_record(event, snapshot)` maps an `OrderRequest` or
`ExecutionReport` plus the L1 `Quote` of its symbol at the event's time (joined in the dataflow)
to an `AuditRecord`; `order_triggered(...)` builds the record of a stop that fired.

`event_id` is a UUIDv5 (fixed namespace `AUDIT_NAMESPACE`) of the event type and the event's
natural key, never of where it was read from, so a re-delivered event (another file, a resend,
a replay) gets the same id and every report counts it once:

- execution report: `"{event_type}|exec:{exec_id}"` (ExecID (17));
- order request: `"{event_type}|order:{msg_type}:{cl_ord_id}"` (MsgType (35), ClOrdID (11));
- trigger: `"{event_type}|trigger:{cl_ord_id}"`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from hashlib import sha1
from typing import Any

from domain.errors import FieldError, InvariantViolation
from domain.events import ExecutionReport, OrderEvent, OrderRequest
from domain.frozen import fast_factory
from domain.pickling import tuple_pickled
from domain.quotes import Quote

AUDIT_NAMESPACE = uuid.UUID("5b1f3a0e-6f0c-5d43-9a57-62726f6b6572")
"""Namespace of audit event ids. Never change it: every stored `event_id` depends on it."""

ORDER_PLACED = "ORDER_PLACED"
ORDER_MODIFIED = "ORDER_MODIFIED"
ORDER_CANCEL_REQUESTED = "ORDER_CANCEL_REQUESTED"
ORDER_ACCEPTED = "ORDER_ACCEPTED"
ORDER_FILLED = "ORDER_FILLED"
ORDER_CANCELLED = "ORDER_CANCELLED"
ORDER_REJECTED = "ORDER_REJECTED"
ORDER_EXPIRED = "ORDER_EXPIRED"
ORDER_RESTATED = "ORDER_RESTATED"
ORDER_TRIGGERED = "ORDER_TRIGGERED"
ORDER_PENDING_NEW = "ORDER_PENDING_NEW"
ORDER_PENDING_CANCEL = "ORDER_PENDING_CANCEL"
ORDER_PENDING_REPLACE = "ORDER_PENDING_REPLACE"
ORDER_DONE_FOR_DAY = "ORDER_DONE_FOR_DAY"
ORDER_STOPPED = "ORDER_STOPPED"
ORDER_SUSPENDED = "ORDER_SUSPENDED"
ORDER_STATUS = "ORDER_STATUS"
TRADE_CANCELLED = "TRADE_CANCELLED"
TRADE_CORRECTED = "TRADE_CORRECTED"
# issue 19: the kill switch and what it held
TRADING_HALTED = "TRADING_HALTED"
TRADING_RESUMED = "TRADING_RESUMED"
ORDER_HELD = "ORDER_HELD"

REQUEST_EVENT_TYPES: Mapping[str, str] = {
    "D": ORDER_PLACED,  # NewOrderSingle
    "G": ORDER_MODIFIED,  # OrderCancelReplaceRequest
    "F": ORDER_CANCEL_REQUESTED,  # OrderCancelRequest
}
"""MsgType (35) of an order request → event type."""

EXEC_EVENT_TYPES: Mapping[str, str] = {
    "0": ORDER_ACCEPTED,
    "F": ORDER_FILLED,  # partial or full: `ord_status` (39) in the details tells which
    "4": ORDER_CANCELLED,
    "5": ORDER_MODIFIED,  # Replaced
    "8": ORDER_REJECTED,
    "C": ORDER_EXPIRED,
    "H": TRADE_CANCELLED,
    "G": TRADE_CORRECTED,
    "D": ORDER_RESTATED,
    "L": ORDER_TRIGGERED,  # Triggered or activated by system (FIX 5.0)
    # Not order-changing, but a complete audit trail keeps them too.
    "A": ORDER_PENDING_NEW,
    "6": ORDER_PENDING_CANCEL,
    "E": ORDER_PENDING_REPLACE,
    "3": ORDER_DONE_FOR_DAY,
    "7": ORDER_STOPPED,
    "9": ORDER_SUSPENDED,
    "I": ORDER_STATUS,
}
"""ExecType (150) → event type. FIX 4.2's 1/2 (partial fill/fill) arrive normalised to "F"."""

_ZERO = Decimal(0)


@tuple_pickled
@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of `audit_log`: an order event with its order details and market snapshot.

    Attributes:
        event_id: UUIDv5 string derived from the event (see the module docstring).
        ts_event_us: event time, epoch microseconds (the `timestamp` column).
        event_type: ORDER_PLACED, ORDER_FILLED, ... (the constants of this module).
        account: Account (1); "" when the message has none.
        order_id: OrderID (37), broker-assigned; "" when the event has none (a 35=D, or an
            F or G sent without it).
        cl_ord_id: ClOrdID (11).
        orig_cl_ord_id: OrigClOrdID (41).
        exec_id: ExecID (17); "" for requests.
        symbol: Symbol (55).
        side: Side (54).
        ord_type: OrdType (40).
        ord_status: OrdStatus (39); "" for requests.
        quantity: OrderQty (38).
        price: Price (44).
        last_qty: LastQty (32); 0 when not a fill.
        last_px: LastPx (31); 0 when not a fill.
        order_details: JSON object of the remaining order fields (decimals as strings).
        market_snapshot: JSON of the symbol's L1 quote at the event's time, `{}` when unknown.
        raw_fix: the message as received (UTF-8, SOH kept).
        source: where it was read from ("file:day.fix:812").
    """

    event_id: str
    ts_event_us: int
    event_type: str
    account: str
    order_id: str
    cl_ord_id: str
    orig_cl_ord_id: str
    exec_id: str
    symbol: str
    side: str
    ord_type: str
    ord_status: str
    quantity: Decimal | None
    price: Decimal | None
    last_qty: Decimal
    last_px: Decimal
    order_details: str
    market_snapshot: str
    raw_fix: str
    source: str


_NAMESPACE_BYTES = AUDIT_NAMESPACE.bytes
# UUID variant (RFC 4122): the 17th hex digit keeps its low two bits under a top `10` (8-b).
_VARIANT_DIGIT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _uuid5_str(name: str) -> str:
    """`str(uuid.uuid5(AUDIT_NAMESPACE, name))`, formatted straight from the SHA-1 digest."""
    h = sha1(_NAMESPACE_BYTES + name.encode("utf-8")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"


_RECORD_FIELDS = (
    "event_id", "ts_event_us", "event_type", "account", "order_id", "cl_ord_id",
    "orig_cl_ord_id", "exec_id", "symbol", "side", "ord_type", "ord_status", "quantity", "price",
    "last_qty", "last_px", "order_details", "market_snapshot", "raw_fix", "source",
)  # fmt: skip
_new_record = fast_factory(AuditRecord, _RECORD_FIELDS)
"""`AuditRecord(...)` without the frozen dataclass' `object.__setattr__` per field (0.35 us a
record, against 2.0 us for `__init__`)."""


def audit_event_id(event_type: str, key: str) -> str:
    """Return the event id of an event type and natural key.

    >>> audit_event_id("ORDER_FILLED", "exec:E1") == audit_event_id("ORDER_FILLED", "exec:E1")
    True
    """
    return _uuid5_str(f"{event_type}|{key}")


_encode_str = json.encoder.encode_basestring_ascii

_SNAPSHOT_JSON = (
    '{"symbol":%s,"bid":%s,"bid_size":%s,"ask":%s,"ask_size":%s,"ltp":%s,"ltq":%s,'
    '"volume":%s,"ts":%s,"seq":%s}'
)
_STALE_JSON = ',"stale":true,"stale_reason":%s,"stale_since":%s}'
_INF = float("inf")


def _number_json(value: Any) -> str:
    """`value` as `json.dumps` writes it: a finite float or an int by its repr, None as null."""
    kind = value.__class__
    if kind is float:
        if -_INF < value < _INF:
            return repr(value)
    elif kind is int:
        return repr(value)
    elif value is None:
        return "null"
    return json.dumps(value)  # NaN, Infinity, bool, other numbers: json's own spelling


def snapshot_json(snapshot: Quote | None) -> str:
    """Return the L1 quote as the contract's quote JSON (Redis `quote:{SYMBOL}`), or `{}`.

    The same text as `json.dumps` of the fields in this order with `separators=(",", ":")`
    (the tests check it), written through one template: ~1.5 µs instead of ~6 µs a record.
    A quote of a stale book (docs/book-integrity.md) ends with `"stale":true,"stale_reason",
    "stale_since"` (epoch ms), as in Redis; a sound one has none.
    """
    if snapshot is None:
        return "{}"
    symbol, bid, bid_size, ask, ask_size, ltp, ltq, volume, ts, seq = snapshot[:10]
    num = _number_json
    text = _SNAPSHOT_JSON % (
        _encode_str(symbol) if symbol.__class__ is str else json.dumps(symbol),
        num(bid),
        num(bid_size),
        num(ask),
        num(ask_size),
        num(ltp),
        num(ltq),
        num(volume),
        num(ts),
        num(seq),
    )
    stale = snapshot.stale
    if stale is None:
        return text
    return text[:-1] + _STALE_JSON % (json.dumps(stale), num(snapshot.stale_since))


def _details(fields: Mapping[str, Any]) -> str:
    """JSON of the non-empty fields; decimals as strings so no digit is lost."""
    out = {}
    for key, value in fields.items():
        if value is None:
            continue
        out[key] = str(value) if isinstance(value, Decimal) else value
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def _json_value(value: Any) -> str:
    """One value of `_details`' JSON, as `json.dumps(..., sort_keys=True)` writes it there."""
    if value.__class__ is str:
        return _encode_str(value)
    if isinstance(value, Decimal):
        return _encode_str(str(value))
    if isinstance(value, str):
        return _encode_str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _sorted_details(prefixes: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """`_details` of fixed fields, their `"key":` prefixes given in sorted key order.

    Byte-identical to `_details` (the tests check it), without building a dict and sorting it.
    """
    return (
        "{"
        + ",".join(
            [
                p
                + (
                    _encode_str(v)
                    if v.__class__ is str
                    else f'"{v!s}"'
                    if v.__class__ is Decimal  # digits, sign, '.', 'E', 'NaN', 'Infinity'
                    else _json_value(v)
                )
                for p, v in zip(prefixes, values, strict=True)
                if v is not None
            ]
        )
        + "}"
    )


def _prefixes(*keys: str) -> tuple[str, ...]:
    if list(keys) != sorted(keys):
        msg = f"detail keys must be given sorted: {keys}"
        raise AssertionError(msg)
    return tuple(f"{json.dumps(key)}:" for key in keys)


_EXEC_DETAIL_PREFIXES = _prefixes(
    "avg_px",
    "cum_qty",
    "exec_ref_id",
    "exec_type",
    "last_px",
    "last_qty",
    "leaves_qty",
    "ord_status",
    "ord_type",
    "order_qty",
    "poss_dup",
    "price",
    "stop_px",
    "text",
    "trd_match_id",
)
_REQUEST_DETAIL_PREFIXES = _prefixes(
    "exec_inst",
    "expire_time",
    "msg_type",
    "ord_type",
    "order_qty",
    "peg_offset_type",
    "peg_offset_value",
    "price",
    "stop_px",
    "time_in_force",
)


def _exec_details(event: ExecutionReport) -> str:
    """`_details` of an execution report's evidence fields."""
    return _sorted_details(
        _EXEC_DETAIL_PREFIXES,
        (
            event.avg_px,
            event.cum_qty,
            event.exec_ref_id,
            event.exec_type,
            event.last_px,
            event.last_qty,
            event.leaves_qty,
            event.ord_status,
            event.ord_type,
            event.order_qty,
            event.poss_dup or None,
            event.price,
            event.stop_px,
            event.text,
            event.trd_match_id,
        ),
    )


def _request_details(event: OrderRequest) -> str:
    """`_details` of an order request's fields."""
    return _sorted_details(
        _REQUEST_DETAIL_PREFIXES,
        (
            event.exec_inst,
            event.expire_time,
            event.msg_type,
            event.ord_type,
            event.order_qty,
            event.peg_offset_type,
            event.peg_offset_value,
            event.price,
            event.stop_px,
            event.time_in_force,
        ),
    )


def _raw_text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "replace")


def _check_snapshot(symbol: str, snapshot: Quote | None) -> None:
    if snapshot is not None and snapshot.symbol != symbol:
        msg = f"market snapshot of {snapshot.symbol} joined to an event of {symbol}"
        raise InvariantViolation(msg)


def audit_record(event: OrderEvent, snapshot: Quote | None) -> AuditRecord:
    """Build the audit record of an order event.

    Args:
        event: an `OrderRequest` (35=D/F/G) or an `ExecutionReport` (35=8).
        snapshot: the L1 quote of the event's symbol current at the event's time, or None.

    Returns:
        The record; its `event_id` depends only on the event type and the natural key.

    Raises:
        FieldError: unknown MsgType (35) or ExecType (150).
        InvariantViolation: the snapshot is of another symbol.
    """
    if snapshot is not None:
        _check_snapshot(event.symbol, snapshot)
    if event.__class__ is ExecutionReport or isinstance(event, ExecutionReport):
        return _exec_record(event, snapshot)
    return _request_record(event, snapshot)


def _exec_record(event: ExecutionReport, snapshot: Quote | None) -> AuditRecord:
    event_type = EXEC_EVENT_TYPES.get(event.exec_type)
    if event_type is None:
        msg = f"ExecType(150) {event.exec_type!r} is not supported"
        raise FieldError(150, msg)
    details = _exec_details(event)
    return _new_record(
        _uuid5_str(f"{event_type}|exec:{event.exec_id}"),  # event_id
        event.ts_event // 1000,  # ts_event_us
        event_type,  # event_type
        event.account or "",  # account
        event.order_id or "",  # order_id
        event.cl_ord_id or "",  # cl_ord_id
        event.orig_cl_ord_id or "",  # orig_cl_ord_id
        event.exec_id,  # exec_id
        event.symbol,  # symbol
        event.side,  # side
        event.ord_type or "",  # ord_type
        event.ord_status,  # ord_status
        event.order_qty,  # quantity
        event.price,  # price
        event.last_qty if event.last_qty is not None else _ZERO,  # last_qty
        event.last_px if event.last_px is not None else _ZERO,  # last_px
        details,  # order_details
        snapshot_json(snapshot),  # market_snapshot
        _raw_text(event.raw),  # raw_fix
        event.source,  # source
    )


def _request_record(event: OrderRequest, snapshot: Quote | None) -> AuditRecord:
    event_type = REQUEST_EVENT_TYPES.get(event.msg_type)
    if event_type is None:
        msg = f"MsgType(35) {event.msg_type!r} is not an order request"
        raise FieldError(35, msg)
    details = _request_details(event)
    return _new_record(
        _uuid5_str(f"{event_type}|order:{event.msg_type}:{event.cl_ord_id}"),  # event_id
        event.ts_event // 1000,  # ts_event_us
        event_type,  # event_type
        event.account or "",  # account
        event.order_id or "",  # order_id: an F or G may carry OrderID (37)
        event.cl_ord_id,  # cl_ord_id
        event.orig_cl_ord_id or "",  # orig_cl_ord_id
        "",  # exec_id
        event.symbol,  # symbol
        event.side,  # side
        event.ord_type or "",  # ord_type
        "",  # ord_status
        event.order_qty,  # quantity
        event.price,  # price
        _ZERO,  # last_qty
        _ZERO,  # last_px
        details,  # order_details
        snapshot_json(snapshot),  # market_snapshot
        _raw_text(event.raw),  # raw_fix
        event.source,  # source
    )


def order_triggered(
    *,
    cl_ord_id: str,
    account: str,
    symbol: str,
    side: str,
    ts_event: int,
    snapshot: Quote | None,
    quantity: Decimal | None = None,
    price: Decimal | None = None,
    ord_type: str = "",
    order_id: str = "",
    details: Mapping[str, Any] | None = None,
    source: str = "",
    raw: bytes | str = b"",
    event_type: str = ORDER_TRIGGERED,
) -> AuditRecord:
    """Build the record of an event our own engines raise (a stop that fired, by default).

    Args:
        cl_ord_id: ClOrdID (11) of the order the event is about; the natural key with the type.
        account: Account (1).
        symbol: Symbol (55).
        side: Side (54).
        ts_event: event time, UTC nanoseconds (the quote that fired it, not the clock).
        snapshot: the L1 quote at that time.
        quantity: OrderQty (38).
        price: the limit Price (44) of the order sent, if any.
        ord_type: OrdType (40).
        order_id: OrderID (37), if known.
        details: other evidence (stop_px, trigger_px, child_cl_ord_id, ...); decimals kept exact.
        source: where the event was decided ("stop_engine").
        raw: the message sent because of it, if any.
        event_type: the event type; ORDER_TRIGGERED unless another engine needs its own.

    Returns:
        The record; `event_id` = UUIDv5 of `"{event_type}|trigger:{cl_ord_id}"`.

    Raises:
        InvariantViolation: the snapshot is of another symbol.
    """
    _check_snapshot(symbol, snapshot)
    return AuditRecord(
        event_id=audit_event_id(event_type, f"trigger:{cl_ord_id}"),
        ts_event_us=ts_event // 1000,
        event_type=event_type,
        account=account,
        order_id=order_id,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id="",
        exec_id="",
        symbol=symbol,
        side=side,
        ord_type=ord_type,
        ord_status="",
        quantity=quantity,
        price=price,
        last_qty=_ZERO,
        last_px=_ZERO,
        order_details=_details(dict(details or {})),
        market_snapshot=snapshot_json(snapshot),
        raw_fix=_raw_text(raw),
        source=source,
    )


def decision_record(
    event_type: str,
    key: str,
    ts_event_us: int,
    order_details: str,
    source: str,
    *,
    account: str = "",
    symbol: str = "",
    ord_status: str = "",
) -> AuditRecord:
    """An audit row that is a decision, not an order event (a kill-switch halt, an analyst's
    action on an alert): the order fields empty, what was decided in `order_details`.
    `event_id` = UUIDv5 of `"{event_type}|{key}"`, so writing it again adds nothing."""
    return AuditRecord(
        event_id=audit_event_id(event_type, key),
        ts_event_us=ts_event_us,
        event_type=event_type,
        account=account,
        order_id="",
        cl_ord_id="",
        orig_cl_ord_id="",
        exec_id="",
        symbol=symbol,
        side="",
        ord_type="",
        ord_status=ord_status,
        quantity=None,
        price=None,
        last_qty=_ZERO,
        last_px=_ZERO,
        order_details=order_details,
        market_snapshot="{}",
        raw_fix="",
        source=source,
    )


def trading_halt_record(
    event_type: str, *, scope: str, reason: str, actor: str, started_ns: int, ts_event: int
) -> AuditRecord:
    """The record of a kill-switch halt (TRADING_HALTED) or its end (TRADING_RESUMED).

    `account` is the halted account ("" for scope "all"); `order_details` holds the scope, the
    reason and the actor; `event_id` = UUIDv5 of `"{event_type}|halt:{scope}:{started_ns}"`.
    """
    details = {"scope": scope, "reason": reason, "actor": actor, "started_ns": started_ns}
    return decision_record(
        event_type, f"halt:{scope}:{started_ns}", ts_event // 1000, _details(details),
        "kill_switch", account="" if scope == "all" else scope,
    )  # fmt: skip
