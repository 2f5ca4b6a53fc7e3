"""A market-data session's lost messages (issue 21): the session reports a MsgSeqNum gap it
could not fill (`SessionState.on_gap`), and the live source turns it into `BookDamaged` of
every subscribed symbol, in its place in the stream."""

from __future__ import annotations

from connectors.fix.live import LiveSession, _LivePartition
from connectors.fix.session.config import SessionConfig
from connectors.fix.session.engine import AppBatch
from connectors.fix.session.state import RESEND_WAIT_S
from domain.events import BookDamaged
from tests.unit.test_fix_session import CLOCK, NOW, Session, peer

POSS_DUP = [(43, b"Y"), (122, CLOCK.stamp(NOW))]
GAP_FILL = [(36, b"5"), (123, b"Y")]


def _watched(**overrides) -> tuple[Session, list[tuple[int, int, str]]]:
    session = Session(**overrides)
    lost: list[tuple[int, int, str]] = []
    session.state.on_gap = lambda first, last, why: lost.append((first, last, why))
    return session, lost


def test_a_gap_answered_by_gap_fills_alone_is_reported_lost() -> None:
    session, lost = _watched()
    session.feed(peer(b"X", 2))
    [resend] = session.feed(peer(b"X", 5))  # 3 and 4 missing
    assert resend.msg_type == b"2"
    session.feed(peer(b"4", 3, GAP_FILL, header=POSS_DUP))  # the peer kept nothing
    assert session.delivered == [2, 5]
    assert lost == [(3, 4, "gap-filled, no message resent")]


def test_gap_fills_beside_resent_messages_cover_admin_messages_only() -> None:
    session, lost = _watched()
    session.feed(peer(b"X", 2))
    session.feed(peer(b"X", 6))  # 3, 4, 5 missing
    session.feed(peer(b"4", 3, [(36, b"4"), (123, b"Y")], header=POSS_DUP))  # a heartbeat
    session.feed(peer(b"X", 4, header=POSS_DUP))
    session.feed(peer(b"X", 5, header=POSS_DUP))
    assert session.delivered == [2, 4, 5, 6]
    assert lost == []


def test_a_resend_that_does_not_come_is_reported_once() -> None:
    session, lost = _watched(heartbeat_s=60)
    session.feed(peer(b"X", 4))  # 2 and 3 missing
    session.tick(NOW + RESEND_WAIT_S / 2)
    assert lost == []
    session.tick(NOW + RESEND_WAIT_S)
    session.state.abandon_resend("the connection closed")
    assert lost == [(2, 3, f"no resend within {RESEND_WAIT_S:g} s")]
    fresh, lost = _watched()
    fresh.feed(peer(b"X", 3))
    fresh.state.abandon_resend("the connection closed before the resend arrived")
    assert lost == [(2, 2, "the connection closed before the resend arrived")]


def test_the_partition_marks_every_subscribed_symbol_before_the_next_message(tmp_path) -> None:
    session = LiveSession(
        SessionConfig("BF", "VENUE", port=1, store_dir=str(tmp_path), reconnect_min_s=60),
        symbols=("AAPL", "MSFT"),
    )
    part = _LivePartition(session, None, stop=__import__("threading").Event(), until=None)
    try:
        before, after = AppBatch(), AppBatch()
        before.seqs, before.messages = [2], [b"8=FIX.4.4\x0135=X\x01"]
        after.seqs, after.messages = [6], [b"8=FIX.4.4\x0135=X\x01"]
        after.gaps = [(0, 3, 5, "gap-filled, no message resent")]
        assert part._offer(before) and part._offer(after)
        [chunk] = part._take()
    finally:
        part.close()
    assert chunk.first_line_no == 2 and len(chunk.lines) == 2
    assert [(i, e.symbol, e.reason) for i, e in chunk.damaged] == [
        (1, "AAPL", "session_gap"), (1, "MSFT", "session_gap"),
    ]  # fmt: skip
    assert all(isinstance(e, BookDamaged) for _, e in chunk.damaged)
    assert "MsgSeqNum 3..5 lost" in chunk.damaged[0][1].detail


def test_the_decoder_puts_the_damage_between_the_messages_around_the_gap() -> None:
    from brokerflow.settings import Settings
    from connectors.raw import RawChunk
    from flows.context import FlowContext
    from flows.operators import make_decoder
    from simulator.market import MarketSimulator

    lines = [m for _, m in MarketSimulator(2, seed=3).messages(limit=6)]
    damage = BookDamaged("AAPL", NOW, "session_gap", "MsgSeqNum 3..5 lost")
    chunk = RawChunk("fix:simx", 10, lines, ((4, damage),))
    batch = make_decoder(FlowContext(Settings(), "redis://unused", "postgresql://unused"))(chunk)
    kinds = [type(e).__name__ for e in batch.events]
    assert kinds.index("BookDamaged") == 4 and len(kinds) == len(lines) + 1
    assert batch.seqs[4] == 14 and batch.messages == len(lines)
