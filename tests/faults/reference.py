"""The day every fault test replays, and what an uninterrupted replay of it leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brokerflow.cli import main
from tests.conftest import fresh_database, reserved_redis_db
from tests.faults.sinks import clickhouse_contents, postgres_contents, redis_contents

# The day every fault test replays: orders and fills for 40 accounts over 20 minutes, long
# enough for kills at several points, epochs between them and outages mid-run.
DAY_OPTIONS = ["--symbols", "5", "--minutes", "20", "--orders", "--accounts", "40",
               "--orders-per-minute", "200", "--seed", "11"]  # fmt: skip


@dataclass(frozen=True)
class ReferenceDay:
    """A simulated day and what one uninterrupted replay of it (every flow) left in every
    store, read once: the day and the reference are the same in every fault test."""

    day: Path
    postgres: dict[str, list[tuple[Any, ...]]]
    redis: dict[str, Any]
    clickhouse: dict[str, Any]


def load_day(day: Path, env: dict[str, str], data_dir: Path) -> None:
    """Load the day's opening accounts and positions into the stores of `env`."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for kind in ("accounts", "positions"):
            csv = day.with_suffix(f".{kind}.csv")
            assert main(["load", kind, str(csv), "--data-dir", str(data_dir)]) == 0


def replay_reference(root: Path, postgres_dsn: str, redis_url: str) -> ReferenceDay:
    """Generate the day under `root` and replay it on a database and Redis db of its own,
    released once read (each test's runs get fresh ones)."""
    day = root / "day.fix"
    assert main(["simulate", *DAY_OPTIONS, "--out", str(day)]) == 0
    data_dir = root / "reference"
    with fresh_database(postgres_dsn) as dsn, reserved_redis_db(redis_url) as url:
        env = {"BROKERFLOW_POSTGRES_DSN": dsn, "BROKERFLOW_REDIS_URL": url}
        load_day(day, env, data_dir)
        replay = subprocess.run(
            [sys.executable, "-m", "brokerflow.cli", "replay", str(day), "-q",  # every flow
             "--data-dir", str(data_dir)],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, timeout=600,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        return ReferenceDay(
            day, postgres_contents(dsn), redis_contents(url), clickhouse_contents(data_dir, env)
        )
