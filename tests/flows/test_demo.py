"""`brokerflow demo`: the exchange simulator over a real FIX session reaches Redis and
PostgreSQL, and the summary says so."""

from __future__ import annotations

import json
import threading
import time

import httpx
import redis

from brokerflow.cli import main
from edge.tokens import edge_secret, issue_token
from simulator.market import symbol_names
from tests.edge.conftest import free_port


def _ask_workbench(port: int, token: str, answers: list, stop: threading.Event) -> None:
    """Poll the demo's workbench API until it answers (it starts with the flows)."""
    while not stop.is_set() and not answers:
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
                queue = api.get("/api/alerts", params={"token": token})
                page = api.get("/queue.html")
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        answers.append((queue.status_code, "counts" in queue.json(), page.status_code))


def test_demo_runs_live_and_stops_with_a_summary(settings_factory, monkeypatch, capsys):
    settings = settings_factory()
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    console_port = free_port()
    token = issue_token(edge_secret(None, settings.data_dir), "ann", "analyst", [],
                        int(time.time()), 600)  # fmt: skip
    answers: list = []
    stop = threading.Event()
    asker = threading.Thread(target=_ask_workbench, args=(console_port, token, answers, stop))
    asker.start()
    try:
        assert main(["demo", "--seconds", "6", "--symbols", "5", "--rate", "20",
                     "--orders-per-minute", "1200", "--metrics-port", "0", "--json",
                     "--console-port", str(console_port),
                     "--data-dir", str(settings.data_dir)]) == 0  # fmt: skip
    finally:
        stop.set()
        asker.join(10)
    out = capsys.readouterr().out
    assert "FIX 4.4 acceptor SIMX on 127.0.0.1:" in out
    # The workbench served the queue from inside the demo (which holds the chdb store).
    assert f"workbench-> http://127.0.0.1:{console_port}/?token=" in out
    assert answers == [(200, True, 200)]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["files"] == ["fix:demo"] and summary["executions"] > 0
    assert summary["messages"] > 20 and summary["dead_letters"] == 0
    assert summary["symbols"] == 5 and summary["quotes"] > 0
    r = redis.Redis.from_url(settings.redis_url)
    for symbol in symbol_names(5):
        quote = json.loads(r.get(f"quote:{symbol}"))
        assert quote["bid"] < quote["ask"]
    assert r.xlen("stream:quotes") == summary["quotes"]


def test_demo_rejects_bad_arguments_in_one_line(capsys):
    assert main(["demo", "--seconds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "positive" in err[0]
