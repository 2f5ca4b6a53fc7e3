"""The live FIX source on a quiet market (`connectors.fix.live`): once no message has come for
`QUIET_AFTER_S`, an empty read waits for the next message instead of returning at once (the
worker sleeps there, not in Bytewax's millisecond loop), and the message that ends the quiet
is returned by that same read. Against the exchange simulator over loopback."""

from __future__ import annotations

import threading
import time

import pytest

import connectors.fix.live as live
from connectors.fix.live import FixSessionSource, LiveSession
from connectors.fix.session import SessionConfig
from simulator.exchange import ExchangeCore
from simulator.exchange_server import ExchangeThread, default_sessions
from tests.eventually import eventually

LONG_WAIT_S = 20.0  # the test's wait: a read that returns well before it was woken


@pytest.fixture
def quiet_exchange():
    core = ExchangeCore(2, time.time_ns(), rate_per_symbol=20, orders_per_minute=0)
    exchange = ExchangeThread(core, default_sessions())
    exchange.start()
    exchange.server.quiet = True  # snapshots on subscription, then nothing but heartbeats
    yield exchange
    exchange.stop()


def _read_until(part, predicate, timeout_s: float = 10.0) -> list[bytes]:
    lines: list[bytes] = []

    def read() -> bool:
        for chunk in part.next_batch():
            lines.extend(chunk.lines)
        return predicate(lines)

    eventually(read, timeout_s, 0.01, "the lines expected", describe=lambda: f"read {lines!r}")
    return lines


def test_a_message_after_the_quiet_is_returned_by_the_read_that_waited(quiet_exchange, monkeypatch):
    monkeypatch.setattr(live, "QUIET_WAIT_S", LONG_WAIT_S)
    session = LiveSession(
        SessionConfig("BROKERFLOW", "SIMX", port=quiet_exchange.port, heartbeat_s=30),
        symbols=("AAPL", "MSFT"),
    )
    stop = threading.Event()
    part = FixSessionSource([session], stop).build_part("in", session.name, None)
    try:
        snapshots = _read_until(part, lambda lines: len(lines) >= 2)
        assert [b"\x0135=W\x01" in m for m in snapshots] == [True, True]
        # Quiet for QUIET_AFTER_S: the next read waits. A trade comes meanwhile.
        eventually(part._doorbell.quiet, 10, 0.05, "the session quiet")  # noqa: SLF001
        trade = [(268, b"1"), (279, b"0"), (269, b"2"), (55, b"AAPL"), (270, b"190.5"),
                 (271, b"100")]  # fmt: skip
        threading.Timer(0.3, quiet_exchange.inject, (b"X", trade)).start()
        started = time.monotonic()
        chunks = part.next_batch()
        waited = time.monotonic() - started
        assert [b"270=190.5" in m for c in chunks for m in c.lines] == [True]
        assert waited < LONG_WAIT_S / 2  # woken by the message, not by the end of the wait
    finally:
        stop.set()
        part.close()
