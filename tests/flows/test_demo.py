"""`brokerflow demo`: a live simulated market reaches Redis and the summary says so."""

from __future__ import annotations

import json

import redis

from brokerflow.cli import main
from simulator.market import symbol_names


def test_demo_runs_live_and_stops_with_a_summary(settings_factory, monkeypatch, capsys):
    settings = settings_factory()
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    assert main(["demo", "--seconds", "2", "--symbols", "5", "--rate", "20", "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
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
