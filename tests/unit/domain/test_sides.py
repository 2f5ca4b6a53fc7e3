"""Which way a Side (54) trades is one rule (domain.ledger.is_buy / side_sign), read by the
ledger, the surveillance models and the alerts' words alike (issue 22). FIX 4.4 Side codes:
1 Buy, 2 Sell, 3 Buy minus, 4 Sell plus, 5 Sell short, 6 Sell short exempt, 7 Undisclosed,
8 Cross, 9 Cross short, B As defined."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.ledger import is_buy, side_sign
from domain.surveillance import Fill

BUYS = ("1", "3")  # buy, buy minus: both add to the position
SELLS = ("2", "4", "5", "6", "B")


@pytest.mark.parametrize("side", BUYS + SELLS)
def test_surveillance_trades_each_side_the_way_the_ledger_books_it(side: str) -> None:
    fill = Fill("E1", "A1", "AAPL", side, Decimal(10), Decimal(100), 0)
    assert fill.buy is is_buy(side) is (side_sign(side) > 0) is (side in BUYS)


@pytest.mark.parametrize("side", ["7", "8", "9", ""])
def test_a_side_that_is_neither_is_not_a_buy(side: str) -> None:
    assert not is_buy(side)
