"""FIX file -> gateway -> Kafka (librdkafka's mock cluster) -> flows: the replay's results.

The same simulated day (market data, orders and fills, a few unusable lines) is replayed from
the file, then published by the gateway and run from Kafka into fresh stores; every row of
Redis, PostgreSQL and ClickHouse must be the same, and so with 2 processes x 2 workers.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import redis

from bench.common import free_ports, scratch_database
from brokerflow.cli import main
from brokerflow.commands.gateway import FileInput, run_gateway
from brokerflow.commands.replay import replay
from brokerflow.commands.run import run_kafka
from tests.kafka.stores import clear_clickhouse, clickhouse_rows, postgres_rows, redis_contents

ROOT = Path(__file__).resolve().parents[2]


def _framed(body: bytes) -> bytes:
    """A FIX 4.4 message of `body` with a right BodyLength and CheckSum, and a newline."""
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01\n" % (sum(head + body) % 256)


BAD_LINES = (
    b"this line is not FIX\n",
    b"8=FIX.4.4\x019=20\x0135=X\x0155=AAPL\x01268=0\x0110=000\x01\n",  # wrong BodyLength/CheckSum
    b"8=FIX.4.4\x019=12\x0135=j\x0158=x\x0110=000\x01\n",  # a MsgType nobody routes
    # No key for the layout: unrouted by the gateway, dead-lettered by the decoder, as replayed.
    _framed(b"35=X\x0134=9\x0149=V\x0152=20261125-14:30:00\x0156=B\x01268=1\x01279=0\x01"
            b"269=2\x01270=10.5\x01271=100\x01"),
    _framed(b"35=8\x0134=10\x0149=V\x0152=20261125-14:30:00\x0156=B\x0137=O1\x0111=C1\x01"
            b"17=E1\x01150=0\x0139=0\x0154=1\x0138=100\x01151=100\x0114=0\x016=0\x01"),
)


def simulated_day(tmp_path: Path) -> Path:
    path = tmp_path / "day.fix"
    argv = ["simulate", "--symbols", "4", "--minutes", "2", "--orders", "--out", str(path),
            "--seed", "7"]  # fmt: skip
    assert main(argv) == 0
    lines = path.read_bytes().splitlines(keepends=True)
    # Unusable lines in the middle of the day, where they travel among the rest.
    middle = len(lines) // 2
    path.write_bytes(b"".join(lines[:middle] + list(BAD_LINES) + lines[middle:]))
    return path


def load_day(path: Path, settings, monkeypatch) -> None:
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    for kind in ("accounts", "positions"):
        csv = path.with_suffix(f".{kind}.csv")
        assert main(["load", kind, str(csv), "--data-dir", str(settings.data_dir)]) == 0


def fresh_database(postgres_dsn: str) -> tuple[str, str]:
    name = f"bf_test_{secrets.token_hex(4)}"
    return name, scratch_database(postgres_dsn, name)


def drop_database(postgres_dsn: str, name: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushdb()


def test_gateway_then_run_gives_exactly_the_replay_results(
    kafka_bootstrap, settings_factory, postgres_dsn, tmp_path, monkeypatch
) -> None:
    day = simulated_day(tmp_path)
    settings = settings_factory()
    load_day(day, settings, monkeypatch)
    replayed = replay([day], settings, progress=False).as_dict()
    expected = (
        redis_contents(settings.redis_url),
        postgres_rows(settings.postgres_dsn),
        clickhouse_rows(settings),
    )
    letters = " ".join(expected[1]["dead_letters"])
    assert "this line is not FIX" in letters and "BodyLength(9) was 20" in letters
    assert letters.count("Symbol(55) missing") == 2
    assert expected[1]["executions"] and expected[2]["audit_log"]  # the day did book and audit

    flush_redis(settings.redis_url)
    clear_clickhouse(settings)
    name, dsn = fresh_database(postgres_dsn)
    try:
        update = {"postgres_dsn": dsn, "kafka_bootstrap": kafka_bootstrap}
        kafka = settings.model_copy(update=update)
        load_day(day, kafka, monkeypatch)
        sent = run_gateway(kafka, FileInput([day]), progress=False).as_dict()
        assert sent["published"] == replayed["messages"]
        assert sent["unrouted"] == {
            "no BeginString (8=) on the line": 1, "MsgType (35) j is not routed": 1,
            "market data without Symbol (55)": 1,
            "order event without Symbol (55)": 1,
        }
        ran = run_kafka(kafka, until_end=True, progress=False)
        assert ran.counts.get("late_events", 0) == 0
        assert ran.as_dict()["messages"] == replayed["messages"]
        got = (redis_contents(kafka.redis_url), postgres_rows(dsn), clickhouse_rows(kafka))
    finally:
        drop_database(postgres_dsn, name)
    for table, rows in expected[1].items():
        assert got[1][table] == rows, table
    for table, rows in expected[2].items():
        assert got[2][table] == rows, table
    assert got[0] == expected[0]


def run_cluster(settings, workers: int = 1, timeout_s: float = 300) -> list[dict]:
    """`run --until-end --json` as 2 processes of `workers` workers on `settings`' stores and
    Kafka; each process's JSON summary. Fails the test with a process's stderr if one fails."""
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    env = {
        **os.environ,
        "BROKERFLOW_REDIS_URL": settings.redis_url,
        "BROKERFLOW_POSTGRES_DSN": settings.postgres_dsn,
        "BROKERFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "BROKERFLOW_DATA_DIR": str(settings.data_dir),
        "BROKERFLOW_CLICKHOUSE_URL": settings.clickhouse_url,
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "brokerflow.cli", "run", "--until-end", "-q", "--json",
             "-w", str(workers), "-i", str(i), "-a", addresses],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=timeout_s) for p in procs]
    finally:
        for p in procs:  # a process whose peer failed may wait for it
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    return [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]


def _without_quality(rows: list[str]) -> list[str]:
    # The data-quality step (issue 9, in progress) judges quotes per engine batch, and batches
    # differ with the worker count; its dead letters are compared by its own tests.
    return [row for row in rows if '"error": "DataQualityError"' not in row]


def test_scale_out_two_processes_of_two_workers_match_one_worker(
    kafka_bootstrap, settings_factory, postgres_dsn, tmp_path, monkeypatch
) -> None:
    # Every flow, on embedded chdb: one process per directory, so the first process writes
    # ClickHouse and the other's rows are routed to it.
    day = simulated_day(tmp_path)
    settings = settings_factory(kafka_bootstrap=kafka_bootstrap)
    load_day(day, settings, monkeypatch)
    run_gateway(settings, FileInput([day]), progress=False)
    run_kafka(settings, until_end=True, progress=False)
    expected = (
        redis_contents(settings.redis_url),
        postgres_rows(settings.postgres_dsn),
        clickhouse_rows(settings),
    )
    assert expected[1]["executions"] and expected[2]["audit_log"] and expected[2]["market_ticks"]

    flush_redis(settings.redis_url)
    name, dsn = fresh_database(postgres_dsn)
    try:
        # fresh stores, ClickHouse included: the cluster migrates it from nothing
        clickhouse_url = f"chdb://{tmp_path / 'cluster-clickhouse'}"
        scaled = settings.model_copy(update={"postgres_dsn": dsn, "clickhouse_url": clickhouse_url})
        load_day(day, scaled, monkeypatch)
        run_cluster(scaled, workers=2, timeout_s=120)
        got = (redis_contents(scaled.redis_url), postgres_rows(dsn), clickhouse_rows(scaled))
    finally:
        drop_database(postgres_dsn, name)
    for table, rows in expected[1].items():
        assert _without_quality(got[1][table]) == _without_quality(rows), table
    for table, rows in expected[2].items():
        assert got[2][table] == rows, table
    assert got[0] == expected[0]
