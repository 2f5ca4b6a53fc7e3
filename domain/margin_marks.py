"""Domain layer: the marks margin is judged at, published per symbol from market data. Pure.

A symbol's mark is its last trade price, or the mid of a full L1 book until the first trade.
`MarkPublisher` keeps a book per symbol (the full book, also after the first trade: its top tells
a book crossed by increments) and publishes a mark when it changed, by the quote coalescer's
interval rule (`domain.throttle.IntervalThrottle`: at once when the symbol has not published for
`interval_ns` of event time, else the latest at the interval's end, when event time passes it).

A stale book (issue 21, `domain.book_integrity`) publishes no mark: its last sound mark stands,
and a `StaleMark` among the marks says so; a sound snapshot ends that (a trade of the stale spell
is no mark).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.book_integrity import BookIntegrity
from domain.events import (
    MD_DELETE,
    MD_TRADE,
    AccountChanged,
    BookDamaged,
    CashMoved,
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
)
from domain.quotes import SymbolBook, apply_increment_top, apply_snapshot
from domain.throttle import IntervalThrottle

Mark = tuple[str, Decimal, int, float]  # (symbol, mark, event time of the price ns, as float)


@dataclass(slots=True)
class SymbolMark:
    """One symbol's mark: `value` is the last trade price, or (bid, ask) until the first trade.

    Attributes:
        book: the symbol's full book.
        changed_ns: event time of the event that last changed `value`.
        published: the last mark that went out.
        held: the book is stale (issue 21): `value` is the last sound mark, held; `sound_ltp`
            the last sound trade price, the book's `ltp` again when a snapshot without a trade
            makes it sound.
    """

    book: SymbolBook
    value: float | tuple[float, float] | None = None
    changed_ns: int = 0
    published: float | tuple[float, float] | None = None
    held: bool = False
    sound_ltp: float | None = None


@dataclass(frozen=True, slots=True)
class StaleMark:
    """Among the marks: `symbol`'s book turned stale at `ts_ns` (its last sound mark stands,
    flagged), or sound again (`reason` None)."""

    symbol: str
    ts_ns: int
    reason: str | None


def mark_decimal(value: float | tuple[float, float]) -> Decimal:
    """A mark value as the Decimal the figures use: the price, or the mid of (bid, ask)."""
    if type(value) is tuple:
        return (Decimal(repr(value[0])) + Decimal(repr(value[1]))) / 2
    return Decimal(repr(value))


def mark_float(value: float | tuple[float, float]) -> float:
    return (value[0] + value[1]) / 2 if type(value) is tuple else value


def _has_trade(event: MarketDataSnapshot | MarketDataIncrement) -> bool:
    """Whether a full refresh carries a trade price (its last trade) of its own."""
    for entry in event.entries:
        if entry.entry_type == MD_TRADE and entry.price is not None and entry.action != MD_DELETE:
            return True
    return False


def _book_value(book: SymbolBook) -> float | tuple[float, float] | None:
    bid, ask = book.best_bid(), book.best_ask()
    return (bid[0], ask[0]) if bid is not None and ask is not None else None


def is_margin_event(event: Any) -> bool:
    """Whether a non-market-data event matters to margin: a fill with Account (1) (35=8
    ExecType F), an account change (35=UA) or a cash movement (35=UC)."""
    kind = type(event)
    if kind is ExecutionReport:
        return event.exec_type == "F" and bool(event.account) and bool(event.last_qty)
    return kind is AccountChanged or kind is CashMoved


class MarkPublisher:
    """The marks of a set of symbols (one shard of the symbol space), in its own event time:
    the highest time of its market data and fills (`apply`)."""

    def __init__(self, interval_ns: int) -> None:
        self.symbols: dict[str, SymbolMark] = {}
        self.throttle = IntervalThrottle(interval_ns)
        self.watermark = 0  # the shard's event time
        self.integrity = BookIntegrity()  # a stale book publishes no mark

    def apply(
        self,
        events: list[Any],
        seqs: list[int],
        marks: list[tuple[int, Mark | StaleMark]],
        others: list[tuple[int, Any]],
    ) -> None:
        """Apply events in order, each with its sequence number: append the marks (and
        `StaleMark`s) they publish to `marks`, and the events of accounts (`is_margin_event`)
        to `others`, each at its sequence number. A fill moves event time (held marks due by
        its time go out before it); an account change or a movement does not (a back office's
        time is not the market's)."""
        symbols = self.symbols
        due, offer, sent = self.throttle.heap, self.throttle.offer, self.throttle.sent
        integrity = self.integrity
        is_stale = integrity.stale
        for event, seq in zip(events, seqs, strict=True):
            kind = type(event)
            if kind is MarketDataIncrement or kind is MarketDataSnapshot:
                ts = event.ts_event
                if ts > self.watermark:
                    self.watermark = ts
                    if due and due[0][0] <= ts:
                        self.flush(ts, marks, seq)
                symbol = event.symbol
                mark = symbols.get(symbol)
                if mark is None:
                    mark = symbols[symbol] = SymbolMark(SymbolBook(symbol))
                book = mark.book
                ltp = book.ltp
                if kind is MarketDataIncrement:
                    if event.rpt_seq is not None and not integrity.admit_increment(
                        symbol, ts, event.rpt_seq
                    ):
                        continue  # a duplicate: nothing new in it
                    bid, ask = apply_increment_top(book, event)
                    if bid is not None and ask is not None and bid >= ask:
                        integrity.on_book(symbol, ts, bid, ask)
                else:
                    apply_snapshot(book, event)
                    integrity.on_snapshot(symbol, ts, event.rpt_seq, event.crossed)
                if mark.held:
                    if is_stale(symbol) is not None:
                        continue  # the last sound mark stands
                    # sound again (a snapshot): a trade of the stale spell is no mark
                    mark.held = False
                    marks.append((seq, StaleMark(symbol, ts, None)))
                    if not _has_trade(event):
                        book.ltp = mark.sound_ltp
                elif is_stale(symbol) is not None:
                    mark.held, mark.sound_ltp = True, ltp
                    marks.append((seq, StaleMark(symbol, ts, is_stale(symbol).reason)))
                    continue
                ltp = book.ltp
                value = ltp if ltp is not None else _book_value(book)
                if value == mark.value:
                    continue
                mark.value = value
                mark.changed_ns = ts
                if value is not None and value != mark.published and offer(symbol, ts):
                    mark.published = value  # leading edge
                    sent(symbol, ts)
                    marks.append((seq, (symbol, mark_decimal(value), ts, mark_float(value))))
            elif kind is BookDamaged:
                symbol = event.symbol
                integrity.on_damaged(symbol, event.ts_event, event.reason, event.detail)
                mark = symbols.get(symbol)
                if mark is None:
                    mark = symbols[symbol] = SymbolMark(SymbolBook(symbol))
                if not mark.held:
                    mark.held, mark.sound_ltp = True, mark.book.ltp
                    marks.append((seq, StaleMark(symbol, event.ts_event, event.reason)))
            elif is_margin_event(event):
                if kind is ExecutionReport:
                    ts = event.ts_event
                    if ts > self.watermark:
                        self.watermark = ts
                        if due and due[0][0] <= ts:
                            self.flush(ts, marks, seq)
                others.append((seq, event))

    def flush(self, upto: int | None, marks: list[tuple[int, Any]], seq: int) -> None:
        """Publish the held marks whose interval ended by `upto` (all when None), at `seq`:
        the event that took the shard's time past them. A mark carries the time of its last
        change; the symbol's next interval starts at the end of this one."""
        symbols, throttle = self.symbols, self.throttle
        for end, symbol in throttle.pop_due(upto):
            mark = symbols[symbol]
            value = mark.value
            if value is not None and value != mark.published:
                mark.published = value
                throttle.sent(symbol, end)
                item = (symbol, mark_decimal(value), mark.changed_ns, mark_float(value))
                marks.append((seq, item))
