"""Embedded services: real redis-server and PostgreSQL started under a temporary data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis

from brokerflow.cli import main
from brokerflow.services import (
    Endpoints,
    ensure_services,
    service_status,
    services_released,
    stop_services,
)
from brokerflow.settings import Settings


def _settings(data_dir: Path) -> Settings:
    # URLs explicitly unset, whatever the environment says: the embedded servers must be used.
    return Settings(redis_url=None, postgres_dsn=None, data_dir=data_dir)


def _state(data_dir: Path, service: str) -> dict[str, object]:
    return json.loads((data_dir / service / "state.json").read_text())


def test_ensure_services_configured_urls_pass_through(data_dir: Path) -> None:
    settings = Settings(
        redis_url="redis://elsewhere:1/0",
        postgres_dsn="postgresql://elsewhere/x",
        data_dir=data_dir,
    )
    endpoints = ensure_services(settings, {"redis", "postgres"})
    assert endpoints == Endpoints("redis://elsewhere:1/0", "postgresql://elsewhere/x")
    assert not (data_dir / "redis").exists() and not (data_dir / "postgres").exists()


def test_ensure_services_unknown_service_raises(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="clickhous"):
        ensure_services(_settings(data_dir), {"clickhous"})


def test_embedded_services_start_reuse_stop_and_keep_data(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(data_dir)
    try:
        started = time.monotonic()
        first = ensure_services(settings, {"redis", "postgres"})
        startup_s = time.monotonic() - started
        assert first.redis_url and first.redis_url.startswith("redis://127.0.0.1:")
        assert first.postgres_dsn and first.postgres_dsn.endswith("/brokerflow")
        err = capsys.readouterr().err
        assert "started embedded Redis" in err and "started embedded PostgreSQL 18" in err
        assert startup_s < 60

        with redis.Redis.from_url(first.redis_url) as client:
            client.set("brokerflow:test", "kept")
            assert client.get("brokerflow:test") == b"kept"
        with psycopg.connect(first.postgres_dsn, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('row')")

        # A later command reuses the running servers: same ports, nothing started.
        again = ensure_services(settings, {"redis", "postgres"})
        assert again == first
        assert "started" not in capsys.readouterr().err
        assert all(status.running for status in service_status(data_dir))

        assert main(["services", "status", "--data-dir", str(data_dir)]) == 0
        out = capsys.readouterr().out
        assert out.count("running on 127.0.0.1:") == 2

        pids = [_state(data_dir, "redis")["pid"], _state(data_dir, "postgres")["pid"]]
        assert sorted(stop_services(data_dir)) == ["postgres", "redis"]
        assert not any(status.running for status in service_status(data_dir))
        for pid in pids:
            assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(first.redis_url, socket_connect_timeout=1).ping()
        assert stop_services(data_dir) == []  # nothing left to stop

        # The recorded pids are dead now: the next command starts the servers again, on the
        # same data, and what was written before the stop is still there.
        restarted = ensure_services(settings, {"redis", "postgres"})
        assert "started embedded" in capsys.readouterr().err
        with redis.Redis.from_url(restarted.redis_url or "") as client:
            assert client.get("brokerflow:test") == b"kept"
        with psycopg.connect(restarted.postgres_dsn or "") as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("row",)]
    finally:
        stop_services(data_dir)


def test_services_stop_command_stops_embedded_servers(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        ensure_services(_settings(data_dir), {"redis"})
        assert main(["services", "stop", "--data-dir", str(data_dir)]) == 0
        assert "stopped embedded redis" in capsys.readouterr().out
        assert not service_status(data_dir)[0].running
    finally:
        stop_services(data_dir)


def _sql(data_dir: Path, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`brokerflow sql postgres "SELECT 1"` on the embedded server of `data_dir`."""
    clean = {k: v for k, v in (env or os.environ).items() if not k.startswith("BROKERFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "brokerflow.cli", "sql", "postgres", "SELECT 1",
         "--data-dir", str(data_dir)],
        env=clean, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _running(data_dir: Path, service: str) -> bool:
    return {s.name: s.running for s in service_status(data_dir)}[service]


def test_a_command_stops_the_embedded_server_it_started(data_dir: Path) -> None:
    try:
        done = _sql(data_dir)
        assert done.returncode == 0, done.stderr
        assert "started embedded PostgreSQL" in done.stderr
        pid = _state(data_dir, "postgres")["pid"]
        assert not _running(data_dir, "postgres")
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    finally:
        stop_services(data_dir)


def test_a_server_in_use_or_started_by_services_start_outlives_a_command(data_dir: Path) -> None:
    try:
        # This process uses the server (as a second command would): the command's end leaves
        # it running; this process's end of use (the command line's scope) then stops it.
        with services_released() as stopped:
            ensure_services(_settings(data_dir), {"postgres"})
            done = _sql(data_dir)
            assert done.returncode == 0, done.stderr
            assert "started embedded" not in done.stderr  # reused
            assert _running(data_dir, "postgres")
        assert stopped == ["postgres"] and not _running(data_dir, "postgres")

        # `services start` keeps its servers for the commands after it, until `services stop`.
        assert main(["services", "start", "--data-dir", str(data_dir)]) == 0
        assert _running(data_dir, "postgres") and _running(data_dir, "redis")
        assert _sql(data_dir).returncode == 0
        assert _running(data_dir, "postgres")
    finally:
        stop_services(data_dir)
