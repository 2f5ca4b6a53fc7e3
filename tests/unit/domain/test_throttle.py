"""The publishing rule in one place (`domain.throttle.IntervalThrottle`): the rule itself from its
definition, and the two publishers built on it held to it on random streams: the quote
coalescer (whose hot loop inlines `offer`) and the margin marks (`MarkPublisher`)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.events import MarketDataIncrement, MdEntry
from domain.margin_marks import MarkPublisher
from domain.quotes import CoalescePolicy, QuoteCoalescer
from domain.throttle import IntervalThrottle

MS = 1_000_000
INTERVAL = 100 * MS


def test_throttle_first_change_now_latest_at_the_interval_end():
    t = IntervalThrottle(INTERVAL)
    assert t.offer("A", 0)  # never published: at once
    t.sent("A", 0)
    assert not t.offer("A", 10 * MS)  # within the interval: held until 100 ms
    assert not t.offer("A", 20 * MS)  # already held
    assert t.held("A") and t.next_deadline() == INTERVAL
    assert t.pop_due(99 * MS) == []
    assert t.pop_due(INTERVAL) == [(INTERVAL, "A")]
    t.sent("A", INTERVAL)
    assert not t.offer("A", 150 * MS)  # the next interval runs from the held publish
    t.cancel("A")  # published out of turn
    assert t.pop_due(None) == [] and t.next_deadline() is None
    assert t.offer("A", 200 * MS)


def test_throttle_drain_gives_every_held_key_in_deadline_order():
    t = IntervalThrottle(INTERVAL)
    for key, at in (("B", 0), ("A", 0), ("C", 50 * MS)):
        t.sent(key, at)
        assert not t.offer(key, at + MS)
    assert t.drain() == [(INTERVAL, "A"), (INTERVAL, "B"), (150 * MS, "C")]
    assert not t.held("A") and t.next_deadline() is None


# (symbol, event time in ms): times mostly rising, sometimes back (out-of-order venues)
streams = st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 400)), min_size=1, max_size=60)


def _model(stream: list[tuple[str, int]], strict: bool) -> tuple[list[str], dict[str, int]]:
    """The rule driven directly: event time (the highest seen; `strict`: only a later time
    moves it) releases what is due, then each change is offered."""
    t = IntervalThrottle(INTERVAL)
    watermark, out = 0, []
    for symbol, at_ms in stream:
        ts = at_ms * MS
        if ts > watermark or (not strict and ts == watermark):
            watermark = ts
            for end, key in t.pop_due(ts):
                t.sent(key, end)
                out.append(key)
        if t.offer(symbol, ts):
            t.sent(symbol, ts)
            out.append(symbol)
    for end, key in t.drain():
        t.sent(key, end)
        out.append(key)
    return out, t.last_ns


def _trade(symbol: str, at_ms: int, px: float) -> MarketDataIncrement:
    return MarketDataIncrement(symbol, at_ms * MS, (MdEntry("2", "0", px, 1.0),))


@settings(max_examples=300, deadline=None)
@given(streams)
def test_coalescer_publishes_by_the_throttle_rule(stream):
    c = QuoteCoalescer(CoalescePolicy(interval_ns=INTERVAL))
    quotes = c.apply([_trade(s, at, 10.0 + k) for k, (s, at) in enumerate(stream)])
    quotes += c.flush_all()
    expected, last_ns = _model(stream, strict=False)
    assert [q.symbol for q in quotes] == expected
    assert c.throttle.last_ns == last_ns


@settings(max_examples=300, deadline=None)
@given(streams)
def test_margin_marks_publish_by_the_throttle_rule(stream):
    p = MarkPublisher(INTERVAL)
    marks: list = []
    events = [_trade(s, at, 10.0 + k) for k, (s, at) in enumerate(stream)]  # every one moves
    p.apply(events, list(range(len(events))), marks, [])
    p.flush(None, marks, len(events))
    expected, last_ns = _model(stream, strict=True)
    assert [m[0] for _, m in marks] == expected
    assert p.throttle.last_ns == last_ns
