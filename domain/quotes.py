"""Domain layer: the L1 book per symbol and the event-time coalescer of quote updates.

Pure logic, no clock and no I/O: the flow feeds market-data events in, and gets `Quote` values out
to publish. Decisions where FIX leaves room (docs/decisions.md):

- Each side of the book keeps its price levels keyed by MDEntryID (278), or by price when the feed
  sends no IDs, so a depth feed's NEW/DELETE pairs arrive in any order within one message and the
  best level is still right. A CHANGE (279=1) of a level we do not know is top-of-book semantics
  (L1 feeds): the side becomes that one level. DELETE without ID or price removes the best level;
  DELETE THRU/FROM (3/4) clear the side. A side keeps at most `MAX_LEVELS` levels.
- Trades (269=2) in incrementals set last price/size, add to the day volume (unless the feed sends
  its own cumulative volume, 269=B, which then wins) and build the day's OHLC. A trade entry inside
  a full refresh (35=W) is the last trade's state, not a new trade: it sets LTP/LTQ only. A
  DELETE of a trade (a bust) is ignored by the book.
- The trading day is the UTC date of the event time; a new day resets volume and OHLC, and the
  day's close (last trade, or the venue's 269=5) becomes the new day's `prev_close`.
- Book integrity (issue 21, docs/book-integrity.md): the coalescer keeps a `BookIntegrity` fed by
  the same events. An increment whose RptSeq (83) is not new is skipped entirely; a book that is
  not trusted (an RptSeq gap, a lost update, a crossed or locked top) publishes its quotes with
  `stale` (the reason) and `stale_since`, until its next sound 35=W. A change of that flag (sound
  to stale, stale to sound) is published at once, whatever the coalescing interval or the move
  filter would hold back: a trader never sees a stale price without the flag for an interval.
- The previous close (docs/edge.md, "Change against the previous close"): a ClosingPrice (269=5)
  or SettlementPrice (269=6) that arrives while the symbol has no trade today (no open: the
  morning snapshot) is the previous session's official close and sets `prev_close`; a 269=5
  after the day's first trade (or the venue's opening price, 269=4) is today's close and sets
  `close` only; a 269=6 then is ignored. The flow also sets `prev_close` from yesterday's
  `ohlc:` key when it first sees a symbol (`QuoteCoalescer.set_prev_close`).
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from domain.book_integrity import BookIntegrity, Staleness
from domain.events import (
    MD_BID,
    MD_CHANGE,
    MD_CLOSE,
    MD_DELETE,
    MD_DELETE_FROM,
    MD_DELETE_THRU,
    MD_HIGH,
    MD_LOW,
    MD_NEW,
    MD_OFFER,
    MD_OPEN,
    MD_TRADE,
    MD_VOLUME,
    BookDamaged,
    MarketDataIncrement,
    MarketDataSnapshot,
    MdEntry,
)
from domain.throttle import IntervalThrottle

NS_PER_DAY = 86_400_000_000_000
NS_PER_MS = 1_000_000
MD_SETTLEMENT = "6"  # SettlementPrice (269=6)
MAX_LEVELS = 64
HISTORY = 64  # published quotes kept per symbol for as-of lookups of late order events


class Quote(NamedTuple):
    """A published L1 quote of one symbol: the contract's `quote:{SYMBOL}` plus its day's OHLC.

    Attributes:
        ts: event time of the last change, epoch milliseconds.
        seq: increases by one with every published update of the symbol.
        day: days since 1970-01-01 (UTC) of `ts`; names the OHLC key.
        prev_close: the previous session's close (module docstring), or None; last, with a
            default, so quotes pickled before it existed still load.
        lower_band / upper_band: the venue's price band (LowLimitPrice 1148 / HighLimitPrice
            1149 of a 35=f: `QuoteCoalescer.set_band`), or None; defaults for the same reason.
        stale: why the book is not trusted (`domain.book_integrity` reasons), None when it is
            sound; stale_since: since when, epoch milliseconds (event time), or None.

    A NamedTuple rather than a frozen dataclass: one is built per published update, and a
    tuple is built several times faster than a frozen dataclass sets its fields.
    """

    symbol: str
    bid: float | None
    bid_size: float | None
    ask: float | None
    ask_size: float | None
    ltp: float | None
    ltq: float | None
    volume: float
    ts: int
    seq: int
    day: int
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    prev_close: float | None = None
    lower_band: float | None = None
    upper_band: float | None = None
    stale: str | None = None
    stale_since: int | None = None


@dataclass(slots=True)
class SymbolBook:
    """Mutable L1 state of one symbol. Levels map a key (MDEntryID or price) to [price, size]."""

    symbol: str
    bids: dict[object, list] = field(default_factory=dict)
    asks: dict[object, list] = field(default_factory=dict)
    ltp: float | None = None
    ltq: float | None = None
    volume: float = 0.0
    feed_volume: bool = False  # a 269=B entry was seen today: the feed's volume wins
    day: int = -1
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    ts_event: int = 0
    seq: int = 0
    prev_close: float | None = None
    lower_band: float | None = None  # the venue's price band (35=f), kept until it sends another
    upper_band: float | None = None
    # what its quotes say of the book's integrity (QuoteCoalescer): reason, since (epoch ms)
    stale: str | None = None
    stale_since: int | None = None

    def __setstate__(self, state: tuple) -> None:
        # Books pickled before a field was added (recovery snapshots) load with its default.
        for f, value in zip(_BOOK_FIELDS, state, strict=False):
            object.__setattr__(self, f, value)
        for f in _BOOK_FIELDS[len(state) :]:
            object.__setattr__(self, f, _BOOK_DEFAULTS[f]())

    def __getstate__(self) -> tuple:
        return tuple(getattr(self, f) for f in _BOOK_FIELDS)

    def best_bid(self) -> list | None:
        return _best_bid(self.bids)

    def best_ask(self) -> list | None:
        return _best_ask(self.asks)

    def to_quote(self) -> Quote:
        """Return the current state as a `Quote` (does not bump `seq`)."""
        return _quote_of(self)


_BOOK_FIELDS = tuple(SymbolBook.__dataclass_fields__)
_BOOK_DEFAULTS = {
    name: (f.default_factory if callable(f.default_factory) else (lambda v=f.default: v))
    for name, f in SymbolBook.__dataclass_fields__.items()
}


def _level_price(level: list) -> float:
    return level[0]


# The best level of a side: usually the only one (an L1 feed, or a depth feed's DELETE/NEW pair
# applied), so that case unpacks without max(); of equal prices the first level wins, as max().
def _best_bid(levels: dict[object, list]) -> list | None:
    n = len(levels)
    if n == 1:
        (level,) = levels.values()
        return level
    if n == 0:
        return None
    if n == 2:
        a, b = levels.values()
        return b if b[0] > a[0] else a
    return max(levels.values(), key=_level_price)


def _best_ask(levels: dict[object, list]) -> list | None:
    n = len(levels)
    if n == 1:
        (level,) = levels.values()
        return level
    if n == 0:
        return None
    if n == 2:
        a, b = levels.values()
        return b if b[0] < a[0] else a
    return min(levels.values(), key=_level_price)


_new_tuple = tuple.__new__


def _quote_of(book: SymbolBook) -> Quote:
    """`book.to_quote()`: the tuple built directly (Quote's generated `__new__` is a Python
    call with 15 arguments, a third of the cost)."""
    bid = _best_bid(book.bids)
    ask = _best_ask(book.asks)
    if bid is None:
        bid_px = bid_size = None
    else:
        bid_px, bid_size = bid
    if ask is None:
        ask_px = ask_size = None
    else:
        ask_px, ask_size = ask
    return _new_tuple(
        Quote,
        (
            book.symbol, bid_px, bid_size, ask_px, ask_size, book.ltp, book.ltq, book.volume,
            book.ts_event // NS_PER_MS, book.seq, book.day,
            book.open, book.high, book.low, book.close, book.prev_close,
            book.lower_band, book.upper_band, book.stale, book.stale_since,
        ),
    )  # fmt: skip


def _roll_day(book: SymbolBook, ts_event: int) -> None:
    day = ts_event // NS_PER_DAY
    if day != book.day:
        if day < book.day:
            return  # a late message from yesterday does not reopen yesterday's bar
        if book.close is not None and book.day >= 0:
            book.prev_close = book.close  # yesterday's close, until the venue sends its own
        book.day = day
        book.volume = 0.0
        book.feed_volume = False
        book.open = book.high = book.low = book.close = None


def _trim(levels: dict[object, list], keep_high: bool) -> None:
    if len(levels) > MAX_LEVELS:
        ordered = sorted(levels.items(), key=lambda kv: kv[1][0], reverse=keep_high)
        for key, _ in ordered[MAX_LEVELS:]:
            del levels[key]


def _apply_level(levels: dict[object, list], entry: MdEntry, keep_high: bool) -> None:
    action = entry.action
    key = entry.entry_id if entry.entry_id is not None else entry.price
    if action == MD_DELETE:
        if key is not None and key in levels:
            del levels[key]
        elif entry.entry_id is None and entry.price is None and levels:
            best = (
                max(levels.items(), key=lambda kv: kv[1][0])
                if keep_high
                else min(levels.items(), key=lambda kv: kv[1][0])
            )
            del levels[best[0]]
        elif entry.price is not None:
            # Deleted by ID we never saw, or keyed differently: fall back to the price.
            for k, level in list(levels.items()):
                if level[0] == entry.price:
                    del levels[k]
        return
    if action == MD_DELETE_THRU or action == MD_DELETE_FROM:
        levels.clear()
        return
    if entry.price is None:
        return
    size = entry.size if entry.size is not None else 0.0
    if action == MD_CHANGE and key not in levels:
        levels.clear()  # top-of-book feed: the change replaces the side
    levels[key] = [entry.price, size]
    if len(levels) > MAX_LEVELS:
        _trim(levels, keep_high)


def _apply_trade(book: SymbolBook, entry: MdEntry, is_new_trade: bool) -> None:
    px = entry.price
    if px is None or entry.action == MD_DELETE:
        return
    book.ltp = px
    book.ltq = entry.size
    if not is_new_trade:
        return
    if not book.feed_volume and entry.size is not None:
        book.volume += entry.size
    if book.open is None:
        book.open = px
    if book.high is None or px > book.high:
        book.high = px
    if book.low is None or px < book.low:
        book.low = px
    book.close = px


def _apply_other(book: SymbolBook, entry: MdEntry) -> None:
    """An entry that is neither a bid, an offer nor a trade."""
    if entry.action == MD_DELETE:
        return
    kind = entry.entry_type
    if kind == MD_VOLUME:
        if entry.size is not None:
            book.volume = entry.size
            book.feed_volume = True
    elif kind == MD_OPEN:
        book.open = entry.price
    elif kind == MD_CLOSE:
        if book.open is None:
            book.prev_close = entry.price  # the morning snapshot: the previous session's close
        else:
            book.close = entry.price  # after today's first trade: today's close
    elif kind == MD_SETTLEMENT:
        if book.open is None:
            book.prev_close = entry.price
    elif kind == MD_HIGH:
        book.high = entry.price
    elif kind == MD_LOW:
        book.low = entry.price
    # Other entry types (imbalance, ...) do not touch L1.


def _apply_entries(book: SymbolBook, entries: tuple[MdEntry, ...], snapshot: bool) -> None:
    # The common entries are applied inline (a call per entry cost as much as the work): a NEW
    # or a CHANGE of a known level, a DELETE of a known key, a trade. The rest as `_apply_level`
    # and `_apply_trade` say, which the inline code must equal (tested against them).
    for entry in entries:
        kind = entry.entry_type
        if kind == MD_BID:
            levels = book.bids
        elif kind == MD_OFFER:
            levels = book.asks
        elif kind == MD_TRADE:
            px = entry.price
            if px is None or entry.action == MD_DELETE:
                continue
            size = entry.size
            book.ltp = px
            book.ltq = size
            if snapshot:
                continue  # the last trade's state, not a new trade
            if size is not None and not book.feed_volume:
                book.volume += size
            if book.open is None:
                book.open = px
            high = book.high
            if high is None or px > high:
                book.high = px
            low = book.low
            if low is None or px < low:
                book.low = px
            book.close = px
            continue
        else:
            _apply_other(book, entry)
            continue
        action = entry.action
        key = entry.entry_id
        if key is None:
            key = entry.price
        if action == MD_NEW or (action == MD_CHANGE and key in levels):
            price = entry.price
            if price is not None:
                size = entry.size
                levels[key] = [price, 0.0 if size is None else size]
                if len(levels) > MAX_LEVELS:
                    _trim(levels, kind == MD_BID)
        elif action == MD_DELETE and key is not None and key in levels:
            del levels[key]
        else:
            _apply_level(levels, entry, kind == MD_BID)


def apply_snapshot(book: SymbolBook, event: MarketDataSnapshot) -> None:
    """Apply a full refresh (35=W): the book's sides become the snapshot's levels."""
    _roll_day(book, event.ts_event)
    book.bids.clear()
    book.asks.clear()
    _apply_entries(book, event.entries, True)
    if event.ts_event > book.ts_event:
        book.ts_event = event.ts_event


def apply_increment(book: SymbolBook, event: MarketDataIncrement) -> None:
    """Apply the entries of an incremental refresh (35=X) for this symbol, in message order."""
    ts = event.ts_event
    if ts // NS_PER_DAY != book.day:
        _roll_day(book, ts)
    _apply_entries(book, event.entries, False)
    if ts > book.ts_event:
        book.ts_event = ts


def apply_increment_top(
    book: SymbolBook, event: MarketDataIncrement
) -> tuple[float | None, float | None]:
    """`apply_increment`, then the best bid and ask prices (None: an empty side): what a
    consumer of every top of book (the stop engine) reads after each message, in one call."""
    apply_increment(book, event)
    bid = _best_bid(book.bids)
    ask = _best_ask(book.asks)
    return (None if bid is None else bid[0]), (None if ask is None else ask[0])


@dataclass(frozen=True, slots=True)
class CoalescePolicy:
    """How often a symbol may publish.

    Attributes:
        interval_ns: at most one published update per symbol per interval of event time.
        min_move_bps: publish only when bid, ask or last moved more than this (0 = every change);
            a withheld change is still published when the stream ends or goes quiet.
    """

    interval_ns: int = 100 * NS_PER_MS
    min_move_bps: float = 0.0


def _moved(last: Quote, now: Quote, min_move_bps: float) -> bool:
    for a, b in ((last.bid, now.bid), (last.ask, now.ask), (last.ltp, now.ltp)):
        if a is None or b is None:
            if a is not b:
                return True
        elif abs(b - a) * 10_000 > min_move_bps * abs(a):
            return True
    return False


class QuoteCoalescer:
    """Books and coalescing state for a set of symbols (one shard of the symbol space).

    Leading edge: a change to a symbol that has not published for an interval goes out at once.
    Within an interval further changes are held; the latest state goes out when the interval ends
    (when event time, the highest seen in this shard, passes the deadline), at `flush_due` from an
    idle timer, or at `flush_all` when the stream ends: the last state is never withheld. The
    rule is `IntervalThrottle`'s (`throttle`).
    """

    __slots__ = (
        "books",
        "policy",
        "watermark",
        "throttle",
        "_last_quote",
        "_withheld",
        "_history",
        "new_symbols",
        "integrity",
        "turned_stale",
    )

    def __init__(self, policy: CoalescePolicy) -> None:
        self.policy = policy
        self.books: dict[str, SymbolBook] = {}
        self.throttle = IntervalThrottle(policy.interval_ns)
        self._last_quote: dict[str, Quote] = {}
        self._withheld: set[str] = set()  # published nothing since a change the filter held back
        self._history: dict[str, deque[Quote]] = {}
        self.watermark = 0
        # Symbols whose book `apply` created, in order, until the caller takes them
        # (`take_new_symbols`): the flow reads their previous close once.
        self.new_symbols: list[str] = []
        self.integrity = BookIntegrity()
        # (symbol, reason) of each quote that turned stale (sound -> stale), until the caller
        # takes them (`take_turned_stale`): a live flow asks the venue for their snapshots.
        self.turned_stale: list[tuple[str, str]] = []

    def apply(
        self, events: list[MarketDataSnapshot | MarketDataIncrement | BookDamaged]
    ) -> list[Quote]:
        """Apply events in order and return the quotes to publish now."""
        out: list[Quote] = []
        books = self.books
        throttle = self.throttle
        heap, pending, last_pub = throttle.heap, throttle.pending, throttle.last_ns
        interval = throttle.interval_ns
        publish = self._publish
        push = heapq.heappush
        integrity = self.integrity
        admit = integrity.admit_increment
        stale_of = integrity.stale
        rpt_last = integrity.last_rpt_seq
        day, day_start, day_end = -1, 0, 0
        for event in events:
            kind = type(event)
            symbol = event.symbol
            ts = event.ts_event
            if kind is MarketDataIncrement:
                rpt_seq = event.rpt_seq
                if rpt_seq is not None:
                    seen = rpt_last.get(symbol)
                    if seen is not None and rpt_seq[0] == seen + 1:
                        rpt_last[symbol] = rpt_seq[1]  # in sequence: admitted, nothing changed
                        rpt_seq = None
                    elif not admit(symbol, ts, rpt_seq):
                        continue  # a duplicate (RptSeq not new): nothing of it is applied
            elif kind is BookDamaged:
                self._damaged(event, out)
                continue
            if ts >= self.watermark:
                self.watermark = ts
                if heap and heap[0][0] <= ts:
                    self._flush_until(ts, out)
            book = books.get(symbol)
            created = book is None
            if created:
                book = books[symbol] = SymbolBook(symbol)
                self.new_symbols.append(symbol)
            if kind is MarketDataIncrement:
                # apply_increment inline (a call per event cost as much as the work); the
                # day of `ts` without a division
                if ts >= day_end or ts < day_start:
                    day = ts // NS_PER_DAY
                    day_start = day * NS_PER_DAY
                    day_end = day_start + NS_PER_DAY
                if day != book.day:
                    _roll_day(book, ts)
                _apply_entries(book, event.entries, False)
                if ts > book.ts_event:
                    book.ts_event = ts
                # Only a sound book can change its flag here (a stale one stays so until a
                # snapshot): by an RptSeq gap (`rpt_seq` is left set when not in sequence), by
                # a crossed or locked top, or at its creation (damage before its first event).
                if book.stale is None:
                    changed = created or rpt_seq is not None
                    bids, asks = book.bids, book.asks
                    if len(bids) == 1 and len(asks) == 1:  # L1 feeds: no call
                        ((bid, _),) = bids.values()
                        ((ask, _),) = asks.values()
                    elif bids and asks:
                        bid = _best_bid(bids)[0]
                        ask = _best_ask(asks)[0]
                    else:
                        bid = ask = None
                    if bid is not None and bid >= ask:
                        integrity.on_book(symbol, ts, bid, ask)
                        changed = True
                    if changed:
                        status = stale_of(symbol)
                        if status is not None:
                            self._flag(symbol, book, status, ts, out)
                            continue
            else:
                apply_snapshot(book, event)
                crossed = event.crossed
                if not crossed and book.bids and book.asks:
                    # the decoder flags a crossed snapshot; checked here too, so that no
                    # crossed book goes out unflagged whatever made the event
                    crossed = _best_bid(book.bids)[0] >= _best_ask(book.asks)[0]
                integrity.on_snapshot(symbol, ts, event.rpt_seq, crossed)
                status = stale_of(symbol)
                if (status is None) is not (book.stale is None):
                    self._flag(symbol, book, status, ts, out)
                    continue
            # `throttle.offer(symbol, ts)` inlined (a call per event cost ~5 % of the
            # coalescer); tests/unit/domain/test_throttle.py holds the two to the same times
            if symbol in pending:
                continue
            last = last_pub.get(symbol)
            if last is not None and ts < last + interval:
                deadline = last + interval
                pending[symbol] = deadline
                push(heap, (deadline, symbol))
                continue
            publish(symbol, book, ts, out, False)
        return out

    def _damaged(self, event: BookDamaged, out: list[Quote]) -> None:
        """A lost update of the symbol: the flag goes out at once. It has no prices and does
        not move event time (the decoder dates it by the damaged message, whose time may be
        damaged too); stale since its time (0, unknown: since the shard's latest)."""
        symbol = event.symbol
        since = event.ts_event or self.watermark
        self.integrity.on_damaged(symbol, since, event.reason, event.detail)
        book = self.books.get(symbol)
        if book is not None and book.ts_event and book.stale is None:
            self._flag(symbol, book, self.integrity.stale(symbol), book.ts_event, out)

    def _flag(
        self, symbol: str, book: SymbolBook, status: Staleness | None, pub_ns: int, out: list
    ) -> None:
        """The book's integrity changed (sound <-> stale): set its quotes' flag and publish
        the book now, whatever is held (a held publish is this one)."""
        if status is None:
            book.stale = book.stale_since = None
        else:
            book.stale = status.reason
            book.stale_since = status.since_ns // NS_PER_MS
            self.turned_stale.append((symbol, status.reason))
        self.throttle.cancel(symbol)
        self._publish(symbol, book, pub_ns, out, True)

    def take_turned_stale(self) -> list[tuple[str, str]]:
        """(symbol, reason) of the quotes that turned stale since the last call, in order."""
        found, self.turned_stale = self.turned_stale, []
        return found

    def _publish(
        self, symbol: str, book: SymbolBook, pub_ns: int, out: list[Quote], force: bool
    ) -> bool:
        min_move = self.policy.min_move_bps
        if min_move > 0:
            if not force:
                last = self._last_quote.get(symbol)
                if last is not None and not _moved(last, _quote_of(book), min_move):
                    self._withheld.add(symbol)
                    return False
            self._withheld.discard(symbol)
        book.seq += 1
        quote = _quote_of(book)
        self.throttle.last_ns[symbol] = pub_ns  # `throttle.sent`, without the call
        if min_move > 0:
            self._last_quote[symbol] = quote  # only the move filter reads it
        history = self._history.get(symbol)
        if history is None:
            history = self._history[symbol] = deque(maxlen=HISTORY)
        history.append(quote)
        out.append(quote)
        return True

    def take_new_symbols(self) -> list[tuple[str, int]]:
        """(symbol, trading day) of the books created since the last call."""
        new, self.new_symbols = self.new_symbols, []
        books = self.books
        return [(s, books[s].day) for s in new]

    def set_prev_close(self, symbol: str, day: int, price: float, quotes: list[Quote]) -> None:
        """Set the previous close of `symbol` for trading `day` from another source (yesterday's
        `ohlc:` key) unless the venue already sent one, and in the not yet written `quotes`."""
        book = self.books.get(symbol)
        if book is None or book.day != day or book.prev_close is not None:
            return
        book.prev_close = price
        for i, q in enumerate(quotes):
            if q[0] == symbol and q[10] == day and q[15] is None:
                quotes[i] = q._replace(prev_close=price)
        history = self._history.get(symbol)
        if history:
            for i, q in enumerate(history):
                if q[10] == day and q[15] is None:
                    history[i] = q._replace(prev_close=price)

    def set_band(
        self, symbol: str, low: float | None, high: float | None, ts_event: int
    ) -> list[Quote]:
        """The venue's price band of `symbol` (a 35=f; None keeps that side); return the
        quotes to publish now: the symbol's, carrying the band, as a price change would
        (coalesced likewise). A symbol without prices yet publishes nothing: its first quote
        carries the band."""
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = SymbolBook(symbol)
            self.new_symbols.append(symbol)
        new_low = book.lower_band if low is None else low
        new_high = book.upper_band if high is None else high
        if (new_low, new_high) == (book.lower_band, book.upper_band):
            return []
        book.lower_band, book.upper_band = new_low, new_high
        out: list[Quote] = []
        throttle = self.throttle
        if not book.ts_event or throttle.held(symbol):
            return out  # nothing published yet, or the held publish carries it
        if ts_event > book.ts_event:
            book.ts_event = ts_event
        if throttle.offer(symbol, ts_event):
            self._publish(symbol, book, ts_event, out, True)
        return out

    def quote_at(self, symbol: str, ts_event: int) -> Quote | None:
        """The L1 quote of `symbol` as it stood at event time `ts_event` (ns), or None.

        Exact for an event in stream order (the book's current state); for a late event, the
        last published quote at or before its time (at most one coalescing interval older
        than the true state then), from the last `HISTORY` publishes.
        """
        book = self.books.get(symbol)
        if book is None:
            return None
        if book.ts_event <= ts_event:
            return book.to_quote()
        history = self._history.get(symbol)
        if not history:
            return None
        ts_ms = ts_event // NS_PER_MS
        i = bisect_right([q.ts for q in history], ts_ms)
        return history[i - 1] if i else None

    def _flush_until(self, now_ns: int, out: list[Quote]) -> None:
        books = self.books
        publish = self._publish
        for deadline, symbol in self.throttle.pop_due(now_ns):
            publish(symbol, books[symbol], deadline, out, False)

    def flush_due(self, now_ns: int) -> list[Quote]:
        """Publish the held states whose interval ended by `now_ns` (event time)."""
        out: list[Quote] = []
        heap = self.throttle.heap
        if heap and heap[0][0] <= now_ns:
            self._flush_until(now_ns, out)
        return out

    def flush_withheld(self) -> list[Quote]:
        """Publish the changes the move filter withheld (the stream went quiet)."""
        out: list[Quote] = []
        for symbol in sorted(self._withheld - self.throttle.pending.keys()):
            book = self.books[symbol]
            self._publish(symbol, book, self.throttle.last_ns[symbol], out, force=True)
        return out

    def has_withheld(self) -> bool:
        """Whether `flush_withheld` has something to publish."""
        return bool(self._withheld - self.throttle.pending.keys())

    def flush_all(self) -> list[Quote]:
        """Publish every held or withheld state (end of stream): the last state is never lost."""
        out: list[Quote] = []
        for deadline, symbol in self.throttle.drain():
            self._publish(symbol, self.books[symbol], deadline, out, force=True)
        out += self.flush_withheld()
        return out

    def next_deadline(self) -> int | None:
        """Event time of the earliest held state, or None."""
        return self.throttle.next_deadline()

    def __getstate__(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict) -> None:
        # snapshots from before these existed
        self.new_symbols = []
        self.integrity = BookIntegrity()
        self.turned_stale = []
        if "throttle" not in state:  # from before the throttle held the publishing times
            state = dict(state)
            throttle = IntervalThrottle(state["policy"].interval_ns)
            throttle.last_ns = state.pop("_last_pub_ns")
            throttle.pending = state.pop("_pending")
            throttle.heap = state.pop("_heap")
            state["throttle"] = throttle
        for name, value in state.items():
            setattr(self, name, value)
