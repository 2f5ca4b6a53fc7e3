"""Stop trigger engine: intake and bad input, cancel and replace, FIX requests (35=D/F/G)."""

from __future__ import annotations

import pytest

from domain.errors import ConfigError
from domain.events import OrderRequest
from domain.stops import (
    NS_PER_DAY,
    Accepted,
    Cancelled,
    Rejected,
    Replaced,
    StopBook,
    StopOrder,
    order_from_request,
)
from tests.unit.domain.stops_support import DAY0, HOUR, D, _book_at, _kinds, _stop, _trail

# -- intake and bad input ------------------------------------------------------------------


def test_stop_book_wrong_side_stops_rejected_with_reason() -> None:
    book = StopBook()
    book.on_quote("AAPL", 1, last=D("99.40"), bid=D("99.38"), ask=D("99.42"))
    assert book.submit(_stop(stop="99.50"), 2) == [
        Rejected("s1", "sell stop 99.50 is at or above the last price 99.40", 2)
    ]
    assert book.submit(_stop(side="1", stop="99.42", reference="ask"), 3) == [
        Rejected("s1", "buy stop 99.42 is at or below the ask price 99.42", 3)
    ]
    assert book.submit(_stop(stop="99.39"), 4) == [Accepted("s1", 4)]


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (_stop(stop_px=None), "StopPx(99) missing for a stop order"),
        (_stop(ord_type="4"), "Price(44) missing for a limit order"),
        (_stop(order_qty=D(0)), "OrderQty(38) must be positive, was 0"),
        (_stop(side="9"), "Side(54) 9 is not supported"),
        (_stop(ord_type="2", price=D(1)), "OrdType(40) 2 is not a stop order"),
        (_stop(time_in_force="3"), "TimeInForce(59) 3 is not supported for stop orders"),
        (_stop(time_in_force="6"), "ExpireTime(126) missing for TimeInForce(59) 6 (GTD)"),
        (_stop(reference="vwap"), "reference vwap is not one of last, bid, ask, mid"),
        (_trail(peg_offset_value=None), "PegOffsetValue(211) missing for a trailing stop"),
        (_trail(offset="-1"), "PegOffsetValue(211) must be positive, was -1"),
        (_trail(offset="10000", peg_offset_type="1"),
         "PegOffsetValue(211) must be below 10000 bps, was 10000"),
    ],
)  # fmt: skip
def test_stop_book_bad_order_rejected(order: StopOrder, reason: str) -> None:
    assert StopBook().submit(order, 5) == [Rejected(order.cl_ord_id, reason, 5)]


def test_stop_book_unknown_cancel_rejected() -> None:
    assert StopBook().cancel("nope", 5, cl_ord_id="c9") == [
        Rejected("c9", "unknown ClOrdID nope", 5)
    ]


def test_stop_book_duplicate_cl_ord_id_rejected_even_after_trigger() -> None:
    book = _book_at()
    book.submit(_stop(stop="99"), 2)
    assert _kinds(book.submit(_stop(stop="98"), 3)) == [("Rejected", "s1")]
    book.on_quote("AAPL", 4, last=D(98))
    # A resent 35=D after the trigger must not fire a second time.
    assert book.submit(_stop(stop="97"), 5) == [Rejected("s1", "duplicate ClOrdID s1", 5)]
    assert _kinds(book.submit(_stop(stop="97"), 5 + NS_PER_DAY)) == [("Accepted", "s1")]


def test_stop_book_bad_config_raises() -> None:
    with pytest.raises(ConfigError):
        StopBook(default_reference="vwap")
    with pytest.raises(ConfigError):
        StopBook(gtc_days=0)


# -- cancel and replace --------------------------------------------------------------------


def test_stop_book_cancel_before_trigger() -> None:
    book = _book_at()
    book.submit(_stop(stop="99"), 2)
    assert book.cancel("s1", 3) == [Cancelled("s1", "cancel requested", 3)]
    assert len(book) == 0
    assert book.on_quote("AAPL", 4, last=D(90)) == []
    assert book.cancel("s1", 5) == [Rejected("s1", "unknown ClOrdID s1", 5)]


def test_stop_book_replace_new_stop_price() -> None:
    book = _book_at()
    book.submit(_stop(stop="99"), 2)
    assert book.replace("s1", "s2", 3, stop_px=D(98), order_qty=D(5)) == [Replaced("s2", "s1", 3)]
    assert "s1" not in book
    assert book.on_quote("AAPL", 4, last=D("98.5")) == []
    [out] = book.on_quote("AAPL", 5, last=D(98))
    assert (out.order.cl_ord_id, out.stop_px, out.child.order_qty) == ("s2", D(98), D(5))


def test_stop_book_replace_trailing_keeps_mark() -> None:
    book = _book_at()
    book.submit(_trail(offset="1"), 2)
    book.on_quote("AAPL", 3, last=D(105))
    book.replace("t1", "t2", 4, peg_offset_value=D(3))
    assert book.stop_px("t2") == D(102)
    assert _kinds(book.on_quote("AAPL", 5, last=D(102))) == [("Triggered", "t2")]


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"side": "1"}, "replace changes Side(54) from 2 to 1"),
        ({"symbol": "MSFT"}, "replace changes Symbol(55) from AAPL to MSFT"),
        ({"ord_type": "4"}, "replace changes OrdType(40) from 3 to 4"),
        ({"stop_px": D(101)}, "sell stop 101 is at or above the last price 100"),
    ],
)
def test_stop_book_replace_rejected(kw: dict, reason: str) -> None:
    book = _book_at()
    book.submit(_stop(stop="99"), 2)
    assert book.replace("s1", "s2", 3, **kw) == [Rejected("s2", reason, 3)]
    assert book.stop_px("s1") == D(99)
    assert book.replace("zz", "s3", 4) == [Rejected("s3", "unknown ClOrdID zz", 4)]


# -- FIX requests --------------------------------------------------------------------------


def _request(msg_type: str = "D", cl_ord_id: str = "s1", **kw: object) -> OrderRequest:
    values: dict = dict(
        msg_type=msg_type,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=None,
        account="A1",
        symbol="AAPL",
        side="2",
        order_qty=D(10),
        ord_type="3",
        price=None,
        stop_px=D(99),
        time_in_force=None,
        ts_event=DAY0 + 2 * HOUR,
    )
    values.update(kw)  # fmt: skip
    return OrderRequest(**values)


def test_order_from_request_builds_stop_orders() -> None:
    assert order_from_request(_request()) == _stop(account="A1")
    trailing = order_from_request(
        _request(ord_type="P", stop_px=None, exec_inst="a", peg_offset_value=D(50),
                 peg_offset_type="1", time_in_force="1"),
        activation_px=D(105),
    )  # fmt: skip
    assert trailing == _trail("s1", offset="50", peg_offset_type="1", time_in_force="1",
                              activation_px=D(105), account="A1")  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"stop_px": None}, "StopPx(99) missing for a stop order"),
        ({"order_qty": None}, "OrderQty(38) missing"),
        ({"ord_type": "P", "peg_offset_value": D(1)},
         "OrdType(40) P needs ExecInst(18) a (trailing stop peg)"),
        ({"msg_type": "G"}, "MsgType(35) G is not 35=D"),
    ],
)  # fmt: skip
def test_order_from_request_rejects(kw: dict, reason: str) -> None:
    assert order_from_request(_request(**kw)) == Rejected("s1", reason, DAY0 + 2 * HOUR)


def test_stop_book_apply_request_new_replace_cancel() -> None:
    book = _book_at()
    ts = DAY0 + 2 * HOUR
    assert book.apply_request(_request()) == [Accepted("s1", ts)]
    assert book.apply_request(_request(stop_px=None)) == [
        Rejected("s1", "StopPx(99) missing for a stop order", ts)
    ]
    assert book.apply_request(_request("G", "s2", orig_cl_ord_id="s1", stop_px=D(98))) == [
        Replaced("s2", "s1", ts)
    ]
    assert book.apply_request(_request("G", "s3", orig_cl_ord_id="s2", side="1")) == [
        Rejected("s3", "replace changes Side(54) from 2 to 1", ts)
    ]
    assert book.apply_request(_request("F", "c1", orig_cl_ord_id="s2")) == [
        Cancelled("s2", "cancel requested", ts)
    ]
    assert book.apply_request(_request("F", "c2", orig_cl_ord_id="s2")) == [
        Rejected("c2", "unknown ClOrdID s2", ts)
    ]
