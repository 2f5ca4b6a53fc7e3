"""`brokerflow bench surveillance` at tiny sizes: the parts run and measure something real.

No timings are asserted (shared machines); the counts, the alerts, the memory samples and the
result file's shape are.
"""

from __future__ import annotations

import json

import bench.common
import bench.surveillance
from bench.surveillance import ORDER_TYPES, count_types, ensure_file, run, run_models
from sinks.postgres import migrate

CONTRACT_KEYS = {"name", "unit", "value", "goal", "yardsticks", "machine", "python_loop_mops",
                 "date"}  # fmt: skip
SIZE = {"minutes": 3, "orders_per_minute": 600, "accounts": 100, "symbols": 5}


def test_file_is_cached_and_models_alone_see_its_execution_reports(tmp_path):
    path = ensure_file(**SIZE, say=lambda _: None, data_dir=tmp_path)
    assert ensure_file(**SIZE, say=lambda _: None, data_dir=tmp_path) == path  # cached
    types = count_types(path)
    assert {"8", "D", "X"} <= types.keys()
    owners = {"ACC00001": "OWN0001"}
    models = run_models(path, owners, say=lambda _: None)
    assert 0 < models.reports_seen <= types["8"]
    assert models.market_trades > 0
    assert models.sizes.keys() == {"start", "middle", "end"}
    assert models.sizes["end"]["order_to_trade"] == 0  # the day was judged at the end of input
    assert models.sizes["end"]["round_trips"] > 0


def test_run_prints_the_table_and_writes_the_contract_json(
    settings_factory, tmp_path, monkeypatch, capsys
):
    settings = settings_factory()
    migrate(settings.postgres_dsn)
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path / "results")
    # The test's own stores, not the benchmark database and Redis db.
    monkeypatch.setattr(bench.surveillance, "_bench_settings", lambda s: s)
    result = run(settings, **SIZE, say=lambda _: None, data_dir=tmp_path)
    doc = json.loads((tmp_path / "results" / "surveillance.json").read_text())
    assert set(doc) == CONTRACT_KEYS
    assert (doc["name"], doc["unit"], doc["goal"]) == ("surveillance", "order events/s", 20_000)
    assert doc["value"] == result["value"] > 0
    y = doc["yardsticks"]
    types = y["messages_by_type"]
    assert y["order_events"] == sum(n for t, n in types.items() if t in ORDER_TYPES) > 0
    assert y["dead_letters"] == 0
    # The flow and the bare models see the same stream and owners: the same alerts.
    assert y["alerts_by_kind"] == y["models_alone_findings"]
    assert y["alerts_new_in_run"] == y["alerts_by_kind"]
    assert y["models_off_order_events_per_s"] > 0 and y["models_alone_reports_per_s"] > 0
    assert y["rss_samples"] > 0
    assert 0 < y["rss_start_mib"] <= y["rss_peak_mib"] and y["rss_end_mib"] <= y["rss_peak_mib"]
    table = capsys.readouterr().out
    assert "yardstick: same file, models off" in table
    assert "RSS end" in table and "state at the middle" in table
