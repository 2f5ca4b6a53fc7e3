"""The stop shard and the margin feed on a stale book (issue 21), step by step, with the
decoder's events built here: an RptSeq (83) gap, a lost update (`BookDamaged`), a duplicate
RptSeq. What the steps emit is what reaches `stop_orders`, the children, the alerts and the
account shards (tests/flows/test_stops_stale_book.py and test_margin_stale_book.py follow
the same through replay, with a book crossed by increments).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.fix.parse import decode_lines
from domain.book_integrity import DEAD_LETTER
from domain.events import BookDamaged, MarketDataIncrement, MarketDataSnapshot, MdEntry
from flows.context import FlowContext
from flows.margin import FeedLogic, StaleMark
from flows.quotes import ShardBatch
from flows.stops import StopShardLogic
from tests.flows.test_stops_stale_book import stop

T0 = 1_795_617_000_000_000_000  # 2026-11-25 14:30:00 UTC
MS = 1_000_000


@pytest.fixture
def ctx(settings_factory) -> FlowContext:
    # the steps' batches touch no store
    s = settings_factory(redis_url="redis://127.0.0.1:1/0", postgres_dsn="postgresql://x@/x")
    return FlowContext(s, s.redis_url, s.postgres_dsn)


def snap(at_ms: int, rpt_seq: int, bid: float, ask: float, last: float) -> MarketDataSnapshot:
    entries = (MdEntry("0", "0", bid, 100.0), MdEntry("1", "0", ask, 100.0),
               MdEntry("2", "0", last, 100.0))  # fmt: skip
    return MarketDataSnapshot("ACME", T0 + at_ms * MS, entries, rpt_seq)


def trade(at_ms: int, rpt_seq: int, px: float) -> MarketDataIncrement:
    entry = MdEntry("2", "0", px, 100.0)
    return MarketDataIncrement("ACME", T0 + at_ms * MS, (entry,), (rpt_seq, rpt_seq))


def stop_request(at_ms: int):
    [request] = decode_lines([stop("S1", "ACME", at_ms, 1, t40="3", t99="99.50") + b"\n"],
                             "file:t", 1).events  # fmt: skip
    return request


def run_stops(ctx: FlowContext, events: list) -> list:
    """Each event in a batch of its own; the effects of each, in order."""
    logic = StopShardLogic(None, ctx)
    return [logic.on_batch([ShardBatch([e], True, [n], None, "0")])[0]
            for n, e in enumerate(events, 1)]  # fmt: skip


def fired(effects: list) -> list[tuple[int, Decimal, int]]:
    """(index of the event, trigger price, trigger time in ms) of each trigger."""
    return [(n, row.trigger_px, (row.triggered_ns - T0) // MS)
            for n, out in enumerate(effects) for e in out for row in e.rows
            if row.status == "TRIGGERED"]  # fmt: skip


def test_stop_holds_through_an_rptseq_gap_and_fires_on_the_next_snapshot(ctx):
    effects = run_stops(ctx, [
        snap(0, 10, 99.90, 100.10, 100.00),
        stop_request(100),
        trade(1_000, 11, 99.80),  # in sequence, above the stop
        trade(2_000, 13, 99.00),  # RptSeq 13 after 11: stale; past the stop, not trusted
        trade(3_000, 14, 98.90),
        snap(4_000, 20, 99.20, 99.30, 99.25),  # sound: fires at its last trade
    ])  # fmt: skip
    assert fired(effects) == [(5, Decimal("99.25"), 4_000)]
    alerts = [a.kind for out in effects for e in out for a in e.alerts]
    assert alerts == ["STOP_TRIGGERED"]
    assert [c for out in effects for e in out for c, _ in e.children] == ["S1.T"]


def test_stop_holds_after_a_lost_update_and_ignores_a_duplicate(ctx):
    effects = run_stops(ctx, [
        snap(0, 10, 99.90, 100.10, 100.00),
        stop_request(100),
        trade(500, 10, 99.00),  # RptSeq 10 again: a duplicate, ignored (no trigger)
        trade(1_000, 11, 99.70),
        BookDamaged("ACME", T0 + 2_000 * MS, DEAD_LETTER, "line 7"),
        trade(3_000, 12, 99.10),  # the stale book's print
        snap(4_000, 13, 99.30, 99.50, 99.40),
    ])  # fmt: skip
    assert fired(effects) == [(6, Decimal("99.40"), 4_000)]


def feed_items(ctx: FlowContext, events: list) -> list:
    """What the margin feed sends an account shard: marks (symbol, mark) and StaleMarks."""
    logic = FeedLogic(None, ctx)
    out = []
    for n, e in enumerate(events, 1):
        for _, part in logic.on_batch([ShardBatch([e], False, [n], None, "0")])[0]:
            if part.shard == 0:
                out += [(item[0], item[1]) if type(item) is tuple else item
                        for _, item in part.items]  # fmt: skip
    return out


def test_margin_feed_holds_the_last_sound_mark_while_the_book_is_stale(ctx):
    items = feed_items(ctx, [
        snap(0, 10, 99.90, 100.10, 100.00),
        trade(1_000, 11, 99.80),
        trade(2_000, 13, 90.00),  # a gap: stale, no mark
        trade(3_000, 14, 91.00),
        trade(3_500, 12, 80.00),  # a duplicate: nothing
        snap(5_000, 20, 95.90, 96.10, 96.00),  # sound: its last trade is the mark
        BookDamaged("ACME", T0 + 6_000 * MS, DEAD_LETTER),
        trade(7_000, 21, 50.00),
        MarketDataSnapshot("ACME", T0 + 8_000 * MS,
                           (MdEntry("0", "0", 96.40, 1.0), MdEntry("1", "0", 96.60, 1.0)), 22),
    ])  # fmt: skip
    assert items == [
        ("ACME", Decimal("100.0")),
        ("ACME", Decimal("99.8")),
        StaleMark("ACME", T0 + 2_000 * MS, "rptseq_gap"),
        StaleMark("ACME", T0 + 5_000 * MS, None),
        ("ACME", Decimal("96.0")),
        StaleMark("ACME", T0 + 6_000 * MS, DEAD_LETTER),
        # sound again without a trade of its own: the last sound trade (96) stands, no new mark
        StaleMark("ACME", T0 + 8_000 * MS, None),
    ]
