"""Connectors layer: the FIX messages we send, built with simplefix (never by hand).

`new_order_single` builds the 35=D of a child order (a triggered stop, a released list leg),
`order_cancel_request` the 35=F that withdraws a leg working at the venue. Every
field comes from the caller, SendingTime (52) included, so that the same input gives the same
bytes (a replay after a crash re-sends byte-identical messages, which the outbound sinks then
recognise by ClOrdID).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import simplefix

from connectors.fix.timefmt import format_utc_timestamp

MARKET = "1"
LIMIT = "2"


@dataclass(frozen=True, slots=True)
class OutboundOrder:
    """A new order to send: what a 35=D carries.

    Attributes:
        cl_ord_id: ClOrdID (11), deterministic (e.g. "{stop ClOrdID}.T").
        account: Account (1).
        symbol: Symbol (55).
        side: Side (54) wire value.
        quantity: OrderQty (38).
        ord_type: OrdType (40): "1" market, "2" limit.
        price: Price (44), for limit orders.
        ts_event: TransactTime (60) and SendingTime (52), int UTC ns (the event that caused it).
        time_in_force: TimeInForce (59), "0" Day by default.
    """

    cl_ord_id: str
    account: str | None
    symbol: str
    side: str
    quantity: Decimal
    ord_type: str
    price: Decimal | None
    ts_event: int
    time_in_force: str = "0"


def _header(
    msg_type: str, ts_event: int, seq: int, sender: str, target: str, begin_string: str
) -> tuple[simplefix.FixMessage, str]:
    """A message with its standard header; SendingTime (52) is the event's time (returned too,
    for TransactTime (60))."""
    stamp = format_utc_timestamp(ts_event, 3)
    m = simplefix.FixMessage()
    for tag, value in ((8, begin_string), (35, msg_type), (49, sender), (56, target),
                       (34, seq), (52, stamp)):  # fmt: skip
        m.append_pair(tag, value)
    return m, stamp


def new_order_single(
    order: OutboundOrder,
    seq: int,
    sender: str = "BROKERFLOW",
    target: str = "EXCHANGE",
    begin_string: str = "FIX.4.4",
) -> bytes:
    """Return the SOH-delimited 35=D of `order` with MsgSeqNum (34) `seq`.

    Raises:
        ValueError: a limit order without a price.
    """
    if order.ord_type == LIMIT and order.price is None:
        msg = f"limit order {order.cl_ord_id} has no price"
        raise ValueError(msg)
    m, stamp = _header("D", order.ts_event, seq, sender, target, begin_string)
    m.append_pair(11, order.cl_ord_id)
    if order.account:
        m.append_pair(1, order.account)
    m.append_pair(55, order.symbol)
    m.append_pair(54, order.side)
    m.append_pair(60, stamp)
    m.append_pair(38, str(order.quantity))
    m.append_pair(40, order.ord_type)
    if order.ord_type == LIMIT:
        m.append_pair(44, str(order.price))
    m.append_pair(59, order.time_in_force)
    return m.encode()


@dataclass(frozen=True, slots=True)
class OutboundCancel:
    """A cancel to send (35=F): an OCO or bracket leg working at the venue whose sibling fired.

    Attributes:
        cl_ord_id: ClOrdID (11) of the cancel, deterministic (`"{leg}.C"`).
        orig_cl_ord_id: OrigClOrdID (41), the leg to cancel.
        ts_event: TransactTime (60) and SendingTime (52), int UTC ns.
    """

    cl_ord_id: str
    orig_cl_ord_id: str
    account: str | None
    symbol: str
    side: str
    quantity: Decimal
    ts_event: int


def order_cancel_request(
    cancel: OutboundCancel,
    seq: int,
    sender: str = "BROKERFLOW",
    target: str = "EXCHANGE",
    begin_string: str = "FIX.4.4",
) -> bytes:
    """Return the SOH-delimited 35=F of `cancel` with MsgSeqNum (34) `seq`."""
    m, stamp = _header("F", cancel.ts_event, seq, sender, target, begin_string)
    m.append_pair(11, cancel.cl_ord_id)
    m.append_pair(41, cancel.orig_cl_ord_id)
    if cancel.account:
        m.append_pair(1, cancel.account)
    m.append_pair(55, cancel.symbol)
    m.append_pair(54, cancel.side)
    m.append_pair(60, stamp)
    m.append_pair(38, str(cancel.quantity))
    return m.encode()


def encode_outbound(message: OutboundOrder | OutboundCancel, seq: int) -> bytes:
    """35=D for an order, 35=F for a cancel."""
    if type(message) is OutboundCancel:
        return order_cancel_request(message, seq)
    return new_order_single(message, seq)
