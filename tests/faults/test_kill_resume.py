"""Nothing lost, nothing doubled across crashes: a replay of a simulated day (market data, order
flow, execution reports) killed with SIGKILL at random points and resumed from its Bytewax
recovery directory leaves every store exactly as an uninterrupted run does: the ledger, stop
orders, alerts, account margin and dead letters in PostgreSQL; quotes, OHLC and the streams in
Redis; the audit trail, ticks and alerts in ClickHouse. Real processes, real servers.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from brokerflow.cli import main
from tests.faults.sinks import clickhouse_contents, postgres_contents, redis_contents

pytestmark = pytest.mark.slow


def _replay(day: Path, data_dir: Path, recovery: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "brokerflow.cli", "replay", str(day), "-q",
               "--data-dir", str(data_dir)]  # every flow  # fmt: skip
    if recovery is not None:
        command += ["--recovery-dir", str(recovery), "--snapshot-s", "0.5"]
    return command


def _load(day: Path, data_dir: Path) -> None:
    for kind, suffix in (("accounts", ".accounts.csv"), ("positions", ".positions.csv")):
        assert main(["load", kind, str(day.with_suffix(suffix)), "--data-dir", str(data_dir)]) == 0


def _booked(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM executions").fetchone()[0]


def _contents(env: dict[str, str], data_dir: Path) -> dict:
    return {
        "postgres": postgres_contents(env["BROKERFLOW_POSTGRES_DSN"]),
        "redis": redis_contents(env["BROKERFLOW_REDIS_URL"]),
        "clickhouse": clickhouse_contents(data_dir, env),
    }


def test_killed_replays_resume_to_the_same_contents_in_every_store(
    tmp_path, settings_factory, second_pg_dsn, monkeypatch
):
    day = tmp_path / "day.fix"
    assert main(["simulate", "--symbols", "5", "--minutes", "20", "--orders", "--accounts", "40",
                 "--orders-per-minute", "200", "--out", str(day), "--seed", "11"]) == 0  # fmt: skip
    s = settings_factory()

    # The reference: one uninterrupted run.
    reference_env = {"BROKERFLOW_POSTGRES_DSN": s.postgres_dsn, "BROKERFLOW_REDIS_URL": s.redis_url}
    for name, value in reference_env.items():
        monkeypatch.setenv(name, value)
    _load(day, tmp_path / "reference")
    subprocess.run(_replay(day, tmp_path / "reference"), env={**os.environ, **reference_env},
                   check=True, stdout=subprocess.DEVNULL, timeout=600)  # fmt: skip
    expected = _contents(reference_env, tmp_path / "reference")
    total = len(expected["postgres"]["executions"])
    assert total > 1_000
    assert len(expected["clickhouse"]["audit_log"]) > 1_000

    # The crashed runs: another database, the same Redis db emptied, another data dir.
    redis.Redis.from_url(s.redis_url).flushdb()
    env = {"BROKERFLOW_POSTGRES_DSN": second_pg_dsn, "BROKERFLOW_REDIS_URL": s.redis_url}
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", second_pg_dsn)
    _load(day, tmp_path / "crashed")
    command = _replay(day, tmp_path / "crashed", tmp_path / "recovery")
    # Killed by progress, not by the clock (a fast machine finishes before any timer): each
    # run is killed once the ledger holds a random share of the day, each share past the last.
    rng = random.Random(5)
    shares = sorted(rng.uniform(lo, lo + 0.2) for lo in (0.1, 0.4, 0.7))
    booked_at_kills = []
    for share in shares:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
        while process.poll() is None and _booked(second_pg_dsn) < share * total:
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            booked_at_kills.append(_booked(second_pg_dsn))
        process.wait()
    final = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert final.returncode == 0, final.stderr
    assert len(booked_at_kills) == 3, f"a run finished before its kill: {booked_at_kills}"
    assert all(0 < n < total for n in booked_at_kills), booked_at_kills

    got = _contents(env, tmp_path / "crashed")
    for store, tables in expected.items():
        for table, rows in tables.items():
            assert got[store][table] == rows, f"{store} {table}: kills at {booked_at_kills}"
