"""The ledger finds an order however the venue names it (issue 18): by ClOrdID (11) and
OrigClOrdID (41) on cancels and replaces, and by OrderID (37), which the venue keeps through
replaces and cancels, on trade cancels and corrections. Real PostgreSQL (tests/conftest.py)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from domain.events import ExecutionReport
from sinks.ledger import LedgerEvent
from tests.contract.sinks import test_ledger
from tests.contract.sinks.test_ledger import apply, cash, fill, holding, one, report, request

db = test_ledger.db  # a migrated database with accounts A1 and A2

D = Decimal


def ours(event: ExecutionReport, order_id: str = "V1") -> ExecutionReport:
    """The report as the venue sends it: OrderID (37) the venue's, the same on every report."""
    return replace(event, order_id=order_id)


def row(dsn: str, cl_ord_id: str) -> tuple[Any, ...] | None:
    return one(dsn, "SELECT status, quantity, cum_qty, leaves_qty, order_id FROM orders "
                    "WHERE cl_ord_id = %s", cl_ord_id)  # fmt: skip


def replaced_then_filled() -> list[ExecutionReport]:
    """c1 for 100, 30 filled; replaced by c2 for 50 (11=c2, 41=c1); c2 filled (20 more)."""
    return [
        ours(report("e0", "0", cl_ord_id="c1", n=0)),
        ours(fill("e1", "30", "10", "30", cl_ord_id="c1", n=1)),
        ours(
            report(
                "e2", "5", cl_ord_id="c2", orig="c1", order_qty="50", cum_qty="30", avg_px="10", n=2
            )
        ),  # fmt: skip
        ours(fill("e3", "20", "11", "50", cl_ord_id="c2", order_qty="50", avg_px="10.4", n=3)),
    ]


# How the venue names the order on a bust or correct of e1, a fill made while the order was
# still c1: by the fill's ClOrdID, since replaced; or by none at all.
NAMED = {"the fill's ClOrdID, since replaced": "c1", "no ClOrdID": None}


@pytest.mark.parametrize("batches", ["one batch", "two batches"])
@pytest.mark.parametrize("named", NAMED)
def test_ledger_trade_cancel_finds_its_order_by_order_id(db: str, named: str,
                                                         batches: str) -> None:  # fmt: skip
    bust = ours(report("h1", "H", cl_ord_id=NAMED[named], order_qty="50", last_qty="30",
                       last_px="10", cum_qty="20", avg_px="11", ref="e1", n=4))  # fmt: skip
    if batches == "one batch":
        result = apply(db, [*replaced_then_filled(), bust])
    else:
        apply(db, replaced_then_filled())
        assert row(db, "c2") == ("FILLED", D(50), D(50), D(0), "V1")
        result = apply(db, [bust])
    assert result.dead_letters == []
    # the order (c2 now) is open again for what the bust took back; c1 stays as it was replaced
    assert row(db, "c2") == ("PARTIALLY_FILLED", D(50), D(20), D(30), "V1")
    assert row(db, "c1")[0] == "REPLACED"
    assert one(db, "SELECT count(*) FROM orders")[0] == 2
    assert holding(db) == (D(20), D(11))
    assert cash(db) == D(100000) - D(220)
    assert one(db, "SELECT reversed_by FROM executions WHERE exec_id = 'e1'")[0] == "h1"


@pytest.mark.parametrize("named", NAMED)
def test_ledger_trade_correct_finds_its_order_by_order_id(db: str, named: str) -> None:
    apply(db, replaced_then_filled())
    correct = ours(report("g1", "G", cl_ord_id=NAMED[named], order_qty="50", last_qty="25",
                          last_px="10", cum_qty="45", avg_px="10.4889", ref="e1", n=4))  # fmt: skip
    assert apply(db, [correct]).dead_letters == []
    assert row(db, "c2") == ("PARTIALLY_FILLED", D(50), D(45), D(5), "V1")
    assert row(db, "c1")[0] == "REPLACED"
    assert holding(db)[0] == D(45)
    assert cash(db) == D(100000) - D(250) - D(220)


def test_ledger_standard_cancel_and_replace_move_the_order_row(db: str) -> None:
    """FIX 4.4: a replace confirms with 11 = the new ClOrdID and 41 = the one it replaces; a
    cancel with 11 = the cancel request's ClOrdID and 41 = the order's current one."""
    events = [
        ours(report("e0", "0", cl_ord_id="c1", n=0)),
        ours(report("e1", "5", cl_ord_id="c2", orig="c1", order_qty="80", price="10.5", n=1)),
        ours(fill("e2", "30", "10.5", "30", cl_ord_id="c2", order_qty="80", n=2)),
        ours(
            report(
                "e3",
                "5",
                cl_ord_id="c3",
                orig="c2",
                order_qty="60",
                cum_qty="30",
                avg_px="10.5",
                n=3,
            )
        ),  # fmt: skip
        ours(
            report(
                "e4",
                "4",
                cl_ord_id="q1",
                orig="c3",
                order_qty="60",
                cum_qty="30",
                leaves_qty="0",
                avg_px="10.5",
                n=4,
            )
        ),  # fmt: skip
    ]
    assert apply(db, events).dead_letters == []
    assert row(db, "c1") == ("REPLACED", D(100), D(0), D(0), "V1")
    assert row(db, "c2") == ("REPLACED", D(80), D(30), D(0), "V1")
    assert row(db, "c3") == ("CANCELED", D(60), D(30), D(0), "V1")
    assert row(db, "q1") is None  # a cancel request is not an order
    assert holding(db) == (D(30), D("10.5"))


def test_ledger_cancel_without_orig_cl_ord_id_finds_its_order_by_order_id(db: str) -> None:
    """A venue that omits 41 on a cancel names only the cancel request (11=q1): the order is
    the one of OrderID (37)."""
    apply(
        db,
        [
            ours(report("e0", "0", cl_ord_id="c1", n=0)),
            ours(report("e1", "5", cl_ord_id="c2", orig="c1", order_qty="80", n=1)),
        ],
    )
    cancel = ours(report("e2", "4", cl_ord_id="q1", order_qty="80", leaves_qty="0", n=2))
    assert apply(db, [cancel]).dead_letters == []
    assert row(db, "c2")[0] == "CANCELED"
    assert row(db, "q1") is None


# -- a replace or cancel the client requested (35=G/F), confirmed either way ------------------
#
# The broker's 35=G names the replacement (11=c2) and the order (41=c1); its 35=F the cancel
# request (11=q1) and the order. The venue confirms the standard way (FIX 4.4: 11 = the
# request's ClOrdID, 41 = the order's current one) or echoes the ClOrdID the order was placed
# with in 11, no 41, on every report of the order (simulator/surveillance.py's "echo" style).
# Without the requests in the input (a ledger started mid-day, or requests sent another way)
# the ledger knows the order by the ClOrdIDs the venue reports.

STYLES = ("standard", "echo")
REQUESTS = {"with the client's requests": True, "reports only": False}


def replace_of_c1(style: str, requests: bool) -> list[LedgerEvent]:
    """c1 placed for 100 @ 10 and acknowledged; replaced by c2 for 80 @ 10.5."""
    events: list[LedgerEvent] = []
    if requests:
        events.append(request("D", "c1", n=0))
    events.append(ours(report("e0", "0", cl_ord_id="c1", n=1)))
    if requests:
        events.append(request("G", "c2", "c1", qty="80", price="10.5", n=2))
    named = {"cl_ord_id": "c2", "orig": "c1"} if style == "standard" else {"cl_ord_id": "c1"}
    events.append(ours(report("e1", "5", **named, order_qty="80", price="10.5", n=3)))
    return events


def lifecycle(style: str, requests: bool) -> list[LedgerEvent]:
    """`replace_of_c1`; 30 filled at 10.5; replaced by c3 for 60 @ 10.4; cancelled (q1)."""
    events = replace_of_c1(style, requests)
    echo = style == "echo"
    events.append(
        ours(fill("e2", "30", "10.5", "30", cl_ord_id="c1" if echo else "c2", order_qty="80",
                  price="10.5", n=4))
    )  # fmt: skip
    if requests:
        events.append(request("G", "c3", "c2", qty="60", price="10.4", n=5))
    named = {"cl_ord_id": "c1"} if echo else {"cl_ord_id": "c3", "orig": "c2"}
    events.append(
        ours(report("e3", "5", **named, ord_status="1", order_qty="60", price="10.4",
                    cum_qty="30", avg_px="10.5", n=6))
    )  # fmt: skip
    if requests:
        events.append(request("F", "q1", "c3", qty="60", price="10.4", n=7))
    named = {"cl_ord_id": "c1"} if echo else {"cl_ord_id": "q1", "orig": "c3"}
    events.append(
        ours(report("e4", "4", **named, order_qty="60", price="10.4", cum_qty="30",
                    leaves_qty="0", avg_px="10.5", n=8))
    )  # fmt: skip
    return events


def book(dsn: str, events: list[LedgerEvent], batches: str) -> list[Any]:
    """Apply `events` in one batch or one event a batch; return the dead letters."""
    if batches == "one batch":
        return apply(dsn, events).dead_letters
    return [letter for event in events for letter in apply(dsn, [event]).dead_letters]


BATCHES = ("one batch", "one event a batch")


@pytest.mark.parametrize("batches", BATCHES)
@pytest.mark.parametrize("requests", REQUESTS)
@pytest.mark.parametrize("style", STYLES)
def test_ledger_replace_confirmed_either_way_moves_the_order_rows(
    db: str, style: str, requests: str, batches: str
) -> None:
    assert book(db, replace_of_c1(style, REQUESTS[requests]), batches) == []
    if style == "echo" and not REQUESTS[requests]:
        # nothing names a c2: the order rests on as c1, with the new terms
        assert row(db, "c1") == ("NEW", D(80), D(0), D(80), "V1")
        assert one(db, "SELECT count(*) FROM orders")[0] == 1
    else:
        # c1 replaced; c2 (the 35=G's row, if it came) takes the report's status, terms and
        # OrderID
        assert row(db, "c1") == ("REPLACED", D(100), D(0), D(0), "V1")
        assert row(db, "c2") == ("NEW", D(80), D(0), D(80), "V1")
        assert one(db, "SELECT orig_cl_ord_id, price FROM orders WHERE cl_ord_id = 'c2'") == (
            "c1",
            D("10.5"),
        )
        assert one(db, "SELECT count(*) FROM orders")[0] == 2


@pytest.mark.parametrize("batches", BATCHES)
@pytest.mark.parametrize("requests", REQUESTS)
@pytest.mark.parametrize("style", STYLES)
def test_ledger_order_replaced_twice_filled_and_cancelled_either_way(
    db: str, style: str, requests: str, batches: str
) -> None:
    """Echoed reports keep naming c1 after the client replaced it by c2 and c3: the fill, the
    second replace and the cancel move the order's live row (found by OrderID (37))."""
    assert book(db, lifecycle(style, REQUESTS[requests]), batches) == []
    if style == "echo" and not REQUESTS[requests]:
        assert row(db, "c1") == ("CANCELED", D(60), D(30), D(0), "V1")
        assert one(db, "SELECT count(*) FROM orders")[0] == 1
    else:
        assert row(db, "c1") == ("REPLACED", D(100), D(0), D(0), "V1")
        assert row(db, "c2") == ("REPLACED", D(80), D(30), D(0), "V1")
        assert row(db, "c3") == ("CANCELED", D(60), D(30), D(0), "V1")
        assert one(db, "SELECT count(*) FROM orders")[0] == 3
    assert row(db, "q1") is None  # the cancel request is not an order
    assert holding(db) == (D(30), D("10.5"))


@pytest.mark.parametrize("batches", BATCHES)
@pytest.mark.parametrize("style", STYLES)
def test_ledger_cancel_requested_and_confirmed_either_way_cancels_the_order(
    db: str, style: str, batches: str
) -> None:
    named = {"cl_ord_id": "q1", "orig": "c1"} if style == "standard" else {"cl_ord_id": "c1"}
    events = [
        request("D", "c1", n=0),
        ours(report("e0", "0", cl_ord_id="c1", n=1)),
        request("F", "q1", "c1", n=2),
        ours(report("e1", "4", **named, leaves_qty="0", n=3)),
    ]
    assert book(db, events, batches) == []
    assert row(db, "c1") == ("CANCELED", D(100), D(0), D(0), "V1")
    assert row(db, "q1") is None  # the F's ClOrdID is no order
    assert one(db, "SELECT count(*) FROM orders")[0] == 1


def test_ledger_echoed_replace_after_a_pending_replace_report_without_a_request(
    db: str,
) -> None:
    """The venue acknowledges a replace it was asked for elsewhere (150=E), then confirms it
    (150=5), both echoing c1: the order rests on as c1 with the new terms."""
    events = [
        ours(report("e0", "0", cl_ord_id="c1", n=0)),
        ours(report("e1", "E", cl_ord_id="c1", ord_status="E", leaves_qty="100", n=1)),
        ours(report("e2", "5", cl_ord_id="c1", order_qty="80", price="10.5", n=2)),
    ]
    assert apply(db, events).dead_letters == []
    assert row(db, "c1") == ("NEW", D(80), D(0), D(80), "V1")
