"""Position and cash arithmetic: examples, and properties against a naive lot model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import FieldError
from domain.ledger import (
    FLAT,
    Holding,
    apply_fill,
    commission_from_raw,
    reverse_fill,
    side_sign,
)

D = Decimal
qtys = st.integers(1, 10_000).map(D)
prices = st.integers(1, 1_000_000).map(lambda c: D(c) / 100)
sides = st.sampled_from(["1", "2"])
fills = st.tuples(sides, qtys, prices)


def _close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= D("1e-18") * max(1, abs(a), abs(b))


def test_apply_fill_buy_adds_at_weighted_cost() -> None:
    h, cash, pnl = apply_fill(Holding(D(10), D(100)), "1", D(30), D(104))
    assert (h.quantity, h.avg_price, cash, pnl) == (D(40), D(103), D(-3120), D(0))


def test_apply_fill_sell_keeps_average_and_realises() -> None:
    h, cash, pnl = apply_fill(Holding(D(10), D(100)), "2", D(4), D(90))
    assert (h.quantity, h.avg_price, cash, pnl) == (D(6), D(100), D(360), D(-40))
    assert h.realised_pnl == D(-40)


def test_apply_fill_sell_through_zero_opens_short_at_fill_price() -> None:
    h, _, pnl = apply_fill(Holding(D(10), D(100)), "5", D(15), D(110))
    assert (h.quantity, h.avg_price, pnl) == (D(-5), D(110), D(100))


def test_apply_fill_cover_short_realises_avg_minus_px() -> None:
    h, cash, pnl = apply_fill(Holding(D(-10), D(50)), "1", D(10), D(40))
    assert (h.quantity, h.avg_price, cash, pnl) == (D(0), D(0), D(-400), D(100))


def test_apply_fill_commission_reduces_cash_only() -> None:
    h, cash, pnl = apply_fill(FLAT, "1", D(10), D(10), commission=D("1.25"))
    assert (h.avg_price, cash, pnl) == (D(10), D("-101.25"), D(0))


def test_side_sign_rejects_cross() -> None:
    with pytest.raises(FieldError) as info:
        side_sign("8")
    assert info.value.tag == 54


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"35=8|12=3|", D(3)),
        (b"35=8|12=0.5|13=1|", D(5)),  # per unit x 10
        (b"35=8|12=1|13=2|", D(1)),  # 1 % of 10 x 10
        (b"35=8|112=9|", D(0)),  # tag 112 is not 12
        (b"35=8|", D(0)),
    ],
)
def test_commission_from_raw(raw: bytes, expected: Decimal) -> None:
    assert commission_from_raw(raw, D(10), D(10)) == expected


def test_commission_from_raw_bad_value() -> None:
    with pytest.raises(FieldError) as info:
        commission_from_raw(b"35=8|12=x|", D(1), D(1))
    assert info.value.tag == 12


@given(fills, st.tuples(qtys, prices))
def test_buy_then_sell_same_qty_and_price_leaves_cash_and_quantity(
    start: tuple[str, Decimal, Decimal], fill: tuple[Decimal, Decimal]
) -> None:
    h0, _, _ = apply_fill(FLAT, *start)
    qty, px = fill
    h1, c1, _ = apply_fill(h0, "1", qty, px)
    h2, c2, _ = apply_fill(h1, "2", qty, px)
    assert c1 + c2 == 0
    assert h2.quantity == h0.quantity


@given(st.lists(fills, min_size=1, max_size=20))
def test_cash_and_quantity_are_sums_of_fills(seq: list[tuple[str, Decimal, Decimal]]) -> None:
    h, total = FLAT, D(0)
    for side, qty, px in seq:
        h, cash, _ = apply_fill(h, side, qty, px)
        total += cash
    assert h.quantity == sum(q * side_sign(s) for s, q, _ in seq)
    assert total == -sum(q * p * side_sign(s) for s, q, p in seq)


@given(fills, sides, qtys, prices, st.lists(st.integers(1, 50), min_size=1, max_size=6))
def test_any_split_of_a_fill_adds_up_to_the_same_position(
    start: tuple[str, Decimal, Decimal],
    side: str,
    qty: Decimal,
    px: Decimal,
    cuts: list[int],
) -> None:
    h0, _, _ = apply_fill(FLAT, *start)
    whole, whole_cash, whole_pnl = apply_fill(h0, side, qty, px)
    # split qty into parts proportional to cuts (last part takes the rest)
    parts, left = [], qty
    total = sum(cuts)
    for c in cuts[:-1]:
        part = min(left, (qty * c // total))
        if part > 0:
            parts.append(part)
            left -= part
    if left > 0:
        parts.append(left)
    h, cash, pnl = h0, D(0), D(0)
    for part in parts:
        h, c, p = apply_fill(h, side, part, px)
        cash += c
        pnl += p
    assert h.quantity == whole.quantity
    assert cash == whole_cash
    assert _close(pnl, whole_pnl)
    # Averages are rounded to 6 places at each fill: each part may move the last place.
    assert abs(h.avg_price - whole.avg_price) <= D("0.000001") * len(parts)


@given(st.lists(fills, max_size=8), fills)
def test_reverse_fill_undoes_the_last_fill(
    history: list[tuple[str, Decimal, Decimal]], last: tuple[str, Decimal, Decimal]
) -> None:
    h0 = FLAT
    for f in history:
        h0, _, _ = apply_fill(h0, *f)
    h1, cash, pnl = apply_fill(h0, *last)
    back, cash_back, pnl_back = reverse_fill(h1, *last, pnl)
    assert back.quantity == h0.quantity
    assert cash_back == -cash and pnl_back == -pnl
    assert _close(back.realised_pnl, h0.realised_pnl)
    # The average is kept to 6 places: reversing a lot restores it to within that rounding,
    # scaled by how much of the position the lot was.
    if h0.quantity:
        tolerance = D("0.000001") * (1 + abs(h1.quantity) / abs(h0.quantity))
        assert abs(back.avg_price - h0.avg_price) <= tolerance
