"""LedgerBook: the ledger's booking rules, without PostgreSQL (domain/ledger_book.py).

Scenarios from FIX practice: fills, a partial then full fill, a trade correct (150=G) and a
trade cancel (150=H) naming the fill in ExecRefID (19), a cancel/replace chain, and the events
the ledger refuses (an unknown account, a bust of no booked fill, a bust of another account's
fill), each asserted on the `Booked`, `Duplicate` or `Rejected` value returned.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import FieldError, InvalidTransition
from domain.events import ExecutionReport, OrderRequest
from domain.ledger import FLAT, Holding
from domain.ledger_book import Booked, BookedFill, Duplicate, LedgerBook, Rejected
from domain.orders import OrdStatus
from domain.positions import day_of

D = Decimal
T0 = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC
KEY = ("A1", "AAPL")


def report(
    exec_id: str,
    exec_type: str = "F",
    *,
    cl_ord_id: str | None = "c1",
    orig: str | None = None,
    order_id: str = "V1",
    ord_status: str | None = None,
    account: str | None = "A1",
    side: str = "1",
    order_qty: str = "100",
    last_qty: str = "0",
    last_px: str = "0",
    cum_qty: str = "0",
    avg_px: str = "0",
    ref: str | None = None,
    ts: int = T0,
    raw: bytes = b"",
) -> ExecutionReport:
    """An execution report (35=8) of a limit order at 10, LeavesQty = OrderQty - CumQty."""
    leaves = D(order_qty) - D(cum_qty)
    if exec_type in ("4", "5"):
        leaves = D(0) if exec_type == "4" else leaves
    if ord_status is None:
        ord_status = {"F": "1" if leaves else "2", "0": "0", "4": "4", "5": "0"}.get(exec_type, "0")
    return ExecutionReport(
        exec_id, order_id, cl_ord_id, orig, exec_type, ord_status, account, "AAPL", side,
        D(order_qty), "2", D(10), None, D(last_qty), D(last_px), D(cum_qty), leaves,
        D(avg_px), ts, exec_ref_id=ref, raw=raw, source=f"test:{exec_id}",
    )  # fmt: skip


def request(
    msg_type: str, cl_ord_id: str, orig: str | None = None, qty: str = "100", ts: int = T0
) -> OrderRequest:
    return OrderRequest(
        msg_type, cl_ord_id, orig, "A1", "AAPL", "1", D(qty), "2", D(10), None, "0", ts
    )


def booked(result: object) -> Booked:
    assert type(result) is Booked, result
    return result


def rejected(result: object) -> Rejected:
    assert type(result) is Rejected, result
    return result


@pytest.fixture
def book() -> LedgerBook:
    return LedgerBook({"A1", "A2"})


def test_ledger_book_fill_moves_holding_cash_and_order(book: LedgerBook) -> None:
    booked(book.apply(report("e0", "0")))
    fill = booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    assert fill.account == "A1"
    assert fill.holdings == {KEY: Holding(D(100), D(10))}
    assert fill.cash_delta == D(-1000)
    assert (fill.commission, fill.realised, fill.reversed) == (0, 0, None)
    assert fill.days == {KEY: (day_of(T0), D(0))}
    assert fill.orders["c1"].status == OrdStatus.FILLED
    assert fill.orders["c1"].last_exec_id == "e1"
    # the book holds the change for the batch's later events
    assert book.holdings[KEY] == Holding(D(100), D(10))
    assert book.orders["c1"].status == OrdStatus.FILLED


def test_ledger_book_partial_then_full_fill(book: LedgerBook) -> None:
    first = booked(book.apply(report("e1", last_qty="40", last_px="10", cum_qty="40")))
    assert first.orders["c1"].status == OrdStatus.PARTIALLY_FILLED
    assert first.orders["c1"].leaves_qty == D(60)
    second = booked(book.apply(report("e2", last_qty="60", last_px="11", cum_qty="100")))
    assert second.orders["c1"].status == OrdStatus.FILLED
    assert second.holdings == {KEY: Holding(D(100), D("10.6"))}  # (40 x 10 + 60 x 11) / 100
    assert second.cash_delta == D(-660)


def test_ledger_book_sell_realises_pnl_of_the_day(book: LedgerBook) -> None:
    booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    sell = booked(
        book.apply(
            report("e2", cl_ord_id="c2", side="2", last_qty="30", last_px="12", cum_qty="30")
        )
    )
    assert sell.realised == D(60)
    assert sell.cash_delta == D(360)
    assert sell.holdings == {KEY: Holding(D(70), D(10), D(60))}
    assert sell.days == {KEY: (day_of(T0), D(60))}


def test_ledger_book_commission_is_taken_from_cash(book: LedgerBook) -> None:
    raw = b"8=FIX.4.4|35=8|12=2.5|13=3|"
    fill = booked(book.apply(report("e1", last_qty="10", last_px="10", cum_qty="10", raw=raw)))
    assert fill.commission == D("2.5")
    assert fill.cash_delta == D("-102.5")


def test_ledger_book_trade_correct_rebooks_the_fill(book: LedgerBook) -> None:
    """150=G with ExecRefID(19): the original fill is reversed and the corrected one booked."""
    booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    fix = booked(
        book.apply(report("e2", "G", last_qty="100", last_px="9.5", cum_qty="100", ref="e1"))
    )
    assert fix.reversed == "e1"
    assert fix.holdings == {KEY: Holding(D(100), D("9.5"))}
    assert fix.cash_delta == D(50)  # +1000 back, -950 booked
    assert book.fills["e1"].reversed_by == "e2"
    assert fix.orders["c1"].status == OrdStatus.FILLED


def test_ledger_book_trade_cancel_reverses_the_fill(book: LedgerBook) -> None:
    """150=H (a busted trade) takes the fill out and reopens the order."""
    booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    bust = booked(book.apply(report("e2", "H", ord_status="0", cum_qty="0", ref="e1")))
    assert bust.reversed == "e1"
    assert bust.holdings == {KEY: FLAT}
    assert bust.cash_delta == D(1000)
    assert bust.orders["c1"].status == OrdStatus.NEW


def test_ledger_book_bust_of_a_corrected_fill_reverses_the_correction(book: LedgerBook) -> None:
    booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    booked(book.apply(report("e2", "G", last_qty="100", last_px="9", cum_qty="100", ref="e1")))
    bust = booked(book.apply(report("e3", "H", ord_status="0", cum_qty="0", ref="e1")))
    assert bust.reversed == "e2"  # the correction is the fill that stands
    assert bust.cash_delta == D(900)
    assert book.holdings[KEY] == FLAT


def test_ledger_book_bust_of_a_cancelled_fill_is_rejected(book: LedgerBook) -> None:
    booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    booked(book.apply(report("e2", "H", ord_status="0", cum_qty="0", ref="e1")))
    again = rejected(book.apply(report("e3", "H", ord_status="0", cum_qty="0", ref="e1")))
    assert again.tag == 19
    assert again.reason == "ExecRefID(19) 'e1': the fill was cancelled by 'e2'"


def test_ledger_book_bust_of_a_fill_booked_before_the_batch(book: LedgerBook) -> None:
    """A fill read from the ledger (`add_booked_fills`) is reversed like one of the batch."""
    book.holdings[KEY] = Holding(D(100), D(10))
    more = book.add_booked_fills(
        [BookedFill("e1", "A1", "AAPL", "1", D(100), D(10), D(0), D(0), "F", None, T0)]
    )
    assert more == []
    bust = booked(book.apply(report("e2", "H", ord_status="0", cum_qty="0", ref="e1")))
    assert (bust.reversed, bust.cash_delta, bust.holdings) == ("e1", D(1000), {KEY: FLAT})


def test_ledger_book_bust_naming_no_booked_fill_is_rejected(book: LedgerBook) -> None:
    refused = rejected(book.apply(report("e2", "H", ord_status="0", ref="nope")))
    assert isinstance(refused.error, FieldError)
    assert (refused.tag, refused.reason) == (19, "ExecRefID(19) 'nope' names no booked fill")


def test_ledger_book_bust_of_another_accounts_fill_is_rejected(book: LedgerBook) -> None:
    booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    refused = rejected(
        book.apply(report("e2", "H", account="A2", ord_status="0", cum_qty="0", ref="e1"))
    )
    assert refused.tag == 1
    assert refused.reason == "Account(1) 'A2' is not the account of fill 'e1' ('A1')"
    assert book.holdings[KEY] == Holding(D(100), D(10))  # nothing changed


def test_ledger_book_unknown_account_is_rejected(book: LedgerBook) -> None:
    refused = rejected(book.apply(report("e1", account="ZZ", last_qty="1", last_px="10")))
    assert (refused.tag, refused.reason) == (1, "Account(1) 'ZZ' is not a known account")
    assert type(refused.error) is FieldError
    assert book.holdings == {} and book.orders == {}


def test_ledger_book_missing_account_is_rejected(book: LedgerBook) -> None:
    refused = rejected(book.apply(report("e1", account=None)))
    assert (refused.tag, refused.reason) == (1, "Account(1) missing")


def test_ledger_book_account_found_elsewhere_is_used(book: LedgerBook) -> None:
    """The sink passes the account of an event without Account(1) (its order's or fill's)."""
    fill = booked(book.apply(report("e1", account=None, last_qty="1", last_px="10"), "A2"))
    assert fill.holdings == {("A2", "AAPL"): Holding(D(1), D(10))}


def test_ledger_book_bad_report_is_rejected_with_the_check_reason(book: LedgerBook) -> None:
    bad = report("e1", last_qty="10", last_px="-1", cum_qty="10")
    refused = rejected(book.apply(bad))
    assert refused.tag == 31  # the reason is the report check's (domain.orders)
    assert refused.reason.startswith("LastPx(31)")
    assert book.holdings == {}


def test_ledger_book_refused_transition_is_rejected(book: LedgerBook) -> None:
    booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    late = rejected(book.apply(report("e2", "4", cum_qty="100")))  # cancel of a filled order
    assert isinstance(late.error, InvalidTransition)
    assert late.tag is None
    assert book.fills.keys() == {"e1"}


def test_ledger_book_duplicate_exec_id_is_idempotent(book: LedgerBook) -> None:
    ack = booked(book.apply(report("e0", "0")))
    first = booked(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100")))
    orders = dict(book.orders)
    again = book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100"))
    assert again == Duplicate(first.event, "A1", True)  # type: ignore[arg-type]
    assert book.apply(ack.event) == Duplicate(ack.event, "A1", False)  # type: ignore[arg-type]
    assert book.holdings[KEY] == Holding(D(100), D(10))
    assert book.orders == orders


def test_ledger_book_exec_id_booked_before_the_batch_is_a_duplicate(book: LedgerBook) -> None:
    book.add_booked_fills(
        [BookedFill("e1", "A1", "AAPL", "1", D(100), D(10), D(0), D(0), "F", None, T0)]
    )
    assert type(book.apply(report("e1", last_qty="100", last_px="10", cum_qty="100"))) is Duplicate
    assert book.holdings == {}


def test_ledger_book_cancel_replace_chain(book: LedgerBook) -> None:
    """D, 150=0, G (c2 replaces c1), 150=5 (11=c2, 41=c1), a fill on c2, F, 150=4."""
    new = booked(book.apply(request("D", "c1")))
    assert new.orders["c1"].status == OrdStatus.PENDING_NEW
    booked(book.apply(report("e0", "0")))
    replace = booked(book.apply(request("G", "c2", "c1", qty="200")))
    assert replace.orders["c1"].status == OrdStatus.PENDING_REPLACE
    assert replace.orders["c2"].status == OrdStatus.PENDING_NEW
    replaced = booked(book.apply(report("e1", "5", cl_ord_id="c2", orig="c1", order_qty="200")))
    assert replaced.orders["c1"].status == OrdStatus.REPLACED
    assert replaced.orders["c2"].status == OrdStatus.NEW
    assert replaced.holdings == {} and replaced.cash_delta == 0
    fill = booked(
        book.apply(
            report(
                "e2", cl_ord_id="c2", order_qty="200", last_qty="50", last_px="10", cum_qty="50"
            )  # fmt: skip
        )
    )
    assert list(fill.orders) == ["c2"]
    assert fill.orders["c2"].status == OrdStatus.PARTIALLY_FILLED
    cancel = booked(book.apply(request("F", "c3", "c2")))
    assert cancel.orders["c2"].status == OrdStatus.PENDING_CANCEL
    done = booked(
        book.apply(report("e3", "4", cl_ord_id="c3", orig="c2", order_qty="200", cum_qty="50"))
    )
    assert done.orders["c2"].status == OrdStatus.CANCELED
    assert book.holdings[KEY] == Holding(D(50), D(10))


def test_ledger_book_cancel_of_unknown_order_is_rejected(book: LedgerBook) -> None:
    refused = rejected(book.apply(request("F", "c9", "c8")))
    assert (refused.tag, refused.reason) == (41, "OrigClOrdID(41) 'c8' is not a known order")


def test_ledger_book_bust_routed_by_order_id_to_the_live_row(book: LedgerBook) -> None:
    """A bust naming the ClOrdID a replace has since superseded moves the live row (37)."""
    booked(book.apply(report("e1", last_qty="10", last_px="10", cum_qty="10")))
    booked(book.apply(report("e2", "5", cl_ord_id="c2", orig="c1", cum_qty="10")))
    bust = report("e3", "H", ord_status="0", cum_qty="0", ref="e1")
    order_ids, echoed = book.order_ids_to_read([bust], ["A1"])
    assert (order_ids, echoed) == ({"V1"}, False)
    book.add_orders_by_order_id(order_ids, list(book.orders.values()))
    moved = booked(book.apply(bust))
    assert list(moved.orders) == ["c2"]
    assert moved.orders["c2"].status == OrdStatus.NEW
