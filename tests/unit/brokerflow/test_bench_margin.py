"""`brokerflow bench margin` at a tiny size: the engine stream raises real calls and is timed;
the full flow is the result's headline, next to the same file through quotes alone.

No timings are asserted (shared machines); the accounts, the calls, the latency samples and
the result file's shape are.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal

import numpy as np
import psycopg

import bench.common
import bench.margin
from bench.margin import DEFAULTS, account_specs, options, run
from brokerflow.cli import build_parser
from brokerflow.settings import Settings
from domain.margin import MarginPolicy, margin_figures
from sinks.postgres import migrate

CONTRACT_KEYS = {"name", "unit", "value", "goal", "yardsticks", "machine", "python_loop_mops",
                 "date", "commit"}  # fmt: skip


def test_accounts_are_healthy_and_the_near_ones_are_just_above_maintenance():
    ticks = [500 + 37 * i for i in range(40)]
    specs = list(account_specs(400, 8, ticks, 0.25, np.random.default_rng(3)))
    assert len({s.account for s in specs}) == 400
    assert 50 < sum(s.near for s in specs) < 150
    no_addon = MarginPolicy(concentration=())  # the flow's default (no add-on rate)
    for s in specs:
        assert len({sym for sym, _ in s.holdings}) == 8
        holdings = {str(sym): Decimal(q) for sym, q in s.holdings}
        marks = {str(sym): Decimal(ticks[sym]).scaleb(-2) for sym, _ in s.holdings}
        f = margin_figures(Decimal(s.cash_cents).scaleb(-2), holdings, marks, policy=no_addon)
        assert f.excess > 0  # nobody starts in deficit
        if s.near:
            assert f.excess <= Decimal("0.0001") * f.gross_value + Decimal("0.01")
        else:
            assert f.ratio >= Decimal("0.45")


def test_options_are_the_margin_benchmarks_own():
    # `--quotes` and `--symbols` are the stops benchmark's: margin's sizes are `--margin-*` only.
    args = build_parser().parse_args(
        ["bench", "margin", "--quotes", "11", "--margin-symbols", "9", "--margin-accounts", "7"]
    )
    o = options(args)
    assert (o["accounts"], o["symbols"], o["quotes"]) == (7, 9, DEFAULTS["quotes"])
    assert args.quotes == 11
    assert options(None) == DEFAULTS


def test_tiny_run_calls_the_accounts_built_to_breach_and_writes_the_result(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    args = argparse.Namespace(
        margin_accounts=400, margin_holdings=5, margin_symbols=50, margin_quotes=20_000,
        margin_seconds=60.0, margin_batch=100, margin_near=0.2, margin_flow_accounts=0,
    )  # fmt: skip
    out = run(Settings(), args, say=lambda _: None)

    assert out["batch_full_recompute_deficits"] == 0  # healthy at the opening marks
    assert out["engine_positions"] == 400 * 5
    assert out["engine_margin_calls"] > 0
    assert out["called"] and out["called"] <= out["near"]  # only accounts built to breach
    assert out["engine_accounts_called_not_built_to_breach"] == 0
    assert out["engine_margin_call_latency_samples"] == out["engine_margin_calls"]
    assert (out["engine_margin_call_latency_p99_ms"]
            >= out["engine_margin_call_latency_p50_ms"] > 0)  # fmt: skip
    # The screen: far fewer exact evaluations than mark deliveries (every shard gets every mark).
    assert 0 < out["engine_evaluations"] < out["engine_marks_fanned_out"]
    assert out["engine_stream_quotes"] == 20_000 and out["engine_stream_stopped_by"] == "quotes"

    doc = json.loads((tmp_path / "margin.json").read_text())
    assert set(doc) == CONTRACT_KEYS
    assert doc["name"] == "margin" and doc["unit"] == "messages/s" and doc["goal"] == 100_000
    assert doc["value"] is None  # the full flow was skipped: no headline figure
    y = doc["yardsticks"]
    assert y["engine_margin_calls"] == out["engine_margin_calls"]
    assert "no Bytewax" in y["engine_only"]
    assert not any(k.startswith("scaled_") for k in y)  # no 2-process part any more


def test_full_flow_is_the_headline_next_to_quotes_alone(
    settings_factory, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    settings = settings_factory()
    migrate(settings.postgres_dsn)
    # The test's own stores, not the benchmark database and Redis db.
    monkeypatch.setattr(bench.margin, "_bench_settings", lambda s: s)
    args = argparse.Namespace(
        margin_accounts=200, margin_holdings=5, margin_symbols=20, margin_quotes=2_000,
        margin_seconds=60.0, margin_batch=100, margin_near=0.2, margin_flow_accounts=50,
        margin_flow_quotes=3_000,
    )  # fmt: skip
    out = run(settings, args, say=lambda _: None)
    doc = json.loads((tmp_path / "margin.json").read_text())
    y = doc["yardsticks"]
    assert doc["value"] == y["flow_messages_per_s"] == out["value"] > 0
    assert y["flow_messages"] == 20 + 3_000 and y["flow_accounts"] == 50
    assert y["flow_positions"] == 50 * 5
    assert y["flow_quotes_only_messages_per_s"] > 0 and y["flow_dead_letters"] == 0
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute("SELECT count(*) FROM account_margin").fetchone()[0]
    assert rows > 0  # the flow's sink wrote figures
    table = capsys.readouterr().out
    assert "FULL FLOW: replay quotes+margin, 50 accounts" in table
    assert "yardstick: the same file, quotes alone" in table
    assert "engine only: 2,000 quotes, 200 accounts" in table
