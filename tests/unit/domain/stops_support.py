"""Shared by the stop-engine tests (`test_stops_*.py`): orders, a book with a first quote, and
the outcomes as comparable (kind, ClOrdID) pairs."""

from __future__ import annotations

from decimal import Decimal

from domain.stops import NS_PER_DAY, StopBook, StopOrder, Triggered

D = Decimal
HOUR = 3600 * 10**9
DAY0 = 19_800 * NS_PER_DAY  # midnight UTC of some day


def _stop(cl_ord_id: str = "s1", side: str = "2", stop: str = "99", **kw: object) -> StopOrder:
    values: dict = dict(cl_ord_id=cl_ord_id, symbol="AAPL", side=side, order_qty=D(10),
                        ord_type="3", stop_px=D(stop))  # fmt: skip
    values.update(kw)
    return StopOrder(**values)


def _trail(cl_ord_id: str = "t1", side: str = "2", offset: str = "1", **kw: object) -> StopOrder:
    values: dict = dict(cl_ord_id=cl_ord_id, symbol="AAPL", side=side, order_qty=D(10),
                        ord_type="P", peg_offset_value=D(offset))  # fmt: skip
    values.update(kw)
    return StopOrder(**values)


def _book_at(last: str = "100", **kw: object) -> StopBook:
    book = StopBook(**kw)
    assert book.on_quote("AAPL", DAY0 + HOUR, bid=D(last) - D("0.1"), ask=D(last) + D("0.1"),
                         last=D(last)) == []  # fmt: skip
    return book


def _move(book: StopBook, reference: str, px: str, ts: int) -> list:
    """Quote only the fields that move `reference` to `px` (mid: a 0.2-wide spread around it)."""
    p = D(px)
    if reference == "mid":
        return book.on_quote("AAPL", ts, bid=p - D("0.1"), ask=p + D("0.1"))
    return book.on_quote("AAPL", ts, **{reference: p})


def _kinds(outcomes: list) -> list[tuple[str, str]]:
    return [(type(o).__name__, o.order.cl_ord_id if type(o) is Triggered else o.cl_ord_id)
            for o in outcomes]  # fmt: skip
