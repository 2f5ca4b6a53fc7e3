"""Domain layer: the order lifecycle (pure, stdlib only, no I/O).

One explicit table, `ORDER_TRANSITIONS`, maps `(status, trigger) -> status` (STYLE.md §9.4).
A trigger is an ExecType (150) of an execution report, or one of the request triggers
`REQUEST_NEW` (35=D), `REQUEST_CANCEL` (35=F), `REQUEST_REPLACE` (35=G). Two targets are
resolved from the report's quantities rather than fixed: `BY_FILL` (FILLED when nothing is
left and something filled, PARTIALLY_FILLED when something filled, else NEW) and
`UNLESS_FILLED` (FILLED when nothing is left, else the status stays). A pair missing from the
table raises `InvalidTransition`, which makes the event a dead letter.

Which order rows an event moves (`route_execution_report`, `route_order_request`):
- D: its ClOrdID (11), as `REQUEST_NEW`.
- F: the order named by OrigClOrdID (41), as `REQUEST_CANCEL`.
- G: the order named by OrigClOrdID (41) as `REQUEST_REPLACE`, and the replacement order
  (its ClOrdID) as `REQUEST_NEW`.
- 35=8 with ExecType 4/6/E (cancelled, pending cancel/replace): the order named by
  OrigClOrdID (41) when given, else ClOrdID (11).
- 35=8 with ExecType 5 (replaced): OrigClOrdID becomes REPLACED, and ClOrdID (the
  replacement) moves as on ExecType 0 (new), keeping the fills carried over.
- 35=8 with ExecType G/H (trade correct, trade cancel), or naming no order the ledger knows
  by 11 or 41: the order's live row by OrderID (37), which the venue keeps through replaces
  and cancels (`live`: the row of the ClOrdID the order was last placed or replaced with).
  A bust or correct may carry the ClOrdID of the fill it amends, which a replace has since
  superseded, or none at all; a venue that omits 41 on a cancel names only the cancel
  request in 11.
- 35=8 without 41 whose 11 names a REPLACED row: the live row by OrderID too. A venue that
  echoes the ClOrdID the order was placed with keeps naming it after our 35=G replaced it.
- 35=8 with ExecType 5 without 41 (echoed), on a row PENDING_REPLACE by our 35=G (its
  `last_request_id`, a row whose OrigClOrdID is this one): the row becomes REPLACED and the
  G's row moves as on ExecType 0, as a standard 11/41 replace would move them. An echoed
  cancel (150=4) needs no such step: the F makes no row, and the order's row is cancelled.
- any other 35=8: ClOrdID (11), or OrigClOrdID (41) when only that order is known (a fill
  reported against the original ClOrdID while a cancel is pending).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from domain.errors import FieldError, InvalidTransition
from domain.events import ExecutionReport, OrderRequest

# FILL_EXEC_TYPES: the ExecTypes that move balances (the ledger imports them from here).
from domain.execution_reports import FILL_EXEC_TYPES as FILL_EXEC_TYPES
from domain.execution_reports import booking_problem, validate_execution_report
from domain.frozen import fast_factory


class OrdStatus(StrEnum):
    """OrdStatus (39): member name stored in `orders.status`, value is the wire value."""

    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    REPLACED = "5"  # FIX 4.2 only as an OrdStatus; here: the state of a replaced ClOrdID
    PENDING_CANCEL = "6"
    STOPPED = "7"
    REJECTED = "8"
    SUSPENDED = "9"
    PENDING_NEW = "A"
    CALCULATED = "B"
    EXPIRED = "C"
    ACCEPTED_FOR_BIDDING = "D"
    PENDING_REPLACE = "E"


class ExecType(StrEnum):
    """ExecType (150), FIX 4.4 values (the decoder maps FIX 4.2's 1/2 to TRADE)."""

    NEW = "0"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    REPLACED = "5"
    PENDING_CANCEL = "6"
    STOPPED = "7"
    REJECTED = "8"
    SUSPENDED = "9"
    PENDING_NEW = "A"
    CALCULATED = "B"
    EXPIRED = "C"
    RESTATED = "D"
    PENDING_REPLACE = "E"
    TRADE = "F"
    TRADE_CORRECT = "G"
    TRADE_CANCEL = "H"
    ORDER_STATUS = "I"


# Request triggers (not ExecType values: those are one character).
REQUEST_NEW = "request_new"
REQUEST_CANCEL = "request_cancel"
REQUEST_REPLACE = "request_replace"

# Resolved targets.
BY_FILL = "by_fill"
UNLESS_FILLED = "unless_filled"

S = OrdStatus
E = ExecType
_Target = OrdStatus | str

ORDER_TRANSITIONS: dict[tuple[OrdStatus | None, str], _Target] = {
    # -- first heard of through a report (no D seen: the ledger started mid-day) -------------
    (None, REQUEST_NEW): S.PENDING_NEW,
    (None, E.PENDING_NEW): S.PENDING_NEW,
    (None, E.NEW): BY_FILL,
    (None, E.TRADE): BY_FILL,
    (None, E.TRADE_CORRECT): BY_FILL,
    (None, E.TRADE_CANCEL): BY_FILL,
    (None, E.RESTATED): BY_FILL,
    (None, E.ORDER_STATUS): BY_FILL,
    (None, E.CANCELED): S.CANCELED,
    (None, E.REPLACED): S.REPLACED,
    (None, E.REJECTED): S.REJECTED,
    (None, E.EXPIRED): S.EXPIRED,
    (None, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (None, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (None, E.PENDING_REPLACE): S.PENDING_REPLACE,
    # -- PENDING_NEW: sent (D), not yet acknowledged -----------------------------------------
    (S.PENDING_NEW, REQUEST_NEW): S.PENDING_NEW,  # replayed D
    (S.PENDING_NEW, REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_NEW, REQUEST_REPLACE): S.PENDING_REPLACE,
    (S.PENDING_NEW, E.PENDING_NEW): S.PENDING_NEW,
    (S.PENDING_NEW, E.NEW): BY_FILL,  # also the replacement order on ExecType 5
    (S.PENDING_NEW, E.TRADE): BY_FILL,  # some venues fill before they acknowledge
    (S.PENDING_NEW, E.TRADE_CORRECT): BY_FILL,
    (S.PENDING_NEW, E.TRADE_CANCEL): BY_FILL,
    (S.PENDING_NEW, E.RESTATED): BY_FILL,
    (S.PENDING_NEW, E.ORDER_STATUS): S.PENDING_NEW,
    (S.PENDING_NEW, E.REJECTED): S.REJECTED,
    (S.PENDING_NEW, E.CANCELED): S.CANCELED,
    (S.PENDING_NEW, E.REPLACED): S.REPLACED,
    (S.PENDING_NEW, E.EXPIRED): S.EXPIRED,
    (S.PENDING_NEW, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PENDING_NEW, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_NEW, E.PENDING_REPLACE): S.PENDING_REPLACE,
    # -- NEW: working, nothing filled ---------------------------------------------------------
    (S.NEW, REQUEST_NEW): S.NEW,  # replayed D
    (S.NEW, REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.NEW, REQUEST_REPLACE): S.PENDING_REPLACE,
    (S.NEW, E.NEW): S.NEW,  # a second acknowledgement
    (S.NEW, E.TRADE): BY_FILL,
    (S.NEW, E.TRADE_CORRECT): BY_FILL,
    (S.NEW, E.TRADE_CANCEL): BY_FILL,
    (S.NEW, E.RESTATED): BY_FILL,
    (S.NEW, E.ORDER_STATUS): BY_FILL,
    (S.NEW, E.CANCELED): S.CANCELED,
    (S.NEW, E.REPLACED): S.REPLACED,
    (S.NEW, E.EXPIRED): S.EXPIRED,
    (S.NEW, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.NEW, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.NEW, E.PENDING_REPLACE): S.PENDING_REPLACE,
    # -- PARTIALLY_FILLED ---------------------------------------------------------------------
    (S.PARTIALLY_FILLED, REQUEST_NEW): S.PARTIALLY_FILLED,  # replayed D
    (S.PARTIALLY_FILLED, REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, REQUEST_REPLACE): S.PENDING_REPLACE,
    (S.PARTIALLY_FILLED, E.NEW): BY_FILL,  # an acknowledgement overtaken by a fill
    (S.PARTIALLY_FILLED, E.TRADE): BY_FILL,
    (S.PARTIALLY_FILLED, E.TRADE_CORRECT): BY_FILL,
    (S.PARTIALLY_FILLED, E.TRADE_CANCEL): BY_FILL,
    (S.PARTIALLY_FILLED, E.RESTATED): BY_FILL,
    (S.PARTIALLY_FILLED, E.ORDER_STATUS): BY_FILL,
    (S.PARTIALLY_FILLED, E.CANCELED): S.CANCELED,
    (S.PARTIALLY_FILLED, E.REPLACED): S.REPLACED,
    (S.PARTIALLY_FILLED, E.EXPIRED): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PARTIALLY_FILLED, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.PENDING_REPLACE): S.PENDING_REPLACE,
    # -- FILLED: a further trade would be an overfill (missing on purpose: dead letter) ------
    (S.FILLED, REQUEST_NEW): S.FILLED,  # replayed D
    (S.FILLED, REQUEST_CANCEL): S.FILLED,  # too late: the venue answers with 35=9
    (S.FILLED, REQUEST_REPLACE): S.FILLED,  # too late, likewise
    (S.FILLED, E.TRADE_CORRECT): BY_FILL,
    (S.FILLED, E.TRADE_CANCEL): BY_FILL,  # a busted trade reopens the order
    (S.FILLED, E.RESTATED): BY_FILL,
    (S.FILLED, E.ORDER_STATUS): S.FILLED,
    (S.FILLED, E.DONE_FOR_DAY): S.FILLED,
    # -- PENDING_CANCEL: fills still arrive until the venue confirms -------------------------
    (S.PENDING_CANCEL, REQUEST_NEW): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.TRADE): UNLESS_FILLED,
    (S.PENDING_CANCEL, E.TRADE_CORRECT): UNLESS_FILLED,
    (S.PENDING_CANCEL, E.TRADE_CANCEL): UNLESS_FILLED,
    (S.PENDING_CANCEL, E.RESTATED): UNLESS_FILLED,
    (S.PENDING_CANCEL, E.ORDER_STATUS): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.CANCELED): S.CANCELED,
    (S.PENDING_CANCEL, E.REPLACED): S.REPLACED,
    (S.PENDING_CANCEL, E.EXPIRED): S.EXPIRED,
    (S.PENDING_CANCEL, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    # -- PENDING_REPLACE ----------------------------------------------------------------------
    (S.PENDING_REPLACE, REQUEST_NEW): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_REPLACE, REQUEST_REPLACE): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.PENDING_CANCEL): S.PENDING_CANCEL,
    # Issue 18: a venue that echoes the order's ClOrdID (11, no 41) confirms a replace (150=5)
    # as the order resting on with new terms. With our 35=G pending, the report moves the G's
    # row instead (`route_execution_report`: this row REPLACED, the G's NEW); without one (the
    # replace was asked for elsewhere and acknowledged by 150=E) the order itself rests on.
    (S.PENDING_REPLACE, E.NEW): BY_FILL,
    (S.PENDING_REPLACE, E.TRADE): UNLESS_FILLED,
    (S.PENDING_REPLACE, E.TRADE_CORRECT): UNLESS_FILLED,
    (S.PENDING_REPLACE, E.TRADE_CANCEL): UNLESS_FILLED,
    (S.PENDING_REPLACE, E.RESTATED): UNLESS_FILLED,
    (S.PENDING_REPLACE, E.ORDER_STATUS): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.REPLACED): S.REPLACED,
    (S.PENDING_REPLACE, E.CANCELED): S.CANCELED,
    (S.PENDING_REPLACE, E.EXPIRED): S.EXPIRED,
    (S.PENDING_REPLACE, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    # -- CANCELED: terminal; a fill that crossed the cancel on the wire is booked (the books
    # follow the venue) while the order stays cancelled --------------------------------------
    (S.CANCELED, REQUEST_NEW): S.CANCELED,
    (S.CANCELED, REQUEST_CANCEL): S.CANCELED,
    (S.CANCELED, REQUEST_REPLACE): S.CANCELED,
    (S.CANCELED, E.CANCELED): S.CANCELED,
    (S.CANCELED, E.TRADE): S.CANCELED,
    (S.CANCELED, E.TRADE_CORRECT): S.CANCELED,
    (S.CANCELED, E.TRADE_CANCEL): S.CANCELED,
    (S.CANCELED, E.RESTATED): S.CANCELED,
    (S.CANCELED, E.ORDER_STATUS): S.CANCELED,
    # -- REPLACED: terminal for this ClOrdID; fills may still name it -------------------------
    (S.REPLACED, REQUEST_NEW): S.REPLACED,
    (S.REPLACED, REQUEST_CANCEL): S.REPLACED,
    (S.REPLACED, REQUEST_REPLACE): S.REPLACED,
    (S.REPLACED, E.REPLACED): S.REPLACED,
    (S.REPLACED, E.TRADE): S.REPLACED,
    (S.REPLACED, E.TRADE_CORRECT): S.REPLACED,
    (S.REPLACED, E.TRADE_CANCEL): S.REPLACED,
    (S.REPLACED, E.RESTATED): S.REPLACED,
    (S.REPLACED, E.ORDER_STATUS): S.REPLACED,
    # -- REJECTED: terminal -------------------------------------------------------------------
    (S.REJECTED, REQUEST_NEW): S.REJECTED,
    (S.REJECTED, REQUEST_CANCEL): S.REJECTED,
    (S.REJECTED, REQUEST_REPLACE): S.REJECTED,
    (S.REJECTED, E.REJECTED): S.REJECTED,
    (S.REJECTED, E.ORDER_STATUS): S.REJECTED,
    # -- EXPIRED: terminal; a fill that crossed the expiry is booked --------------------------
    (S.EXPIRED, REQUEST_NEW): S.EXPIRED,
    (S.EXPIRED, REQUEST_CANCEL): S.EXPIRED,
    (S.EXPIRED, REQUEST_REPLACE): S.EXPIRED,
    (S.EXPIRED, E.EXPIRED): S.EXPIRED,
    (S.EXPIRED, E.TRADE): S.EXPIRED,
    (S.EXPIRED, E.TRADE_CORRECT): S.EXPIRED,
    (S.EXPIRED, E.TRADE_CANCEL): S.EXPIRED,
    (S.EXPIRED, E.RESTATED): S.EXPIRED,
    (S.EXPIRED, E.ORDER_STATUS): S.EXPIRED,
    # -- DONE_FOR_DAY: a GTC order comes back the next day -------------------------------------
    (S.DONE_FOR_DAY, REQUEST_NEW): S.DONE_FOR_DAY,
    (S.DONE_FOR_DAY, REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.DONE_FOR_DAY, REQUEST_REPLACE): S.PENDING_REPLACE,
    (S.DONE_FOR_DAY, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.DONE_FOR_DAY, E.NEW): BY_FILL,  # restated as new on the next session
    (S.DONE_FOR_DAY, E.RESTATED): BY_FILL,
    (S.DONE_FOR_DAY, E.TRADE_CORRECT): S.DONE_FOR_DAY,
    (S.DONE_FOR_DAY, E.TRADE_CANCEL): S.DONE_FOR_DAY,
    (S.DONE_FOR_DAY, E.ORDER_STATUS): S.DONE_FOR_DAY,
    (S.DONE_FOR_DAY, E.CANCELED): S.CANCELED,
    (S.DONE_FOR_DAY, E.EXPIRED): S.EXPIRED,
}

_ZERO = Decimal(0)
_STATUS_BY_NAME = {s.name: s for s in OrdStatus}


def status_from_name(name: str | None) -> OrdStatus | None:
    """Return the `OrdStatus` stored as `name` in `orders.status` (None for None)."""
    return None if name is None else _STATUS_BY_NAME[name]


def next_status(
    status: OrdStatus | None, trigger: str, cum_qty: Decimal, leaves_qty: Decimal
) -> OrdStatus:
    """Return the status after `trigger`, through `ORDER_TRANSITIONS`.

    Args:
        status: the current status, None for an order not seen before.
        trigger: an ExecType (150) value or a `REQUEST_*` trigger.
        cum_qty: CumQty (14) after the event.
        leaves_qty: LeavesQty (151) after the event.

    >>> next_status(OrdStatus.NEW, ExecType.TRADE, Decimal(5), Decimal(5)).name
    'PARTIALLY_FILLED'
    >>> next_status(OrdStatus.PENDING_CANCEL, ExecType.TRADE, Decimal(5), Decimal(5)).name
    'PENDING_CANCEL'

    Raises:
        InvalidTransition: the table has no row for `(status, trigger)`.
    """
    target = ORDER_TRANSITIONS.get((status, trigger))
    if target is None:
        raise InvalidTransition(status.name if status is not None else "UNKNOWN", trigger)
    if target == BY_FILL:
        if cum_qty > 0:
            return S.FILLED if leaves_qty <= 0 else S.PARTIALLY_FILLED
        return S.NEW
    if target == UNLESS_FILLED:
        if cum_qty > 0 and leaves_qty <= 0:
            return S.FILLED
        assert status is not None  # UNLESS_FILLED rows all have a status
        return status
    return OrdStatus(target)


@dataclass(frozen=True, slots=True)
class Order:
    """One row of `orders`, keyed by ClOrdID (11).

    Times are int UTC nanoseconds of event time (TransactTime (60), else SendingTime (52)).
    `last_exec_id` is the ExecID (17) of the last report applied; `last_request_id` the ClOrdID
    of the last cancel or replace request applied (so a replayed F or G is a no-op).
    """

    cl_ord_id: str
    account: str
    symbol: str
    side: str
    status: OrdStatus
    order_id: str | None = None
    orig_cl_ord_id: str | None = None
    ord_type: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    stop_px: Decimal | None = None
    cum_qty: Decimal = _ZERO
    leaves_qty: Decimal | None = None
    avg_px: Decimal = _ZERO
    time_in_force: str | None = None
    ts_created: int = 0
    ts_updated: int = 0
    last_exec_id: str | None = None
    last_request_id: str | None = None


_ORDER_FIELDS = (
    "cl_ord_id", "account", "symbol", "side", "status", "order_id", "orig_cl_ord_id", "ord_type",
    "quantity", "price", "stop_px", "cum_qty", "leaves_qty", "avg_px", "time_in_force",
    "ts_created", "ts_updated", "last_exec_id", "last_request_id",
)  # fmt: skip
_new_order = fast_factory(Order, _ORDER_FIELDS)
"""`Order(...)` (every field, in field order) without the frozen dataclass' per-field
`object.__setattr__`: the ledger builds one per execution report."""


def apply_execution_report(
    order: Order | None, report: ExecutionReport, trigger: str, account: str
) -> Order:
    """Move an order by one execution report.

    Args:
        order: the order row the report moves (see the module docstring), None if new.
        report: the report.
        trigger: its ExecType, or `ExecType.NEW` for the replacement order of a 5.
        account: the account the event belongs to (Account (1), or the order's).

    Returns:
        The order after the report: status through the table; OrderID, CumQty, LeavesQty and
        AvgPx as reported (the venue is the authority on them).

    Raises:
        InvalidTransition: no row in `ORDER_TRANSITIONS`.
    """
    replaced = trigger == ExecType.REPLACED
    leaves = _ZERO if replaced else report.leaves_qty
    status = next_status(
        order.status if order is not None else None, trigger, report.cum_qty, leaves
    )
    if order is None:
        cl_ord_id = report.orig_cl_ord_id if replaced else report.cl_ord_id
        assert cl_ord_id is not None
        return _new_order(
            cl_ord_id,
            account,
            report.symbol,
            report.side,
            status,
            report.order_id,
            None if replaced else report.orig_cl_ord_id,
            report.ord_type,
            report.order_qty,
            report.price,
            report.stop_px,
            report.cum_qty,
            leaves,
            report.avg_px,
            None,  # time_in_force
            report.ts_event,
            report.ts_event,
            report.exec_id,
            None,  # last_request_id
        )
    new_terms = trigger == ExecType.NEW or trigger == ExecType.RESTATED
    # Not dataclasses.replace, nor even Order(...): this runs once per report on the ledger's
    # hot path, where replace() (which inspects the fields each time) cost ~1.5x a constructor
    # call, and the frozen constructor ~2x `_new_order`.
    ts_updated = order.ts_updated
    return _new_order(
        order.cl_ord_id,
        order.account,
        order.symbol,
        order.side,
        status,
        report.order_id or order.order_id,
        order.orig_cl_ord_id,
        report.ord_type if new_terms and report.ord_type else order.ord_type,
        report.order_qty if new_terms and report.order_qty else order.quantity,
        report.price if new_terms and report.price is not None else order.price,
        report.stop_px if new_terms and report.stop_px is not None else order.stop_px,
        report.cum_qty,
        leaves,
        report.avg_px,
        order.time_in_force,
        order.ts_created,
        ts_updated if ts_updated >= report.ts_event else report.ts_event,
        report.exec_id,
        order.last_request_id,
    )


def apply_order_request(
    order: Order | None, request: OrderRequest, trigger: str, account: str
) -> Order:
    """Move an order by one request: a new order (D), or a cancel (F) / replace (G) of one.

    A replayed request changes nothing: D on a known order only fills in missing terms, and an
    F or G whose ClOrdID is the order's `last_request_id` is skipped.

    Raises:
        InvalidTransition: no row in `ORDER_TRANSITIONS` (e.g. a cancel of an unknown order).
    """
    if order is None:
        status = next_status(None, trigger, _ZERO, request.order_qty or _ZERO)
        return Order(
            cl_ord_id=request.cl_ord_id,
            account=account,
            symbol=request.symbol,
            side=request.side,
            status=status,
            orig_cl_ord_id=request.orig_cl_ord_id,
            ord_type=request.ord_type,
            quantity=request.order_qty,
            price=request.price,
            stop_px=request.stop_px,
            leaves_qty=request.order_qty,
            time_in_force=request.time_in_force,
            ts_created=request.ts_event,
            ts_updated=request.ts_event,
        )
    if trigger == REQUEST_NEW:
        next_status(order.status, trigger, order.cum_qty, order.leaves_qty or _ZERO)
        return replace(
            order,
            ord_type=order.ord_type or request.ord_type,
            quantity=order.quantity if order.quantity is not None else request.order_qty,
            price=order.price if order.price is not None else request.price,
            stop_px=order.stop_px if order.stop_px is not None else request.stop_px,
            time_in_force=order.time_in_force or request.time_in_force,
        )
    if order.last_request_id == request.cl_ord_id:
        return order
    status = next_status(order.status, trigger, order.cum_qty, order.leaves_qty or _ZERO)
    return replace(
        order,
        status=status,
        ts_updated=max(order.ts_updated, request.ts_event),
        last_request_id=request.cl_ord_id,
    )


_REQUEST_TRIGGER = {"D": REQUEST_NEW, "F": REQUEST_CANCEL, "G": REQUEST_REPLACE}
BY_ORDER_ID = frozenset({ExecType.TRADE_CORRECT, ExecType.TRADE_CANCEL})
"""ExecTypes routed to the order's live row by OrderID (37) whatever their ClOrdID (11)."""
SUPERSEDED = frozenset({OrdStatus.REPLACED, OrdStatus.PENDING_REPLACE})
"""States of a row that an echoed report (11 without 41) naming it may move past: to the
order's live row by OrderID (37), or to the replacement our pending 35=G made."""
_ON_ORIGINAL = frozenset({ExecType.CANCELED, ExecType.PENDING_CANCEL, ExecType.PENDING_REPLACE})


def route_order_request(request: OrderRequest) -> list[tuple[str, str]]:
    """Return the `(cl_ord_id, trigger)` pairs a request moves, in order.

    >>> from domain.events import OrderRequest
    >>> g = OrderRequest("G", "o2", "o1", "A1", "AAPL", "1", None, None, None, None, None, 0)
    >>> route_order_request(g)
    [('o1', 'request_replace'), ('o2', 'request_new')]
    """
    trigger = _REQUEST_TRIGGER.get(request.msg_type)
    if trigger is None:
        msg = f"MsgType(35) '{request.msg_type}' is not an order request"
        raise FieldError(35, msg)
    if trigger == REQUEST_NEW:
        return [(request.cl_ord_id, REQUEST_NEW)]
    assert request.orig_cl_ord_id is not None  # the decoder requires 41 on F and G
    if trigger == REQUEST_CANCEL:
        return [(request.orig_cl_ord_id, REQUEST_CANCEL)]
    return [(request.orig_cl_ord_id, REQUEST_REPLACE), (request.cl_ord_id, REQUEST_NEW)]


def route_execution_report(
    report: ExecutionReport,
    known: Callable[[str], bool],
    live: Callable[[str], str | None] | None = None,
    order: Callable[[str], Order | None] | None = None,
) -> list[tuple[str, str]]:
    """Return the `(cl_ord_id, trigger)` pairs an execution report moves, in order.

    Args:
        report: the report.
        known: whether an order row exists for a ClOrdID.
        live: the ClOrdID of the live row (not REPLACED) of an OrderID (37), or None; asked
            for trade corrections and cancels, for reports naming no known order, and for
            echoed reports naming a REPLACED row.
        order: the order row of a ClOrdID, or None; without it, echoed reports (11 without
            41) move the row they name, whatever its state.

    Returns:
        The pairs; empty when the report names no order at all (its execution is still booked).

    >>> from domain.events import ExecutionReport
    >>> bust = ExecutionReport("h1", "V1", "c1", None, "H", "0", "A1", "AAPL", "1", Decimal(10),
    ...     "2", None, None, Decimal(0), Decimal(0), Decimal(0), Decimal(10), Decimal(0), 0)
    >>> route_execution_report(bust, lambda c: True, {"V1": "c2"}.get)  # c1 was replaced by c2
    [('c2', 'H')]
    """
    exec_type = report.exec_type
    cl_ord_id, orig = report.cl_ord_id, report.orig_cl_ord_id
    if orig is None and cl_ord_id is not None and order is not None:
        named = order(cl_ord_id)
        if named is not None and named.status in SUPERSEDED:
            echoed = _route_echoed(report, named, live, order)
            if echoed is not None:
                return echoed
    if exec_type == ExecType.REPLACED:
        pairs = [(orig, ExecType.REPLACED)] if orig else []
        if cl_ord_id:
            pairs.append((cl_ord_id, ExecType.NEW))
        return pairs
    if exec_type in _ON_ORIGINAL and orig:
        return [(orig, exec_type)]
    if live is not None and (
        exec_type in BY_ORDER_ID or not ((cl_ord_id and known(cl_ord_id)) or (orig and known(orig)))
    ):
        current = live(report.order_id)
        if current is not None:
            return [(current, exec_type)]
    if cl_ord_id is None:
        return [(orig, exec_type)] if orig else []
    if orig and not known(cl_ord_id) and known(orig):
        return [(orig, exec_type)]
    return [(cl_ord_id, exec_type)]


def _route_echoed(
    report: ExecutionReport,
    named: Order,
    live: Callable[[str], str | None] | None,
    order: Callable[[str], Order | None],
) -> list[tuple[str, str]] | None:
    """The pairs of a report naming `named` in 11 and no 41, when it is echoed past a replace
    of ours (see the module docstring); None to route it as any other."""
    exec_type = report.exec_type
    if exec_type in BY_ORDER_ID:
        return None
    cl_ord_id = named.cl_ord_id
    if named.status == OrdStatus.REPLACED:
        current = live(report.order_id) if live is not None else None
        moved = order(current) if current is not None else None
        if moved is None:
            return None
        named = moved
    if exec_type == ExecType.REPLACED and named.status == OrdStatus.PENDING_REPLACE:
        request_id = named.last_request_id
        replacement = order(request_id) if request_id else None
        if replacement is not None and replacement.orig_cl_ord_id == named.cl_ord_id:
            return [(named.cl_ord_id, ExecType.REPLACED), (replacement.cl_ord_id, ExecType.NEW)]
    if named.cl_ord_id == cl_ord_id:
        return None
    return [(named.cl_ord_id, ExecType.NEW if exec_type == ExecType.REPLACED else exec_type)]


def check_execution_report(report: ExecutionReport) -> FieldError | None:
    """Why the ledger cannot book a report, or None when it can: the report is not consistent
    (`validate_execution_report`, the rule the decoder and data quality apply too; LeavesQty
    (151) left to `booking_problem`), or it is one the ledger cannot book (`booking_problem`).

    >>> from domain.events import ExecutionReport
    >>> r = ExecutionReport("e1", "o1", "c1", None, "F", "1", "A1", "AAPL", "1", Decimal(10),
    ...     "2", None, None, Decimal(4), Decimal(100), Decimal(12), Decimal(0), Decimal(100), 0)
    >>> check_execution_report(r).reason
    'CumQty(14) was 12, more than OrderQty(38) 10'
    """
    return validate_execution_report(report, leaves_judged=False) or booking_problem(report)
