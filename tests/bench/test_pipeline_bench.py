"""`brokerflow bench pipeline` at a tiny size, into the test's stores: the result file says what
the run did, and bad input stops it with one line before anything is measured."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import psycopg
import pytest

import bench.common
import bench.pipeline
from bench.pipeline_day import DaySpec, ensure_day
from brokerflow.cli import main

pytestmark = pytest.mark.slow

TINY = ["--pipeline-symbols", "6", "--pipeline-minutes", "2", "--pipeline-accounts", "120",
        "--pipeline-stops", "300"]  # fmt: skip


@pytest.fixture
def bench_env(tmp_path, monkeypatch, postgres_dsn, redis_url):
    """The bench's days, results and database are this test's own."""
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", redis_url)
    monkeypatch.setattr(bench.common, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path / "results")
    database = f"bench_pipeline_test_{secrets.token_hex(4)}"
    monkeypatch.setattr(bench.pipeline, "BENCH_DATABASE", database)
    yield tmp_path
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _bench(tmp_path: Path, *argv: str) -> int:
    return main(["bench", "pipeline", "--data-dir", str(tmp_path / "brokerflow"), *argv])


def test_bench_pipeline_writes_every_figure_of_the_run(bench_env, capsys):
    assert _bench(bench_env, *TINY, "--pipeline-rounds", "2") == 0
    doc = json.loads((bench_env / "results" / "pipeline.json").read_text())
    assert {"name", "unit", "value", "goal", "yardsticks", "machine", "date", "commit"} <= set(doc)
    assert (doc["name"], doc["unit"], doc["goal"]) == ("pipeline", "msg/s", 40_000)
    y = doc["yardsticks"]
    day = y["day"]
    assert y["messages"] == sum(day["messages_by_type"].values()) > 0
    assert doc["value"] > 0 and y["quotes_only_msgs_per_s"] > 0
    assert y["ratio_to_quotes_only"] == pytest.approx(doc["value"] / y["quotes_only_msgs_per_s"],
                                                      rel=0.01)  # fmt: skip
    # two rounds of each replay; the figures are the median (upper) round's
    assert y["rounds"] == 2
    assert doc["value"] == max(y["all_flows_round_msgs_per_s"])
    assert y["quotes_only_msgs_per_s"] == max(y["quotes_only_round_msgs_per_s"])
    assert len(y["round_ratios"]) == 2
    # each round started from empty stores, the order file included: the same children sent
    children = y["all_flows_round_child_orders_out"]
    assert children == [y["child_orders_out"]] * 2 and children[0] > 0
    # every flow did its work: executions booked, stops fired, patterns caught
    assert y["executions"] == day["messages_by_type"]["8"]
    assert y["stops"]["triggered"] > 0 and y["alerts_by_kind"]["STOP_TRIGGERED"] > 0
    assert {"WASH_TRADE", "SPOOFING", "EXCESSIVE_OTR", "PUMP_AND_DUMP",
            "MARKING_THE_CLOSE"} <= set(y["alerts_by_kind"])  # fmt: skip
    assert y["alerts_total"] == sum(y["alerts_by_kind"].values())
    assert set(y["alert_accounts_by_kind"]) == set(y["alerts_by_kind"])
    assert y["concentration_max_alerts_per_position"] <= y["concentration_max_alerts_per_account"]
    assert sum(day["stops"].values()) == day["stop_orders"] == 300
    assert len(y["patterns_planted"]) == 9
    # profiled: shares of every flow, adding up; latencies measured
    assert set(y["cpu_share_pct"]) == {"quotes", "ledger", "audit", "stops", "margin",
                                       "surveillance", "alerts", "read+decode", "engine/other"}
    assert sum(y["cpu_share_pct"].values()) == pytest.approx(100, abs=0.5)
    assert set(y["worker_wall_share_pct"]) == set(y["cpu_share_pct"])
    assert sum(y["worker_wall_share_pct"].values()) == pytest.approx(100, abs=0.5)
    assert y["profile_samples"] > 0 and y["profiled_run_same_alerts"] is True
    assert y["gil_held_pct"] > 0
    assert y["latency_samples"]["quote"] > 0 and y["latency_samples"]["alert"] > 0
    assert 0 < y["quote_latency_p50_ms"] <= y["quote_latency_p99_ms"]
    assert 0 < y["alert_latency_p50_ms"] <= y["alert_latency_p99_ms"]
    out = capsys.readouterr().out
    assert "all six flows" in out and "quotes only, same file" in out


def _copy_day(tmp_path: Path) -> Path:
    """A tiny generated day copied out of the cache, to be spoilt."""
    day = ensure_day(DaySpec(6, 1, 50, 40), tmp_path / "days", say=lambda _: None)
    target = tmp_path / "mine"
    shutil.copytree(day.path.parent, target)
    return target / "day.fix"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_bench_pipeline_stops_when_the_accounts_file_is_missing(bench_env, capsys):
    day = _copy_day(bench_env)
    day.with_suffix(".accounts.csv").unlink()
    capsys.readouterr()
    assert _bench(bench_env, "--pipeline-day", str(day)) == 2
    line = _one_line_error(capsys)
    assert line.startswith("brokerflow: error: bench pipeline: the accounts file")
    assert "day.accounts.csv is missing" in line
    assert not (bench_env / "results" / "pipeline.json").exists()


def test_bench_pipeline_stops_when_positions_name_unknown_accounts(bench_env, capsys):
    day = _copy_day(bench_env)
    positions = day.with_suffix(".positions.csv")
    positions.write_text(positions.read_text() + "NOBODY,AAPL,100,10.00\n")
    capsys.readouterr()
    assert _bench(bench_env, "--pipeline-day", str(day)) == 2
    line = _one_line_error(capsys)
    assert "column account: 'NOBODY' is not a known account" in line
    assert not (bench_env / "results" / "pipeline.json").exists()
