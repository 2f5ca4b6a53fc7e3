"""What makes an execution report (35=8) consistent: one rule, used by the decoder (its careful
path and its fast path), the ledger and data quality.

The rule, from the FIX 4.2/4.4 field definitions (QuickFIX's dictionaries in
connectors/fix/dictionaries), and where this project reads them more strictly or more leniently:

- CumQty (14) is not above OrderQty (38) (when the report carries 38).
- LeavesQty (151), "quantity open for further execution": FIX says it "could be 0" when
  OrdStatus (39) is Canceled, DoneForTheDay, Expired, Calculated or Rejected (the order is no
  longer active), "otherwise LeavesQty = OrderQty - CumQty" (`expected_leaves_qty`). Here:
  - `CLOSED_STATUSES` (3 done for day, 4 canceled, 8 rejected, C expired): LeavesQty is 0.
    FIX allows 0; we require it, as the decoder, the ledger and data quality always have read
    a closed order as having nothing open. Calculated (B) is read as FIX's "otherwise": it
    reports a computed state of a live order, not its end.
  - Every other status: OrderQty - CumQty (when the report carries 38).
  - Enforced (the report refused) only for `LEAVES_ENFORCED_STATUSES`: the closed ones and
    `LEAVES_OPEN_STATUSES` (0 new, 1 partially filled, 2 filled). For the others (5 replaced,
    6 pending cancel, 7 stopped, 9 suspended, A pending new, B, D, E pending replace) venues
    differ on which OrderQty (the old or the new) the report carries, so a mismatch is not a
    malformed report: data quality flags it (its fills suite) and the decoder keeps it. The
    ledger refuses pending new (A) too (`booking_problem`): the order row it books from it
    must hold its whole quantity open. By FIX's text A is no exception; it stays the ledger's
    alone because the golden replay of record (tests/golden, 6ec2191) has such a report
    (GLD-E1) decoded, audited and then refused by the ledger.
  - `leaves_qty=None` skips it: FIX 4.0 has no 151 (the decoder derives it) and QuickFIX/J's
    FIX.4.1 executor sends 151=0 on every report; only the decoder knows the BeginString.
- LastQty (32), LastPx (31), AvgPx (6), Price (44) and StopPx (99) are never negative.
- A trade (ExecType (150) F) has LastQty and LastPx above 0.

What the ledger needs besides, to book a fill (`booking_problem`, after the rule above; the
decoder does not apply it: such a report is well formed, only not bookable, and the other
flows still see it):
- CumQty (14) and LeavesQty (151) not negative;
- a trade correct (G) has LastQty above 0 (the corrected fill's quantity); a trade cancel (H)
  may carry 0;
- a trade correct or cancel (G, H) names the fill it corrects in ExecRefID (19) (FIX requires
  19 "for Trade Cancel and Trade Correct ExecType messages"; a report without it is kept so
  that it is seen, and the ledger refuses it);
- fills (F, G, H) are on a side the ledger can book (`FILL_SIDES`: the sides of
  `domain.ledger.SIDE_SIGN`, a buy or a sell). FIX has other Side values (7 undisclosed,
  8 cross, D subscribe...), valid on order requests (`FIX_SIDES`) but not on a position;
- LeavesQty = OrderQty - CumQty for `BOOKED_LEAVES_STATUSES` (0, 1, 2 and A), judged even on
  FIX 4.0/4.1 reports, whose LeavesQty the decoder does not judge (the ledger cannot tell them
  apart). A closed order's LeavesQty of 0 is not the ledger's to judge: on a FIX 4.0 report
  the decoder derived it (OrderQty - CumQty), and the ledger books such a cancel as it is.

The first check that fails is the answer (its FieldError names the tag), so every caller gives
the same reason for the same report. They run in the order the decoder has always reported
them: CumQty above OrderQty, LeavesQty, LastQty/LastPx/AvgPx negative, a trade's LastQty and
LastPx, Price/StopPx negative; the ledger's, in the order it has always reported them.
"""

from __future__ import annotations

from decimal import Decimal

from domain.errors import FieldError
from domain.events import ExecutionReport
from domain.ledger import SIDE_SIGN

# OrdStatus (39) values (see the module docstring).
LEAVES_OPEN_STATUSES = frozenset(("0", "1", "2"))
"""OrdStatus of a working or filled order: LeavesQty = OrderQty - CumQty."""
CLOSED_STATUSES = frozenset(("3", "4", "8", "C"))
"""OrdStatus of an order that can fill no more (done for day, canceled, rejected, expired):
LeavesQty = 0."""
LEAVES_ENFORCED_STATUSES = LEAVES_OPEN_STATUSES | CLOSED_STATUSES
"""OrdStatus values whose LeavesQty mismatch makes a report inconsistent (refused)."""
PENDING_NEW = "A"
BOOKED_LEAVES_STATUSES = LEAVES_OPEN_STATUSES | {PENDING_NEW}
"""OrdStatus values whose LeavesQty the ledger needs to be OrderQty - CumQty."""

# ExecType (150) values of fills (FIX 4.4; the decoder normalises FIX 4.2's 1/2 to F).
TRADE, TRADE_CORRECT, TRADE_CANCEL = "F", "G", "H"
FILL_EXEC_TYPES = frozenset((TRADE, TRADE_CORRECT, TRADE_CANCEL))

FIX_SIDES = frozenset("123456789ABCDEFGH")
"""Side (54) values of FIX 4.4 / 5.0 SP2: 1 buy ... 9 cross short, A cross short exempt,
B as defined, C opposite, D subscribe, E redeem, F lend, G borrow, H sell undisclosed."""
FILL_SIDES = frozenset(SIDE_SIGN)
"""Side (54) values a fill may have: those the ledger books as a buy or a sell."""

_ZERO = Decimal(0)


def expected_leaves_qty(
    ord_status: str, order_qty: Decimal | None, cum_qty: Decimal
) -> Decimal | None:
    """What LeavesQty (151) should be for this OrdStatus (39): 0 once closed, else OrderQty -
    CumQty; None without OrderQty (38). Enforced only for `LEAVES_ENFORCED_STATUSES`.

    >>> expected_leaves_qty("1", Decimal(100), Decimal(40)), expected_leaves_qty("4", None, 0)
    (Decimal('60'), Decimal('0'))
    >>> expected_leaves_qty("6", Decimal(100), Decimal(40))  # pending cancel: not enforced
    Decimal('60')
    """
    if ord_status in CLOSED_STATUSES:
        return _ZERO
    return None if order_qty is None else order_qty - cum_qty


def execution_report_problem(
    exec_type: str,
    ord_status: str,
    order_qty: Decimal | None,
    cum_qty: Decimal,
    leaves_qty: Decimal | None,
    last_qty: Decimal,
    last_px: Decimal,
    avg_px: Decimal,
    price: Decimal | None,
    stop_px: Decimal | None,
) -> FieldError | None:
    """Why an execution report with these values is not consistent, or None when it is.

    The rule of the module docstring, on the values themselves, so that the decoder can judge
    a report before building it (its fast path reads them from the wire; LastQty (32) and
    LastPx (31) are 0 when absent, as on the report). `leaves_qty` None: 151 not judged.
    """
    # Plain comparisons, no loops over tables: this runs once per report on the hot paths.
    if order_qty is not None and cum_qty > order_qty:
        return FieldError(14, f"CumQty(14) was {cum_qty}, more than OrderQty(38) {order_qty}")
    if leaves_qty is not None and ord_status in LEAVES_ENFORCED_STATUSES:
        expected = expected_leaves_qty(ord_status, order_qty, cum_qty)
        if expected is not None and leaves_qty != expected:
            if ord_status in CLOSED_STATUSES:
                rule = f"0 with OrdStatus(39) {ord_status}"
            else:
                rule = f"OrderQty(38) - CumQty(14) = {expected}"
            return FieldError(151, f"LeavesQty(151) was {leaves_qty}, expected {rule}")
    if last_qty < 0:
        return _negative(32, "LastQty", last_qty)
    if last_px < 0:
        return _negative(31, "LastPx", last_px)
    if avg_px < 0:
        return _negative(6, "AvgPx", avg_px)
    if exec_type == TRADE:
        if last_qty <= 0:
            msg = f"LastQty(32) was {last_qty}, not positive on a fill (ExecType(150) F)"
            return FieldError(32, msg)
        if last_px <= 0:
            msg = f"LastPx(31) was {last_px}, not positive on a fill (ExecType(150) F)"
            return FieldError(31, msg)
    if price is not None and price < 0:
        return _negative(44, "Price", price)
    if stop_px is not None and stop_px < 0:
        return _negative(99, "StopPx", stop_px)
    return None


def validate_execution_report(
    report: ExecutionReport, *, leaves_judged: bool = True
) -> FieldError | None:
    """Why a report is not consistent (`execution_report_problem`), or None when it is.

    `leaves_judged` False leaves LeavesQty (151) out (the ledger judges it in
    `booking_problem`: a report does not say whether the venue sent its 151).

    >>> from domain.events import ExecutionReport
    >>> r = ExecutionReport("e1", "o1", "c1", None, "F", "1", "A1", "AAPL", "1", Decimal(10),
    ...     "2", None, None, Decimal(4), Decimal(100), Decimal(12), Decimal(0), Decimal(100), 0)
    >>> validate_execution_report(r).reason
    'CumQty(14) was 12, more than OrderQty(38) 10'
    """
    return execution_report_problem(
        report.exec_type,
        report.ord_status,
        report.order_qty,
        report.cum_qty,
        report.leaves_qty if leaves_judged else None,
        report.last_qty,
        report.last_px,
        report.avg_px,
        report.price,
        report.stop_px,
    )


def booking_problem(report: ExecutionReport) -> FieldError | None:
    """Why the ledger cannot book a consistent report (see the module docstring), or None.

    >>> from domain.events import ExecutionReport
    >>> bust = ExecutionReport("h1", "o1", "c1", None, "H", "2", "A1", "AAPL", "1", Decimal(10),
    ...     "2", None, None, Decimal(0), Decimal(0), Decimal(10), Decimal(0), Decimal(100), 0)
    >>> booking_problem(bust).reason
    'ExecRefID(19) missing'
    """
    cum_qty, leaves_qty = report.cum_qty, report.leaves_qty
    if cum_qty < 0:
        return _negative(14, "CumQty", cum_qty)
    if leaves_qty < 0:
        return _negative(151, "LeavesQty", leaves_qty)
    exec_type = report.exec_type
    if exec_type in FILL_EXEC_TYPES:
        if report.side not in FILL_SIDES:
            return FieldError(54, f"Side(54) '{report.side}' is not a buy or a sell")
        if exec_type != TRADE_CANCEL and report.last_qty <= 0:
            return FieldError(32, f"LastQty(32) was {report.last_qty}, not positive")
        if exec_type != TRADE and not report.exec_ref_id:
            return FieldError(19, "ExecRefID(19) missing")
    qty = report.order_qty
    if qty is not None and report.ord_status in BOOKED_LEAVES_STATUSES:
        expected = expected_leaves_qty(report.ord_status, qty, cum_qty)
        if leaves_qty != expected:
            return FieldError(
                151, f"LeavesQty(151) {leaves_qty} is not OrderQty(38) {qty} - CumQty(14) {cum_qty}"
            )
    return None


def _negative(tag: int, name: str, value: Decimal) -> FieldError:
    return FieldError(tag, f"{name}({tag}) was {value}, negative")
