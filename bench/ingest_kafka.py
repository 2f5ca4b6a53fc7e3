"""The ingest benchmark through Kafka: file vs Kafka, 1 vs 2 processes, in the same run.

Printed next to each other (msg/s, the quotes flow into Redis, as `bench ingest`):
    file replay        `replay` of the simulated file (the yardstick)
    gateway            the file routed and produced to Kafka, every delivery acknowledged
    kafka, 1 process   `run --until-end` from the topics (each partition decoded where read)
    kafka, 2 processes two `run --until-end -i K -a …` processes sharing the partitions

Kafka is librdkafka's mock cluster inside this process (3 brokers, 4 partitions per topic,
about 5 MB kept per partition, so the input stays at a few hundred thousand messages); it
shares the 2 cores with the flows, so these figures are a floor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis

from bench.common import free_ports, write_result
from bench.ingest import _bench_redis_url, _say, ensure_file
from brokerflow.commands.gateway import FileInput, run_gateway
from brokerflow.commands.replay import replay
from brokerflow.commands.run import run_kafka
from brokerflow.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
GOAL_MSGS_PER_S = 100_000


def _flush(url: str) -> None:
    with redis.Redis.from_url(url) as client:
        client.flushdb()


def _mock_cluster() -> tuple[object, str]:
    from confluent_kafka import Producer

    owner = Producer({"test.mock.num.brokers": 3, "bootstrap.servers": "", "log_level": 0})
    brokers = owner.list_topics(timeout=5).brokers.values()
    return owner, ",".join(f"{b.host}:{b.port}" for b in brokers)


def _processes_rate(settings: Settings, processes: int) -> tuple[float, int]:
    """(msg/s, messages) of `processes` `run --until-end` processes (engine time)."""
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    env = {
        **os.environ,
        "BROKERFLOW_REDIS_URL": settings.redis_url or "",
        "BROKERFLOW_POSTGRES_DSN": settings.postgres_dsn or "",
        "BROKERFLOW_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "BROKERFLOW_DATA_DIR": str(settings.data_dir),
    }
    argv = [sys.executable, "-m", "brokerflow.cli", "run", "--until-end", "-q", "--json",
            "--flows", "quotes", "-a", addresses]  # fmt: skip
    procs = [
        subprocess.Popen([*argv, "-i", str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE)
        for i in range(processes)
    ]
    summaries = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=900)
            if p.returncode != 0:
                msg = f"a run process failed (exit {p.returncode})"
                raise RuntimeError(msg)
            summaries.append(json.loads(out.decode().strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    messages = sum(s["messages"] for s in summaries)
    seconds = max(s["seconds"] for s in summaries)
    return messages / seconds, messages


def run(
    settings: Settings, messages: int = 300_000, say: Callable[[str], None] = _say
) -> dict:
    """Run the benchmark; print the table; write bench/results/ingest-kafka.json."""
    path = ensure_file(messages)
    redis_url = _bench_redis_url(settings)
    owner, bootstrap = _mock_cluster()
    bench = settings.model_copy(update={"redis_url": redis_url, "kafka_bootstrap": bootstrap})
    if bench.postgres_dsn is None:  # the subprocesses must share this process's stores
        from brokerflow.services import ensure_services

        dsn = ensure_services(bench, {"postgres"}).postgres_dsn
        bench = bench.model_copy(update={"postgres_dsn": dsn})

    _flush(redis_url)
    say(f"file replay of {messages:,} messages")
    file_rate = replay([path], bench, progress=False, flows=("quotes",)).as_dict()
    file_rate = file_rate["messages"] / file_rate["seconds"]

    say(f"gateway: {path.name} -> Kafka at {bootstrap}")
    sent = run_gateway(bench, FileInput([path]), progress=False).as_dict()
    gateway_rate = sent["published"] / sent["seconds"]

    _flush(redis_url)
    say("kafka, 1 process")
    one = run_kafka(bench, until_end=True, progress=False, flows=("quotes",))
    one_rate = one.counts.get("messages", 0) / one.seconds  # engine time, as the replay's
    one_lost = sent["published"] - one.counts.get("messages", 0)

    _flush(redis_url)
    say("kafka, 2 processes")
    two_rate, two_messages = _processes_rate(bench, 2)
    two_lost = sent["published"] - two_messages
    del owner

    yardsticks = {
        "file_replay_msgs_per_s": round(file_rate),
        "gateway_msgs_per_s": round(gateway_rate),
        "kafka_1_process_msgs_per_s": round(one_rate),
        "kafka_2_processes_msgs_per_s": round(two_rate),
        "kafka_over_file": round(one_rate / file_rate, 3),
        "two_processes_over_one": round(two_rate / one_rate, 3),
        "messages": sent["published"],
        "lost": one_lost + two_lost,
        "two_process_messages": two_messages,
    }
    out = write_result("ingest-kafka", "messages/s", round(one_rate), GOAL_MSGS_PER_S, yardsticks)
    print(f"ingest-kafka: {sent['published']:,} messages, {path.name}, mock Kafka in process")
    rows = [
        ("file replay (yardstick)", file_rate),
        ("gateway: file -> Kafka, acknowledged", gateway_rate),
        ("kafka -> flow, 1 process", one_rate),
        ("kafka -> flow, 2 processes x 1 worker", two_rate),
    ]
    for name, rate in rows:
        print(f"  {name:<42} {rate:>12,.0f} msg/s")
    print(f"  kafka / file {one_rate / file_rate:.2f}; 2 processes / 1 {two_rate / one_rate:.2f}; "
          f"lost {one_lost + two_lost}")  # fmt: skip
    speed = json.loads(out.read_text())["python_loop_mops"]
    print(f"  machine speed: {speed} M Python loop iterations/s; results in {out}")
    return yardsticks
