"""Benchmark helpers: the contract's result file and the machine description."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATA_DIR = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[1]
# The folders (and files) whose code a measurement runs: an uncommitted change to a tracked file
# there makes the result's commit "-dirty". Not tests, docs, dashboards or the results themselves.
PRODUCT_PATHS = (
    "bench", "brokerflow", "connectors", "domain", "edge", "flows", "quality", "simulator",
    "sinks", "sql", "pyproject.toml",
)  # fmt: skip
_NOT_PRODUCT = ("bench/results", "bench/data")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def python_speed(loops: int = 3_000_000, repeats: int = 3) -> float:
    """Million iterations/s of a bare Python add loop (best of `repeats`).

    The machines here are shared and their speed drifts by up to 2x within an hour; printing
    this next to every result says how fast the machine was when the figures were taken.
    """
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        total = 0
        for i in range(loops):
            total += i
        best = min(best, time.perf_counter() - started)
    return loops / best / 1e6


def git_commit(root: Path = ROOT) -> str | None:
    """The commit the working tree at `root` is at (`git rev-parse HEAD`), with "-dirty" when a
    tracked file under `PRODUCT_PATHS` has uncommitted changes; None outside a git checkout."""
    import subprocess

    def git(*argv: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *argv], cwd=root, capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None  # no git, or it hung
        return done.stdout if done.returncode == 0 else None

    head = git("rev-parse", "--verify", "HEAD")
    if not head or not head.strip():
        return None
    paths = [p for p in PRODUCT_PATHS if (root / p).exists()]
    excluded = [f":(exclude){p}" for p in _NOT_PRODUCT]
    status = git("status", "--porcelain", "--untracked-files=no", "--", *paths, *excluded)
    dirty = status is None or bool(status.strip())  # unknown counts as dirty
    return head.strip() + ("-dirty" if dirty else "")


def write_result(name: str, unit: str, value: float, goal: float | None, yardsticks: dict) -> Path:
    """Write `bench/results/NAME.json` in the contract's shape (plus the machine's speed and the
    git commit measured, `git_commit()`); return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    doc = {
        "name": name,
        "unit": unit,
        "value": value,
        "goal": goal,
        "yardsticks": yardsticks,
        "machine": machine(),
        "python_loop_mops": round(python_speed(), 1),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc), for memory-per-item figures."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database (URL or libpq key=value form)."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" in dsn:
        return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["dbname"] = database
    return make_conninfo(**params)


def scratch_database(server_dsn: str, database: str) -> str:
    """(Re)create a benchmark's own database on the server, migrated; return its DSN."""
    import psycopg
    from psycopg import sql

    from sinks.postgres import migrate

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        name = sql.Identifier(database)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    dsn = with_database(server_dsn, database)
    migrate(dsn)
    return dsn


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (for Bytewax processes' addresses)."""
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_port(port: int, timeout: float = 30.0) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port` within `timeout` seconds."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False
