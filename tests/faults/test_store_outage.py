"""A store that goes down mid-run: the flow retries with backoff, keeps order, catches up, and
ends with exactly what an undisturbed run writes; a store that stays down longer than
`sink_retry_s` stops the flow with a one-line error instead of dropping data.

The shared servers of this machine cannot be stopped, so each test starts its own embedded
server (a real redis-server / PostgreSQL binary, `brokerflow.services`) and stops it under the
running replay.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from brokerflow.services import ensure_services, stop_services
from brokerflow.settings import Settings
from tests.eventually import eventually
from tests.faults.reference import ReferenceDay, load_day
from tests.faults.sinks import postgres_contents, redis_contents

pytestmark = pytest.mark.slow


@pytest.fixture
def day(reference_day: ReferenceDay) -> Path:
    return reference_day.day


def _replay(day: Path, env: dict[str, str], data_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "brokerflow.cli", "replay", str(day), "-q",  # every flow
         "--data-dir", str(data_dir)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _succeeded(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=600)  # reads stderr: a full pipe would block
    assert process.returncode == 0, err


def _failed(process: subprocess.Popen) -> str:
    """The stderr of a replay that must fail, read while waiting (a full pipe would block)."""
    _, error = process.communicate(timeout=120)
    assert process.returncode != 0
    return error.strip()


def _quotes_written(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1) as client:
            return client.xlen("stream:quotes") > 0
    except redis.RedisError:
        return False


def _executions_booked(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM executions").fetchone()[0] > 0
    except psycopg.Error:
        return False


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Path]:
    """This test's embedded servers' data dir; what runs there is stopped at teardown, even
    when the test failed halfway."""
    path = tmp_path / "stores"
    yield path
    stop_services(path)


def _embedded(stores: Path, service: str, **settings: str) -> str:
    endpoints = ensure_services(Settings(data_dir=stores, **settings), {service})
    return endpoints.redis_url if service == "redis" else endpoints.postgres_dsn


def test_redis_down_for_seconds_mid_run_loses_and_doubles_nothing(
    tmp_path, stores, day, reference_day, pg_dsn
):
    url = _embedded(stores, "redis", postgres_dsn=pg_dsn)
    env = {"BROKERFLOW_POSTGRES_DSN": pg_dsn, "BROKERFLOW_REDIS_URL": url}
    load_day(day, env, tmp_path / "outage")
    process = _replay(day, env, tmp_path / "outage")
    eventually(lambda: _quotes_written(url), 120, 0.05, "quotes in Redis")
    assert stop_services(stores) == ["redis"]
    # Not a wait for a condition: the outage lasts 2 s on purpose; the flow keeps trying meanwhile.
    time.sleep(2.0)
    assert process.poll() is None, "the flow gave up during a 2 s outage"
    assert _embedded(stores, "redis", postgres_dsn=pg_dsn) == url  # same port
    _succeeded(process)

    assert redis_contents(url) == reference_day.redis
    assert postgres_contents(pg_dsn) == reference_day.postgres


def test_postgres_down_for_seconds_mid_run_loses_and_doubles_nothing(
    tmp_path, stores, day, reference_day, redis_db_url
):
    dsn = _embedded(stores, "postgres", redis_url=redis_db_url)
    env = {"BROKERFLOW_POSTGRES_DSN": dsn, "BROKERFLOW_REDIS_URL": redis_db_url}
    load_day(day, env, tmp_path / "outage")
    process = _replay(day, env, tmp_path / "outage")
    eventually(lambda: _executions_booked(dsn), 120, 0.05, "executions booked")
    assert stop_services(stores) == ["postgres"]
    time.sleep(2.0)  # a 2 s outage on purpose, as above
    assert process.poll() is None, "the flow gave up during a 2 s outage"
    assert _embedded(stores, "postgres", redis_url=redis_db_url) == dsn
    _succeeded(process)

    assert postgres_contents(dsn) == reference_day.postgres
    assert redis_contents(redis_db_url) == reference_day.redis


def test_a_store_down_for_longer_than_the_retries_stops_the_flow_with_one_line(
    tmp_path, stores, day, pg_dsn
):
    url = _embedded(stores, "redis", postgres_dsn=pg_dsn)
    env = {"BROKERFLOW_POSTGRES_DSN": pg_dsn, "BROKERFLOW_REDIS_URL": url,
           "BROKERFLOW_SINK_RETRY_S": "1"}  # fmt: skip
    load_day(day, env, tmp_path / "outage")
    process = _replay(day, env, tmp_path / "outage")
    eventually(lambda: _quotes_written(url), 120, 0.05, "quotes in Redis")
    stop_services(stores)
    error = _failed(process)
    assert "Traceback" not in error, error
    last = error.splitlines()[-1]
    assert last.startswith("brokerflow: error:") and "redis" in last.lower(), error


def test_postgres_down_for_longer_than_the_retries_stops_the_flow_with_one_line(
    tmp_path, stores, day, redis_db_url
):
    # The ledger books on a background thread (sinks.background): its error must still stop
    # the flow with one line, not a traceback or an abort while Bytewax cleans up.
    dsn = _embedded(stores, "postgres", redis_url=redis_db_url)
    env = {"BROKERFLOW_POSTGRES_DSN": dsn, "BROKERFLOW_REDIS_URL": redis_db_url,
           "BROKERFLOW_SINK_RETRY_S": "1"}  # fmt: skip
    load_day(day, env, tmp_path / "outage")
    process = _replay(day, env, tmp_path / "outage")
    eventually(lambda: _executions_booked(dsn), 120, 0.05, "executions booked")
    stop_services(stores)
    error = _failed(process)
    assert "Traceback" not in error and "panic in a destructor" not in error, error
    last = error.splitlines()[-1]
    assert last.startswith("brokerflow: error: the flow stopped:"), error
