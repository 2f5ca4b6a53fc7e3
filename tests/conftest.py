"""Shared fixtures: real stores, never fakes (STYLE.md §7).

Each store is, in order: the server named by `BROKERFLOW_REDIS_URL` / `BROKERFLOW_POSTGRES_DSN`;
else the local server (127.0.0.1:6379, `postgresql://postgres@127.0.0.1:5432/postgres`) if it
answers within 1 s; else an embedded server started under a temporary data dir for the session.

Isolation: each test that asks for `pg_dsn` gets its own fresh database (`bf_test_<random>`, dropped
afterwards), and each test that asks for `redis_db_url` gets a Redis db index from 1..15 reserved
for it (a lock key with a TTL in db 0 keeps concurrent test runs apart) and flushed before and
after. Db 0 of a shared server is never flushed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from bench.common import with_database  # also imported from here by tests

# What `pytest_sessionfinish` looks for: PostgreSQL and Redis servers with their data under this
# session's directories, and `brokerflow` processes carrying this session's mark in their
# environment (every process the suite starts inherits it; the servers rewrite theirs).
SESSION_MARK = "BF_TEST_SESSION"
os.environ[SESSION_MARK] = secrets.token_hex(8)
REPO_DATA_DIR = Path(__file__).resolve().parents[1] / ".brokerflow"  # commands' default
SESSION_DIRS: list[Path] = []  # the embedded stores' (below), besides pytest's base temp
LEFTOVER_GRACE_S = 10.0


def _process(pid: int) -> tuple[str, int, bytes, str] | None:
    """(command line, parent pid, environment, working directory) of a live process; None if
    it is gone, a zombie or unreadable."""
    proc = Path(f"/proc/{pid}")
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return None
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return (
            cmdline.strip(),
            int(fields[1]),
            (proc / "environ").read_bytes(),
            os.readlink(proc / "cwd"),
        )
    except (OSError, IndexError, ValueError):
        return None


def _pids() -> set[int]:
    return {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}


PIDS_AT_START = _pids() if Path("/proc/self/cwd").exists() else set()


def leftover_processes(roots: list[Path]) -> dict[int, str]:
    """The processes this test session started that still run, by pid, with their command
    lines: embedded PostgreSQL and Redis servers whose data (their working directory) is under
    `roots` or, started since the session began, under the repo's `.brokerflow`; `brokerflow`
    commands and their children carrying the session's mark. A server's own children (the
    postmaster's workers) go with it and are not listed."""
    mark = f"{SESSION_MARK}={os.environ[SESSION_MARK]}".encode()
    found: dict[int, tuple[str, int]] = {}
    for pid in _pids() - {os.getpid()}:
        seen = _process(pid)
        if seen is None:
            continue
        cmdline, parent, environ, cwd = seen
        if "postgres" in cmdline or "redis-server" in cmdline:
            under = [Path(cwd).is_relative_to(root) for root in roots]
            new_here = pid not in PIDS_AT_START and Path(cwd).is_relative_to(REPO_DATA_DIR)
            if any(under) or new_here:
                found[pid] = cmdline, parent
        elif "brokerflow" in cmdline and mark in environ.split(b"\0"):
            found[pid] = cmdline, parent
    return {pid: cmdline for pid, (cmdline, parent) in found.items() if parent not in found}


LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_TEST_DBS = range(1, 16)
REDIS_LOCK_TTL_MS = 15 * 60 * 1000
REDIS_LOCK_WAIT_S = 60.0


def _tcp_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def _redis_answers(url: str) -> bool:
    import redis

    if not _tcp_open(url, 6379):
        return False
    try:
        with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


def _postgres_answers(dsn: str) -> bool:
    import psycopg

    if not _tcp_open(dsn, 5432):
        return False
    try:
        with psycopg.connect(dsn, connect_timeout=1) as conn:
            conn.execute("SELECT 1")
    except (psycopg.Error, OSError):
        return False
    return True


class _EmbeddedStores:
    """Embedded servers for this test session, started on first use, stopped at the end."""

    def __init__(self) -> None:
        self.data_dir: Path | None = None

    def endpoint(self, service: str) -> str:
        from brokerflow.services import ensure_services
        from brokerflow.settings import Settings

        if self.data_dir is None:
            # Short, world-traversable path: PostgreSQL may run as another user when we are root.
            self.data_dir = Path(tempfile.mkdtemp(prefix="bf-test-stores-"))
            SESSION_DIRS.append(self.data_dir.resolve())
        settings = Settings(redis_url=None, postgres_dsn=None, data_dir=self.data_dir)
        endpoints = ensure_services(settings, {service})
        url = endpoints.redis_url if service == "redis" else endpoints.postgres_dsn
        assert url is not None
        return url

    def close(self) -> None:
        if self.data_dir is None:
            return
        from brokerflow.services import stop_services

        stop_services(self.data_dir)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def _embedded_stores() -> Iterator[_EmbeddedStores]:
    stores = _EmbeddedStores()
    yield stores
    stores.close()


@pytest.fixture(scope="session")
def redis_url(_embedded_stores: _EmbeddedStores) -> str:
    """Return the Redis server of this session (env, else local, else embedded)."""
    configured = os.environ.get("BROKERFLOW_REDIS_URL")
    if configured:
        return configured
    if _redis_answers(LOCAL_REDIS_URL):
        return LOCAL_REDIS_URL
    return _embedded_stores.endpoint("redis")


@pytest.fixture(scope="session")
def postgres_dsn(_embedded_stores: _EmbeddedStores) -> str:
    """Return the PostgreSQL server of this session (env, else local, else embedded)."""
    configured = os.environ.get("BROKERFLOW_POSTGRES_DSN")
    if configured:
        return configured
    if _postgres_answers(LOCAL_POSTGRES_DSN):
        return LOCAL_POSTGRES_DSN
    return _embedded_stores.endpoint("postgres")


def with_redis_db(url: str, db: int) -> str:
    """Return a Redis URL pointing at db index `db`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}", query=""))


@contextmanager
def fresh_database(postgres_dsn: str) -> Iterator[str]:
    """A fresh, empty database on the server; dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"bf_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(postgres_dsn, name)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def pg_dsn(postgres_dsn: str) -> Iterator[str]:
    """Return the DSN of a fresh, empty database for this test; dropped afterwards."""
    with fresh_database(postgres_dsn) as dsn:
        yield dsn


@contextmanager
def reserved_redis_db(redis_url: str) -> Iterator[str]:
    """A Redis URL on a db index (1..15) reserved for the caller, flushed before and after."""
    import redis

    token = secrets.token_hex(8)
    base = redis.Redis.from_url(with_redis_db(redis_url, 0))
    deadline = time.monotonic() + REDIS_LOCK_WAIT_S
    reserved: int | None = None
    try:
        while reserved is None:
            for db in REDIS_TEST_DBS:
                if base.set(f"brokerflow:test-db-lock:{db}", token, nx=True, px=REDIS_LOCK_TTL_MS):
                    reserved = db
                    break
            else:
                if time.monotonic() > deadline:
                    pytest.fail("no free Redis test db in 1..15 (all reserved by other tests)")
                time.sleep(0.05)
        url = with_redis_db(redis_url, reserved)
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        try:
            yield url
        finally:
            with redis.Redis.from_url(url) as client:
                client.flushdb()
    finally:
        if reserved is not None:
            lock = f"brokerflow:test-db-lock:{reserved}"
            if base.get(lock) == token.encode():
                base.delete(lock)
        base.close()


@pytest.fixture
def redis_db_url(redis_url: str) -> Iterator[str]:
    """Return a Redis URL on a db index (1..15) reserved for this test, flushed before and after."""
    with reserved_redis_db(redis_url) as url:
        yield url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Return an empty data dir for this test."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings_factory(request: pytest.FixtureRequest, data_dir: Path) -> Callable[..., Any]:
    """Return `make(**overrides) -> Settings` pointing at this test's own stores.

    The Redis db and the PostgreSQL database are only created when a settings object is made
    without an explicit `redis_url` / `postgres_dsn` override.
    """
    from brokerflow.settings import Settings

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": data_dir}
        if "redis_url" not in overrides:
            values["redis_url"] = request.getfixturevalue("redis_db_url")
        if "postgres_dsn" not in overrides:
            values["postgres_dsn"] = request.getfixturevalue("pg_dsn")
        values.update(overrides)
        return Settings(**values)

    return make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a server or command the suite started outlives it (named, then
    stopped, so a failing run does not leave it behind either)."""
    if not Path("/proc/self/cwd").exists():
        return  # no /proc: nothing to look at
    factory = getattr(session.config, "_tmp_path_factory", None)
    roots = [*SESSION_DIRS] + ([factory.getbasetemp().resolve()] if factory else [])
    deadline = time.monotonic() + LEFTOVER_GRACE_S  # servers still shutting down get a moment
    while (left := leftover_processes(roots)) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not left:
        return
    lines = [f"  pid {pid}: {cmdline}" for pid, cmdline in sorted(left.items())]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "processes started by the tests outlived them:\n" + "\n".join(lines)
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "leftover processes", red=True)
        reporter.write_line(message)
    else:
        print(message)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
