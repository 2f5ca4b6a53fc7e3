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

from tests.faults.reference import ReferenceDay, load_day
from tests.faults.sinks import clickhouse_contents, postgres_contents, redis_contents

pytestmark = pytest.mark.slow


def _replay(day: Path, data_dir: Path, recovery: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "brokerflow.cli", "replay", str(day), "-q",
               "--data-dir", str(data_dir)]  # every flow  # fmt: skip
    if recovery is not None:
        command += ["--recovery-dir", str(recovery), "--snapshot-s", "0.5"]
    return command


def _booked(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM executions").fetchone()[0]


def _contents(env: dict[str, str], data_dir: Path) -> dict:
    return {
        "postgres": postgres_contents(env["BROKERFLOW_POSTGRES_DSN"]),
        "redis": redis_contents(env["BROKERFLOW_REDIS_URL"]),
        "clickhouse": clickhouse_contents(data_dir, env),
    }


def _reference(reference_day: ReferenceDay) -> tuple[Path, dict]:
    """The simulated day and what one uninterrupted run leaves in every store."""
    expected = {"postgres": reference_day.postgres, "redis": reference_day.redis,
                "clickhouse": reference_day.clickhouse}  # fmt: skip
    assert len(expected["postgres"]["executions"]) > 1_000
    assert len(expected["clickhouse"]["audit_log"]) > 1_000
    return reference_day.day, expected


def _run_killed_at(command: list[str], env: dict[str, str], dsn: str, at: int) -> int:
    """Run `command` and SIGKILL it once the ledger holds `at` executions; the count then."""
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    booked = -1
    while process.poll() is None and _booked(dsn) < at:
        time.sleep(0.02)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        booked = _booked(dsn)
    process.wait()
    return booked


def _crashed_runs(
    tmp_path: Path, day: Path, dsn: str, redis_url: str
) -> tuple[dict[str, str], list[str]]:
    """The environment and command of the crashed runs: this test's fresh database and Redis
    db, its own data dir, a recovery dir; the day's accounts loaded."""
    env = {"BROKERFLOW_POSTGRES_DSN": dsn, "BROKERFLOW_REDIS_URL": redis_url}
    load_day(day, env, tmp_path / "crashed")
    return env, _replay(day, tmp_path / "crashed", tmp_path / "recovery")


def _run_to_the_end(command: list[str], env: dict[str, str]) -> None:
    final = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert final.returncode == 0, final.stderr


def _assert_same(got: dict, expected: dict, what: str) -> None:
    for store, tables in expected.items():
        for table, rows in tables.items():
            assert got[store][table] == rows, f"{store} {table}: {what}"


def test_killed_replays_resume_to_the_same_contents_in_every_store(
    tmp_path, reference_day, pg_dsn, redis_db_url
):
    day, expected = _reference(reference_day)
    total = len(expected["postgres"]["executions"])
    env, command = _crashed_runs(tmp_path, day, pg_dsn, redis_db_url)
    # Killed by progress, not by the clock (a fast machine finishes before any timer): each
    # run is killed once the ledger holds a random share of the day, each share past the last.
    rng = random.Random(5)
    shares = sorted(rng.uniform(lo, lo + 0.2) for lo in (0.1, 0.4, 0.7))
    booked_at_kills = [_run_killed_at(command, env, pg_dsn, int(s * total)) for s in shares]
    _run_to_the_end(command, env)
    assert all(0 < n < total for n in booked_at_kills), f"a run ended first: {booked_at_kills}"
    _assert_same(_contents(env, tmp_path / "crashed"), expected, f"kills at {booked_at_kills}")


def test_a_run_killed_before_its_first_snapshot_starts_over_from_the_same_opening(
    tmp_path, reference_day, pg_dsn, redis_db_url
):
    """No epoch committed (snapshots a minute apart): the rerun starts from the beginning of
    the day, while the stores hold the killed run's fills and quotes. It must start from the
    opening state the killed run read, not from those stores (margin judged the first minutes
    on the later books and raised other CONCENTRATION alerts)."""
    day, expected = _reference(reference_day)
    total = len(expected["postgres"]["executions"])
    env, command = _crashed_runs(tmp_path, day, pg_dsn, redis_db_url)
    command[command.index("--snapshot-s") + 1] = "60"
    booked = _run_killed_at(command, env, pg_dsn, total // 2)
    assert 0 < booked < total, f"the run ended before its kill: {booked}"
    _run_to_the_end(command, env)
    _assert_same(_contents(env, tmp_path / "crashed"), expected, f"killed at {booked}")
