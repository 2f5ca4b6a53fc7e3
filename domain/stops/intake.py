"""Domain layer, stop engine: intake, the checks an order passes before the book looks at it.

`check_stop_order` judges an order's own fields (no book state); `order_from_request` builds a
`StopOrder` from a decoded 35=D. The checks that need the book (duplicates, a stop the price
has already passed) are the book's.
"""

from __future__ import annotations

from decimal import Decimal

from domain.events import OrderRequest
from domain.stops.orders import (
    _BPS,
    _LEG_TYPES,
    _TIFS,
    EXEC_INST_TRAILING_STOP,
    ORD_TYPE_LIMIT,
    ORD_TYPE_PEGGED,
    ORD_TYPE_STOP,
    ORD_TYPE_STOP_LIMIT,
    PEG_OFFSET_BPS,
    PEG_OFFSET_PRICE,
    REFERENCES,
    SELL_SIDES,
    SIDE_BUY,
    TIF_DAY,
    TIF_GTD,
    Rejected,
    StopOrder,
)


def check_stop_order(order: StopOrder, in_list: bool = False) -> str | None:
    """Return why `order`'s fields are unusable, or None when they are fine.

    Args:
        order: the order to check (state-independent checks only).
        in_list: limit and market legs are allowed in contingent lists.
    """
    side = order.side
    if side != SIDE_BUY and side not in SELL_SIDES:
        return f"Side(54) {side} is not supported"
    qty = order.order_qty
    if qty is None:
        return "OrderQty(38) missing"
    if not qty > 0:
        return f"OrderQty(38) must be positive, was {qty}"
    ord_type = order.ord_type
    if ord_type == ORD_TYPE_STOP or ord_type == ORD_TYPE_STOP_LIMIT:
        if order.stop_px is None:
            return "StopPx(99) missing for a stop order"
        if not order.stop_px > 0:
            return f"StopPx(99) must be positive, was {order.stop_px}"
    elif ord_type == ORD_TYPE_PEGGED:
        offset = order.peg_offset_value
        if offset is None:
            return "PegOffsetValue(211) missing for a trailing stop"
        if not offset > 0:
            return f"PegOffsetValue(211) must be positive, was {offset}"
        if order.peg_offset_type == PEG_OFFSET_BPS:
            if offset >= _BPS:
                return f"PegOffsetValue(211) must be below 10000 bps, was {offset}"
        elif order.peg_offset_type != PEG_OFFSET_PRICE:
            return f"PegOffsetType(836) {order.peg_offset_type} is not supported"
        if order.activation_px is not None and not order.activation_px > 0:
            return f"activation price must be positive, was {order.activation_px}"
    elif not (in_list and ord_type in _LEG_TYPES):
        return f"OrdType(40) {ord_type} is not a stop order"
    if ord_type == ORD_TYPE_STOP_LIMIT or ord_type == ORD_TYPE_LIMIT:
        if order.price is None:
            return "Price(44) missing for a limit order"
        if not order.price > 0:
            return f"Price(44) must be positive, was {order.price}"
    if order.reference is not None and order.reference not in REFERENCES:
        return f"reference {order.reference} is not one of last, bid, ask, mid"
    if order.time_in_force not in _TIFS:
        return f"TimeInForce(59) {order.time_in_force} is not supported for stop orders"
    if order.time_in_force == TIF_GTD and order.expire_time is None:
        return "ExpireTime(126) missing for TimeInForce(59) 6 (GTD)"
    return None


def order_from_request(
    request: OrderRequest,
    *,
    reference: str | None = None,
    activation_px: Decimal | None = None,
) -> StopOrder | Rejected:
    """Build a `StopOrder` from a new order request (35=D), or say why not.

    Args:
        request: the decoded 35=D.
        reference: the order's reference price (the FIX message has no field for it).
        activation_px: a trailing stop's activation price (likewise not on the wire).

    Returns:
        The order, or `Rejected` naming the missing or unsupported field.
    """
    ts = request.ts_event
    if request.msg_type != "D":
        return Rejected(request.cl_ord_id, f"MsgType(35) {request.msg_type} is not 35=D", ts)
    if request.ord_type == ORD_TYPE_PEGGED and EXEC_INST_TRAILING_STOP not in (
        request.exec_inst or ""
    ):
        return Rejected(
            request.cl_ord_id, "OrdType(40) P needs ExecInst(18) a (trailing stop peg)", ts
        )
    order = StopOrder(
        cl_ord_id=request.cl_ord_id,
        symbol=request.symbol,
        side=request.side,
        order_qty=request.order_qty,
        ord_type=request.ord_type,
        stop_px=request.stop_px if request.ord_type != ORD_TYPE_PEGGED else None,
        price=request.price if request.ord_type == ORD_TYPE_STOP_LIMIT else None,
        time_in_force=request.time_in_force or TIF_DAY,  # FIX: absent 59 means Day
        expire_time=request.expire_time,
        peg_offset_value=request.peg_offset_value,
        peg_offset_type=request.peg_offset_type or PEG_OFFSET_PRICE,
        activation_px=activation_px,
        reference=reference,
        account=request.account,
    )
    reason = check_stop_order(order)
    if reason is not None:
        return Rejected(request.cl_ord_id, reason, ts)
    return order
