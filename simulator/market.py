"""Simulator layer: a deterministic, bursty FIX 4.4 market-data feed (35=W then 35=X).

Owns the price model (a geometric random walk of each symbol's fair value, quoted on a 0.01
tick grid in round lots), the event schedule (a Poisson process per symbol) and the wire form.
simplefix builds and encodes every message (it computes BodyLength (9) and CheckSum (10)); this
module only formats the field values.

The feed, message by message:

* One full refresh (35=W) per symbol at the start time: MDReqID (262), Symbol (55) and a
  NoMDEntries (268) group with bid (269=0), offer (1), the opening print (2), open (4),
  high (7), low (8) and day volume (B).
* Then incremental refreshes (35=X). Every entry starts with MDUpdateAction (279), then
  MDEntryType (269), Symbol (55), MDEntryPx (270), MDEntrySize (271), MDEntryID (278) on book
  entries, MDEntryTime (273, UTCTimeOnly). An event is a trade (279=0 269=2) followed by the
  book's reaction, or a quote change: 279=1 (change the top level's price and/or size, same
  278), or 279=2 of the old top level (carrying its 278 and 270) plus 279=0 of the new one in
  the same message. Some messages put the new level before the delete (venues do this; a
  consumer must match the delete by MDEntryID/price, not blindly clear the side). Some messages
  batch a second symbol's quote change. Trade messages also carry TransactTime (60), and every
  few trades a day-volume entry (269=B, 279=1); a new session high or low adds 269=7/8 (279=1).
* RptSeq (83), the venue's sequence per instrument: every 35=X entry carries its symbol's next
  number (1, 2, ...: each entry of an instrument increments it), and every 35=W carries, in its
  body, the number of the last entry it includes (0 before any). Consumers that ignore 83 see
  the same book.
* Optional, for testing book integrity (issue 21): ``drop_incrementals`` percent of the 35=X
  messages are lost upstream (not emitted; their RptSeq numbers are skipped, the MsgSeqNum (34)
  stays contiguous: the venue's FIX session never had them), drawn from a random stream of
  their own; ``snapshot_every_s`` adds an unsolicited 35=W per symbol every S seconds of market
  time, from the book as the messages before it left it.
* Events per symbol arrive as a Poisson process (mean ``rate_per_symbol`` a second); each makes
  1-4 messages a fraction of a millisecond to a few milliseconds apart. Messages are emitted in
  event-time order across symbols; SendingTime (52) equals the event time (millisecond
  precision), so it never decreases, and within one message 52, 60 and 273 agree.

Invariants after every message: bid < ask, both > 0, sizes are positive multiples of 100.
Nothing reads the wall clock: the same arguments give the same bytes.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import simplefix

from simulator.clock import Clock
from simulator.files import SimulationSummary, write_lines
from simulator.market_book import Book, Pending
from simulator.symbols import LOT, TICKERS, TICKS_PER_UNIT, format_price, symbol_names

__all__ = [
    "BEGIN_STRING",
    "DEFAULT_RATE_PER_SYMBOL",
    "DEFAULT_START_NS",
    "LOT",
    "MD_REQ_ID",
    "SENDER_COMP_ID",
    "TARGET_COMP_ID",
    "TICKERS",
    "TICKS_PER_UNIT",
    "MarketSimulator",
    "SimulationSummary",
    "format_price",
    "symbol_names",
    "write_lines",
]

BEGIN_STRING = "FIX.4.4"
SENDER_COMP_ID = "SIMX"
TARGET_COMP_ID = "BROKERFLOW"
MD_REQ_ID = "SIMX-MD-1"

#: 2026-11-25T14:30:00Z (09:30 New York, the regular-session open), in UTC nanoseconds.
DEFAULT_START_NS = int(datetime(2026, 11, 25, 14, 30, tzinfo=UTC).timestamp()) * 1_000_000_000
DEFAULT_RATE_PER_SYMBOL = 5.0

# Event mix and burst shape.
_P_TRADE = 0.4  # share of events that are trades (the rest are quote changes)
_P_INSIDE = 0.15  # share of trades printed strictly inside a spread of 2+ ticks
_P_DELETE_NEW = 0.5  # share of top-of-book price moves sent as 279=2 + 279=0 (else 279=1)
_P_OUT_OF_ORDER = 0.05  # share of delete+new pairs sent new-first
_P_BATCH = 0.06  # share of events whose first message also carries another symbol's quote
_P_SPLIT_SIDES = 0.5  # share of two-sided quote moves sent as two messages
_P_REQUOTE = 0.5  # share of trades followed by a requote of the other side
_SECONDS_PER_YEAR = 252 * 6.5 * 3600  # trading seconds: annual vol -> per-second vol

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000

# MDUpdateAction (279) and MDEntryType (269) wire values, as bytes for simplefix.
_NEW, _CHANGE, _DELETE = b"0", b"1", b"2"
_BID, _OFFER, _TRADE, _OPEN, _HIGH, _LOW, _VOLUME = b"0", b"1", b"2", b"4", b"7", b"8", b"B"


def _px(ticks: int) -> bytes:
    return b"%d.%02d" % divmod(ticks, TICKS_PER_UNIT)


def _size_change(book: Book, ask: bool) -> tuple[bytes, ...]:
    # 279=1 of the top level at its current price, size and MDEntryID (278).
    if ask:
        return (_CHANGE, _OFFER, book.symbol, _px(book.ask), b"%d" % book.ask_size, book.ask_id)
    return (_CHANGE, _BID, book.symbol, _px(book.bid), b"%d" % book.bid_size, book.bid_id)


class MarketSimulator:
    """A deterministic simulated trading session for ``symbols`` symbols, as FIX 4.4 bytes.

    One instance is one session: ``messages()`` continues where the previous call stopped, and
    ``expected_final_quotes()`` is the state after the last message emitted so far.

    Example:
        >>> sim = MarketSimulator(symbols=2, seed=7)
        >>> [msg[:9] for _, msg in sim.messages(limit=2)]
        [b'8=FIX.4.4', b'8=FIX.4.4']
    """

    def __init__(
        self,
        symbols: int,
        seed: int = 1,
        start_ns: int = DEFAULT_START_NS,
        rate_per_symbol: float = DEFAULT_RATE_PER_SYMBOL,
        session_open_ns: int | None = None,
        drop_incrementals: float = 0.0,
        snapshot_every_s: float | None = None,
    ) -> None:
        """Set up the symbols and their opening books; nothing is generated yet.

        Args:
            symbols: how many symbols (>= 1).
            seed: random seed; the same arguments always give the same messages.
            start_ns: session start (the 35=W snapshots), UTC nanoseconds; the clock only
                moves with simulated events, never with the wall clock.
            rate_per_symbol: mean market events per symbol per second (> 0); each event is
                1-4 messages.
            session_open_ns: when the trading session opened, if before ``start_ns`` (a feed
                that joins mid-session): the 35=W snapshots' day volume (269=B) then counts
                the trades of the session before the feed started, at the symbol's own rate
                (its trades a second times their mean size on its book), besides the opening
                print. None (the default): the feed starts at the open.

        Raises:
            ValueError: if ``symbols`` < 1 or ``rate_per_symbol`` <= 0.
        """
        if symbols < 1:
            msg = f"symbols must be >= 1, was {symbols}"
            raise ValueError(msg)
        if not rate_per_symbol > 0:
            msg = f"rate_per_symbol must be > 0, was {rate_per_symbol}"
            raise ValueError(msg)
        if not 0 <= drop_incrementals <= 100:
            msg = f"drop_incrementals must be a percentage (0-100), was {drop_incrementals}"
            raise ValueError(msg)
        if snapshot_every_s is not None and not snapshot_every_s > 0:
            msg = f"snapshot_every_s must be > 0, was {snapshot_every_s}"
            raise ValueError(msg)
        self.symbols = symbol_names(symbols)
        self.seed = seed
        self.drop_share = drop_incrementals / 100
        # Their own stream: the market's bytes do not depend on what is dropped.
        self._drops = random.Random(f"brokerflow-drop:{seed}")
        self.dropped = 0
        self._snapshot_every_ns = (
            None if snapshot_every_s is None else max(1, round(snapshot_every_s * _NS_PER_S))
        )
        self._next_snapshot_ns = (
            None if self._snapshot_every_ns is None else start_ns + self._snapshot_every_ns
        )
        self._rpt_seq = [0] * symbols  # last RptSeq given, per symbol (generation order)
        self._rpt_emitted = [0] * symbols  # last RptSeq emitted or dropped, per symbol
        self.start_ns = start_ns
        self.rate_per_symbol = rate_per_symbol
        self.session_open_ns = start_ns if session_open_ns is None else session_open_ns
        self._rng = random.Random(seed)
        self._clock = Clock()
        self._entry_id = 0
        self._counter = 0  # heap tie-break: generation order
        self._heap: list[tuple[int, int, Pending]] = []
        self._msg_seq_num = 0
        self._next_event_ns = start_ns
        self._started = False
        self._emitted: dict[int, tuple[int, ...]] = {}  # symbol idx -> state after last message
        self.messages_emitted = 0
        self.trades_emitted = 0
        self.by_type: dict[str, int] = {}
        self.first_event_ns = 0
        self.last_event_ns = 0
        self._books = [self._open_book(name) for name in self.symbols]
        self._symbol_idx = {book.symbol: i for i, book in enumerate(self._books)}
        self._next_event_ns = start_ns + self._interarrival_ns()

    # ---------------------------------------------------------------- set-up

    def _next_id(self) -> bytes:
        self._entry_id += 1
        return b"%d" % self._entry_id

    def _interarrival_ns(self) -> int:
        # All symbols' Poisson processes merged: rate N*R, each event for a uniform symbol.
        rate = self.rate_per_symbol * len(self.symbols)
        return max(1, int(self._rng.expovariate(rate) * _NS_PER_S))

    def _lots(self, book: Book) -> int:
        # Top-of-book sizes: mostly small, sometimes a few times the typical size.
        return LOT * max(1, int(self._rng.expovariate(1.0 / book.depth_lots)) + 1)

    def _open_book(self, name: str) -> Book:
        rng = self._rng
        price = math.exp(rng.uniform(math.log(5.0), math.log(500.0)))
        fair = price * TICKS_PER_UNIT
        max_spread = min(5, 1 + int(price // 100) + rng.randint(0, 1))
        annual_vol = rng.uniform(0.2, 0.9)
        book = Book(
            symbol=name.encode(),
            fair=fair,
            sigma=annual_vol / math.sqrt(_SECONDS_PER_YEAR),
            max_spread=max_spread,
            depth_lots=rng.randint(3, 30),
            last_event_ns=self.start_ns,
            busy_until_ns=self.start_ns,
        )
        spread = rng.randint(1, max_spread)
        book.bid = max(1, round(fair - spread / 2))
        book.ask = book.bid + spread
        book.bid_size, book.ask_size = self._lots(book), self._lots(book)
        book.bid_id, book.ask_id = self._next_id(), self._next_id()
        book.ltp = rng.randint(book.bid, book.ask)
        book.ltq = LOT * rng.randint(10, 500)  # the opening cross
        book.volume = book.volume_reported = book.ltq + self._traded_before_start(book)
        book.open = book.high = book.low = book.ltp
        book.trades_to_volume = rng.randint(3, 8)
        return book

    def _traded_before_start(self, book: Book) -> int:
        """The volume traded between the session's open and the feed's start (no random draw:
        the bytes after it are those of a feed that starts at the open)."""
        elapsed_s = max(0, self.start_ns - self.session_open_ns) / _NS_PER_S
        # A trade's mean size on a book, measured on this simulator: ~0.38 x depth + 0.76 lots.
        mean_lots = 0.38 * book.depth_lots + 0.76
        return LOT * round(elapsed_s * self.rate_per_symbol * _P_TRADE * mean_lots)

    # ---------------------------------------------------------------- public API

    def messages(
        self, limit: int | None = None, until_ns: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """Yield ``(event_time_ns, message)`` in event-time order, forever or until a limit.

        The first call starts with one 35=W per symbol. ``message`` is the encoded FIX message
        (ends with the SOH after CheckSum (10); no newline).

        Args:
            limit: stop after this many messages (in this call), if given.
            until_ns: stop before the first message whose event time is >= this, if given.

        Yields:
            Event time (UTC nanoseconds, millisecond resolution, non-decreasing) and bytes.
        """
        self._start()
        heap = self._heap
        pop = heapq.heappop
        emitted = 0
        while limit is None or emitted < limit:
            while not heap or heap[0][0] > self._next_event_ns:
                self._generate_event()
            snapshot_ns = self._next_snapshot_ns
            if snapshot_ns is not None and heap[0][0] >= snapshot_ns:
                self._schedule_snapshots(snapshot_ns)
                continue
            if until_ns is not None and heap[0][2].ts_ms * _NS_PER_MS >= until_ns:
                return
            pending = pop(heap)[2]
            # (read each time: a live exchange may change it while its stream is open)
            drop = self.drop_share
            if drop and pending.msg_type == b"X" and self._drops.random() < drop:
                self._lose(pending)
                continue
            emitted += 1
            yield pending.ts_ms * _NS_PER_MS, self._emit(pending)

    def peek_ns(self) -> int:
        """Return the event time of the message ``messages()`` would yield next.

        Generates ahead as ``messages()`` would anyway, so the output bytes do not change; an
        order-flow simulator uses it to merge its own messages into this stream in time order.

        Returns:
            UTC nanoseconds of the next message's scheduling time (its event time is this
            floored to the millisecond).
        """
        self._start()
        heap = self._heap
        while not heap or heap[0][0] > self._next_event_ns:
            self._generate_event()
        return heap[0][0]

    def top_of_book(self, index: int) -> tuple[int, int, int, int, int] | None:
        """Return symbol ``index``'s quote as a consumer of the messages so far sees it.

        Before the first message is generated this is the opening book (what its 35=W will
        carry); afterwards, the state after the last message emitted for the symbol (None
        until its 35=W has been emitted).

        Args:
            index: position of the symbol in ``self.symbols``.

        Returns:
            ``(bid, bid_size, ask, ask_size, last)``, prices in 0.01 ticks, or None.
        """
        state = self._emitted.get(index)
        if state is None:
            if self._started:
                return None
            b = self._books[index]
            return b.bid, b.bid_size, b.ask, b.ask_size, b.ltp
        return state[0], state[1], state[2], state[3], state[4]

    def rpt_seq(self, index: int) -> int:
        """The RptSeq (83) of symbol ``index``'s last entry emitted or lost so far (0: none):
        what a snapshot of `top_of_book` includes."""
        return self._rpt_emitted[index]

    def write_file(
        self,
        path: str | Path,
        minutes: float | None = None,
        max_messages: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        progress_every: int = 100_000,
    ) -> SimulationSummary:
        """Write the session to ``path``, one message per line (``\\n``-terminated).

        Args:
            path: the output file (overwritten).
            minutes: simulated minutes after the start time to cover, if given.
            max_messages: stop after this many messages, if given. With neither limit the
                call never returns.
            progress: called as ``progress(messages_written, event_time_ns)`` every
                ``progress_every`` messages.
            progress_every: see ``progress``.

        Returns:
            The summary of this call's output.
        """
        until_ns = None if minutes is None else self.start_ns + round(minutes * 60 * _NS_PER_S)
        start_messages, start_trades = self.messages_emitted, self.trades_emitted
        start_types = dict(self.by_type)
        first_ns = last_ns = 0
        written = 0
        size = 0
        batch: list[bytes] = []
        with open(path, "wb") as out:
            for ts_ns, message in self.messages(limit=max_messages, until_ns=until_ns):
                if not written:
                    first_ns = ts_ns
                last_ns = ts_ns
                batch.append(message)
                written += 1
                if len(batch) == 10_000:
                    size += out.write(b"\n".join(batch) + b"\n")
                    batch.clear()
                if progress is not None and written % progress_every == 0:
                    progress(written, ts_ns)
            if batch:
                size += out.write(b"\n".join(batch) + b"\n")
        by_type = {k: v - start_types.get(k, 0) for k, v in self.by_type.items()}
        return SimulationSummary(
            messages=self.messages_emitted - start_messages,
            by_type={k: v for k, v in sorted(by_type.items()) if v},
            symbols=len(self.symbols),
            trades=self.trades_emitted - start_trades,
            first_event_ns=first_ns,
            last_event_ns=last_ns,
            bytes_written=size,
        )

    def expected_final_quotes(self) -> dict[str, dict[str, float | int | str]]:
        """Return each symbol's ground truth after the last message emitted so far.

        Only symbols whose 35=W has been emitted appear. Prices are floats of the wire
        decimals (``float("123.45")``); sizes and volumes are ints.

        Returns:
            ``{symbol: {"symbol", "bid", "bid_size", "ask", "ask_size", "ltp", "ltq",
            "volume", "volume_reported", "open", "high", "low", "close", "ts"}}``, where
            ``volume`` is the day volume (the opening print plus every trade emitted),
            ``volume_reported`` the last 269=B value sent, ``close`` the last trade price and
            ``ts`` the epoch milliseconds of the symbol's last message.
        """
        out: dict[str, dict[str, float | int | str]] = {}
        for idx, state in sorted(self._emitted.items()):
            bid, bid_size, ask, ask_size, ltp, ltq, vol, vol_rep, op, hi, lo, ts_ms = state[:12]
            out[self.symbols[idx]] = {
                "symbol": self.symbols[idx],
                "bid": bid / TICKS_PER_UNIT,
                "bid_size": bid_size,
                "ask": ask / TICKS_PER_UNIT,
                "ask_size": ask_size,
                "ltp": ltp / TICKS_PER_UNIT,
                "ltq": ltq,
                "volume": vol,
                "volume_reported": vol_rep,
                "open": op / TICKS_PER_UNIT,
                "high": hi / TICKS_PER_UNIT,
                "low": lo / TICKS_PER_UNIT,
                "close": ltp / TICKS_PER_UNIT,
                "ts": ts_ms,
            }
        return out

    # ---------------------------------------------------------------- emission

    def _start(self) -> None:
        if not self._started:
            self._started = True
            for idx in range(len(self._books)):
                self._push(self._snapshot_message(idx, self.start_ns // _NS_PER_MS), self.start_ns)

    def _push(self, pending: Pending, order_ns: int) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (order_ns, self._counter, pending))

    def _schedule_snapshots(self, snapshot_ns: int) -> None:
        """Queue the periodic 35=W of every symbol at `snapshot_ns` (ahead of what follows)."""
        ts_ms = snapshot_ns // _NS_PER_MS
        for idx in range(len(self._books)):
            self._push(Pending(b"W", ts_ms, [], snapshot_of=idx), snapshot_ns)
        assert self._snapshot_every_ns is not None
        self._next_snapshot_ns = snapshot_ns + self._snapshot_every_ns

    def _lose(self, pending: Pending) -> None:
        """A 35=X lost upstream: the market moved (its state and RptSeq numbers are used up),
        but no one sees the message."""
        self.dropped += 1  # (its trades are not counted in `trades_emitted`: not written)
        emitted = self._emitted
        for idx, state in pending.states:
            emitted[idx] = state
        for idx, rpt in pending.rpts:
            self._rpt_emitted[idx] = rpt

    def _emit(self, pending: Pending) -> bytes:
        if pending.snapshot_of >= 0:
            self._periodic_snapshot(pending)
        self._msg_seq_num += 1
        msg = simplefix.FixMessage()
        append = msg.append_pair
        append(b"8", b"FIX.4.4")
        append(b"35", pending.msg_type)
        append(b"49", b"SIMX")
        append(b"56", b"BROKERFLOW")
        append(b"34", b"%d" % self._msg_seq_num)
        append(b"52", self._clock.timestamp(pending.ts_ms))
        for tag, value in pending.body:
            append(tag, value)
        encoded = msg.encode()

        ts_ns = pending.ts_ms * _NS_PER_MS
        if not self.messages_emitted:
            self.first_event_ns = ts_ns
        self.last_event_ns = ts_ns
        self.messages_emitted += 1
        msg_type = "W" if pending.msg_type == b"W" else "X"
        self.by_type[msg_type] = self.by_type.get(msg_type, 0) + 1
        self.trades_emitted += pending.trades
        emitted = self._emitted
        for idx, state in pending.states:
            emitted[idx] = state
        for idx, rpt in pending.rpts:
            self._rpt_emitted[idx] = rpt
        return encoded

    def _periodic_snapshot(self, pending: Pending) -> None:
        """Fill in a periodic 35=W: the symbol's book as the messages before it left it."""
        idx = pending.snapshot_of
        state = self._emitted.get(idx)
        if state is None:  # not possible after the opening 35=W; keep the opening book then
            state = self._books[idx].state(pending.ts_ms)
        bid, bid_size, ask, ask_size, ltp, ltq, volume, _, op, hi, lo, _, bid_id, ask_id = state
        pending.body = self._snapshot_body(
            self._books[idx].symbol, self._rpt_emitted[idx], pending.ts_ms,
            (bid, bid_size, bid_id), (ask, ask_size, ask_id), (ltp, ltq), (op, hi, lo), volume,
        )  # fmt: skip
        pending.states = [(idx, (*state[:11], pending.ts_ms, *state[12:]))]

    # ---------------------------------------------------------------- generation

    def _snapshot_message(self, idx: int, ts_ms: int) -> Pending:
        b = self._books[idx]
        body = self._snapshot_body(
            b.symbol, self._rpt_seq[idx], ts_ms, (b.bid, b.bid_size, b.bid_id),
            (b.ask, b.ask_size, b.ask_id), (b.ltp, b.ltq), (b.open, b.high, b.low), b.volume,
        )  # fmt: skip
        return Pending(b"W", ts_ms, body, [(idx, b.state(ts_ms))])

    def _snapshot_body(
        self, symbol: bytes, rpt_seq: int, ts_ms: int, bid: tuple, ask: tuple,
        last: tuple[int, int], day: tuple[int, int, int], volume: int,
    ) -> list[tuple[bytes, bytes]]:  # fmt: skip
        """A 35=W body: MDReqID, Symbol, RptSeq (83: the last entry it includes), 7 entries."""
        t = self._clock.time_only(ts_ms)
        body: list[tuple[bytes, bytes]] = [
            (b"262", MD_REQ_ID.encode()),
            (b"55", symbol),
            (b"83", b"%d" % rpt_seq),
            (b"268", b"7"),
        ]
        for entry_type, price, size, entry_id in (
            (_BID, *bid),
            (_OFFER, *ask),
            (_TRADE, *last, None),
            (_OPEN, day[0], None, None),
            (_HIGH, day[1], None, None),
            (_LOW, day[2], None, None),
        ):
            body.append((b"269", entry_type))
            body.append((b"270", _px(price)))
            if size is not None:
                body.append((b"271", b"%d" % size))
            if entry_id is not None:
                body.append((b"278", entry_id))
            body.append((b"273", t))
        body += [(b"269", _VOLUME), (b"271", b"%d" % volume), (b"273", t)]
        return body

    def _walk(self, book: Book, t_ns: int) -> None:
        """Move the fair value by a geometric random walk over the time since the last event."""
        dt_s = (t_ns - book.last_event_ns) / _NS_PER_S
        book.last_event_ns = t_ns
        if dt_s > 0:
            step = book.sigma * math.sqrt(dt_s) * self._rng.gauss(0.0, 1.0)
            book.fair = max(book.fair * math.exp(step), 50.0)  # never below 0.50

    def _generate_event(self) -> None:
        rng = self._rng
        books = self._books
        t_ns = self._next_event_ns
        self._next_event_ns = t_ns + self._interarrival_ns()
        idx = rng.randrange(len(books))
        book = books[idx]
        # An event never interleaves with the same symbol's previous burst: it queues behind it.
        t_ns = max(t_ns, book.busy_until_ns)
        self._walk(book, t_ns)
        if rng.random() < _P_TRADE:
            bursts = self._trade_event(idx, book)
        else:
            bursts = self._quote_event(idx, book)
        if len(books) > 1 and rng.random() < _P_BATCH:
            other = rng.randrange(len(books) - 1)
            other += other >= idx
            if books[other].busy_until_ns <= t_ns:
                bursts[0].insert(0, ("batch", other))
        # Lay the burst out in time: the first message at the event, the next ones 0.1-3 ms on.
        order_ns = t_ns
        for n, steps in enumerate(bursts):
            if n:
                order_ns += rng.randint(100_000, 3_000_000)
            ts_ms = order_ns // _NS_PER_MS
            pending = Pending(b"X", ts_ms, [])
            entries: list[tuple[bytes, ...]] = []
            for step in steps:
                kind, arg = step[0], step[1]
                if kind == "batch":
                    other_book = books[arg]
                    self._walk(other_book, t_ns)
                    other_entries: list[tuple[bytes, ...]] = []
                    self._requote(other_book, other_entries, both=False)
                    if other_entries:
                        entries += other_entries
                        other_book.busy_until_ns = order_ns
                        pending.states.append((arg, other_book.state(ts_ms)))
                else:
                    pending.trades += step[2](book, entries)
            pending.states.append((idx, book.state(ts_ms)))
            if not entries:
                continue
            self._fill_body(pending, entries)
            self._push(pending, order_ns)
        book.busy_until_ns = order_ns

    def _fill_body(self, pending: Pending, entries: list[tuple[bytes, ...]]) -> None:
        """Turn entries ``(action, type, symbol, price|None, size|None, id|None)`` into fields."""
        t = self._clock.time_only(pending.ts_ms)
        body = pending.body
        if pending.trades:
            body.append((b"60", self._clock.timestamp(pending.ts_ms)))
        body.append((b"268", b"%d" % len(entries)))
        # RptSeq (83) per entry, in generation order: a symbol's messages are emitted in the
        # order they are generated (a burst or batch never overtakes the symbol's earlier one).
        rpt_seq, index = self._rpt_seq, self._symbol_idx
        last: dict[int, int] = {}
        for action, entry_type, symbol, price, size, entry_id in entries:
            idx = index[symbol]
            rpt = last[idx] = rpt_seq[idx] = rpt_seq[idx] + 1
            body.append((b"279", action))
            body.append((b"269", entry_type))
            body.append((b"55", symbol))
            if price is not None:
                body.append((b"270", price))
            if size is not None:
                body.append((b"271", size))
            if entry_id is not None:
                body.append((b"278", entry_id))
            body.append((b"273", t))
            body.append((b"83", b"%d" % rpt))
        pending.rpts = list(last.items())

    # Each event is a list of messages; each message a list of steps ("kind", arg, fn) whose
    # fn(book, entries) mutates the book, appends entries and returns the trades it printed.

    def _trade_event(self, idx: int, book: Book) -> list[list[tuple]]:
        rng = self._rng
        buy = rng.random() < 0.5 + max(-0.3, min(0.3, (book.fair - (book.bid + book.ask) / 2)))
        spread = book.ask - book.bid
        inside = spread >= 2 and rng.random() < _P_INSIDE
        if inside:
            price = rng.randint(book.bid + 1, book.ask - 1)
            size = LOT * rng.randint(1, 5)
        else:
            price = book.ask if buy else book.bid
            touch = book.ask_size if buy else book.bid_size
            size = min(touch, LOT * max(1, int(rng.expovariate(1 / max(1, touch // LOT / 2))) + 1))
        book.trades_to_volume -= 1
        report_volume = book.trades_to_volume <= 0
        if report_volume:
            book.trades_to_volume = rng.randint(3, 8)
        volume_in_trade_message = rng.random() < 0.5

        def print_trade(b: Book, entries: list[tuple[bytes, ...]]) -> int:
            b.ltp, b.ltq = price, size
            b.volume += size
            entries.append((_NEW, _TRADE, b.symbol, _px(price), b"%d" % size, None))
            if price > b.high:
                b.high = price
                entries.append((_CHANGE, _HIGH, b.symbol, _px(price), None, None))
            elif price < b.low:
                b.low = price
                entries.append((_CHANGE, _LOW, b.symbol, _px(price), None, None))
            if report_volume and volume_in_trade_message:
                report(b, entries)
            return 1

        def report(b: Book, entries: list[tuple[bytes, ...]]) -> int:
            b.volume_reported = b.volume
            entries.append((_CHANGE, _VOLUME, b.symbol, None, b"%d" % b.volume, None))
            return 0

        def react(b: Book, entries: list[tuple[bytes, ...]]) -> int:
            # The hit level shrinks, or is consumed and the next level becomes the top.
            if buy:
                if size < b.ask_size:
                    b.ask_size -= size
                    entries.append(_size_change(b, ask=True))
                else:
                    self._move_top(b, entries, ask=True, price=b.ask + rng.randint(1, 2))
            elif size < b.bid_size:
                b.bid_size -= size
                entries.append(_size_change(b, ask=False))
            elif b.bid > 2:
                self._move_top(b, entries, ask=False, price=b.bid - rng.randint(1, 2))
            else:  # a penny stock's last tick: the level refills instead of moving to zero
                b.bid_size = self._lots(b)
                entries.append(_size_change(b, ask=False))
            return 0

        def requote(b: Book, entries: list[tuple[bytes, ...]]) -> int:
            self._requote(b, entries, both=False)
            return 0

        bursts: list[list[tuple]] = [[("trade", None, print_trade)]]
        if not inside:
            bursts.append([("react", None, react)])
        if rng.random() < _P_REQUOTE:
            bursts.append([("requote", None, requote)])
        if report_volume and not volume_in_trade_message:
            bursts.append([("volume", None, report)])
        return bursts

    def _quote_event(self, idx: int, book: Book) -> list[list[tuple]]:
        rng = self._rng
        if rng.random() < _P_SPLIT_SIDES:
            # Two messages: each requotes one side (the safe side first, so bid < ask holds).
            def first(b: Book, entries: list[tuple[bytes, ...]]) -> int:
                self._requote(b, entries, both=False)
                return 0

            def second(b: Book, entries: list[tuple[bytes, ...]]) -> int:
                self._requote(b, entries, both=False)
                return 0

            return [[("quote", None, first)], [("quote", None, second)]]

        def both(b: Book, entries: list[tuple[bytes, ...]]) -> int:
            self._requote(b, entries, both=True)
            return 0

        return [[("quote", None, both)]]

    def _requote(self, book: Book, entries: list[tuple[bytes, ...]], both: bool) -> None:
        """Re-centre the quotes on the fair value: both sides, or the one that can move safely.

        With ``both`` False, only one side moves, chosen so the book cannot cross; when no
        price moves, one side's size changes (279=1).
        """
        rng = self._rng
        spread = book.ask - book.bid
        if rng.random() < 0.3:
            spread = rng.randint(1, book.max_spread)
        bid = max(1, round(book.fair - spread / 2))
        ask = bid + spread
        moved = False
        if both:
            # Move the side that keeps bid < ask at every step first.
            order = (True, False) if ask > book.ask else (False, True)
            for is_ask in order:
                target = ask if is_ask else bid
                current = book.ask if is_ask else book.bid
                if target != current:
                    self._move_top(book, entries, ask=is_ask, price=target)
                    moved = True
        else:
            sides = []
            if ask != book.ask and ask > book.bid:
                sides.append(True)
            if bid != book.bid and bid < book.ask:
                sides.append(False)
            if sides:
                is_ask = sides[rng.randrange(len(sides))]
                self._move_top(book, entries, ask=is_ask, price=ask if is_ask else bid)
                moved = True
        if not moved:
            is_ask = rng.random() < 0.5
            if is_ask:
                book.ask_size = self._lots(book)
            else:
                book.bid_size = self._lots(book)
            entries.append(_size_change(book, ask=is_ask))

    def _move_top(
        self, book: Book, entries: list[tuple[bytes, ...]], ask: bool, price: int
    ) -> None:
        """Move one side's top level to ``price``: 279=1 change, or 279=2 old + 279=0 new."""
        rng = self._rng
        size = self._lots(book)
        entry_type = _OFFER if ask else _BID
        if ask:
            old_price, old_size, old_id = book.ask, book.ask_size, book.ask_id
        else:
            old_price, old_size, old_id = book.bid, book.bid_size, book.bid_id
        if rng.random() < _P_DELETE_NEW:
            new_id = self._next_id()
            delete = (_DELETE, entry_type, book.symbol, _px(old_price), b"%d" % old_size, old_id)
            new = (_NEW, entry_type, book.symbol, _px(price), b"%d" % size, new_id)
            if rng.random() < _P_OUT_OF_ORDER:
                entries += (new, delete)
            else:
                entries += (delete, new)
        else:
            new_id = old_id
            entries.append((_CHANGE, entry_type, book.symbol, _px(price), b"%d" % size, old_id))
        if ask:
            book.ask, book.ask_size, book.ask_id = price, size, new_id
        else:
            book.bid, book.bid_size, book.bid_id = price, size, new_id
