"""The live quote shard's wall-clock timer (`flows.quotes.QuoteShardLogic.notify_at`): held and
withheld states still go out when the market goes quiet, and an idle shard asks for no timer
(a due time left in the past made Bytewax call it without a pause: a core busy on a quiet
market)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from brokerflow.metrics import FlowStats
from domain.events import MarketDataIncrement, MdEntry
from domain.quotes import NS_PER_MS, CoalescePolicy
from flows.quotes import QUIET_FLUSH_S, QuoteShardLogic, ShardBatch
from tests.eventually import eventually

T0 = 1_764_081_000 * 1_000_000_000


def _batch(ms: int, px: float) -> list[ShardBatch]:
    event = MarketDataIncrement("ACME", T0 + ms * NS_PER_MS, (MdEntry("2", "0", px, 100),))
    return [ShardBatch([event], False, [ms], None)]


def _quotes(out: tuple[list, bool]) -> list[float]:
    return [q.ltp for tag, quotes in out[0] if tag == "quotes" for q in quotes]


def _notify_until_published(logic: QuoteShardLogic, timeout_s: float = 5.0) -> list[float]:
    return eventually(lambda: _quotes(logic.on_notify()), timeout_s, 0.02, "a published quote")


def _live(min_move_bps: float = 0.0) -> QuoteShardLogic:
    policy = CoalescePolicy(interval_ns=100 * NS_PER_MS, min_move_bps=min_move_bps)
    return QuoteShardLogic(policy, None, live=True, stats=FlowStats(), recovery=False)


def test_a_live_shard_with_nothing_held_asks_for_no_timer():
    logic = _live()
    assert _quotes(logic.on_batch(_batch(0, 10.0))) == [10.0]  # a quiet symbol: at once
    assert logic.notify_at() is None


def test_a_held_state_goes_out_at_its_interval_end_then_the_timer_stops():
    logic = _live()
    logic.on_batch(_batch(0, 10.0))
    before = datetime.now(UTC)
    assert _quotes(logic.on_batch(_batch(30, 10.5))) == []  # held: within the interval
    due = logic.notify_at()
    assert due is not None and due <= before + timedelta(seconds=1)
    assert _notify_until_published(logic) == [10.5]
    assert logic.notify_at() is None


def test_a_withheld_small_move_goes_out_once_the_market_is_quiet_then_the_timer_stops():
    logic = _live(min_move_bps=10.0)
    logic.on_batch(_batch(0, 100.0))
    assert _quotes(logic.on_batch(_batch(500, 100.05))) == []  # 5 bps: withheld
    due = logic.notify_at()
    assert due is not None and due <= datetime.now(UTC) + timedelta(seconds=QUIET_FLUSH_S)
    assert _notify_until_published(logic) == [100.05]
    assert logic.notify_at() is None
