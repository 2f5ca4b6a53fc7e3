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
                 "date", "commit"}  # fmt: skip
# The ExecTypes (150) the surveillance models take, with an Account (1): new, cancelled,
# replaced, trade, and expired, rejected, done for the day (which take an order off the book).
MODEL_EXEC_TYPES = {"0", "4", "5", "F", "C", "8", "3"}


def reports_the_models_process(path) -> int:  # noqa: ANN001
    """35=8 lines of the file with a routed ExecType and an Account, read from the raw text."""
    n = 0
    for line in path.read_bytes().splitlines():
        fields = dict(f.split(b"=", 1) for f in line.split(b"\x01") if b"=" in f)
        if fields.get(b"35") == b"8" and fields.get(b"1") and (
            fields.get(b"150", b"").decode() in MODEL_EXEC_TYPES
        ):
            n += 1
    return n
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
    assert (doc["name"], doc["unit"], doc["goal"]) == ("surveillance", "reports/s", 20_000)
    assert doc["value"] == result["value"] > 0
    y = doc["yardsticks"]
    types = y["messages_by_type"]
    assert y["order_messages"] == sum(n for t, n in types.items() if t in ORDER_TYPES) > 0
    # The figure counts the execution reports the models process, read independently from the
    # file: not the client 35=D/F/G (no model sees them), not the 35=8 without an Account or of
    # an ExecType the models ignore.
    path = tmp_path / y["file"]
    assert y["reports_too_late"] == 0
    assert y["reports_to_models"] == reports_the_models_process(path)
    assert 0 < y["reports_to_models"] < types["8"] < y["order_messages"]
    assert y["end_to_end_reports_per_s"] == doc["value"]
    assert y["dead_letters"] == 0
    # The flow and the bare models see the same stream and owners: the same alerts.
    assert y["alerts_by_kind"] == y["models_alone_findings"]
    assert y["alerts_new_in_run"] == y["alerts_by_kind"]
    assert y["models_off_reports_per_s"] > 0 and y["models_alone_reports_per_s"] > 0
    assert y["rss_samples"] > 0
    assert 0 < y["rss_start_mib"] <= y["rss_peak_mib"] and y["rss_end_mib"] <= y["rss_peak_mib"]
    table = capsys.readouterr().out
    assert "yardstick: same file, models off" in table
    assert f"end to end: {y['reports_to_models']:,} execution reports to the models" in table
    assert "RSS end" in table and "state at the middle" in table
