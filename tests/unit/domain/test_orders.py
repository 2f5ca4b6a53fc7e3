"""Order lifecycle: the transition table, routing, and report checks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidTransition
from domain.events import ExecutionReport, OrderRequest
from domain.orders import (
    BY_FILL,
    ORDER_TRANSITIONS,
    REQUEST_CANCEL,
    REQUEST_NEW,
    REQUEST_REPLACE,
    ExecType,
    Order,
    OrdStatus,
    apply_execution_report,
    apply_order_request,
    check_execution_report,
    next_status,
    route_execution_report,
)

D = Decimal


def _report(exec_type: str, cum: str, leaves: str, **kw: object) -> ExecutionReport:
    values: dict = dict(
        exec_id="e1", order_id="o1", cl_ord_id="c1", orig_cl_ord_id=None, exec_type=exec_type,
        ord_status="1", account="A1", symbol="AAPL", side="1", order_qty=D(100), ord_type="2",
        price=D(10), stop_px=None, last_qty=D(0), last_px=D(0), cum_qty=D(cum),
        leaves_qty=D(leaves), avg_px=D(0), ts_event=5,
    )  # fmt: skip
    values.update(kw)
    return ExecutionReport(**values)


def _request(msg_type: str, cl_ord_id: str, orig: str | None = None) -> OrderRequest:
    return OrderRequest(
        msg_type, cl_ord_id, orig, "A1", "AAPL", "1", D(100), "2", D(10), None, "0", 1
    )


@pytest.mark.parametrize(
    ("status", "trigger", "cum", "leaves", "expected"),
    [
        (None, REQUEST_NEW, 0, 100, OrdStatus.PENDING_NEW),
        (OrdStatus.PENDING_NEW, ExecType.NEW, 0, 100, OrdStatus.NEW),
        (OrdStatus.NEW, ExecType.TRADE, 30, 70, OrdStatus.PARTIALLY_FILLED),
        (OrdStatus.PARTIALLY_FILLED, ExecType.TRADE, 100, 0, OrdStatus.FILLED),
        (OrdStatus.FILLED, ExecType.TRADE_CANCEL, 70, 30, OrdStatus.PARTIALLY_FILLED),
        (OrdStatus.NEW, REQUEST_CANCEL, 0, 100, OrdStatus.PENDING_CANCEL),
        (OrdStatus.PENDING_CANCEL, ExecType.TRADE, 40, 60, OrdStatus.PENDING_CANCEL),
        (OrdStatus.PENDING_CANCEL, ExecType.TRADE, 100, 0, OrdStatus.FILLED),
        (OrdStatus.PENDING_CANCEL, ExecType.CANCELED, 40, 0, OrdStatus.CANCELED),
        (OrdStatus.CANCELED, ExecType.TRADE, 50, 0, OrdStatus.CANCELED),
        (OrdStatus.PENDING_NEW, ExecType.REJECTED, 0, 0, OrdStatus.REJECTED),
        (OrdStatus.NEW, ExecType.EXPIRED, 0, 0, OrdStatus.EXPIRED),
    ],
)
def test_next_status_lifecycle(
    status: OrdStatus | None, trigger: str, cum: int, leaves: int, expected: OrdStatus
) -> None:
    assert next_status(status, trigger, D(cum), D(leaves)) is expected


@pytest.mark.parametrize(
    ("status", "trigger"),
    [(OrdStatus.FILLED, ExecType.TRADE), (OrdStatus.REJECTED, ExecType.TRADE)],
)
def test_next_status_refuses_pairs_missing_from_the_table(status: OrdStatus, trigger: str) -> None:
    with pytest.raises(InvalidTransition):
        next_status(status, trigger, D(1), D(0))


def test_table_targets_are_statuses_or_resolvers() -> None:
    for (status, _), target in ORDER_TRANSITIONS.items():
        assert status is None or isinstance(status, OrdStatus)
        assert isinstance(target, OrdStatus) or target in (BY_FILL, "unless_filled")


@given(st.integers(0, 100))
def test_fill_status_says_filled_exactly_when_nothing_is_left(cum: int) -> None:
    status = next_status(OrdStatus.NEW, ExecType.TRADE, D(cum), D(100 - cum))
    expected = {0: OrdStatus.NEW, 100: OrdStatus.FILLED}.get(cum, OrdStatus.PARTIALLY_FILLED)
    assert status is expected


def test_replace_routes_original_and_replacement() -> None:
    report = _report(ExecType.REPLACED, "20", "30", cl_ord_id="c2", orig_cl_ord_id="c1")
    assert route_execution_report(report, lambda c: True) == [
        ("c1", ExecType.REPLACED),
        ("c2", ExecType.NEW),
    ]


def test_cancel_routes_to_original() -> None:
    report = _report(ExecType.CANCELED, "0", "0", cl_ord_id="cx", orig_cl_ord_id="c1")
    assert route_execution_report(report, lambda c: False) == [("c1", ExecType.CANCELED)]


def _orders_after_g() -> dict[str, Order]:
    """c1 acknowledged (OrderID o1), then our 35=G: c1 PENDING_REPLACE, c2 PENDING_NEW."""
    c1 = apply_order_request(None, _request("D", "c1"), REQUEST_NEW, "A1")
    c1 = apply_execution_report(c1, _report("0", "0", "100", ord_status="0"), "0", "A1")
    g = _request("G", "c2", "c1")
    c1 = apply_order_request(c1, g, REQUEST_REPLACE, "A1")
    return {"c1": c1, "c2": apply_order_request(None, g, REQUEST_NEW, "A1")}


def test_echoed_replace_routes_the_order_and_our_pending_replacement() -> None:
    """Issue 18: 150=5 echoing c1 (no 41) after our G c2 is the replace of c1 by c2."""
    orders = _orders_after_g()
    report = _report(ExecType.REPLACED, "0", "80", order_qty=D(80), ord_status="0")
    assert route_execution_report(report, orders.__contains__, None, orders.get) == [
        ("c1", ExecType.REPLACED),
        ("c2", ExecType.NEW),
    ]
    # the fill after it, still echoing c1, moves c2: the order's live row by OrderID (37)
    orders["c1"] = apply_execution_report(orders["c1"], report, ExecType.REPLACED, "A1")
    fill = _report(ExecType.TRADE, "30", "50", order_qty=D(80), last_qty=D(30), last_px=D(10))
    assert route_execution_report(fill, orders.__contains__, {"o1": "c2"}.get, orders.get) == [
        ("c2", ExecType.TRADE)
    ]


def test_echoed_replace_without_a_request_of_ours_moves_the_order_itself() -> None:
    orders = _orders_after_g()
    del orders["c2"]  # the replace was asked for elsewhere (150=E made c1 PENDING_REPLACE)
    report = _report(ExecType.REPLACED, "0", "80", order_qty=D(80), ord_status="0")
    pairs = route_execution_report(report, orders.__contains__, None, orders.get)
    assert pairs == [("c1", ExecType.NEW)]
    moved = apply_execution_report(orders["c1"], report, ExecType.NEW, "A1")
    assert (moved.status, moved.quantity) == (OrdStatus.NEW, D(80))


def test_apply_execution_report_takes_quantities_from_the_report() -> None:
    order = apply_order_request(None, _request("D", "c1"), REQUEST_NEW, "A1")
    order = apply_execution_report(order, _report("F", "30", "70"), ExecType.TRADE, "A1")
    assert (order.status, order.cum_qty, order.leaves_qty, order.ts_created) == (
        OrdStatus.PARTIALLY_FILLED,
        D(30),
        D(70),
        1,
    )


def test_replayed_cancel_request_changes_nothing() -> None:
    order = apply_order_request(None, _request("D", "c1"), REQUEST_NEW, "A1")
    order = apply_execution_report(order, _report("0", "0", "100"), ExecType.NEW, "A1")
    cancel = _request("F", "cx", "c1")
    pending = apply_order_request(order, cancel, REQUEST_CANCEL, "A1")
    assert pending.status is OrdStatus.PENDING_CANCEL
    assert apply_order_request(pending, cancel, REQUEST_CANCEL, "A1") == pending


@pytest.mark.parametrize(
    ("changes", "tag"),
    [
        ({"cum_qty": D(120), "leaves_qty": D(0)}, 14),
        ({"leaves_qty": D(5)}, 151),
        ({"last_px": D(-1)}, 31),
        ({"exec_type": "H", "exec_ref_id": None}, 19),
        ({"exec_type": "F", "last_qty": D(0)}, 32),
    ],
)
def test_check_execution_report(changes: dict, tag: int) -> None:
    exec_type = changes.pop("exec_type", "0")
    report = _report(exec_type, "0", "100", **changes)
    problem = check_execution_report(report)
    assert problem is not None and problem.tag == tag


def test_check_execution_report_accepts_a_good_fill() -> None:
    good = _report("F", "10", "90", last_qty=D(10), last_px=D(10))
    assert check_execution_report(good) is None
