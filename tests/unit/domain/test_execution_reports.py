"""The execution-report rule, written from the FIX 4.2/4.4 field definitions (LeavesQty (151),
OrdStatus (39), ExecType (150), ExecRefID (19), Side (54)), not from the code."""

import xml.etree.ElementTree as ET
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from domain.events import ExecutionReport
from domain.execution_reports import (
    CLOSED_STATUSES,
    FILL_SIDES,
    FIX_SIDES,
    LEAVES_OPEN_STATUSES,
    booking_problem,
    expected_leaves_qty,
    validate_execution_report,
)
from domain.orders import check_execution_report

D = Decimal
DICTIONARIES = Path(__file__).parents[3] / "connectors" / "fix" / "dictionaries"


def report(**changes: object) -> ExecutionReport:
    """A partial fill of 100: 40 done at 10, 60 open, unless `changes` say otherwise."""
    base = ExecutionReport(
        exec_id="E-1",
        order_id="O-1",
        cl_ord_id="C-1",
        orig_cl_ord_id=None,
        exec_type="F",
        ord_status="1",
        account="A1",
        symbol="AAPL",
        side="1",
        order_qty=D(100),
        ord_type="2",
        price=D(10),
        stop_px=None,
        last_qty=D(40),
        last_px=D(10),
        cum_qty=D(40),
        leaves_qty=D(60),
        avg_px=D(10),
        ts_event=0,
    )
    return replace(base, **changes)


def ack(ord_status: str, exec_type: str | None = None, **changes: object) -> ExecutionReport:
    """A report that is not a fill (LastQty/LastPx 0)."""
    fields = {"exec_type": exec_type or ord_status, "ord_status": ord_status}
    return report(**{**fields, "last_qty": D(0), "last_px": D(0), **changes})


def tag_of(found: ExecutionReport) -> int | None:
    problem = validate_execution_report(found)
    return None if problem is None else problem.tag


def _enums(field: str) -> set[str]:
    root = ET.parse(DICTIONARIES / "FIX44.xml").getroot()
    node = root.find(f"./fields/field[@name='{field}']")
    assert node is not None
    return {value.get("enum") for value in node.iter("value")}


# -- LeavesQty (151): "If the OrdStatus is Canceled, DoneForTheDay, Expired, Calculated, or
# Rejected ... LeavesQty could be 0, otherwise LeavesQty = OrderQty - CumQty."


@pytest.mark.parametrize(
    "accepted",
    [
        report(),  # partially filled: 60 = 100 - 40
        report(ord_status="2", cum_qty=D(100), leaves_qty=D(0), last_qty=D(60)),  # filled
        ack("0", cum_qty=D(0), leaves_qty=D(100)),  # new
        ack("A", cum_qty=D(0), leaves_qty=D(100)),  # pending new
        ack("4", leaves_qty=D(0)),  # canceled after a partial fill: nothing left open
        ack("8", cum_qty=D(0), leaves_qty=D(0)),  # rejected
        ack("3", leaves_qty=D(0)),  # done for day
        ack("C", leaves_qty=D(0)),  # expired
        report(order_qty=D("100.00"), leaves_qty=D("60.0")),  # the same numbers
        report(order_qty=None, leaves_qty=D(5)),  # no OrderQty: nothing to subtract from
        report(leaves_qty=None),  # LeavesQty not judged (FIX 4.0/4.1 at the decoder)
        ack("6", leaves_qty=D(7)),  # pending cancel: not enforced (see the docstring)
        ack("E", leaves_qty=D(7)),  # pending replace: not enforced
        ack("B", leaves_qty=D(1)),  # calculated: not enforced
        ack("A", cum_qty=D(0), leaves_qty=D(0)),  # pending new: the ledger's (booking_problem)
        ack("0", price=D(0), stop_px=D(0), cum_qty=D(0), leaves_qty=D(100)),  # 0 is a price
    ],
)
def test_consistent_reports_are_accepted(accepted: ExecutionReport) -> None:
    assert validate_execution_report(accepted) is None


@pytest.mark.parametrize(
    ("rejected", "tag", "reason"),
    [
        (
            report(cum_qty=D(120), leaves_qty=D(0)),
            14,
            "CumQty(14) was 120, more than OrderQty(38) 100",
        ),
        (
            report(leaves_qty=D(50)),
            151,
            "LeavesQty(151) was 50, expected OrderQty(38) - CumQty(14) = 60",
        ),
        (ack("4", leaves_qty=D(60)), 151, "LeavesQty(151) was 60, expected 0 with OrdStatus(39) 4"),
        (ack("8", cum_qty=D(0), leaves_qty=D(100)), 151, None),
        (ack("C", leaves_qty=D(1), order_qty=None), 151, None),  # closed: 0 without 38 too
        (report(last_qty=D(-1)), 32, "LastQty(32) was -1, negative"),
        (report(last_px=D(-10)), 31, "LastPx(31) was -10, negative"),
        (report(avg_px=D(-1)), 6, "AvgPx(6) was -1, negative"),
        (report(price=D("-1.5")), 44, "Price(44) was -1.5, negative"),
        (report(stop_px=D(-2)), 99, "StopPx(99) was -2, negative"),
        (
            report(last_qty=D(0)),
            32,
            "LastQty(32) was 0, not positive on a fill (ExecType(150) F)",
        ),
        (report(last_px=D(0)), 31, "LastPx(31) was 0, not positive on a fill (ExecType(150) F)"),
    ],
)
def test_inconsistent_reports_are_rejected_naming_the_tag(
    rejected: ExecutionReport, tag: int, reason: str | None
) -> None:
    problem = validate_execution_report(rejected)
    assert problem is not None and problem.tag == tag
    if reason is not None:
        assert problem.reason == reason


def test_the_first_failing_check_is_the_answer() -> None:
    # CumQty above OrderQty and a negative LastPx: the quantities are judged first.
    assert tag_of(report(cum_qty=D(120), leaves_qty=D(0), last_px=D(-1))) == 14


def test_expected_leaves_qty() -> None:
    assert expected_leaves_qty("1", D(100), D(40)) == D(60)
    assert expected_leaves_qty("A", D(100), D(0)) == D(100)
    assert expected_leaves_qty("4", D(100), D(40)) == D(0)
    assert expected_leaves_qty("1", None, D(40)) is None
    # FIX's "otherwise", though not enforced for a pending cancel (see the module docstring)
    assert expected_leaves_qty("6", D(100), D(40)) == D(60)
    assert expected_leaves_qty("B", D(100), D(40)) == D(60)


def test_status_and_side_sets_are_fix_values() -> None:
    statuses = _enums("OrdStatus")
    assert LEAVES_OPEN_STATUSES <= statuses and CLOSED_STATUSES <= statuses
    assert not LEAVES_OPEN_STATUSES & CLOSED_STATUSES
    # "could be 0" statuses of the spec, less Calculated (B): see the module docstring
    assert CLOSED_STATUSES == {"3", "4", "8", "C"}
    sides = _enums("Side")
    assert FIX_SIDES - sides == {"H"}  # H sell undisclosed: FIX 5.0 SP2
    assert sides <= FIX_SIDES
    assert FILL_SIDES <= FIX_SIDES and {"1", "2", "5", "6"} <= FILL_SIDES
    assert not FILL_SIDES & {"7", "8", "9", "A", "C", "D", "E", "F", "G", "H"}


# -- what the ledger needs besides to book a fill ------------------------------------------


@pytest.mark.parametrize(
    ("changes", "tag"),
    [
        ({"exec_type": "H", "exec_ref_id": None}, 19),  # a trade cancel names its fill
        ({"exec_type": "G", "exec_ref_id": None}, 19),  # so does a correction
        ({"exec_type": "G", "exec_ref_id": "E-0", "last_qty": D(0)}, 32),
        ({"side": "8"}, 54),  # a cross is no position
        ({"side": "D"}, 54),
        ({"order_qty": None, "cum_qty": D(-5)}, 14),
        ({"order_qty": None, "leaves_qty": D(-5)}, 151),
        # a pending new order is booked with its whole quantity open
        (
            {
                "exec_type": "A",
                "ord_status": "A",
                "cum_qty": D(0),
                "last_qty": D(0),
                "leaves_qty": D(0),
            },
            151,
        ),
        # FIX 4.0/4.1 LeavesQty, not judged by the decoder, is by the ledger
        ({"leaves_qty": D(50)}, 151),
    ],
)
def test_booking_problem(changes: dict, tag: int) -> None:
    problem = booking_problem(report(**changes))
    assert problem is not None and problem.tag == tag
    assert check_execution_report(report(**changes)).tag == tag


def test_the_ledger_words_leaves_as_it_always_has() -> None:
    pending = ack("A", cum_qty=D(0), leaves_qty=D(50))
    assert validate_execution_report(pending) is None
    assert check_execution_report(pending).reason == (
        "LeavesQty(151) 50 is not OrderQty(38) 100 - CumQty(14) 0"
    )


def test_booking_accepts_what_it_can_book() -> None:
    assert booking_problem(report()) is None
    assert booking_problem(report(exec_type="H", exec_ref_id="E-0", last_qty=D(0))) is None
    assert booking_problem(ack("0", side="8", cum_qty=D(0), leaves_qty=D(100))) is None


def test_the_ledger_applies_the_rule_first() -> None:
    bad = report(cum_qty=D(120), leaves_qty=D(0), side="8")
    assert check_execution_report(bad).reason == validate_execution_report(bad).reason
    assert check_execution_report(report()) is None
