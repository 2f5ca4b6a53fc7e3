"""The outbound 35=D and 35=F: the same bytes simplefix builds, and readable by our parser."""

from __future__ import annotations

from decimal import Decimal

import pytest
import simplefix
from hypothesis import given
from hypothesis import strategies as st

from connectors.fix.encode import (
    LIMIT,
    MARKET,
    OutboundCancel,
    OutboundOrder,
    encode_outbound,
    new_order_single,
    order_cancel_request,
)
from connectors.fix.timefmt import format_utc_timestamp

_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="=\x01"),
    min_size=1,
    max_size=12,
)
_QTY = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**9), places=4)
_TS = st.integers(0, 4_102_444_800 * 10**9)


def _simplefix(msg_type: str, ts: int, seq: int, pairs: list[tuple[int, object]]) -> bytes:
    # The reference: the message as simplefix builds it (the encoder before it was framed here).
    stamp = format_utc_timestamp(ts, 3)
    m = simplefix.FixMessage()
    for tag, value in [(8, "FIX.4.4"), (35, msg_type), (49, "BROKERFLOW"), (56, "EXCHANGE"),
                       (34, seq), (52, stamp), *pairs]:  # fmt: skip
        if value is not None:
            m.append_pair(tag, stamp if value is _STAMP else value)
    return m.encode()


_STAMP = object()


@given(_TEXT, st.one_of(st.none(), st.just(""), _TEXT), _TEXT, st.sampled_from("125"), _QTY,
       st.sampled_from([MARKET, LIMIT]), _QTY, _TS, st.integers(1, 10**9))  # fmt: skip
def test_new_order_single_is_what_simplefix_builds(
    cl_ord_id: str, account: str | None, symbol: str, side: str, qty: Decimal, ord_type: str,
    price: Decimal, ts: int, seq: int,
) -> None:  # fmt: skip
    order = OutboundOrder(cl_ord_id, account, symbol, side, qty, ord_type,
                          price if ord_type == LIMIT else None, ts)  # fmt: skip
    expected = _simplefix("D", ts, seq, [
        (11, cl_ord_id), (1, account or None), (55, symbol), (54, side), (60, _STAMP),
        (38, str(qty)), (40, ord_type), (44, str(price) if ord_type == LIMIT else None),
        (59, "0"),
    ])  # fmt: skip
    assert new_order_single(order, seq) == expected == encode_outbound(order, seq)


@given(_TEXT, _TEXT, st.one_of(st.none(), _TEXT), _TEXT, st.sampled_from("12"), _QTY, _TS,
       st.integers(1, 10**9))  # fmt: skip
def test_order_cancel_request_is_what_simplefix_builds(
    cl_ord_id: str, orig: str, account: str | None, symbol: str, side: str, qty: Decimal,
    ts: int, seq: int,
) -> None:  # fmt: skip
    cancel = OutboundCancel(cl_ord_id, orig, account, symbol, side, qty, ts)
    expected = _simplefix("F", ts, seq, [
        (11, cl_ord_id), (41, orig), (1, account or None), (55, symbol), (54, side),
        (60, _STAMP), (38, str(qty)),
    ])  # fmt: skip
    assert order_cancel_request(cancel, seq) == expected == encode_outbound(cancel, seq)


def test_new_order_single_parses_back() -> None:
    ts = 1_764_081_000_123_456_789
    order = OutboundOrder("S1.T", "ACC1", "AAPL", "2", Decimal(100), LIMIT, Decimal("99.5"), ts)
    parser = simplefix.FixParser()
    parser.append_buffer(new_order_single(order, 7))
    message = parser.get_message()
    assert message is not None
    assert (message.get(35), message.get(11), message.get(44), message.get(34)) == (
        b"D", b"S1.T", b"99.5", b"7"
    )


def test_limit_without_price_is_refused() -> None:
    order = OutboundOrder("S1.T", None, "AAPL", "2", Decimal(1), LIMIT, None, 0)
    with pytest.raises(ValueError, match="S1.T has no price"):
        new_order_single(order, 1)
