"""domain.book_integrity: when a book stops being sound, and what makes it sound again.

The rules are a feed handler's (CME MDP's RptSeq recovery): a gap in RptSeq (83) or a lost
update breaks the book until the next full refresh; an RptSeq seen before is a duplicate.
"""

from __future__ import annotations

import pickle

from domain.book_integrity import (
    CROSSED,
    CROSSED_SNAPSHOT,
    DEAD_LETTER,
    RPTSEQ_GAP,
    BookIntegrity,
)

S = 1_000_000_000


def test_contiguous_rptseq_keeps_the_book_sound() -> None:
    b = BookIntegrity()
    b.on_snapshot("IBM", 1 * S, 10, crossed=False)
    assert b.admit_increment("IBM", 2 * S, (11, 12))
    assert b.admit_increment("IBM", 3 * S, (13, 13))
    assert b.stale("IBM") is None and b.stale_symbols() == {}


def test_a_gap_makes_only_that_symbol_stale_until_its_next_snapshot() -> None:
    b = BookIntegrity()
    for sym in ("IBM", "MSFT"):
        b.on_snapshot(sym, 1 * S, 10, crossed=False)
    assert b.admit_increment("IBM", 2 * S, (12, 12))  # 11 was lost: applied, flagged
    assert b.admit_increment("MSFT", 2 * S, (11, 11))
    st = b.stale("IBM")
    assert st is not None and (st.reason, st.since_ns) == (RPTSEQ_GAP, 2 * S)
    assert "12 after 10" in st.detail
    assert b.stale("MSFT") is None
    b.admit_increment("IBM", 3 * S, (13, 13))  # contiguous again: still stale
    assert b.stale("IBM") is not None
    b.on_snapshot("IBM", 5 * S, 20, crossed=False)
    assert b.stale("IBM") is None
    assert b.stale_seconds() == {"IBM": 3.0}
    assert b.became_stale == {RPTSEQ_GAP: 1}


def test_rptseq_going_backwards_is_a_duplicate_ignored_and_counted() -> None:
    b = BookIntegrity()
    b.on_snapshot("IBM", 1 * S, 10, crossed=False)
    assert b.admit_increment("IBM", 2 * S, (11, 11))
    assert not b.admit_increment("IBM", 3 * S, (11, 11))
    assert not b.admit_increment("IBM", 3 * S, (5, 9))
    assert b.duplicates == 2
    assert b.stale("IBM") is None  # a duplicate never breaks nor resets the book
    assert b.admit_increment("IBM", 4 * S, (12, 12))


def test_crossed_or_locked_by_increments_breaks_the_book() -> None:
    b = BookIntegrity()
    b.on_book("IBM", 1 * S, 100.0, 100.5)
    assert b.stale("IBM") is None
    b.on_book("IBM", 2 * S, 100.5, 100.5)  # locked
    st = b.stale("IBM")
    assert st is not None and st.reason == CROSSED and "locked" in st.detail


def test_a_crossed_snapshot_is_stale_and_the_first_cause_stands() -> None:
    b = BookIntegrity()
    b.on_snapshot("IBM", 1 * S, None, crossed=True)
    assert b.stale("IBM").reason == CROSSED_SNAPSHOT
    b.on_damaged("IBM", 2 * S, DEAD_LETTER, "bad checksum")
    assert b.stale("IBM").reason == CROSSED_SNAPSHOT
    b.on_snapshot("IBM", 3 * S, None, crossed=False)
    assert b.stale("IBM") is None


def test_without_rptseq_every_increment_is_applied() -> None:
    b = BookIntegrity()
    assert b.admit_increment("IBM", 1 * S, None)
    assert b.admit_increment("IBM", 2 * S, (7, 7))  # the first RptSeq starts the baseline
    assert b.stale("IBM") is None


def test_state_survives_a_snapshot_for_recovery() -> None:
    b = BookIntegrity()
    b.on_snapshot("IBM", 1 * S, 10, crossed=False)
    b.admit_increment("IBM", 2 * S, (15, 15))
    c = pickle.loads(pickle.dumps(b))
    assert c.stale("IBM") == b.stale("IBM")
    assert not c.admit_increment("IBM", 3 * S, (15, 15))
    assert c.stale_seconds(4 * S) == {"IBM": 2.0}
