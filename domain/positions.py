"""Domain layer: the traders' positions documents in Redis (issue 19, part 2), as JSON text.

Two documents per account, each the latest of its kind (docs/edge.md, "Positions"):
- holdings (the ledger's, published after each committed transaction that changed the account):
  `{"account","cash","holdings":[{"symbol","quantity","avg_price","realised_pnl_today"}],"ts"}`
- margin (the margin flow's, with each `account_margin` row):
  `{"account","equity","excess","state","ts"}`, plus `"stale_marks":[symbols]` when held
  symbols are valued at their last sound mark because their book is stale (issue 21)
`ts` is event time in epoch milliseconds. Amounts are JSON numbers written from the exact
decimals (never through float). "Today" is the UTC calendar day of event time (`day_of`), the
day the quotes flow's OHLC bars use.
Pure and stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from domain.order_status import _number, _string

NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_MS = 1_000_000

# (symbol, quantity, avg_price, realised_pnl_today)
HoldingLine = tuple[str, Decimal, Decimal, Decimal]

number_text = _number  # a decimal as an exact JSON number literal ("null" for None)


def day_of(ts_ns: int) -> int:
    """The trading day of an event time: days since 1970-01-01, UTC.

    >>> day_of(1_795_617_000_000_000_000), day_of(86_400 * 10**9 - 1)
    (20782, 0)
    """
    return ts_ns // NS_PER_DAY


def holding_item(symbol: str, quantity: Decimal, avg_price: Decimal, realised: Decimal) -> str:
    """One holding of a holdings document (`holdings_doc`), as JSON text."""
    return (
        f'{{"symbol":{_string(symbol)},"quantity":{_number(quantity)}'
        f',"avg_price":{_number(avg_price)},"realised_pnl_today":{_number(realised)}}}'
    )


def holdings_doc_of(account: str, cash: Decimal, items: Iterable[str], ts_ms: int) -> str:
    """A holdings document from its holdings already as JSON (`holding_item`)."""
    return (
        f'{{"account":{_string(account)},"cash":{_number(cash)}'
        f',"holdings":[{",".join(items)}],"ts":{int(ts_ms)}}}'
    )


def holdings_doc(account: str, cash: Decimal, lines: Iterable[HoldingLine], ts_ms: int) -> str:
    """The holdings document of an account, in the order of `lines`.

    >>> from decimal import Decimal as D
    >>> holdings_doc("A1", D("900.50"), [("ACME", D(10), D("9.95"), D("-1.2"))], 1000)
    '{"account":"A1","cash":900.50,"holdings":[{"symbol":"ACME","quantity":10,"avg_price":9.95,\
"realised_pnl_today":-1.2}],"ts":1000}'
    """
    return holdings_doc_of(account, cash, (holding_item(*line) for line in lines), ts_ms)


def margin_doc(
    account: str,
    equity: Decimal,
    excess: Decimal | None,
    state: str,
    ts_ms: int,
    stale_marks: Sequence[str] = (),
) -> str:
    """The margin document of an account (the figures of its `account_margin` row).

    `stale_marks` (issue 21): the held symbols whose book was stale, valued at their last
    sound mark; the key is only there when some are.

    >>> from decimal import Decimal as D
    >>> margin_doc("A1", D("1500.25"), D("300"), "NORMAL", 2000)
    '{"account":"A1","equity":1500.25,"excess":300,"state":"NORMAL","ts":2000}'
    >>> margin_doc("A1", D("1500.25"), D("300"), "NORMAL", 2000, ["ACME"])
    '{"account":"A1","equity":1500.25,"excess":300,"state":"NORMAL","stale_marks":["ACME"],\
"ts":2000}'
    """
    stale = f',"stale_marks":[{",".join(map(_string, stale_marks))}]' if stale_marks else ""
    return (
        f'{{"account":{_string(account)},"equity":{_number(equity)}'
        f',"excess":{_number(excess)},"state":{_string(state)}{stale},"ts":{int(ts_ms)}}}'
    )
