"""`brokerflow bench stops` at tiny sizes: the parts run and measure something real.

No timings are asserted (shared machines); the counts, the latency samples and the result
file's shape are.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import bench.common
import bench.stops
from bench.stops import ensure_flow_files, run, run_engine, run_flow, stop_specs
from domain.stops import StopBook
from simulator.market import symbol_names

CONTRACT_KEYS = {"name", "unit", "value", "goal", "yardsticks", "machine", "python_loop_mops",
                 "date", "commit"}  # fmt: skip


def test_stop_mix_has_every_kind_on_both_sides_on_the_right_side_of_the_price():
    names = symbol_names(20)
    ticks = [10_000 + 100 * i for i in range(20)]
    specs = list(stop_specs(2_000, names, ticks, random.Random(1), 0.005, 0.05))
    assert Counter(s.ord_type for s in specs).keys() == {"3", "4", "P"}
    assert Counter(s.side for s in specs).keys() == {"1", "2"}
    assert len({s.cl_ord_id for s in specs}) == 2_000
    for s in specs:
        if s.ord_type != "P":
            last = ticks[names.index(s.symbol)]
            assert (s.stop_ticks > last) if s.side == "1" else (s.stop_ticks < last)
    book = StopBook()
    for name, t in zip(names, ticks, strict=True):
        book.on_quote(name, 1, bid=(t - 1) / 100, ask=t / 100, last=t / 100)
    outcomes = [book.submit(bench.stops.stop_order(s), 2)[-1] for s in specs]
    assert {type(o).__name__ for o in outcomes} == {"Accepted"}


def test_engine_fires_triggers_and_times_them():
    r = run_engine(stops=2_000, symbols=20, quotes=5_000, say=lambda _: None, chunk=1_000)
    assert (r.accepted, r.rejected, r.quotes) == (2_000, 0, 5_000)
    assert r.triggers > 0
    assert 0 < len(r.latencies_ns) <= r.triggers
    assert all(ns > 0 for ns in r.latencies_ns)
    assert r.latency(50) <= r.latency(99)
    assert r.quotes_per_s > 0 and len(r.window_rates) == 0  # 5,000 < one window


def test_flow_replay_triggers_children_and_times_them(settings_factory, tmp_path):
    settings = settings_factory()
    files = ensure_flow_files(2_000, 20, 3_000, say=lambda _: None, data_dir=tmp_path)
    assert files.prefix_with == 2_020 and files.prefix_without == 20
    flow = run_flow(files.with_stops, files.prefix_with, settings, tmp_path / "out.fix")
    stops = flow.summary["stops"]
    assert stops["accepted"] == 2_000
    assert stops.get("triggered", 0) > 0
    assert flow.children == stops["triggered"]
    assert len((tmp_path / "out.fix").read_bytes().splitlines()) == flow.children
    assert 0 < len(flow.latencies_ns) <= flow.children
    assert flow.summary["messages"] == 2_020 + 3_000
    assert 0 < flow.market_seconds <= flow.seconds


def test_run_prints_the_table_and_writes_the_contract_json(
    settings_factory, tmp_path, monkeypatch, capsys
):
    settings = settings_factory()
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path / "results")
    # The test's own stores, not the benchmark database and Redis db.
    monkeypatch.setattr(bench.stops, "fresh_database", lambda dsn: dsn)
    monkeypatch.setattr(bench.stops, "_bench_settings", lambda s: s)
    result = run(settings, stops=2_000, symbols=20, quotes=5_000, flow_stops=500,
                 flow_quotes=2_000, say=lambda _: None, data_dir=tmp_path)  # fmt: skip
    doc = json.loads((tmp_path / "results" / "stops.json").read_text())
    assert set(doc) == CONTRACT_KEYS
    assert (doc["name"], doc["unit"], doc["goal"]) == ("stops", "quotes/s", 100_000)
    assert doc["value"] == result["value"] > 0
    y = doc["yardsticks"]
    assert y["engine_stops_resting"] == 2_000 and y["engine_triggers"] > 0
    assert y["flow_stops_accepted"] == 500 and y["flow_market_messages"] == 2_000
    assert y["flow_quotes_per_s"] > 0 and y["flow_no_stops_quotes_per_s"] > 0
    table = capsys.readouterr().out
    assert "yardstick: same stream, no stops" in table
    assert "memory per resting stop" in table
