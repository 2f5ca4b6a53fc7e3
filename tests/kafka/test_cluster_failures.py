"""A 2-process cluster (`brokerflow run -i K -a …` over librdkafka's mock cluster) when one of
its processes is killed, or never starts (issue 17).

- The other process stops within 30 s with one line naming the lost peer (index and address),
  a non-zero exit code and no traceback (`brokerflow.peers`).
- Killed with SIGKILL mid-run, then both restarted with their recovery directories, the cluster
  leaves Redis, PostgreSQL and ClickHouse exactly as an uninterrupted 2-process run of the same
  input on fresh stores, every flow on.
Real processes, real servers; waits are bounded by generous guards, never by the clock alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.common import free_ports
from brokerflow.cli import main
from brokerflow.commands.gateway import FileInput, run_gateway
from tests.conftest import reserved_redis_db
from tests.kafka.stores import clickhouse_rows, postgres_rows, redis_contents
from tests.kafka.test_kafka_flows import (
    drop_database,
    flush_redis,
    fresh_database,
    load_day,
    simulated_day,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STOPS_WITHIN_S = 30.0  # issue 17: the others stop within 30 s
GUARD_S = 60.0  # a failure guard only: a process still running by then is a hang


def _cluster_env(settings, kafka_bootstrap: str) -> dict[str, str]:
    return {
        **os.environ,
        "BROKERFLOW_REDIS_URL": settings.redis_url,
        "BROKERFLOW_POSTGRES_DSN": settings.postgres_dsn,
        "BROKERFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "BROKERFLOW_DATA_DIR": str(settings.data_dir),
        "BROKERFLOW_CLICKHOUSE_URL": settings.clickhouse_url,
        # No data-quality child process: a SIGKILLed parent would leave it behind.
        "BROKERFLOW_DQ": "off",
    }


def _start(index: int, addresses: list[str], env: dict[str, str], *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "brokerflow.cli", "run", "-q", "-i", str(index),
               "-a", ";".join(addresses), *args]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen) -> tuple[str, str]:
    """The process's stdout and stderr once it ends; killed (and failed) if it hangs."""
    try:
        return process.communicate(timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running {GUARD_S:.0f} s later (a hang): {err[-2000:]}")


def _kill(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _executions(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM executions").fetchone()[0]


def _await_executions(dsn: str, at_least: int, processes: list[subprocess.Popen]) -> int:
    """Wait until the ledger holds `at_least` executions while every process runs; the count
    then (smaller if a process ended first)."""
    deadline = time.monotonic() + GUARD_S
    booked = _executions(dsn)
    while booked < at_least and all(p.poll() is None for p in processes):
        assert time.monotonic() < deadline, f"no progress: {booked} executions"
        time.sleep(0.02)
        booked = _executions(dsn)
    return booked


def _assert_stopped_naming(
    process: subprocess.Popen, peer: int, addresses: list[str], since: float
) -> None:
    _, err = _finish(process)
    took = time.monotonic() - since
    errors = [line for line in err.splitlines() if line.startswith("brokerflow: error:")]
    assert process.returncode == 2, err[-2000:]
    assert took < STOPS_WITHIN_S, f"stopped after {took:.1f} s"
    assert "Traceback" not in err, err[-2000:]
    assert len(errors) == 1, err[-2000:]
    assert f"process {peer} ({addresses[peer]})" in errors[0], errors[0]


def _published(day: Path, kafka_bootstrap, settings_factory, tmp_path, monkeypatch) -> tuple:
    settings = settings_factory(
        kafka_bootstrap=kafka_bootstrap, clickhouse_url=f"chdb://{tmp_path / 'clickhouse'}"
    )
    load_day(day, settings, monkeypatch)
    run_gateway(settings, FileInput([day]), progress=False)
    return day, settings


@pytest.fixture
def cluster_day(kafka_bootstrap, settings_factory, tmp_path, monkeypatch):
    """A simulated day (orders and fills, margin and surveillance inputs, a few bad lines)
    published to Kafka, its opening state loaded; the settings of this test's stores
    (ClickHouse: chdb in tmp_path)."""
    day = simulated_day(tmp_path)
    return _published(day, kafka_bootstrap, settings_factory, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def longer_day_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 simulated minutes (~27,000 messages, 2 minutes are ~6,900): the Kafka source reads up
    to 2,000 messages a poll from each partition, and an epoch ends only once what it read is
    processed, so a smaller day fits in one epoch and a kill could only ever resume from the
    start; this one spans several. Generated once: the tests only read it."""
    day = tmp_path_factory.mktemp("longer-day") / "day.fix"
    argv = ["simulate", "--symbols", "4", "--minutes", "8", "--orders", "--out", str(day),
            "--seed", "7"]  # fmt: skip
    assert main(argv) == 0
    return day


@pytest.fixture
def longer_day(longer_day_file, kafka_bootstrap, settings_factory, tmp_path, monkeypatch):
    """`longer_day_file` published to this test's Kafka, its opening state loaded."""
    return _published(longer_day_file, kafka_bootstrap, settings_factory, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def uninterrupted() -> dict[str, Any]:
    """What an uninterrupted 2-process run of `longer_day_file` read and left in the stores:
    filled by the first test that needs it, the same for every victim."""
    return {}


@pytest.mark.parametrize("victim", [0, 1])
def test_cluster_process_killed_mid_run_the_other_stops_naming_it(
    cluster_day, kafka_bootstrap, victim
) -> None:
    _, settings = cluster_day
    env = _cluster_env(settings, kafka_bootstrap)
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    # Live runs: they never end by themselves, so the kill always lands mid-run.
    processes = [_start(i, addresses, env) for i in range(2)]
    try:
        booked = _await_executions(settings.postgres_dsn, 1, processes)
        assert booked >= 1, "a process ended before the flows booked anything"
        processes[victim].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        _assert_stopped_naming(processes[1 - victim], victim, addresses, killed_at)
    finally:
        _kill(processes)


def test_cluster_process_whose_peer_never_starts_stops_naming_it(
    cluster_day, kafka_bootstrap, postgres_dsn, redis_url, tmp_path, monkeypatch
) -> None:
    # Process 0 waits for the connection of process 1; process 1 retries connecting to 0.
    # Each waits out the cluster's formation timeout (20 s), so both run at once, each alone in
    # its own 2-process cluster, on stores of its own (the day's opening state loaded in both).
    day, settings = cluster_day
    name, dsn = fresh_database(postgres_dsn)
    try:
        with reserved_redis_db(redis_url) as other_redis:
            other = settings.model_copy(update={
                "postgres_dsn": dsn, "redis_url": other_redis, "data_dir": tmp_path / "alone-1",
                "clickhouse_url": f"chdb://{tmp_path / 'alone-1-ch'}",
            })  # fmt: skip
            load_day(day, other, monkeypatch)
            ports = [f"127.0.0.1:{p}" for p in free_ports(4)]  # four distinct ports
            addresses = [ports[:2], ports[2:]]
            started = time.monotonic()
            processes = [
                _start(alone, addresses[alone], _cluster_env(stores, kafka_bootstrap),
                       "--until-end")
                for alone, stores in enumerate((settings, other))
            ]  # fmt: skip
            try:
                for alone, process in enumerate(processes):
                    _assert_stopped_naming(process, 1 - alone, addresses[alone], started)
            finally:
                _kill(processes)
    finally:
        drop_database(postgres_dsn, name)


def _stores(settings) -> tuple:
    return (
        redis_contents(settings.redis_url),
        postgres_rows(settings.postgres_dsn),
        clickhouse_rows(settings),
    )


def _start_to_the_end(
    addresses: list[str], env: dict[str, str], recovery: list[Path], *args: str
) -> list[subprocess.Popen]:
    """Both processes, to the topics' end, each with its recovery directory."""
    options = (*args, "--until-end", "--snapshot-s", "0.2", "--recovery-dir")
    return [_start(i, addresses, env, *options, str(recovery[i])) for i in range(2)]


def _run_to_the_end(addresses: list[str], env: dict[str, str], recovery: list[Path]) -> int:
    """Run both processes to the end; the messages they read (both together)."""
    processes = _start_to_the_end(addresses, env, recovery, "--json")
    messages = 0
    try:
        for process in processes:
            out, err = _finish(process)
            assert process.returncode == 0, err[-2000:]
            messages += json.loads(out.splitlines()[-1])["messages"]
    finally:
        _kill(processes)
    return messages


@pytest.mark.parametrize("victim", [0, 1])
def test_cluster_process_killed_then_both_restarted_resume_to_the_uninterrupted_stores(
    longer_day, uninterrupted, kafka_bootstrap, postgres_dsn, tmp_path, monkeypatch, victim
) -> None:
    day, settings = longer_day
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    if not uninterrupted:  # the reference: the same day on this test's stores, run once
        uninterrupted["messages"] = _run_to_the_end(
            addresses, _cluster_env(settings, kafka_bootstrap),
            [tmp_path / "reference-recovery-0", tmp_path / "reference-recovery-1"],
        )  # fmt: skip
        uninterrupted["stores"] = _stores(settings)
    day_messages = uninterrupted["messages"]
    expected = uninterrupted["stores"]
    total = len(expected[1]["executions"])
    # The day books fills, marks margin, raises alerts and audits (it places no stop orders).
    assert total and expected[1]["account_margin"] and expected[1]["alerts"]
    assert expected[2]["audit_log"] and expected[2]["market_ticks"]

    # The same input on fresh stores: another database and chdb directory, the Redis db emptied.
    flush_redis(settings.redis_url)
    name, dsn = fresh_database(postgres_dsn)
    try:
        crashed = settings.model_copy(
            update={"postgres_dsn": dsn, "clickhouse_url": f"chdb://{tmp_path / 'crashed-ch'}"}
        )
        load_day(day, crashed, monkeypatch)
        env = _cluster_env(crashed, kafka_bootstrap)
        recovery = [tmp_path / "recovery-0", tmp_path / "recovery-1"]
        processes = _start_to_the_end(addresses, env, recovery)
        try:
            # Killed by progress, not by the clock: once the ledger holds 3/5 of the day's fills
            # (a snapshot of the first messages is committed by then).
            booked = _await_executions(dsn, total * 3 // 5, processes)
            processes[victim].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            assert 0 < booked < total, f"the run ended before its kill: {booked} of {total}"
            _assert_stopped_naming(processes[1 - victim], victim, addresses, killed_at)
        finally:
            _kill(processes)
        resumed = _run_to_the_end(addresses, env, recovery)
        got = _stores(crashed)
    finally:
        drop_database(postgres_dsn, name)
    # Resumed from a snapshot, not from the start: both read less than the whole day.
    assert resumed < day_messages, f"resumed from the start (killed at {booked} of {total})"
    for table, rows in expected[1].items():
        assert got[1][table] == rows, f"postgres {table} (killed at {booked} of {total})"
    for table, rows in expected[2].items():
        assert got[2][table] == rows, f"clickhouse {table} (killed at {booked} of {total})"
    assert got[0] == expected[0], f"redis (killed at {booked} of {total})"
