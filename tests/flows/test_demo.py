"""`brokerflow demo`: the exchange simulator over a real FIX session reaches Redis and
PostgreSQL, and the summary says so."""

from __future__ import annotations

import json

import redis

from brokerflow.cli import main
from simulator.market import symbol_names


def test_demo_runs_live_and_stops_with_a_summary(settings_factory, monkeypatch, capsys):
    settings = settings_factory()
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    assert main(["demo", "--seconds", "4", "--symbols", "5", "--rate", "20",
                 "--orders-per-minute", "1200", "--metrics-port", "0", "--json"]) == 0
    out = capsys.readouterr().out
    assert "FIX 4.4 acceptor SIMX on 127.0.0.1:" in out
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
