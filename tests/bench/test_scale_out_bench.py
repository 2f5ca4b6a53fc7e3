"""`brokerflow bench scale-out` on a tiny pipeline day: the result says what the two runs did (the
same stores, every message counted, shared between the processes); a run process that fails
stops the benchmark with one line, and no process is left behind."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import bench.common
import bench.scale_out
from bench import mock_kafka
from bench.stores_digest import differences
from brokerflow.cli import main

TINY = ["--pipeline-symbols", "6", "--pipeline-minutes", "2", "--pipeline-accounts", "120",
        "--pipeline-stops", "300"]  # fmt: skip


@pytest.fixture
def bench_env(tmp_path, monkeypatch, postgres_dsn, redis_url) -> Iterator[Path]:
    """The bench's days, results and database are this test's own; the mock Kafka can start."""
    try:
        with mock_kafka.running():
            pass
    except mock_kafka.MockKafkaError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", redis_url)
    monkeypatch.setattr(bench.common, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path / "results")
    database = f"bench_scale_out_test_{secrets.token_hex(4)}"
    monkeypatch.setattr(bench.scale_out, "BENCH_DATABASE", database)
    yield tmp_path
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _bench(tmp_path: Path, *argv: str) -> int:
    return main(["bench", "scale-out", "--data-dir", str(tmp_path / "brokerflow"), *TINY, *argv])


def _stream(entries: dict[str, list[str]], capped: bool) -> dict[str, dict]:
    items = sum(map(len, entries.values()))
    return {"redis:stream:quotes": {"items": items, "capped": capped, "entries": entries}}


def test_stores_digest_streams_agree_on_each_subjects_tail_only_where_trimmed() -> None:
    full = _stream({"AAPL": ["a1", "a2", "a3"], "MSFT": ["m1", "m2"]}, capped=False)
    # the cap dropped the oldest entries, whichever symbol they were of
    assert differences(full, _stream({"AAPL": ["a2", "a3"], "MSFT": []}, capped=True)) == []
    # an entry missing in the middle, or out of order, is a difference, trimmed or not
    assert differences(full, _stream({"AAPL": ["a1", "a3"], "MSFT": ["m2"]}, capped=True))
    assert differences(full, _stream({"AAPL": ["a2", "a1", "a3"], "MSFT": ["m1", "m2"]},
                                     capped=False))  # fmt: skip
    # below the cap nothing was trimmed: missing old entries were lost
    assert differences(full, _stream({"AAPL": ["a2", "a3"], "MSFT": ["m2"]}, capped=False))
    assert differences(full, {}) == ["redis:stream:quotes"]


@pytest.mark.slow
def test_bench_scale_out_compares_one_process_with_two(bench_env, capsys):
    assert _bench(bench_env) == 0
    doc = json.loads((bench_env / "results" / "scale-out.json").read_text())
    assert {"name", "unit", "value", "goal", "yardsticks", "machine", "date", "commit"} <= set(doc)
    assert (doc["name"], doc["unit"], doc["goal"]) == ("scale-out", "ratio", 1.6)
    y = doc["yardsticks"]
    assert y["one_process_msgs_per_s"] > 0 and y["two_processes_msgs_per_s"] > 0
    assert doc["value"] == pytest.approx(
        y["two_processes_msgs_per_s"] / y["one_process_msgs_per_s"], rel=0.01
    )
    # the whole day went through Kafka and every run counted all of it
    published = y["published"]
    assert published == sum(y["day"]["messages_by_type"].values()) > 0
    assert y["counted_one_process"] == y["counted_two_processes"] == published
    assert (y["lost"], y["late_events"], y["nothing_lost"]) == (0, 0, True)
    # each of the two processes handled a share of the messages
    shares = y["messages_per_process"]
    assert len(shares) == 2 and sum(shares) == published
    assert all(share > 0 for share in shares), shares
    # the same Redis keys, PostgreSQL rows and ClickHouse rows either way
    assert y["identical_stores"] is True and y["store_differences"] == []
    compared = y["stores_compared"]
    assert compared["postgres_tables"] == 8 and compared["clickhouse_tables"] == 3
    assert compared["redis_keys"] > 0 and compared["items"] > published / 2
    out = capsys.readouterr().out
    assert "2 processes / 1" in out and "stores identical" in out


@pytest.mark.slow
def test_bench_scale_out_names_a_failed_run_process_and_ends_the_others(
    bench_env, capsys, monkeypatch
):
    started: list = []
    start = bench.scale_out._RunProcess.__init__

    def second_process_fails(self, index, argv, env, log) -> None:  # noqa: ANN001
        if index == 1:
            argv = [*argv, "--workers", "0"]  # refused at start-up: exit 2
        start(self, index, argv, env, log)
        started.append(self)

    monkeypatch.setattr(bench.scale_out._RunProcess, "__init__", second_process_fails)
    capsys.readouterr()
    assert _bench(bench_env) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("brokerflow: error: bench scale-out: run process 1 of the "
                           "2-process run (-i 1) failed with exit code 2"), last  # fmt: skip
    assert len(started) == 3  # the 1-process run, then both of the 2-process run
    assert all(p.proc.poll() is not None for p in started)  # process 0 waited for 1: ended
    assert not (bench_env / "results" / "scale-out.json").exists()
