"""The L1 book and the coalescer, without a dataflow."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import MarketDataIncrement, MarketDataSnapshot, MdEntry
from domain.quotes import (
    NS_PER_DAY,
    NS_PER_MS,
    CoalescePolicy,
    QuoteCoalescer,
    SymbolBook,
    apply_increment,
    apply_increment_top,
    apply_snapshot,
)

T0 = 1_764_081_000 * 1_000_000_000  # 2025-11-25T14:30:00Z


def bid(px, sz, action="0", entry_id=None):
    return MdEntry("0", action, px, sz, entry_id)


def ask(px, sz, action="0", entry_id=None):
    return MdEntry("1", action, px, sz, entry_id)


def trade(px, sz, action="0"):
    return MdEntry("2", action, px, sz)


def inc(*entries, ts=T0, symbol="ACME"):
    return MarketDataIncrement(symbol, ts, tuple(entries))


def test_book_snapshot_replaces_sides_and_sets_last_trade_without_volume():
    book = SymbolBook("ACME")
    apply_increment(book, inc(bid(9.0, 100), ask(11.0, 100)))
    apply_snapshot(
        book,
        MarketDataSnapshot("ACME", T0 + 1, (bid(10.0, 200), ask(10.5, 300), trade(10.2, 50))),
    )
    q = book.to_quote()
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (10.0, 200, 10.5, 300)
    assert (q.ltp, q.ltq, q.volume) == (10.2, 50, 0.0)


def test_apply_increment_top_gives_the_book_and_the_top_that_apply_increment_leaves():
    # The stop engine's call: the same book as apply_increment, and its best prices after it.
    steps = [inc(bid(10.00, 100), ask(10.05, 100)), inc(bid(10.01, 300), trade(10.02, 5)),
             inc(bid(10.01, None, action="2"), bid(10.00, None, action="2")),
             inc(ask(10.05, None, action="2")), inc(ask(9.99, 7), ts=T0 + NS_PER_DAY)]  # fmt: skip
    mine, reference = SymbolBook("ACME"), SymbolBook("ACME")
    tops = []
    for event in steps:
        tops.append(apply_increment_top(mine, event))
        apply_increment(reference, event)
        assert mine == reference
    assert tops == [(10.00, 10.05), (10.01, 10.05), (None, 10.05), (None, None), (None, 9.99)]


def test_book_new_before_delete_in_one_message_keeps_new_best():
    book = SymbolBook("ACME")
    apply_increment(book, inc(bid(10.00, 100), ask(10.05, 100)))
    # Out of order within one message: the new level arrives before the old one is deleted.
    apply_increment(book, inc(bid(10.01, 300), bid(10.00, None, action="2")))
    q = book.to_quote()
    assert (q.bid, q.bid_size) == (10.01, 300)


def test_book_delete_by_entry_id_and_change_by_id():
    book = SymbolBook("ACME")
    apply_increment(book, inc(ask(10.05, 100, entry_id="a1"), ask(10.06, 500, entry_id="a2")))
    apply_increment(book, inc(ask(10.05, 250, action="1", entry_id="a1")))
    assert book.to_quote().ask_size == 250
    apply_increment(book, inc(MdEntry("1", "2", None, None, "a1")))
    q = book.to_quote()
    assert (q.ask, q.ask_size) == (10.06, 500)


def test_book_change_of_unknown_level_is_top_of_book_replace():
    book = SymbolBook("ACME")
    apply_increment(book, inc(bid(10.00, 100)))
    apply_increment(book, inc(bid(9.95, 400, action="1")))
    q = book.to_quote()
    assert (q.bid, q.bid_size) == (9.95, 400)
    assert len(book.bids) == 1


def test_book_delete_without_price_removes_best_and_empty_side_is_none():
    book = SymbolBook("ACME")
    apply_increment(book, inc(bid(10.00, 100), bid(9.99, 100)))
    apply_increment(book, inc(MdEntry("0", "2", None, None)))
    assert book.to_quote().bid == 9.99
    apply_increment(book, inc(MdEntry("0", "2", None, None)))
    q = book.to_quote()
    assert q.bid is None and q.bid_size is None


def test_book_trades_build_ohlc_and_volume_until_feed_volume_wins():
    book = SymbolBook("ACME")
    for px, sz in ((10.0, 100), (10.4, 200), (9.8, 300), (10.1, 50)):
        apply_increment(book, inc(trade(px, sz)))
    q = book.to_quote()
    assert (q.open, q.high, q.low, q.close) == (10.0, 10.4, 9.8, 10.1)
    assert (q.ltp, q.ltq, q.volume) == (10.1, 50, 650)
    apply_increment(book, inc(MdEntry("B", "0", None, 10_000)))
    apply_increment(book, inc(trade(10.2, 10)))
    assert book.to_quote().volume == 10_000  # the feed's cumulative volume wins


def test_book_trade_bust_is_ignored_and_new_day_resets_bar():
    book = SymbolBook("ACME")
    apply_increment(book, inc(trade(10.0, 100)))
    apply_increment(book, inc(trade(50.0, 100, action="2")))
    assert book.to_quote().ltp == 10.0
    apply_increment(book, inc(trade(11.0, 5), ts=T0 + NS_PER_DAY))
    q = book.to_quote()
    assert (q.open, q.high, q.low, q.volume) == (11.0, 11.0, 11.0, 5)
    assert q.day == (T0 + NS_PER_DAY) // NS_PER_DAY


def _trade_at(ms: int, px: float, symbol="ACME"):
    return inc(trade(px, 1), ts=T0 + ms * NS_PER_MS, symbol=symbol)


def test_coalescer_leading_edge_then_trailing_state():
    c = QuoteCoalescer(CoalescePolicy(interval_ns=100 * NS_PER_MS))
    first = c.apply([_trade_at(0, 10.0)])
    assert [q.ltp for q in first] == [10.0]  # leading edge at once
    held = c.apply([_trade_at(10, 10.1), _trade_at(20, 10.2)])
    assert held == []
    # Event time passes the interval's end: the latest held state goes out, then the new change
    # is held again.
    later = c.apply([_trade_at(150, 10.3)])
    assert [(q.ltp, q.seq) for q in later] == [(10.2, 2)]
    assert [(q.ltp, q.seq) for q in c.flush_all()] == [(10.3, 3)]


def test_coalescer_quiet_symbol_publishes_immediately():
    c = QuoteCoalescer(CoalescePolicy(interval_ns=100 * NS_PER_MS))
    c.apply([_trade_at(0, 10.0)])
    out = c.apply([_trade_at(5_000, 11.0)])
    assert [q.ltp for q in out] == [11.0]


def test_coalescer_flush_due_from_idle_timer():
    c = QuoteCoalescer(CoalescePolicy(interval_ns=100 * NS_PER_MS))
    c.apply([_trade_at(0, 10.0), _trade_at(30, 10.5)])
    assert c.next_deadline() == T0 + 100 * NS_PER_MS
    assert c.flush_due(T0 + 99 * NS_PER_MS) == []
    assert [q.ltp for q in c.flush_due(T0 + 100 * NS_PER_MS)] == [10.5]
    assert c.next_deadline() is None


def test_coalescer_min_move_filter_withholds_small_moves_but_not_the_last():
    c = QuoteCoalescer(CoalescePolicy(interval_ns=NS_PER_MS, min_move_bps=10.0))
    assert len(c.apply([_trade_at(0, 100.0)])) == 1
    assert c.apply([_trade_at(50, 100.05)]) == []  # 5 bps: withheld
    assert [q.ltp for q in c.apply([_trade_at(100, 100.5)])] == [100.5]  # 50 bps
    assert c.apply([_trade_at(200, 100.51)]) == []
    assert [q.ltp for q in c.flush_all()] == [100.51]  # end of stream: never withheld


events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["AAA", "BBB", "CCC"]),
        st.integers(min_value=0, max_value=400),  # ms gap since the previous event
        st.floats(min_value=1, max_value=1000, allow_nan=False),
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(
    events_strategy,
    st.integers(min_value=1, max_value=300),
    st.sampled_from([0.0, 5.0, 500.0]),
)
def test_coalescer_never_loses_the_final_state(raw_events, interval_ms, min_move_bps):
    policy = CoalescePolicy(interval_ns=interval_ms * NS_PER_MS, min_move_bps=min_move_bps)
    c = QuoteCoalescer(policy)
    ts = 0
    published = []
    final = {}
    for symbol, gap, px in raw_events:
        ts += gap
        published += c.apply([_trade_at(ts, px, symbol)])
        final[symbol] = px
    published += c.flush_all()
    by_symbol: dict[str, list] = {}
    for q in published:
        by_symbol.setdefault(q.symbol, []).append(q)
    for symbol, quotes in by_symbol.items():
        # The last published state equals the last input: nothing withheld.
        assert quotes[-1].ltp == final[symbol]
        assert [q.seq for q in quotes] == list(range(1, len(quotes) + 1))
    assert set(by_symbol) == set(final)


@settings(max_examples=200, deadline=None)
@given(events_strategy, st.integers(min_value=1, max_value=300))
def test_coalescer_publish_times_are_an_interval_apart(raw_events, interval_ms):
    interval = interval_ms * NS_PER_MS
    pub_times: dict[str, list[int]] = {}

    class Recording(QuoteCoalescer):
        def _publish(self, symbol, book, pub_ns, out, force):
            done = super()._publish(symbol, book, pub_ns, out, force)
            if done:
                pub_times.setdefault(symbol, []).append(pub_ns)
            return done

    c = Recording(CoalescePolicy(interval_ns=interval))
    ts = 0
    for symbol, gap, px in raw_events:
        ts += gap
        c.apply([_trade_at(ts, px, symbol)])
    c.flush_all()
    assert sum(map(len, pub_times.values())) >= len(pub_times)
    for times in pub_times.values():
        assert all(b - a >= interval for a, b in zip(times, times[1:], strict=False))


def test_quote_at_gives_the_state_current_at_the_event_time():
    c = QuoteCoalescer(CoalescePolicy(interval_ns=100 * NS_PER_MS))
    c.apply([_trade_at(0, 10.0)])
    c.apply([_trade_at(500, 11.0)])
    c.apply([_trade_at(1000, 12.0)])
    # In stream order: the current book.
    assert c.quote_at("ACME", T0 + 2000 * NS_PER_MS).ltp == 12.0
    # A late event: the quote published at or before its time, not a later one.
    assert c.quote_at("ACME", T0 + 700 * NS_PER_MS).ltp == 11.0
    assert c.quote_at("ACME", T0 + 499 * NS_PER_MS).ltp == 10.0
    assert c.quote_at("ACME", T0 - 1) is None
    assert c.quote_at("OTHER", T0) is None


# The book's rules as first written, one call per entry: the inline paths of `_apply_entries`
# and `QuoteCoalescer.apply` must leave every book as these do.
def _reference_apply(book: SymbolBook, event, snapshot: bool) -> None:
    from domain import quotes as dq

    dq._roll_day(book, event.ts_event)
    if snapshot:
        book.bids.clear()
        book.asks.clear()
    for entry in event.entries:
        kind = entry.entry_type
        if kind == "0":
            dq._apply_level(book.bids, entry, True)
        elif kind == "1":
            dq._apply_level(book.asks, entry, False)
        elif kind == "2":
            dq._apply_trade(book, entry, not snapshot)
        else:
            dq._apply_other(book, entry)
    book.ts_event = max(book.ts_event, event.ts_event)


def _reference_quote(book: SymbolBook) -> tuple:
    bid = max(book.bids.values(), key=lambda lv: lv[0]) if book.bids else None
    ask = min(book.asks.values(), key=lambda lv: lv[0]) if book.asks else None
    return (
        book.symbol, bid[0] if bid else None, bid[1] if bid else None,
        ask[0] if ask else None, ask[1] if ask else None, book.ltp, book.ltq, book.volume,
        book.ts_event // NS_PER_MS, book.seq, book.day, book.open, book.high, book.low, book.close,
        book.prev_close, book.lower_band, book.upper_band, book.stale, book.stale_since,
    )  # fmt: skip


def _book_state(book: SymbolBook) -> tuple:
    return (
        list(book.bids.items()), list(book.asks.items()), _reference_quote(book), book.feed_volume
    )


entry_strategy = st.builds(
    MdEntry,
    st.sampled_from(["0", "0", "1", "1", "2", "2", "4", "5", "7", "8", "B", "J"]),
    st.sampled_from(["0", "0", "1", "1", "2", "3", "4", "5"]),
    st.one_of(st.none(), st.sampled_from([10.0, 10.01, 10.02])),  # levels of equal price too
    st.one_of(st.none(), st.sampled_from([100.0, 200.0, 300.0])),
    st.one_of(st.none(), st.sampled_from(["a", "b"])),
)
event_strategy = st.lists(
    st.tuples(
        st.booleans(),  # a full refresh (35=W)?
        st.sampled_from(["AAA", "BBB"]),
        st.integers(min_value=0, max_value=NS_PER_DAY // 2),  # gap: days roll now and then
        st.lists(entry_strategy, min_size=1, max_size=5),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(event_strategy)
def test_book_inline_paths_equal_the_per_entry_rules(raw_events):
    coalescer = QuoteCoalescer(CoalescePolicy(interval_ns=NS_PER_MS))
    plain: dict[str, SymbolBook] = {}  # apply_increment / apply_snapshot
    reference: dict[str, SymbolBook] = {}
    ts = T0
    for is_snapshot, symbol, gap, entries in raw_events:
        ts += gap
        cls = MarketDataSnapshot if is_snapshot else MarketDataIncrement
        event = cls(symbol, ts, tuple(entries))
        coalescer.apply([event])
        book = plain.setdefault(symbol, SymbolBook(symbol))
        (apply_snapshot if is_snapshot else apply_increment)(book, event)
        _reference_apply(reference.setdefault(symbol, SymbolBook(symbol)), event, is_snapshot)
        expected = _book_state(reference[symbol])
        assert _book_state(book) == expected
        inline = coalescer.books[symbol]
        assert _book_state(inline)[:2] == expected[:2]
        assert inline.to_quote()[1:9] == expected[2][1:9]  # seq differs: the coalescer publishes
        assert tuple(book.to_quote()) == expected[2]


def test_book_of_levels_at_one_price_the_first_is_best():
    book = SymbolBook("ACME")
    apply_increment(book, inc(bid(10.0, 100, entry_id="b1"), bid(10.0, 300, entry_id="b2")))
    apply_increment(book, inc(ask(10.5, 200, entry_id="a1"), ask(10.5, 400, entry_id="a2")))
    q = book.to_quote()
    assert (q.bid, q.bid_size, q.ask, q.ask_size) == (10.0, 100, 10.5, 200)


def _close(px, kind="5"):
    return MdEntry(kind, "0", px, None)


def test_prev_close_from_the_morning_close_settlement_and_the_day_roll():
    book = SymbolBook("ACME")
    apply_snapshot(book, MarketDataSnapshot("ACME", T0, (bid(10.0, 1), _close(9.5))))
    assert (book.prev_close, book.close) == (9.5, None)  # no trade yet: the previous session's
    apply_increment(book, inc(trade(10.0, 5), ts=T0 + 1))
    apply_snapshot(book, MarketDataSnapshot("ACME", T0 + 2, (_close(10.1), _close(7.0, "6"))))
    assert (book.prev_close, book.close) == (9.5, 10.1)  # after a trade: today's close
    assert book.to_quote().prev_close == 9.5
    apply_increment(book, inc(bid(10.0, 1), ts=T0 + NS_PER_DAY))  # the next day
    assert (book.prev_close, book.open) == (10.1, None)
    apply_snapshot(book, MarketDataSnapshot("ACME", T0 + NS_PER_DAY + 1, (_close(10.2, "6"),)))
    assert book.prev_close == 10.2  # the venue's settlement price wins over our last close


def test_prev_close_from_another_source_fills_the_unwritten_quotes_once():
    coalescer = QuoteCoalescer(CoalescePolicy(interval_ns=0))
    quotes = coalescer.apply([inc(bid(10.0, 1), trade(10.0, 1)), inc(bid(1.0, 1), symbol="B")])
    day = T0 // NS_PER_DAY
    assert coalescer.take_new_symbols() == [("ACME", day), ("B", day)]
    assert coalescer.take_new_symbols() == []
    coalescer.set_prev_close("ACME", day, 9.0, quotes)
    assert [q.prev_close for q in quotes] == [9.0, None]
    assert coalescer.quote_at("ACME", T0).prev_close == 9.0
    coalescer.set_prev_close("ACME", day, 1.0, quotes)  # already known: kept
    assert coalescer.books["ACME"].prev_close == 9.0


def test_books_pickled_before_prev_close_load_without_it():
    import pickle

    book = SymbolBook("ACME")
    state = book.__getstate__()[:-1]  # as a book pickled before the field existed
    old = SymbolBook.__new__(SymbolBook)
    old.__setstate__(state)
    assert old.prev_close is None and old.symbol == "ACME"
    assert pickle.loads(pickle.dumps(book)) == book
