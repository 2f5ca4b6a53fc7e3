"""Domain layer, stop engine: the orders, the FIX codes they use, and the book's outcomes.

`StopOrder` is what rests in the book; `ChildOrder` is what the book sends to the venue (a
triggered stop's child, or a released list leg); the outcome dataclasses are what every call
of the book returns (see the package docstring). `_Record` is the book's record of an order:
its state, acceptance sequence, expiry and contingency links.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
NS_PER_MS = 1_000_000

# OrdType (40)
ORD_TYPE_MARKET = "1"
ORD_TYPE_LIMIT = "2"
ORD_TYPE_STOP = "3"
ORD_TYPE_STOP_LIMIT = "4"
ORD_TYPE_PEGGED = "P"
# TimeInForce (59)
TIF_DAY = "0"
TIF_GTC = "1"
TIF_GTD = "6"
# PegOffsetType (836)
PEG_OFFSET_PRICE = "0"
PEG_OFFSET_BPS = "1"
# ExecInst (18) "a": trailing stop peg.
EXEC_INST_TRAILING_STOP = "a"
# ContingencyType (1385)
CONTINGENCY_OCO = 1
CONTINGENCY_OTO = 2
# Side (54)
SIDE_BUY = "1"
SELL_SIDES = frozenset({"2", "5", "6"})  # sell, sell short, sell short exempt

REFERENCES = ("last", "bid", "ask", "mid")
# A triggered stop's child is sent as "<stop ClOrdID>.T": deterministic, so a replay sends the
# same ClOrdID, and the venue's fills of it lead back to the stop (an OTO entry's children).
CHILD_SUFFIX = ".T"

_LEG_TYPES = frozenset({ORD_TYPE_MARKET, ORD_TYPE_LIMIT})  # allowed in lists only
_TIFS = frozenset({TIF_DAY, TIF_GTC, TIF_GTD})
_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class StopOrder:
    """A stop, stop-limit or trailing-stop order (or a limit/market leg of a contingent list).

    Attributes:
        cl_ord_id: ClOrdID (11).
        symbol: Symbol (55).
        side: Side (54): "1" buy; "2", "5", "6" sell.
        order_qty: OrderQty (38).
        ord_type: OrdType (40): "3" stop, "4" stop-limit, "P" trailing stop; "1"/"2" in lists.
        stop_px: StopPx (99), for stops and stop-limits.
        price: Price (44): the limit of a stop-limit's child, or of a limit leg.
        time_in_force: TimeInForce (59): "0" Day, "1" GTC, "6" GTD.
        expire_time: ExpireTime (126), UTC ns, for GTD.
        peg_offset_value: PegOffsetValue (211): the trailing amount (price, or bps).
        peg_offset_type: PegOffsetType (836): "0" price, "1" basis points.
        activation_px: trailing starts once the reference reaches this price (sell: at or
            above, buy: at or below); None starts at acceptance.
        reference: "last", "bid", "ask" or "mid"; None takes the book's setting.
        account: Account (1), copied to the child.
    """

    cl_ord_id: str
    symbol: str
    side: str
    order_qty: Decimal | None
    ord_type: str | None
    stop_px: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str = TIF_DAY
    expire_time: int | None = None
    peg_offset_value: Decimal | None = None
    peg_offset_type: str = PEG_OFFSET_PRICE
    activation_px: Decimal | None = None
    reference: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class ChildOrder:
    """An order to send to the venue: a triggered stop's child, or a released list leg.

    Attributes:
        cl_ord_id: ClOrdID (11): `"<stop ClOrdID>.T"` for a trigger, the leg's own for a leg.
        ord_type: OrdType (40): "1" market or "2" limit.
        price: Price (44) of a limit child, else None.
    """

    cl_ord_id: str
    symbol: str
    side: str
    order_qty: Decimal
    ord_type: str
    price: Decimal | None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The order rests in the book (or, in a list, waits for its entry's fill)."""

    cl_ord_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request the book refused; nothing changed. `cl_ord_id` is the request's ClOrdID."""

    cl_ord_id: str
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Replaced:
    """OrigClOrdID (41) now rests as ClOrdID (11) with the new terms."""

    cl_ord_id: str
    orig_cl_ord_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Triggered:
    """The stop fired and left the book: send `child`.

    Attributes:
        stop_px: the stop price when it fired (a trailing stop's ratcheted stop).
        trigger_px: the reference price observed, past the stop when the price gapped.
        reference: which reference fired it.
    """

    order: StopOrder
    stop_px: Decimal
    trigger_px: Decimal
    reference: str
    ts_ns: int
    child: ChildOrder


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The order left the book unfired ("cancel requested", "OCO sibling X triggered", ...)."""

    cl_ord_id: str
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Expired:
    """The order's time in force ran out; `ts_ns` is when it was due."""

    cl_ord_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Activated:
    """A list order became live: a held OTO child, or a limit/market leg to send now (`child`)."""

    cl_ord_id: str
    ts_ns: int
    child: ChildOrder | None = None


Outcome = Accepted | Rejected | Replaced | Triggered | Cancelled | Expired | Activated


# Record states.
_PENDING = "pending"  # an OTO child held until its entry is fully filled
_WORKING = "working"  # resting here (stops) or working at the venue (limit/market legs)


@dataclass(slots=True)
class _Record:
    order: StopOrder
    seq: int  # acceptance sequence: ordering and the validity token of heap entries
    state: str
    buy: bool
    reference: str
    expire_ns: int
    oco: str | None = None  # OCO list id
    parent: str | None = None  # OTO entry this child waits for
    children: list[str] = field(default_factory=list)  # held OTO children


def _release(order: StopOrder) -> ChildOrder:
    limit = order.ord_type == ORD_TYPE_LIMIT
    return ChildOrder(
        order.cl_ord_id,
        order.symbol,
        order.side,
        order.order_qty,
        order.ord_type,
        order.price if limit else None,
        order.account,
    )
