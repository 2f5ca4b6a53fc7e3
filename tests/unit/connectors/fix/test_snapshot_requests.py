"""Stale books ask the venue for snapshots (issue 21): the rate limit, and the request handed
from a worker thread to the market-data session's loop, which sends a 35=V 263=0."""

from __future__ import annotations

import threading
import time

import pytest

from connectors.fix.live import FixSessionSource, LiveSession, live_session_from_mapping
from connectors.fix.session import SessionConfig
from connectors.fix.snapshot_requests import SnapshotLimiter
from domain.errors import ConfigError
from simulator.exchange import ExchangeCore
from simulator.exchange_server import ExchangeThread, default_sessions
from tests.eventually import eventually


def test_a_symbol_is_asked_for_at_most_once_per_interval_and_messages_are_capped() -> None:
    limiter = SnapshotLimiter(min_interval_s=2.0, max_symbols=2)
    limiter.ask(["MSFT", "AAPL", "NVDA"])
    assert limiter.take(100.0) == [["AAPL", "MSFT"], ["NVDA"]]
    limiter.ask(["AAPL", "AAPL", "TSLA"])
    assert limiter.take(101.0) == [["TSLA"]]  # AAPL went out a second ago
    assert limiter.waiting == {"AAPL"} and limiter.next_due() == 102.0
    assert limiter.take(101.9) == []
    assert limiter.take(102.0) == [["AAPL"]] and limiter.next_due() is None
    assert limiter.requested == 5


def test_the_settings_are_checked() -> None:
    table = {"sender_comp_id": "BF", "target_comp_id": "V", "symbols": ["AAPL"]}
    session = live_session_from_mapping(
        {**table, "snapshot_min_interval_s": 0.5, "snapshot_max_symbols": 10}
    )
    assert (session.snapshot_min_interval_s, session.snapshot_max_symbols) == (0.5, 10)
    with pytest.raises(ConfigError, match="snapshot_max_symbols = 0"):
        live_session_from_mapping({**table, "snapshot_max_symbols": 0})
    with pytest.raises(ConfigError, match="snapshot_min_interval_s = 'x'"):
        live_session_from_mapping({**table, "snapshot_min_interval_s": "x"})


def test_a_worker_threads_request_goes_out_on_the_session_that_subscribed() -> None:
    core = ExchangeCore(4, time.time_ns(), rate_per_symbol=5, orders_per_minute=0)
    exchange = ExchangeThread(core, default_sessions())
    port = exchange.start()
    session = LiveSession(
        SessionConfig("BROKERFLOW", "SIMX", port=port, heartbeat_s=5, name="md"),
        symbols=("AAPL", "MSFT"), snapshot_min_interval_s=0.3,
    )  # fmt: skip
    stop = threading.Event()
    source = FixSessionSource([session], stop)
    part = source.build_part("read_fix", "md", None)
    try:
        app_key = ("FIX.4.4", "SIMX", "BROKERFLOW")
        app = exchange.server.apps.get
        eventually(lambda: getattr(app(app_key), "subscribed", 0), what="the session subscribed")
        # From another thread, as the quotes flow's worker calls it; GOOGL is not subscribed.
        worker = threading.Thread(target=source.request_snapshot, args=(["MSFT", "GOOGL", "AAPL"],))
        worker.start()
        worker.join()
        eventually(lambda: len(core.snapshot_requests) == 1, what="the first snapshot request")
        req_id, symbols = core.snapshot_requests[0]
        assert symbols == (b"AAPL", b"MSFT") and req_id.startswith(b"md-snap-")
        # Asked again: AAPL goes out alone (once its interval has passed), a new MDReqID.
        source.request_snapshot(["AAPL"])
        eventually(lambda: len(core.snapshot_requests) == 2, what="the second snapshot request")
        assert core.snapshot_requests[1][1] == (b"AAPL",) and core.snapshot_requests[1][0] != req_id
        # The answers come in the partition's stream: 35=W with their RptSeq (83).
        lines: list[bytes] = []

        def answered() -> bool:
            for chunk in part.next_batch():
                lines.extend(chunk.lines)
            return sum(b"\x0135=W\x01" in line and b"\x0183=" in line for line in lines) >= 5

        eventually(answered, what="5 snapshots with RptSeq")  # 2 on subscribing, 3 on request
    finally:
        stop.set()
        part.close()
        exchange.stop()
