"""The coalescer's quotes of stale books (issue 21): flagged, and the flag's changes at once."""

from __future__ import annotations

import pickle

from domain.book_integrity import CROSSED, CROSSED_SNAPSHOT, DEAD_LETTER, RPTSEQ_GAP
from domain.events import BookDamaged, MarketDataIncrement, MarketDataSnapshot, MdEntry
from domain.quotes import NS_PER_MS, CoalescePolicy, QuoteCoalescer

T0 = 1_764_081_000 * 1_000_000_000  # 2025-11-25T14:30:00Z
MS = NS_PER_MS


def bid(px, sz=100.0):
    return MdEntry("0", "0", px, sz, "b")  # one level per side, replaced by id


def ask(px, sz=100.0):
    return MdEntry("1", "0", px, sz, "a")


def snap(ts, b=10.0, a=10.1, rpt=None, symbol="ACME", crossed=False):
    return MarketDataSnapshot(symbol, T0 + ts * MS, (bid(b), ask(a)), rpt, crossed)


def inc(ts, *entries, rpt=None, symbol="ACME"):
    return MarketDataIncrement(symbol, T0 + ts * MS, tuple(entries), rpt)


def coalescer(interval_ms=100, min_move_bps=0.0):
    return QuoteCoalescer(CoalescePolicy(interval_ms * MS, min_move_bps))


def test_an_rptseq_gap_flags_the_quote_at_once_until_the_next_sound_snapshot():
    c = coalescer()
    assert [q.stale for q in c.apply([snap(0, rpt=10), inc(1, bid(10.01), rpt=(11, 11))])] == [
        None
    ]  # the increment is held: within the interval of the snapshot's quote
    # 12 was lost: the quote goes out now (the flag changed), held or not
    (q,) = c.apply([inc(2, bid(10.02), rpt=(13, 13))])
    assert (q.bid, q.stale, q.stale_since) == (10.02, RPTSEQ_GAP, (T0 + 2 * MS) // MS)
    assert c.take_turned_stale() == [("ACME", RPTSEQ_GAP)]
    assert c.take_turned_stale() == []
    # later quotes of the stale book are coalesced as usual, and carry the flag
    assert c.apply([inc(3, bid(10.03), rpt=(14, 14))]) == []
    (q,) = c.apply([inc(200, bid(10.04), rpt=(15, 15))])  # 10.03 at its interval's end
    assert (q.bid, q.stale) == (10.03, RPTSEQ_GAP)
    # the next sound 35=W: at once, without the flag
    (q,) = c.apply([snap(201, 10.05, 10.1, rpt=40)])  # (10.04, still held, is this one)
    assert (q.bid, q.stale, q.stale_since) == (10.05, None, None)
    assert c.flush_all() == []
    assert c.integrity.stale_seconds() == {"ACME": 0.199}


def test_a_duplicate_increment_is_skipped_counted_and_does_not_reset_the_book():
    c = coalescer(interval_ms=1)
    c.apply([snap(0, rpt=10), inc(5, bid(10.02), rpt=(11, 12))])
    # RptSeq 11 again (backwards): ignored, no quote, the book keeps 10.02
    assert c.apply([inc(10, bid(9.0), rpt=(11, 11))]) == []
    assert c.integrity.duplicates == 1
    (q,) = c.apply([inc(20, ask(10.2), rpt=(13, 13))])
    assert (q.bid, q.ask, q.stale) == (10.02, 10.2, None)


def test_a_book_crossed_by_increments_is_never_published_unflagged():
    c = coalescer()
    c.apply([snap(0)])
    (q,) = c.apply([inc(1, bid(10.2))])  # bid 10.2 > ask 10.1, within the interval
    assert (q.bid, q.ask, q.stale) == (10.2, 10.1, CROSSED)
    # uncrossing by increments does not make it sound: only a snapshot does
    (q,) = c.apply([inc(300, bid(10.0))])
    assert (q.bid, q.ask, q.stale) == (10.0, 10.1, CROSSED)


def test_a_locked_book_is_stale_too():
    c = coalescer(interval_ms=1)
    c.apply([snap(0)])
    (q,) = c.apply([inc(5, bid(10.1))])
    assert (q.bid, q.ask, q.stale) == (10.1, 10.1, CROSSED)


def test_a_crossed_snapshot_is_published_flagged_even_when_the_event_does_not_say_so():
    c = coalescer()
    (q,) = c.apply([snap(0, 10.3, 10.1, crossed=True)])
    assert q.stale == CROSSED_SNAPSHOT
    c2 = coalescer()
    (q,) = c2.apply([snap(0, 10.3, 10.1, crossed=False)])  # the check does not rely on it
    assert q.stale == CROSSED_SNAPSHOT


def test_a_damaged_update_flags_the_book_at_once_and_others_are_unaffected():
    c = coalescer()
    c.apply([snap(0), snap(0, symbol="OTHER")])
    (q,) = c.apply([BookDamaged("ACME", T0 + 1 * MS, DEAD_LETTER, "BodyLength")])
    assert (q.symbol, q.bid, q.stale) == ("ACME", 10.0, DEAD_LETTER)
    (q,) = c.apply([inc(200, bid(10.05), symbol="OTHER")])
    assert q.stale is None
    # a lost update of a symbol not seen yet: its first quote is flagged
    (q,) = c.apply([BookDamaged("NEW", T0 + 2 * MS, DEAD_LETTER), inc(210, bid(5.0), symbol="NEW")])
    assert (q.symbol, q.stale) == ("NEW", DEAD_LETTER)


def test_the_flag_change_goes_out_even_when_the_move_filter_would_hold_it():
    c = coalescer(interval_ms=1, min_move_bps=50.0)
    c.apply([snap(0, rpt=1)])
    assert c.apply([inc(5, bid(10.0001), rpt=(2, 2))]) == []  # a small move: withheld
    (q,) = c.apply([inc(10, bid(10.0002), rpt=(4, 4))])  # small, but a gap
    assert q.stale == RPTSEQ_GAP
    (q,) = c.apply([snap(20, rpt=9)])  # the same prices, sound again
    assert q.stale is None


def test_the_audit_snapshot_of_a_stale_book_carries_the_flag():
    c = coalescer()
    c.apply([snap(0, rpt=1), inc(1, bid(10.05), rpt=(5, 5))])
    assert c.quote_at("ACME", T0 + 2 * MS).stale == RPTSEQ_GAP


def test_a_state_pickled_before_book_integrity_loads_sound():
    c = coalescer()
    c.apply([snap(0)])
    state = c.__getstate__()
    del state["integrity"], state["turned_stale"]
    old = QuoteCoalescer.__new__(QuoteCoalescer)
    old.__setstate__(state)
    restored = pickle.loads(pickle.dumps(old))
    (q,) = restored.apply([inc(500, bid(10.2))])
    assert q.stale == CROSSED
