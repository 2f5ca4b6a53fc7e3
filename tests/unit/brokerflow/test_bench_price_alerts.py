"""`brokerflow bench price-alerts` at tiny sizes: it runs, fires, and writes the contract's file.

No timings are asserted (shared machines); the counts and the result file's shape are.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

import pytest

import bench.common
import bench.price_alerts
from bench.command import BENCHMARKS
from bench.price_alerts import make_alerts, quote_stream

CONTRACT_KEYS = {"name", "unit", "value", "goal", "yardsticks", "machine", "python_loop_mops",
                 "date", "commit"}  # fmt: skip


def test_price_alert_mix_waits_on_the_right_side() -> None:
    rng = random.Random(1)
    names, opens, closes, syms, pxs = quote_stream(5, 100, rng)
    assert len(syms) == len(pxs) == 100 and set(syms) == set(names)
    alerts = make_alerts(1_000, names, opens, closes, rng)
    kinds = Counter(a.condition for a in alerts)
    assert set(kinds) == {"ltp_above", "ltp_below", "change_pct_above", "change_pct_below"}
    for a in alerts:
        s = names.index(a.symbol)
        level = (float(a.value) if a.condition.startswith("ltp")
                 else closes[s] * (1 + float(a.value) / 100))  # fmt: skip
        assert level > opens[s] if a.condition.endswith("above") else level < opens[s]


def test_bench_price_alerts_writes_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "price-alerts" in BENCHMARKS
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    args = argparse.Namespace(price_alerts_count=5_000, price_alerts_symbols=10,
                              price_alerts_quotes=20_000, price_alerts_flow=False)  # fmt: skip
    figures = bench.price_alerts.run(None, args)
    doc = json.loads((tmp_path / "price-alerts.json").read_text())
    assert set(doc) == CONTRACT_KEYS and doc["name"] == "price-alerts" and doc["goal"] == 0.9
    assert doc["yardsticks"] == figures and figures["end_to_end"] is False
    assert doc["value"] == figures["engine_with_over_without"]
    assert figures["engine_alerts_resting"] == 5_000
    assert 0 < figures["engine_alerts_fired"] < 5_000
    assert "ENGINE ONLY" in capsys.readouterr().out
