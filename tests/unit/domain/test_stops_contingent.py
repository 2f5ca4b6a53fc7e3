"""Stop trigger engine: contingent lists (OCO, OTO brackets) and expiry."""

from __future__ import annotations

from datetime import time

from domain.stops import (
    NS_PER_DAY,
    Activated,
    Cancelled,
    ChildOrder,
    Expired,
    Rejected,
    StopBook,
    StopOrder,
)
from tests.unit.domain.stops_support import DAY0, HOUR, D, _book_at, _kinds, _stop

# -- OCO / OTO -----------------------------------------------------------------------------


def test_stop_book_oco_trigger_cancels_sibling() -> None:
    book = _book_at()
    legs = [_stop("lo", stop="95"), _stop("hi", side="1", stop="105")]
    assert _kinds(book.submit_list(legs, 1, "L1", 2)) == [("Accepted", "lo"), ("Accepted", "hi")]
    out = book.on_quote("AAPL", 3, last=D(106))
    assert _kinds(out) == [("Triggered", "hi"), ("Cancelled", "lo")]
    assert out[1] == Cancelled("lo", "OCO sibling hi triggered", 3)
    assert len(book) == 0


def test_stop_book_oco_same_step_only_first_fires() -> None:
    book = _book_at()
    legs = [_stop("a", stop="99", reference="bid"), _stop("b", stop="99.5")]
    book.submit_list(legs, 1, "L1", 2)
    out = book.on_quote("AAPL", 3, bid=D(98), last=D(99))
    assert _kinds(out) == [("Triggered", "a"), ("Cancelled", "b")]


def test_stop_book_oco_fill_of_limit_leg_cancels_stop() -> None:
    book = _book_at()
    take_profit = StopOrder("tp", "AAPL", "2", D(10), "2", price=D(110))
    out = book.submit_list([take_profit, _stop("sl", stop="95")], 1, "L1", 2)
    assert out[-1] == Activated("tp", 2, ChildOrder("tp", "AAPL", "2", D(10), "2", D(110)))
    assert book.on_fill("tp", D(4), D(10), 3) == [Cancelled("sl", "OCO sibling tp filled", 3)]
    assert book.on_quote("AAPL", 4, last=D(90)) == []
    assert book.on_fill("tp", D(10), D(10), 5) == []
    assert len(book) == 0


def _bracket(book: StopBook, entry: StopOrder | None = None) -> list:
    entry = entry or StopOrder("e", "AAPL", "1", D(10), "2", price=D(100))
    take_profit = StopOrder("tp", "AAPL", "2", D(10), "2", price=D(110))
    return book.submit_bracket(entry, take_profit, _stop("sl", stop="95"), "B1", 2)


def test_stop_book_bracket_children_wait_for_full_fill() -> None:
    book = _book_at()
    out = _bracket(book)
    assert _kinds(out) == [("Accepted", "e"), ("Accepted", "tp"), ("Accepted", "sl"),
                           ("Activated", "e")]  # fmt: skip
    assert out[-1].child == ChildOrder("e", "AAPL", "1", D(10), "2", D(100))
    assert book.on_quote("AAPL", 3, last=D(90)) == []  # the held stop-loss cannot fire
    book.on_quote("AAPL", 4, last=D(100))
    assert book.on_fill("e", D(6), D(10), 5) == []  # partial: children still held
    assert book.stop_px("sl") is None
    out = book.on_fill("e", D(10), D(10), 6)
    assert out == [Activated("tp", 6, ChildOrder("tp", "AAPL", "2", D(10), "2", D(110))),
                   Activated("sl", 6)]  # fmt: skip
    assert book.stop_px("sl") == D(95)
    assert book.on_fill("e", D(10), D(10), 7) == []  # a replayed fill changes nothing
    out = book.on_quote("AAPL", 8, last=D(95))
    assert _kinds(out) == [("Triggered", "sl"), ("Cancelled", "tp")]
    assert out[1].reason == "OCO sibling sl triggered"


def test_stop_book_bracket_take_profit_fill_cancels_stop_loss() -> None:
    book = _book_at()
    _bracket(book)
    book.on_fill("e", D(10), D(10), 3)
    assert book.on_fill("tp", D(10), D(10), 4) == [Cancelled("sl", "OCO sibling tp filled", 4)]
    assert len(book) == 0


def test_stop_book_bracket_stop_loss_already_passed_triggers_on_activation() -> None:
    book = _book_at()
    _bracket(book)
    book.on_quote("AAPL", 3, last=D(94))
    out = book.on_fill("e", D(10), D(10), 4)
    assert _kinds(out) == [("Activated", "tp"), ("Activated", "sl"), ("Triggered", "sl"),
                           ("Cancelled", "tp")]  # fmt: skip
    assert out[2].trigger_px == D(94)


def test_stop_book_bracket_with_stop_entry_fills_under_child_id() -> None:
    book = _book_at()
    entry = _stop("e", side="1", stop="101")
    assert _kinds(_bracket(book, entry)) == [("Accepted", "e"), ("Accepted", "tp"),
                                             ("Accepted", "sl")]  # fmt: skip
    assert _kinds(book.on_quote("AAPL", 3, last=D(101))) == [("Triggered", "e")]
    assert book.cancel("e", 4) == [Rejected("e", "e already triggered", 4)]
    assert _kinds(book.on_fill("e.T", D(10), D(10), 5)) == [("Activated", "tp"),
                                                            ("Activated", "sl")]  # fmt: skip


def test_stop_book_bracket_entry_cancel_cancels_children() -> None:
    book = _book_at()
    _bracket(book)
    assert book.cancel("e", 3) == [
        Cancelled("e", "cancel requested", 3),
        Cancelled("tp", "OTO entry e cancelled", 3),
        Cancelled("sl", "OTO entry e cancelled", 3),
    ]
    assert len(book) == 0


def test_stop_book_list_rejected_whole() -> None:
    book = _book_at()
    legs = [_stop("a", stop="95"), _stop("b", stop="101")]
    assert book.submit_list(legs, 1, "L1", 2) == [
        Rejected(i, "list L1 rejected: b: sell stop 101 is at or above the last price 100", 2)
        for i in "ab"
    ]
    assert len(book) == 0


# -- expiry --------------------------------------------------------------------------------


def test_stop_book_day_expires_at_session_close_before_a_quote() -> None:
    book = _book_at()
    book.submit(_stop(stop="99"), DAY0 + 10 * HOUR)
    close = DAY0 + 21 * HOUR
    assert book.on_quote("AAPL", close - 1, last=D("99.5")) == []
    assert book.on_quote("AAPL", close, last=D(98)) == [Expired("s1", close)]


def test_stop_book_day_after_close_expires_next_session_and_close_configurable() -> None:
    book = _book_at(session_close=time(20, 0))
    book.submit(_stop(stop="99"), DAY0 + 22 * HOUR)
    assert book.expire_due(DAY0 + NS_PER_DAY + 20 * HOUR - 1) == []
    assert book.expire_due(DAY0 + NS_PER_DAY + 20 * HOUR) == [
        Expired("s1", DAY0 + NS_PER_DAY + 20 * HOUR)
    ]


def test_stop_book_gtd_expires_at_expire_time() -> None:
    book = _book_at()
    due = DAY0 + 5 * NS_PER_DAY + 3
    book.submit(_stop(stop="99", time_in_force="6", expire_time=due), DAY0 + 2 * HOUR)
    book.submit(_stop("s2", stop="98", time_in_force="1"), DAY0 + 2 * HOUR)
    assert book.expire_due(due - 1) == []
    out = book.on_quote("AAPL", due + 7, last=D(97))
    assert out[0] == Expired("s1", due)
    assert _kinds(out[1:]) == [("Triggered", "s2")]
    assert _kinds(book.submit(_stop("s3", time_in_force="6", expire_time=due), due)) == [
        ("Rejected", "s3")
    ]


def test_stop_book_gtc_expires_after_90_days() -> None:
    book = _book_at()
    accepted = DAY0 + 2 * HOUR
    book.submit(_stop(stop="99", time_in_force="1"), accepted)
    assert book.expire_due(accepted + 90 * NS_PER_DAY - 1) == []
    assert book.on_fill("x", D(1), D(1), accepted + 90 * NS_PER_DAY) == [
        Expired("s1", accepted + 90 * NS_PER_DAY)
    ]


def test_stop_book_expired_entry_cancels_held_children() -> None:
    book = _book_at()
    _bracket(book)  # accepted at ts 2: day 0's close
    close = 21 * HOUR
    assert book.expire_due(close) == [
        Expired("e", close),
        Cancelled("tp", "OTO entry e expired", close),
        Cancelled("sl", "OTO entry e expired", close),
    ]
