"""Exactly once across crashes: a replay killed with SIGKILL at random points and resumed from its
Bytewax recovery directory ends with the same triggers as an uninterrupted run, and no child
order is sent twice. Runs `brokerflow replay` as a real process against real PostgreSQL/Redis.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from brokerflow.commands.replay import replay
from simulator.stops import write_stops_day
from tests.conftest import with_database
from tests.flows.test_executions_flow import load

pytestmark = pytest.mark.slow


@pytest.fixture
def second_db(postgres_dsn: str):
    name = f"bf_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(postgres_dsn, name)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def outcome(dsn: str, orders_out: Path) -> tuple[set, Counter, int]:
    with psycopg.connect(dsn) as conn:
        rows = set(
            conn.execute(
                "SELECT cl_ord_id, status, trigger_px, triggered_at, child_cl_ord_id "
                "FROM stop_orders"
            ).fetchall()
        )
        alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    sent = Counter(
        line.split(b"\x0111=")[1].split(b"\x01")[0]
        for line in orders_out.read_bytes().splitlines()
    )
    return rows, sent, alerts


def test_killed_replays_resume_with_the_same_triggers_and_no_child_twice(
    tmp_path, settings_factory, second_db, monkeypatch
):
    day = tmp_path / "day.fix"
    stops = write_stops_day(day, 100_000, every=40, seed=5)
    accounts = tmp_path / "accounts.csv"
    accounts.write_text(
        "account,owner,cash\n" + "".join(f"ACC{i},o{i},1000000\n" for i in range(1, 11))
    )

    reference = settings_factory()
    load(reference, "accounts", accounts, monkeypatch)
    replay([day], reference, progress=False, orders_out=tmp_path / "reference.fix")
    expected_rows, expected_sent, expected_alerts = outcome(
        reference.postgres_dsn, tmp_path / "reference.fix"
    )
    assert stops > 1_000 and len(expected_sent) > 100  # the day really triggers stops

    crashed = settings_factory(postgres_dsn=second_db, data_dir=tmp_path / "crashed")
    load(crashed, "accounts", accounts, monkeypatch)
    env = {
        **os.environ,
        "BROKERFLOW_POSTGRES_DSN": second_db,
        "BROKERFLOW_REDIS_URL": crashed.redis_url,
    }
    out = tmp_path / "crashed.fix"
    command = [
        sys.executable, "-m", "brokerflow.cli", "replay", str(day), "-q",
        "--data-dir", str(crashed.data_dir), "--orders-out", str(out),
        "--recovery-dir", str(tmp_path / "recovery"), "--snapshot-s", "0.5",
    ]  # fmt: skip
    rng = random.Random(7)
    kills = 0
    # Kill it at three random points of its progress (children sent so far), each run resuming
    # the last one's recovery directory.
    targets = sorted(rng.sample(range(20, len(expected_sent) - 20), 3))
    for target in targets:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        while process.poll() is None and _lines(out) < target:
            time.sleep(0.01)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert kills >= 2, "the replay finished before the kills: make the day longer"

    rows, sent, alerts = outcome(second_db, out)
    assert max(sent.values()) == 1, [k for k, v in sent.items() if v > 1]
    assert set(sent) == set(expected_sent)
    assert rows == expected_rows
    assert alerts == expected_alerts
