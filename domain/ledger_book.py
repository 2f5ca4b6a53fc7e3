"""Domain layer: the booking rules of the ledger (pure, stdlib only, no I/O).

A `LedgerBook` holds what a batch of order events needs from the ledger of record (filled in by
the ledger sink before booking): the known accounts, the fills the batch names (by ExecID), the
order rows it moves (by ClOrdID, and by OrderID for the reports routed by it), and the holdings
with their day's realised P&L. `LedgerBook.apply(event)` books one event against that state and
returns what it changed (`Booked`), that it was booked before (`Duplicate`), or why it cannot be
booked (`Rejected`, which becomes a dead letter and changes nothing at all).

The rules:
- the event's account must be given (Account (1), or found from its order or fill) and known;
- an execution report already booked (same ExecID) changes nothing;
- a report must pass `domain.orders.check_execution_report`;
- a fill (150=F) moves the holding (`domain.ledger.apply_fill`) and the cash, Commission (12)
  included; its day's realised P&L is kept per holding (`domain.positions.day_of`);
- a trade cancel (150=H) reverses the fill named by ExecRefID (19) (`reverse_fill`); a trade
  correct (150=G) reverses it and books the corrected fill. A fill corrected since is followed
  to the correction standing now; a fill cancelled since, or a report that is not a fill,
  cannot be reversed; nor can a fill of another account;
- the order rows move through `domain.orders` (`route_execution_report`,
  `route_order_request`, the transition table); a transition the table refuses rejects the
  whole event.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from domain.errors import BrokerflowError, FieldError, InvalidTransition
from domain.events import ExecutionReport, OrderRequest
from domain.ledger import FLAT, ZERO, Holding, apply_fill, commission_from_raw, reverse_fill
from domain.orders import (
    BY_ORDER_ID,
    FILL_EXEC_TYPES,
    SUPERSEDED,
    ExecType,
    Order,
    OrdStatus,
    apply_execution_report,
    apply_order_request,
    check_execution_report,
    route_execution_report,
    route_order_request,
)
from domain.positions import day_of

BookEvent = ExecutionReport | OrderRequest
HoldingKey = tuple[str, str]  # (account, symbol)

# A holding's day of realised P&L (`day_of`, None before its first fill) and that day's
# realised P&L: holdings.pnl_day and realised_pnl_day.
DayPnl = tuple[int | None, Decimal]
NO_DAY: DayPnl = (None, ZERO)


@dataclass(slots=True)
class BookedFill:
    """An execution booked in the ledger, as trade cancels and corrects (H, G) need it.

    `reversed_by` is the ExecID of the H or G that reversed it, if any (mutable: a report of
    the batch may reverse it).
    """

    exec_id: str
    account: str
    symbol: str
    side: str
    last_qty: Decimal
    last_px: Decimal
    realised_pnl: Decimal
    commission: Decimal
    exec_type: str
    reversed_by: str | None
    ts_event: int


class Booked(NamedTuple):
    """What one booked event changed (a tuple: one is built per event on the hot path).

    Attributes:
        event: the event.
        account: its account.
        orders: the order rows it moved, ClOrdID -> the row after it.
        holdings: the holdings it moved, (account, symbol) -> the holding after it.
        days: the day's realised P&L it changed, per holding (`DayPnl`).
        cash_delta: the change of the account's cash (0 for an order request).
        commission: the fill's commission in cash terms (0 unless a fill carries it).
        realised: the P&L the fill realised (0 unless a fill).
        reversed: the ExecID of the fill a trade cancel or correct reversed, else None.
    """

    event: BookEvent
    account: str
    orders: dict[str, Order]
    holdings: dict[HoldingKey, Holding]
    days: dict[HoldingKey, DayPnl]
    cash_delta: Decimal
    commission: Decimal
    realised: Decimal
    reversed: str | None


# `Booked._make` skips the generated `__new__`'s Python frame (~0.2 us of ~9 a report).
_make_booked = Booked._make


class Duplicate(NamedTuple):
    """An execution report whose ExecID (17) is booked already: it changes nothing.

    Attributes:
        event: the report.
        account: its account.
        fill: whether it is a fill, trade cancel or correct (it moved holdings when booked).
    """

    event: ExecutionReport
    account: str
    fill: bool


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event that cannot be booked: it becomes a dead letter and changes nothing.

    Attributes:
        event: the event.
        error: why (its text is the dead letter's reason).
        tag: the FIX tag at fault, if one is.
    """

    event: BookEvent
    error: BrokerflowError
    tag: int | None = None

    @property
    def reason(self) -> str:
        """The dead letter's reason."""
        return str(self.error)


class _Refused(Exception):  # noqa: N818 - control flow inside `LedgerBook.apply`, never escapes
    def __init__(self, error: BrokerflowError, tag: int | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.tag = tag


def _refuse(tag: int, reason: str) -> _Refused:
    return _Refused(FieldError(tag, reason), tag)


# ExecTypes that give an order its first row (a ledger started mid-day learns of orders by
# them): one naming no known order is a new order, not a reason to look for one by OrderID.
_FIRST_REPORTS = frozenset({ExecType.NEW, ExecType.PENDING_NEW, ExecType.TRADE, ExecType.REPLACED})
_TRADES = (ExecType.TRADE, ExecType.TRADE_CORRECT)


class LedgerBook:
    """The ledger state a batch of order events reads, and the booking of each event.

    Fill `fills` (`add_booked_fills`), `holdings` and `day_pnl`, and `orders` (`add_orders`,
    `add_orders_by_order_id`) with the rows the events need before calling `apply`; each
    applied event then updates them, so that a later event of the batch sees it.

    Args:
        accounts: the accounts that exist (the others' events are rejected).
    """

    def __init__(self, accounts: Collection[str]) -> None:
        self.accounts = accounts
        self.fills: dict[str, BookedFill] = {}
        self.booked: set[str] = set()  # ExecIDs booked before this batch
        self.new_ids: set[str] = set()  # ExecIDs this book booked
        self.orders: dict[str, Order] = {}
        self.holdings: dict[HoldingKey, Holding] = {}
        self.day_pnl: dict[HoldingKey, DayPnl] = {}
        # OrderID (37) -> the ClOrdIDs of its rows, for the OrderIDs the reports may be routed
        # by (`routed_order_ids`): the rows read and those the batch makes.
        self.routed_order_ids: set[str] = set()
        self.by_order_id: dict[str, set[str]] = {}

    # -- what to read --------------------------------------------------------------------------

    def add_booked_fills(self, fills: Iterable[BookedFill]) -> list[str]:
        """Add fills booked before the batch; return the ExecIDs still to read: those of the
        corrections (G) that replaced them, since an H or G may name a fill corrected since."""
        for fill in fills:
            self.fills[fill.exec_id] = fill
            self.booked.add(fill.exec_id)
        return [
            f.reversed_by
            for f in self.fills.values()
            if f.reversed_by is not None and f.reversed_by not in self.fills
        ]

    def add_orders(self, orders: Iterable[Order]) -> None:
        """Add order rows read by ClOrdID (a row already held is kept)."""
        held = self.orders
        for order in orders:
            held.setdefault(order.cl_ord_id, order)

    def add_orders_by_order_id(self, order_ids: set[str], orders: Iterable[Order]) -> None:
        """Add every row of `order_ids` (`order_ids_to_read`), for the reports routed by it."""
        self.routed_order_ids = order_ids
        held, by_order_id = self.orders, self.by_order_id
        for order in orders:
            held.setdefault(order.cl_ord_id, order)
            by_order_id.setdefault(order.order_id or "", set()).add(order.cl_ord_id)

    def order_ids_to_read(
        self, events: Sequence[BookEvent], accounts: Sequence[str | None]
    ) -> tuple[set[str], bool]:
        """The OrderIDs (37) of the reports `route_execution_report` may route by OrderID, and
        whether the batch has an echoed replace (150=5 without 41), given the rows read by
        ClOrdID: trade corrections and cancels, reports naming no order the batch has read by
        11 or 41 or met before them, and echoed reports (11 without 41) naming a row a replace
        supersedes.

        Args:
            events: the batch's events, in order.
            accounts: their accounts (`apply`'s).
        """
        orders, known = self.orders, self.accounts
        named: set[str] = set()  # ClOrdIDs of the batch's earlier events
        replaced: set[str] = set()  # OrigClOrdIDs (41) of the batch's earlier replaces (G, 5)
        order_ids: set[str] = set()
        echoed_replace = False
        for event, account in zip(events, accounts, strict=True):
            cl_ord_id, orig = event.cl_ord_id, event.orig_cl_ord_id
            if type(event) is ExecutionReport:
                if account in known:
                    exec_type, order_id = event.exec_type, event.order_id
                    # 37=NONE: the reject of an order the venue never accepted
                    if (
                        order_id
                        and order_id != "NONE"
                        and (
                            exec_type in BY_ORDER_ID
                            or cl_ord_id is None
                            or (
                                exec_type not in _FIRST_REPORTS
                                and cl_ord_id not in orders
                                and cl_ord_id not in named
                                and (orig is None or (orig not in orders and orig not in named))
                            )
                            or (orig is None and _superseded(cl_ord_id, orders, replaced))
                        )
                    ):
                        order_ids.add(order_id)
                    if exec_type == ExecType.REPLACED and orig is None:
                        echoed_replace = True
                if orig and event.exec_type == ExecType.REPLACED:
                    replaced.add(orig)
            elif orig and event.msg_type == "G":
                replaced.add(orig)
            if cl_ord_id:
                named.add(cl_ord_id)
            if orig:
                named.add(orig)
        return order_ids, echoed_replace

    def pending_replacements(self) -> set[str]:
        """The ClOrdIDs of the 35=G requests pending on the rows held and not held themselves,
        which an echoed replace (150=5, 11 = the order's first ClOrdID, no 41) moves though it
        names none."""
        orders = self.orders
        return {
            o.last_request_id
            for o in orders.values()
            if o.status == OrdStatus.PENDING_REPLACE
            and o.last_request_id
            and o.last_request_id not in orders
        }

    # -- booking -------------------------------------------------------------------------------

    def apply(self, event: BookEvent, account: str | None = None) -> Booked | Duplicate | Rejected:
        """Book one event against the book; on `Booked` the book holds its changes.

        Args:
            event: an execution report (35=8) or an order request (35=D/F/G).
            account: the event's account when found elsewhere than its Account (1) (its
                order's or fill's); None: its Account (1).
        """
        if account is None:
            account = event.account
        try:
            if account is None:
                raise _refuse(1, "Account(1) missing")
            if account not in self.accounts:
                raise _refuse(1, f"Account(1) '{account}' is not a known account")
            if type(event) is ExecutionReport:
                return self._apply_report(event, account)
            return self._apply_request(event, account)  # type: ignore[arg-type]
        except _Refused as refused:
            return Rejected(event, refused.error, refused.tag)

    def _apply_request(self, request: OrderRequest, account: str) -> Booked:
        changed: dict[str, Order] = {}
        for cl_ord_id, trigger in route_order_request(request):
            order = changed.get(cl_ord_id) or self.orders.get(cl_ord_id)
            if order is None and trigger != "request_new":
                raise _refuse(41, f"OrigClOrdID(41) '{cl_ord_id}' is not a known order")
            changed[cl_ord_id] = apply_order_request(order, request, trigger, account)
        self.orders.update(changed)
        return _make_booked((request, account, changed, {}, {}, ZERO, ZERO, ZERO, None))

    def _live_fill(self, report: ExecutionReport) -> BookedFill:
        """The fill a trade cancel or correct reverses: the one ExecRefID (19) names, or the
        correction standing for it now."""
        ref = report.exec_ref_id
        fill = self.fills.get(ref) if ref else None
        if fill is None:
            raise _refuse(19, f"ExecRefID(19) '{ref}' names no booked fill")
        seen = {fill.exec_id}
        while fill.reversed_by is not None:
            by = self.fills.get(fill.reversed_by)
            if by is None or by.exec_type != ExecType.TRADE_CORRECT or by.exec_id in seen:
                raise _refuse(
                    19, f"ExecRefID(19) '{ref}': the fill was cancelled by '{fill.reversed_by}'"
                )
            fill = by  # corrected: the correction is the fill that stands now
            seen.add(fill.exec_id)
        if fill.exec_type not in _TRADES:
            raise _refuse(19, f"ExecRefID(19) '{ref}' names a report that is not a fill")
        return fill

    def _live_order(self, order_id: str) -> str | None:
        """The ClOrdID of the OrderID's live row: the one not REPLACED (the latest made, if
        a venue's stray ids made more than one)."""
        live = None
        orders = self.orders
        for cl_ord_id in self.by_order_id.get(order_id, ()):
            order = orders[cl_ord_id]
            if order.order_id != order_id or order.status == OrdStatus.REPLACED:
                continue
            if live is None or (order.ts_created, cl_ord_id) > (live.ts_created, live.cl_ord_id):
                live = order
        return live.cl_ord_id if live is not None else None

    def _known_order(self, cl_ord_id: str) -> bool:
        return cl_ord_id in self.orders

    def _apply_report(self, report: ExecutionReport, account: str) -> Booked | Duplicate:
        exec_id = report.exec_id
        exec_type = report.exec_type
        if exec_id in self.booked or exec_id in self.new_ids:
            return Duplicate(report, account, exec_type in FILL_EXEC_TYPES)
        problem = check_execution_report(report)
        if problem is not None:
            raise _Refused(problem, problem.tag)
        commission = realised = cash_delta = ZERO
        holding_changes: dict[HoldingKey, Holding] = {}
        day_changes: dict[HoldingKey, DayPnl] = {}
        reversed_fill: BookedFill | None = None
        if exec_type in FILL_EXEC_TYPES:
            if exec_type != ExecType.TRADE:
                reversed_fill = self._live_fill(report)
                if reversed_fill.account != account:
                    raise _refuse(
                        1,
                        f"Account(1) '{account}' is not the account of fill "
                        f"'{reversed_fill.exec_id}' ('{reversed_fill.account}')",
                    )
                key = (account, reversed_fill.symbol)
                holding, back, _ = reverse_fill(
                    self.holdings.get(key, FLAT),
                    reversed_fill.side,
                    reversed_fill.last_qty,
                    reversed_fill.last_px,
                    reversed_fill.realised_pnl,
                    reversed_fill.commission,
                )
                holding_changes[key] = holding
                cash_delta += back
                # The reversed fill no longer counts in its day's realised P&L.
                day, day_pnl = self.day_pnl.get(key, NO_DAY)
                if day == day_of(reversed_fill.ts_event):
                    day_changes[key] = (day, day_pnl - reversed_fill.realised_pnl)
            if exec_type != ExecType.TRADE_CANCEL:
                try:
                    commission = commission_from_raw(report.raw, report.last_qty, report.last_px)
                except FieldError as exc:
                    raise _Refused(exc, exc.tag) from None
                key = (account, report.symbol)
                before = holding_changes.get(key) or self.holdings.get(key, FLAT)
                holding, delta, realised = apply_fill(
                    before, report.side, report.last_qty, report.last_px, commission
                )
                holding_changes[key] = holding
                cash_delta += delta
                day, day_pnl = day_changes.get(key) or self.day_pnl.get(key, NO_DAY)
                fill_day = day_of(report.ts_event)
                if day is None or fill_day > day:  # the holding's first fill of a new day
                    day_changes[key] = (fill_day, realised)
                elif fill_day == day:
                    day_changes[key] = (day, day_pnl + realised)
                # else a late fill of an earlier day: not today's P&L (docs/edge.md)
        order_changes: dict[str, Order] = {}
        routed = self.routed_order_ids
        by_order_id = bool(routed) and report.order_id in routed
        orders = self.orders
        pairs = route_execution_report(
            report, self._known_order, self._live_order if by_order_id else None, orders.get
        )
        for cl_ord_id, trigger in pairs:
            order = order_changes.get(cl_ord_id) or orders.get(cl_ord_id)
            try:
                order_changes[cl_ord_id] = apply_execution_report(order, report, trigger, account)
            except InvalidTransition as exc:
                raise _Refused(exc) from None
        if by_order_id:  # rows this batch makes for the OrderID are its rows too
            self.by_order_id.setdefault(report.order_id, set()).update(order_changes)
        # Everything checked: commit the event to the book.
        self.holdings.update(holding_changes)
        self.day_pnl.update(day_changes)
        orders.update(order_changes)
        reversed_id = None
        if reversed_fill is not None:
            reversed_fill.reversed_by = exec_id
            reversed_id = reversed_fill.exec_id
        self.fills[exec_id] = BookedFill(
            exec_id, account, report.symbol, report.side, report.last_qty, report.last_px,
            realised, commission, exec_type, None, report.ts_event,
        )  # fmt: skip
        self.new_ids.add(exec_id)
        return _make_booked((
            report, account, order_changes, holding_changes, day_changes, cash_delta,
            commission, realised, reversed_id,
        ))  # fmt: skip


def _superseded(cl_ord_id: str, orders: dict[str, Order], replaced: set[str]) -> bool:
    """Whether the row of `cl_ord_id` is REPLACED or PENDING_REPLACE as read, or a replace
    earlier in the batch names it in 41: an echoed report naming it may move another row."""
    if cl_ord_id in replaced:
        return True
    order = orders.get(cl_ord_id)
    return order is not None and order.status in SUPERSEDED


__all__ = [
    "NO_DAY",
    "BookEvent",
    "Booked",
    "BookedFill",
    "DayPnl",
    "Duplicate",
    "HoldingKey",
    "LedgerBook",
    "Rejected",
]
