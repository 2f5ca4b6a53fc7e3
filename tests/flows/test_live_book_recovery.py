"""Issue 21, live: the exchange simulator loses incrementals, the run's books turn stale (an
RptSeq (83) gap), the run asks for a snapshot (35=V 263=0) and the venue's 35=W makes them sound
again, with no periodic snapshot to wait for."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis

from brokerflow.commands.run import run_sessions
from connectors.fix.live import load_live_sessions
from simulator.exchange import ExchangeCore
from simulator.exchange_server import ExchangeThread, default_sessions

SYMBOLS = ("AAPL", "MSFT", "NVDA")


@pytest.fixture
def exchange():
    # No periodic snapshots: only a requested one can make a book sound again.
    core = ExchangeCore(4, time.time_ns(), rate_per_symbol=20, orders_per_minute=0, run_id="SXB")
    thread = ExchangeThread(core, default_sessions())
    thread.start()
    yield thread
    thread.stop()


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(
        '[[fix.session]]\nname = "simx"\nsender_comp_id = "BROKERFLOW"\n'
        f'target_comp_id = "SIMX"\nport = {port}\nheartbeat_s = 5\n'
        f'purpose = ["market-data"]\nsymbols = {json.dumps(list(SYMBOLS))}\n'
        "snapshot_min_interval_s = 1.0\n"
    )
    return path


def _watch(
    exchange: ExchangeThread, client: redis.Redis, seen: list[dict], done: threading.Event
) -> None:
    """Once AAPL's quote is in Redis: lose half the 35=X until quote:AAPL is flagged stale (the
    requested snapshots make it sound, the next loss stale again: long enough to be published),
    then lose none, and watch it until it is unflagged."""
    market = exchange.server.core.market
    deadline = time.monotonic() + 20

    def look() -> dict | None:
        raw = client.get("quote:AAPL")
        quote = None if raw is None else json.loads(raw)
        if quote is not None and (not seen or quote != seen[-1]):
            seen.append(quote)
        return quote

    while time.monotonic() < deadline and look() is None:
        time.sleep(0.02)
    # The exchange's thread reads it per message (a float assignment: atomic).
    market.drop_share = 0.5
    while time.monotonic() < deadline and not (look() or {}).get("stale"):
        time.sleep(0.01)
    market.drop_share = 0.0
    seen.append({"drops": "stopped"})
    while time.monotonic() < deadline and (look() or {}).get("stale"):
        time.sleep(0.01)
    done.set()  # the run ends (its sessions log out)


def test_a_stale_book_is_recovered_by_the_snapshot_the_run_asks_for(
    settings_factory, tmp_path, exchange
):
    settings = settings_factory()
    client = redis.Redis.from_url(settings.redis_url)
    seen: list[dict] = []
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(exchange, client, seen, done), daemon=True)
    watcher.start()
    sessions = load_live_sessions(_config(tmp_path, exchange.port))
    # `brokerflow run --config` (its run_sessions), stopped once the watcher has seen it all
    summary = run_sessions(
        settings, sessions, seconds=25, stop=done, progress=False, flows=["quotes"]
    )
    watcher.join(5)
    assert summary.counts.get("quotes_published", 0) > 0
    core = exchange.server.core
    assert core.market.dropped > 0
    stopped = seen.index({"drops": "stopped"})
    stale = [q for q in seen[:stopped] if q.get("stale")]
    assert stale, f"quote:AAPL never flagged stale: {seen[-3:]}"
    assert stale[-1]["stale_reason"] == "rptseq_gap" and stale[-1]["stale_since"] > 0
    # Once nothing is lost, only a snapshot can make it sound, and only a requested one comes.
    after = seen[stopped + 1 :]
    assert after and not after[-1].get("stale"), f"still stale: {seen[-3:]}"
    requested = [symbols for _, symbols in core.snapshot_requests]
    assert any(b"AAPL" in symbols for symbols in requested)
    assert all(set(symbols) <= {s.encode() for s in SYMBOLS} for symbols in requested)
