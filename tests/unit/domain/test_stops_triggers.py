"""Stop trigger engine: order type x reference, the trigger rules, trailing stops."""

from __future__ import annotations

from dataclasses import replace

import pytest

from domain.quotes import Quote
from domain.stops import (
    Accepted,
    ChildOrder,
    StopBook,
    Triggered,
    evaluate_stops,
)
from tests.unit.domain.stops_support import DAY0, HOUR, D, _book_at, _kinds, _move, _stop, _trail

REFERENCES = ["last", "bid", "ask", "mid"]


# -- each order type x each reference ------------------------------------------------------


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize(
    ("side", "stop", "near", "at"), [("2", "99", "99.5", "99"), ("1", "101", "100.5", "101")]
)
@pytest.mark.parametrize(
    ("ord_type", "price", "child_type"), [("3", None, "1"), ("4", "98.5", "2")]
)
def test_stop_book_stop_triggers_at_reference(
    reference: str, side: str, stop: str, near: str, at: str, ord_type: str,
    price: str | None, child_type: str,
) -> None:  # fmt: skip
    book = _book_at()
    order = _stop(side=side, stop=stop, ord_type=ord_type, reference=reference,
                  price=None if price is None else D(price))  # fmt: skip
    assert book.submit(order, DAY0 + 2 * HOUR) == [Accepted("s1", DAY0 + 2 * HOUR)]
    assert _move(book, reference, near, DAY0 + 3 * HOUR) == []
    [out] = _move(book, reference, at, DAY0 + 4 * HOUR)
    assert out == Triggered(
        order, D(stop), D(at), reference, DAY0 + 4 * HOUR,
        ChildOrder("s1.T", "AAPL", side, D(10), child_type, None if price is None else D(price)),
    )  # fmt: skip
    assert len(book) == 0
    assert _move(book, reference, "90" if side == "2" else "110", DAY0 + 5 * HOUR) == []


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize(
    ("side", "up", "retrace", "stop"), [("2", "103", "102", "102"), ("1", "97", "98", "98")]
)
def test_stop_book_trailing_triggers_at_reference(
    reference: str, side: str, up: str, retrace: str, stop: str
) -> None:
    book = _book_at()
    order = _trail(side=side, reference=reference)
    book.submit(order, DAY0 + 2 * HOUR)
    assert _move(book, reference, up, DAY0 + 3 * HOUR) == []  # ratchets in the client's favour
    assert book.stop_px("t1") == D(stop)
    [out] = _move(book, reference, retrace, DAY0 + 4 * HOUR)
    assert (out.order, out.stop_px, out.trigger_px, out.reference) == (
        order,
        D(stop),
        D(retrace),
        reference,
    )
    assert out.child == ChildOrder("t1.T", "AAPL", side, D(10), "1", None)


def test_stop_book_reference_defaults_per_symbol_then_book() -> None:
    book = StopBook(default_reference="bid", symbol_references={"MSFT": "ask"})
    book.on_quote("AAPL", 1, bid=D(100), ask=D(101), last=D(100))
    book.on_quote("MSFT", 1, bid=D(100), ask=D(101), last=D(100))
    book.submit(_stop("a", stop="99"), 2)
    book.submit(replace(_stop("m", stop="99"), symbol="MSFT"), 2)
    assert _kinds(book.on_quote("AAPL", 3, last=D(98))) == []
    assert _kinds(book.on_quote("AAPL", 4, bid=D(99))) == [("Triggered", "a")]
    assert _kinds(book.on_quote("MSFT", 5, bid=D(98))) == []
    assert _kinds(book.on_quote("MSFT", 6, ask=D(99))) == [("Triggered", "m")]


# -- trigger rules -------------------------------------------------------------------------


def test_stop_book_gap_through_triggers_at_observed_price() -> None:
    book = _book_at()
    book.submit(_stop(stop="99"), 2)
    [out] = book.on_quote("AAPL", 3, last=D("97.25"))
    assert (out.stop_px, out.trigger_px) == (D(99), D("97.25"))


def test_stop_book_bid_change_does_not_trigger_last_stop() -> None:
    book = _book_at()
    book.submit(_stop(stop="99"), 2)
    assert book.on_quote("AAPL", 3, bid=D(98), ask=D("98.2")) == []
    # A full L1 quote repeats the unchanged last: still no trigger.
    quote = Quote("AAPL", 97.0, 1.0, 97.2, 1.0, 100.0, 5.0, 10.0, 4, 1, 0, None, None, None, None)
    assert book.on_l1(quote) == []
    assert _kinds(book.on_quote("AAPL", 5, last=99.0)) == [("Triggered", "s1")]


def test_evaluate_stops_applies_l1_quote() -> None:
    book = _book_at()
    book.submit(_stop(stop="99"), 2)
    quote = Quote("AAPL", 98.9, 1.0, 99.1, 1.0, 99.0, 5.0, 10.0, 7, 2, 0, None, None, None, None)
    same, out = evaluate_stops(book, quote)
    assert same is book
    assert [(type(o), o.trigger_px, o.ts_ns) for o in out] == [(Triggered, D(99), 7 * 10**6)]


def test_stop_book_floats_read_as_their_decimal() -> None:
    book = StopBook()
    book.on_quote("AAPL", 1, last=99.5)
    book.submit(_stop(stop="99.4"), 2)
    [out] = book.on_quote("AAPL", 3, last=99.4)
    assert out.trigger_px == D("99.4")


def test_stop_book_first_price_decides_when_no_reference_known() -> None:
    book = StopBook()
    assert _kinds(book.submit(_stop(stop="99"), 1)) == [("Accepted", "s1")]
    assert _kinds(book.on_quote("AAPL", 2, last=D(98))) == [("Triggered", "s1")]


def test_stop_book_ties_fire_in_acceptance_order() -> None:
    book = _book_at()
    book.submit(_stop("b", stop="98"), 2)
    book.submit(_trail("a", offset="2"), 3)
    book.submit(_stop("c", stop="99"), 4)
    book.submit(_stop("d", stop="97"), 5)
    assert _kinds(book.on_quote("AAPL", 6, last=D("97.5"))) == [
        ("Triggered", "b"),
        ("Triggered", "a"),
        ("Triggered", "c"),
    ]


# -- trailing stops ------------------------------------------------------------------------


def test_stop_book_trailing_never_ratchets_down() -> None:
    book = _book_at()
    book.submit(_trail(offset="2"), 2)
    book.on_quote("AAPL", 3, last=D(104))
    assert book.on_quote("AAPL", 4, last=D("102.5")) == []
    assert book.on_quote("AAPL", 5, last=D(103)) == []
    assert book.stop_px("t1") == D(102)  # the mark is 104, not 103 nor 102.5
    [out] = book.on_quote("AAPL", 6, last=D("101.9"))
    assert (out.stop_px, out.trigger_px) == (D(102), D("101.9"))


def test_stop_book_trailing_bps_offset() -> None:
    book = _book_at()
    book.submit(_trail(offset="50", peg_offset_type="1"), 2)  # 0.5 %
    book.submit(_trail("t2", side="1", offset="100", peg_offset_type="1"), 2)  # 1 %
    assert book.stop_px("t2") == D(101)
    assert _kinds(book.on_quote("AAPL", 3, last=D(200))) == [("Triggered", "t2")]
    assert book.stop_px("t1") == D(199)
    assert _kinds(book.on_quote("AAPL", 4, last=D("199.01"))) == []
    assert _kinds(book.on_quote("AAPL", 5, last=D(199))) == [("Triggered", "t1")]


def test_stop_book_trailing_merges_groups_and_keeps_offsets_apart() -> None:
    book = _book_at()
    book.submit(_trail("a", offset="3"), 2)
    book.on_quote("AAPL", 3, last=D(102))
    book.submit(_trail("b", offset="1.5"), 4)
    book.on_quote("AAPL", 5, last=D(101))
    book.submit(_trail("c", offset="2"), 6)
    assert [book.stop_px(i) for i in "abc"] == [D(99), D("100.5"), D(99)]
    book.on_quote("AAPL", 7, last=D(105))  # one new high merges all three marks
    assert [book.stop_px(i) for i in "abc"] == [D(102), D("103.5"), D(103)]
    assert _kinds(book.on_quote("AAPL", 8, last=D("103.5"))) == [("Triggered", "b")]
    assert _kinds(book.on_quote("AAPL", 9, last=D(102))) == [("Triggered", "a"), ("Triggered", "c")]


def test_stop_book_trailing_activation_price() -> None:
    book = _book_at()
    book.submit(_trail(offset="1", activation_px=D(103)), 2)
    assert book.stop_px("t1") is None
    assert book.on_quote("AAPL", 3, last=D(95)) == []  # not active: no trigger on the way down
    assert book.on_quote("AAPL", 4, last=D(102)) == []
    assert book.stop_px("t1") is None
    assert book.on_quote("AAPL", 5, last=D("103.5")) == []
    assert book.stop_px("t1") == D("102.5")
    assert book.on_quote("AAPL", 6, last=D(104)) == []
    assert _kinds(book.on_quote("AAPL", 7, last=D(103))) == [("Triggered", "t1")]
