"""`brokerflow bench audit` at a tiny size, into the test's stores: the result says, per table,
what the flow cost and what a bare insert of the same rows cost; a missing input file stops it
with one line before anything is measured."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

import bench.audit
import bench.common
import bench.ingest
from brokerflow.cli import main

pytestmark = pytest.mark.slow

TINY = ["--audit-symbols", "4", "--audit-minutes", "1", "--audit-accounts", "20",
        "--audit-rounds", "1"]  # fmt: skip


@pytest.fixture
def bench_env(tmp_path, monkeypatch, postgres_dsn, redis_db_url):
    """The bench's day, results, database and Redis db are this test's own."""
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", redis_db_url)
    monkeypatch.setattr(bench.ingest, "BENCH_REDIS_DB", int(urlsplit(redis_db_url).path[1:]))
    monkeypatch.setattr(bench.audit, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path / "results")
    database = f"bench_audit_test_{secrets.token_hex(4)}"
    monkeypatch.setattr(bench.audit, "BENCH_DATABASE", database)
    yield tmp_path
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _bench(tmp_path: Path, *argv: str) -> int:
    return main(["bench", "audit", "--data-dir", str(tmp_path / "brokerflow"), *argv])


def test_bench_audit_puts_each_table_next_to_a_bare_insert_of_its_rows(bench_env, capsys):
    assert _bench(bench_env, *TINY) == 0
    doc = json.loads((bench_env / "results" / "audit.json").read_text())
    assert {"name", "unit", "value", "yardsticks", "commit"} <= set(doc)
    y = doc["yardsticks"]
    assert y["messages"] > 0 and y["rounds"] == 1
    for table in ("market_ticks", "audit_log"):
        assert y[f"{table}_rows"] > 0
        assert y[f"{table}_bare_same_rows"] is True  # the bare insert had the flow's rows
        assert y[f"{table}_bare_rows_per_cpu_s"] > 0
        assert y[f"{table}_writer_wall_s"] >= y[f"{table}_writer_cpu_s"] - 0.05
        # the cost in the flow counts the writer and chdb's threads (and the records)
        assert y[f"{table}_cpu_s"] >= y[f"{table}_writer_cpu_s"] > 0
        assert y[f"{table}_rows_per_cpu_s"] > 0
    assert y["market_ticks_rows"] == y["quotes_published"]  # one row per published quote
    assert y["audit_log_records_cpu_s"] >= 0
    out = capsys.readouterr().out
    assert "market_ticks" in out and "audit_log" in out and "bare insert" in out
    # The day is cached: a second run does not generate it again.
    assert len(list((bench_env / "data").glob("audit-day-*.fix"))) == 1


def test_bench_audit_missing_file_is_one_line(bench_env, capsys):
    assert _bench(bench_env, "--audit-file", str(bench_env / "nope.fix")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"brokerflow: error: {bench_env / 'nope.fix'}: no such file"
    assert not (bench_env / "results" / "audit.json").exists()
