"""Edge layer: the traders' `positions` frames (issue 19, part 2; docs/edge.md, "Positions").

`{"type":"positions","account","cash","equity","excess","state","holdings":[{"symbol",
"quantity","avg_price","mark","unrealised_pnl","realised_pnl_today"}],"ts"}` joins, per account
with a connected trader, what the flows publish (`domain.positions`):
- the ledger's holdings document (`positions:{account}`): cash, quantity, average price and the
  day's realised P&L of each holding;
- the margin flow's document (`margin:{account}`): equity, excess and state as of its `ts` (no
  second valuation here: they are the margin flow's figures, null until it wrote a row);
- the mark of each held symbol from the quote updates the edge reads anyway: the last trade
  price, else the mid of bid and ask (the margin flow's mark, `flows.margin.FeedLogic`), null
  until the symbol has one. unrealised_pnl = quantity x (mark - avg_price), exact decimals.
  A quote flagged `"stale": true` (issue 21: its book is not trusted) moves no mark: the last
  sound mark stands and the holding says `"stale":true` until a sound quote comes, as the
  margin flow keeps its last sound mark (docs/book-integrity.md).
`ts` is the latest event time (ms) among the two documents and the marks of the holdings.

`PositionsBook` is the pure part: documents and marks in, frames out. Only watched accounts
(a trader of theirs connected) are kept, and `by_symbol` indexes the symbols their open holdings
hold, so a quote of a symbol nobody's positions hold costs the hub one dict lookup. An account
whose frame would change is marked due; a timer sends the due frames every
`POSITIONS_INTERVAL_S` (at most one frame per account per interval); a connection also gets
its accounts' frames once on connect, read with one MGET (and one more for marks not known).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

import redis.asyncio as aioredis

from domain.positions import number_text

log = logging.getLogger("brokerflow.edge")

POSITIONS_STREAM = "stream:positions"
HOLDINGS_KEY = "positions:"  # + account
MARGIN_KEY = "margin:"  # + account
POSITIONS_INTERVAL_S = 1.0
_TWO = Decimal(2)
# A batch of stream entries as XREAD returns them: (entry_id, fields), in stream order.
Entries = list[tuple[bytes, dict[bytes, bytes]]]


def _load(data: bytes | str) -> dict | None:
    try:
        doc = json.loads(data, parse_float=Decimal, parse_int=Decimal)
    except ValueError:
        return None
    return doc if type(doc) is dict else None


def mark_of(quote: dict) -> Decimal | None:
    """The mark of a quote document: its last trade price, else the mid of bid and ask.

    >>> mark_of({"ltp": Decimal("10.5"), "bid": Decimal(10), "ask": Decimal(11)})
    Decimal('10.5')
    >>> mark_of({"ltp": None, "bid": Decimal(10), "ask": Decimal(11)}), mark_of({"bid": 1})
    (Decimal('10.5'), None)
    """
    ltp = quote.get("ltp")
    if type(ltp) is Decimal:
        return ltp
    bid, ask = quote.get("bid"), quote.get("ask")
    if type(bid) is Decimal and type(ask) is Decimal:
        return (bid + ask) / _TWO
    return None


def _decimal(value: object) -> Decimal | None:
    return value if type(value) is Decimal else None


def _ts(doc: dict) -> int:
    ts = doc.get("ts")
    return int(ts) if type(ts) is Decimal else 0


@dataclass(slots=True)
class HoldingLine:
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    realised_today: Decimal


@dataclass(slots=True)
class AccountPositions:
    """What the book knows of one watched account."""

    watchers: int = 0
    cash: Decimal | None = None
    holdings: tuple[HoldingLine, ...] = ()
    holdings_ts: int = 0
    holdings_live: bool = False  # a stream entry came: a snapshot read before it is older
    equity: Decimal | None = None
    excess: Decimal | None = None
    state: str | None = None
    margin_ts: int = 0
    margin_live: bool = False


class PositionsBook:
    """The watched accounts' documents and their symbols' marks; frames of the due accounts."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountPositions] = {}
        # symbol -> watched accounts with an open holding in it: the quotes worth a look
        self.by_symbol: dict[str, set[str]] = {}
        self.marks: dict[str, tuple[Decimal, int]] = {}  # symbol -> (mark, quote ts ms)
        self.stale: set[str] = set()  # held symbols whose latest quote is stale
        self.due: set[str] = set()

    # -- watching ----------------------------------------------------------------------------

    def watch(self, account: str) -> None:
        """One more connection shows `account`."""
        view = self.accounts.get(account)
        if view is None:
            view = self.accounts[account] = AccountPositions()
        view.watchers += 1

    def unwatch(self, account: str) -> None:
        """One connection showing `account` went; the last one takes its state with it."""
        view = self.accounts.get(account)
        if view is None:
            return
        view.watchers -= 1
        if view.watchers <= 0:
            self._index(account, view.holdings, ())
            del self.accounts[account]
            self.due.discard(account)

    def _index(self, account: str, old: Iterable[HoldingLine], new: Iterable[HoldingLine]) -> None:
        before = {h.symbol for h in old if h.quantity}
        after = {h.symbol for h in new if h.quantity}
        by_symbol = self.by_symbol
        for symbol in before - after:
            holders = by_symbol.get(symbol)
            if holders is not None:
                holders.discard(account)
                if not holders:
                    del by_symbol[symbol]
                    self.marks.pop(symbol, None)
                    self.stale.discard(symbol)
        for symbol in after - before:
            by_symbol.setdefault(symbol, set()).add(account)

    # -- documents -----------------------------------------------------------------------------

    def _document(
        self, account: str, data: bytes | str, snapshot: bool, live: str
    ) -> tuple[AccountPositions, dict] | None:
        """The watched account's view and the parsed document, unless the document is a
        snapshot and the stream (`live`) brought one since, or is not a JSON object."""
        view = self.accounts.get(account)
        if view is None or (snapshot and getattr(view, live)):
            return None
        doc = _load(data)
        return None if doc is None else (view, doc)

    def set_holdings(self, account: str, data: bytes | str, snapshot: bool = False) -> bool:
        """Take a holdings document; a snapshot (read on connect) only if no stream entry came
        since the account was watched. Return whether it was taken."""
        found = self._document(account, data, snapshot, "holdings_live")
        if found is None:
            return False
        view, doc = found
        lines = []
        for item in doc.get("holdings") or ():
            if type(item) is not dict or type(item.get("symbol")) is not str:
                continue
            lines.append(
                HoldingLine(
                    item["symbol"],
                    _decimal(item.get("quantity")) or Decimal(0),
                    _decimal(item.get("avg_price")) or Decimal(0),
                    _decimal(item.get("realised_pnl_today")) or Decimal(0),
                )
            )
        self._index(account, view.holdings, lines)
        view.cash = _decimal(doc.get("cash"))
        view.holdings = tuple(lines)
        view.holdings_ts = _ts(doc)
        view.holdings_live = view.holdings_live or not snapshot
        self.due.add(account)
        return True

    def set_margin(self, account: str, data: bytes | str, snapshot: bool = False) -> bool:
        """Take a margin document (as `set_holdings`)."""
        found = self._document(account, data, snapshot, "margin_live")
        if found is None:
            return False
        view, doc = found
        state = doc.get("state")
        view.equity = _decimal(doc.get("equity"))
        view.excess = _decimal(doc.get("excess"))
        view.state = state if type(state) is str else None
        view.margin_ts = _ts(doc)
        view.margin_live = view.margin_live or not snapshot
        self.due.add(account)
        return True

    def on_entries(self, entries: Entries) -> None:
        """Take the `stream:positions` entries of watched accounts, in stream order."""
        accounts = self.accounts
        for _entry_id, fields in entries:
            account = fields.get(b"account", b"").decode()
            if account not in accounts:
                continue
            kind = fields.get(b"kind")
            data = fields.get(b"data", b"")
            if kind == b"holdings":
                self.set_holdings(account, data)
            elif kind == b"margin":
                self.set_margin(account, data)

    def on_quote(self, symbol: str, data: bytes | str) -> None:
        """Take a quote of a held symbol (`symbol in by_symbol`): a new mark makes its holders
        due."""
        holders = self.by_symbol.get(symbol)
        if not holders:
            return
        doc = _load(data)
        if doc is None:
            return
        if doc.get("stale") is True:  # the last sound mark stands, flagged
            if symbol not in self.stale:
                self.stale.add(symbol)
                self.due.update(holders)
            return
        if symbol in self.stale:
            self.stale.discard(symbol)
            self.due.update(holders)
        mark = mark_of(doc)
        if mark is None:
            return
        old = self.marks.get(symbol)
        ts = _ts(doc)  # type: ignore[arg-type]
        if old is not None and (old[0] == mark or old[1] > ts):
            return  # same mark, or an older quote than the one the mark came from
        self.marks[symbol] = (mark, ts)
        self.due.update(holders)

    def unmarked(self) -> list[str]:
        """The held symbols without a mark yet (to read their `quote:{SYMBOL}`)."""
        marks = self.marks
        return sorted(s for s in self.by_symbol if s not in marks)

    # -- frames --------------------------------------------------------------------------------

    def frame(self, account: str) -> bytes:
        """The `positions` frame of a watched account, as it stands."""
        view = self.accounts.get(account) or AccountPositions()
        marks, stale = self.marks, self.stale
        ts = max(view.holdings_ts, view.margin_ts)
        items = []
        for h in view.holdings:
            flag = ',"stale":true' if stale and h.quantity and h.symbol in stale else ""
            known = marks.get(h.symbol)
            if known is None:
                mark_text = unrealised = "null"
            else:
                mark, mark_ts = known
                if h.quantity and mark_ts > ts:
                    ts = mark_ts
                mark_text = number_text(mark)
                unrealised = number_text(h.quantity * (mark - h.avg_price))
            if not h.quantity:
                unrealised = "0"  # a position closed today: nothing unrealised
            items.append(
                f'{{"symbol":{json.dumps(h.symbol)},"quantity":{number_text(h.quantity)}'
                f',"avg_price":{number_text(h.avg_price)},"mark":{mark_text}{flag}'
                f',"unrealised_pnl":{unrealised}'
                f',"realised_pnl_today":{number_text(h.realised_today)}}}'
            )
        state = "null" if view.state is None else json.dumps(view.state)
        return (
            f'{{"type":"positions","account":{json.dumps(account)}'
            f',"cash":{number_text(view.cash)},"equity":{number_text(view.equity)}'
            f',"excess":{number_text(view.excess)},"state":{state}'
            f',"holdings":[{",".join(items)}],"ts":{ts}}}'
        ).encode()

    def take_due(self) -> list[tuple[str, bytes]]:
        """The frames of the accounts due (something in them changed), and none due after."""
        due, self.due = self.due, set()
        accounts = self.accounts
        return [(account, self.frame(account)) for account in sorted(due) if account in accounts]


async def load_marks(client: aioredis.Redis, book: PositionsBook) -> None:
    """Read the quotes of the held symbols without a mark (one MGET)."""
    missing = book.unmarked()
    if not missing:
        return
    values = await client.mget([f"quote:{symbol}" for symbol in missing])
    for symbol, data in zip(missing, values, strict=True):
        if data is not None:
            book.on_quote(symbol, data)


async def load_accounts(client: aioredis.Redis, book: PositionsBook, accounts: list[str]) -> None:
    """Read the documents of `accounts` (one MGET), then the marks they lack. The caller sends
    their frames now, so what this loads does not make them due (what was due stays due)."""
    if not accounts:
        return
    was_due = book.due.intersection(accounts)
    values = await client.mget(
        [HOLDINGS_KEY + a for a in accounts] + [MARGIN_KEY + a for a in accounts]
    )
    n = len(accounts)
    for account, holdings, margin in zip(accounts, values[:n], values[n:], strict=True):
        if holdings is not None:
            book.set_holdings(account, holdings, snapshot=True)
        if margin is not None:
            book.set_margin(account, margin, snapshot=True)
    await load_marks(client, book)
    book.due.difference_update(a for a in accounts if a not in was_due)


async def positions_forever(
    client: aioredis.Redis,
    book: PositionsBook,
    send: Callable[[str, bytes], None],
    interval_s: float = POSITIONS_INTERVAL_S,
) -> None:
    """Every `interval_s`, read the marks the book lacks and `send(account, frame)` the frames
    of the accounts due: at most one per account per interval."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await load_marks(client, book)
        except aioredis.RedisError as exc:
            log.warning("positions: quotes unreadable: %s", exc)
        for account, frame in book.take_due():
            send(account, frame)
