"""`brokerflow bench margin` at a tiny size: the stream raises real calls and is timed.

No timings are asserted (shared machines); the accounts, the calls, the latency samples and
the result file's shape are.
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal

import numpy as np

import bench.common
from bench.margin import account_specs, add_arguments, options, run
from brokerflow.settings import Settings
from domain.margin import MarginPolicy, margin_figures

CONTRACT_KEYS = {"name", "unit", "value", "goal", "yardsticks", "machine", "python_loop_mops",
                 "date"}  # fmt: skip


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


def test_options_take_margin_names_and_shared_names_of_another_benchmark():
    p = argparse.ArgumentParser()
    p.add_argument("--quotes", type=int, default=1_000_000)  # owned by the stops benchmark
    add_arguments(p)
    args = p.parse_args(["--accounts", "7", "--margin-symbols", "9", "--quotes", "11"])
    o = options(args)
    assert (o["accounts"], o["symbols"], o["quotes"]) == (7, 9, 11)
    assert options(None)["accounts"] == 1_000_000


def test_tiny_run_calls_the_accounts_built_to_breach_and_writes_the_result(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    args = argparse.Namespace(
        margin_accounts=400, margin_holdings=5, margin_symbols=50, margin_quotes=20_000,
        margin_seconds=60.0, margin_batch=100, margin_near=0.2, margin_flow_accounts=0,
        margin_processes=2,
    )  # fmt: skip
    out = run(Settings(), args, say=lambda _: None)

    assert out["batch_full_recompute_deficits"] == 0  # healthy at the opening marks
    assert out["positions"] == 400 * 5
    assert out["margin_calls"] > 0
    assert out["called"] and out["called"] <= out["near"]  # only accounts built to breach
    assert out["accounts_called_not_built_to_breach"] == 0
    assert out["margin_call_latency_samples"] == out["margin_calls"]
    assert out["margin_call_latency_p99_ms"] >= out["margin_call_latency_p50_ms"] > 0
    # The screen: far fewer exact evaluations than mark deliveries (every shard gets every mark).
    assert 0 < out["evaluations"] < out["marks_fanned_out"]
    assert out["stream_quotes"] == 20_000 and out["stream_stopped_by"] == "quotes"
    # Two processes with half the account shards each decide exactly what one process does.
    assert out["scaled_processes"] == 2
    assert out["scaled_alerts"] == out["alerts"]
    assert out["scaled_evaluations"] == out["evaluations"]

    doc = json.loads((tmp_path / "margin.json").read_text())
    assert set(doc) == CONTRACT_KEYS
    assert doc["name"] == "margin" and doc["unit"] == "quotes/s" and doc["goal"] == 100_000
    assert doc["value"] > 0
    assert doc["yardsticks"]["margin_calls"] == out["margin_calls"]
