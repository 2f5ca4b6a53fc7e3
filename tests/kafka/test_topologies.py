"""Same input, same result, however the work is spread: a replay of a day with every flow's
inputs, and the same day through the gateway and Kafka run as 1 process x 1 worker, 1 x 2 and
2 processes x 1 worker, each on fresh stores, leave the same rows in Redis, PostgreSQL and
ClickHouse. Each worker decodes its own partitions; nothing passes through one worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from bench.pipeline_day import DaySpec, ensure_day
from brokerflow.commands.gateway import FileInput, run_gateway
from brokerflow.commands.replay import replay
from brokerflow.commands.run import run_kafka
from tests.flows.test_margin_determinism import tighten_cash
from tests.kafka.stores import clickhouse_rows, postgres_rows, redis_contents
from tests.kafka.test_kafka_flows import (
    drop_database,
    flush_redis,
    fresh_database,
    load_day,
    run_cluster,
)

ROOT = Path(__file__).resolve().parents[2]
# Small, but with stops that trigger, every surveillance pattern and (cash tightened) margin
# calls.
SPEC = DaySpec(symbols=12, minutes=3, accounts=300, stops=600, seed=4)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`SPEC`'s day, cash tightened; generated once: the tests only read it."""
    path = ensure_day(SPEC, tmp_path_factory.mktemp("days"), say=lambda _: None).path
    tighten_cash(path.with_suffix(".accounts.csv"), path.with_suffix(".positions.csv"))
    return path


def _stores(settings) -> tuple:
    return (redis_contents(settings.redis_url), postgres_rows(settings.postgres_dsn),
            clickhouse_rows(settings))  # fmt: skip


def _alert_kinds(rows: list[str]) -> set[str]:
    return {json.loads(row)["kind"] for row in rows}


def test_replay_and_every_topology_leave_the_same_stores(
    day, kafka_bootstrap, settings_factory, postgres_dsn, tmp_path, monkeypatch
) -> None:
    settings = settings_factory(kafka_bootstrap=kafka_bootstrap)
    load_day(day, settings, monkeypatch)
    replayed = replay([day], settings, progress=False).as_dict()
    expected = _stores(settings)
    kinds = _alert_kinds(expected[1]["alerts"])
    for kind in ("STOP_TRIGGERED", "MARGIN_CALL", "WASH_TRADE", "SPOOFING", "EXCESSIVE_OTR"):
        assert kind in kinds, kinds  # the day exercises every flow
    assert expected[1]["executions"] and expected[2]["audit_log"]

    sent = run_gateway(settings, FileInput([day]), progress=False).as_dict()
    assert sent["published"] == replayed["messages"]

    for name, workers, processes in (("1x1", 1, 1), ("1x2", 2, 1), ("2x1", 1, 2)):
        flush_redis(settings.redis_url)
        db, dsn = fresh_database(postgres_dsn)
        try:
            fresh = settings.model_copy(update={
                "postgres_dsn": dsn, "data_dir": tmp_path / name,
                "clickhouse_url": f"chdb://{tmp_path / name / 'clickhouse'}",
            })  # fmt: skip
            load_day(day, fresh, monkeypatch)
            if processes == 1:
                ran = run_kafka(fresh, until_end=True, progress=False, workers=workers)
                assert ran.as_dict()["messages"] == sent["published"], name
            else:
                summaries = run_cluster(fresh)
                per_process = [s["messages"] for s in summaries]
                assert sum(per_process) == sent["published"] and min(per_process) > 0, name
            got = _stores(fresh)
        finally:
            drop_database(postgres_dsn, db)
        for table, rows in expected[1].items():
            assert got[1][table] == rows, f"{name}: {table}"
        for table, rows in expected[2].items():
            assert got[2][table] == rows, f"{name}: {table}"
        assert got[0] == expected[0], name


def _alert_ids(dsn: str, kind: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT alert_id FROM alerts WHERE kind = %s", (kind,)).fetchall()
    return {str(r[0]) for r in rows}


def test_a_live_run_gives_the_replays_calls_and_reports_idle_partitions_once(
    day, kafka_bootstrap, settings_factory, postgres_dsn, tmp_path, monkeypatch
) -> None:
    # Live, nothing ends: an account shard releases marks and fills up to the slowest symbol
    # shard's watermark, so the day's last events wait until the partitions that finished
    # first have been idle for 2 s. Then every call comes out, the replay's own (but those the
    # replay makes when its input ends, closing the last window).
    replayed = settings_factory()
    load_day(day, replayed, monkeypatch)
    replay([day], replayed, progress=False, flows=("margin",))
    calls = _alert_ids(replayed.postgres_dsn, "MARGIN_CALL")
    assert calls

    db, dsn = fresh_database(postgres_dsn)
    live = replayed.model_copy(update={"kafka_bootstrap": kafka_bootstrap, "postgres_dsn": dsn,
                                       "data_dir": tmp_path / "live"})  # fmt: skip
    load_day(day, live, monkeypatch)
    run_gateway(live, FileInput([day]), progress=False)
    env = {**os.environ, "BROKERFLOW_REDIS_URL": live.redis_url,
           "BROKERFLOW_POSTGRES_DSN": live.postgres_dsn,
           "BROKERFLOW_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "BROKERFLOW_DATA_DIR": str(live.data_dir)}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "brokerflow.cli", "run", "--flows", "margin"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        got: set[str] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            got = _alert_ids(live.postgres_dsn, "MARGIN_CALL")
            if len(got) >= len(calls) - 2:
                break
            time.sleep(0.5)
        time.sleep(4)  # the day is read: every partition goes quiet, and says so once
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0].decode()
        drop_database(postgres_dsn, db)
    assert got <= calls and len(got) >= len(calls) - 2, (len(got), len(calls), out[-2000:])
    idle = [line for line in out.splitlines() if "kafka_partition_idle" in line]
    partitions = [line.rsplit("partition=", 1)[1].split()[0] for line in idle]
    assert partitions and len(partitions) == len(set(partitions)), out[-2000:]  # once each
