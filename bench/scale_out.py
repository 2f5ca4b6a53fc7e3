"""The scale-out benchmark: one day through gateway -> Kafka -> `brokerflow run --until-end`, in
1 process and in 2 processes x 1 worker (issue 17).

`brokerflow bench scale-out` takes the pipeline benchmark's day (`bench.pipeline_day`, sized by
the same `--pipeline-*` options, or `--pipeline-day FILE`) and:
    1. starts librdkafka's mock cluster in a process of its own (`bench.mock_kafka`: 3 brokers;
       each FIX input topic with `--scale-out-partitions` partitions, 16 by default, as the
       mock keeps only ~5 MB per partition; `fix.unrouted` 1);
    2. publishes the day with the gateway's code (`run_gateway`, `--scale-out-compression`,
       zstd by default: lz4 fills the mock's partitions about twice as fast), then checks that
       the brokers kept every message (no partition's oldest messages dropped);
    3. runs every flow of `brokerflow run` to the topics' end, as users start it: 1 process, then
       2 processes (`run --until-end --json -i K -a "127.0.0.1:p1;127.0.0.1:p2"`), each run on
       fresh stores: a new PostgreSQL database with the day's accounts and positions loaded and
       the reserved Redis db flushed (`bench.pipeline.bench_stores`, as `bench pipeline`), and
       a new data directory, where the embedded ClickHouse (chdb) of process 0 lives (a
       configured ClickHouse server is not used: it could not be made fresh);
    4. digests each run's stores (`bench.stores_digest`, in a process of its own: chdb opens one
       directory per process) and compares them.
msg/s is wall clock with start-up included: from spawning the processes to the last one's exit,
the published messages over that time. The figure is the 2-process msg/s over the 1-process
msg/s (goal 1.6). Nothing lost: every run counts every published message (the `messages` of
its processes' JSON summaries) and no event was merged out of order (`late_events`).

The mock brokers, the processes and the stores share this machine's cores: on 2 cores, two
processes compete with the brokers, PostgreSQL and Redis for them.

A run process that fails stops the benchmark with one line naming it, its exit code and its
log (`DATA_DIR/bench-scale-out/`); every child process is ended on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import common, mock_kafka
from bench.pipeline import bench_stores
from bench.pipeline_day import Day, DaySpec, ensure_day, open_day
from bench.stores_digest import differences
from brokerflow.commands.gateway import FileInput, run_gateway
from brokerflow.settings import Settings
from connectors.kafka import INPUT_TOPICS, UNROUTED_TOPIC, consumer_config, list_partitions
from domain.errors import BrokerflowError

GOAL_RATIO = 1.6  # 2 processes against 1 (issue 17)
BENCH_DATABASE = "brokerflow_bench_scale_out"
PROCESS_COUNTS = (1, 2)
# The default day (1.14 M 35=X keyed by symbol) in zstd: the fullest of 16 partitions ~75 % of
# the mock's 5 MB; 4 (the mock's default) would drop half of it.
PARTITIONS = 16
RUN_TIMEOUT_S = 3600.0
PROGRESS_EVERY_S = 5.0
_PROGRESS_LINE = re.compile(rb"^run: ([\d,]+) messages")  # `brokerflow run`'s progress lines


class ScaleOutError(BrokerflowError):
    """The benchmark cannot go on (a process failed, Kafka lost messages); one line says why."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `--scale-out-*` options of `brokerflow bench` (the day: `--pipeline-*`)."""
    p.add_argument("--scale-out-partitions", type=int, default=PARTITIONS,
                   help="scale-out: partitions of each FIX topic in the mock Kafka, which keeps "
                        "~5 MB per partition (the day is sized by --pipeline-*)")  # fmt: skip
    p.add_argument("--scale-out-compression", choices=("zstd", "lz4", "none"), default="zstd",
                   help="scale-out: the gateway's producer compression")  # fmt: skip


def _day(args: argparse.Namespace, say: Callable[[str], None]) -> Day:
    """The pipeline benchmark's day, as `bench pipeline` picks it from the same options."""
    if args.pipeline_day is not None:
        return open_day(args.pipeline_day)
    spec = DaySpec(args.pipeline_symbols, args.pipeline_minutes, args.pipeline_accounts,
                   args.pipeline_stops, args.pipeline_seed)  # fmt: skip
    return ensure_day(spec, common.DATA_DIR, say)


# -- Kafka -----------------------------------------------------------------------------------------


def publish(day: Day, bootstrap: str, compression: str, settings: Settings) -> dict:
    """The day through the gateway's code into Kafka; its summary (`GatewayStats.as_dict`)."""
    kafka = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    stats = run_gateway(kafka, FileInput([day.path]), {"compression.type": compression})
    return stats.as_dict()


def check_kept(bootstrap: str, sent: dict, partitions: int) -> None:
    """Raise `ScaleOutError` unless the brokers hold every message the gateway sent (`sent`, its
    summary: the published ones and their copies to other partitions): the mock drops a
    partition's oldest messages past ~5 MB, silently."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(bootstrap))
    try:
        dropped: dict[str, int] = {}
        held = 0
        for name in list_partitions(bootstrap, INPUT_TOPICS):
            topic, _, number = name.rpartition("/")
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, int(number)), 10)
            held += high - low
            if low:
                dropped[name] = low
    finally:
        consumer.close()
    expected = sent["published"] + sent.get("copies", 0)
    if dropped or held != expected:
        where = ", ".join(f"the first {k:,} of {n}" for n, k in list(dropped.items())[:3])
        msg = (f"bench scale-out: the mock Kafka holds {held:,} of the {expected:,} messages the "
               f"gateway sent (dropped {where or 'none'}); it keeps ~5 MB a partition: give more "
               f"--scale-out-partitions (was {partitions}) or a smaller day")  # fmt: skip
        raise ScaleOutError(msg)


# -- one run of N processes ----------------------------------------------------------------------


class _RunProcess:
    """One `brokerflow run` process: stdout (its JSON summary) and stderr (progress, logs) go to
    files; the latest progress line's message count is kept for the bench's own progress."""

    def __init__(self, index: int, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.index = index
        self.log = log
        self.out = log.with_suffix(".out")
        self.messages = 0
        with self.out.open("wb") as stdout:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(argv, cwd=common.ROOT, env=env,
                                         stdin=subprocess.DEVNULL, stdout=stdout,
                                         stderr=subprocess.PIPE)  # fmt: skip
        self._reader = threading.Thread(target=self._read, name=f"run-{index}-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with self.log.open("wb") as log:
            for line in self.proc.stderr:
                log.write(line)
                found = _PROGRESS_LINE.match(line)
                if found:
                    self.messages = int(found[1].replace(b",", b""))

    def summary(self) -> dict:
        """The JSON summary `run --json` prints last (after the process ended)."""
        self._reader.join(timeout=10)
        lines = self.out.read_bytes().decode(errors="replace").strip().splitlines()
        try:
            return json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            msg = f"bench scale-out: run process {self.index} printed no JSON summary; see " \
                  f"{self.out} and {self.log}"  # fmt: skip
            raise ScaleOutError(msg) from None

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True, slots=True)
class ClusterRun:
    """What one run of `processes` processes did: its wall time (start-up included), each
    process's JSON summary and the digests of the stores it left."""

    processes: int
    wall_s: float
    summaries: list[dict]
    digests: dict[str, dict]

    @property
    def counted(self) -> int:
        return sum(s["messages"] for s in self.summaries)

    @property
    def late_events(self) -> int:
        return sum(s.get("late_events", 0) for s in self.summaries)


def _env(stores: Settings, bootstrap: str, data_dir: Path) -> dict[str, str]:
    """The run's stores for its processes: only the variables named here differ from ours."""
    env = {**os.environ}
    env.pop("BROKERFLOW_DQ", None)  # as `bench pipeline`: data quality at its replay default
    env.update({
        "BROKERFLOW_REDIS_URL": stores.redis_url or "",
        "BROKERFLOW_POSTGRES_DSN": stores.postgres_dsn or "",
        "BROKERFLOW_CLICKHOUSE_URL": f"chdb://{data_dir / 'clickhouse'}",
        "BROKERFLOW_KAFKA_BOOTSTRAP": bootstrap,
        "BROKERFLOW_DATA_DIR": str(data_dir),
        "BROKERFLOW_METRICS_PORT": "0",  # two processes cannot serve one port
    })  # fmt: skip
    return env


def _failure(process: _RunProcess, processes: int) -> str:
    code = process.proc.returncode
    how = f"was killed by signal {-code}" if code < 0 else f"failed with exit code {code}"
    return (f"bench scale-out: run process {process.index} of the {processes}-process run "
            f"(-i {process.index}) {how}; its log: {process.log}")  # fmt: skip


def _wait(procs: list[_RunProcess], started: float, total: int,
          say: Callable[[str], None]) -> float:  # fmt: skip
    """Wait for every process; the wall seconds from `started` to the last exit. A failed
    process raises `ScaleOutError` at once (its peers would wait for it forever)."""
    label = f"{len(procs)} process" + ("es" if len(procs) > 1 else "")
    next_say = PROGRESS_EVERY_S
    while True:
        now = time.perf_counter()
        codes = [p.proc.poll() for p in procs]
        for p, code in zip(procs, codes, strict=True):
            if code not in (None, 0):
                raise ScaleOutError(_failure(p, len(procs)))
        if all(code == 0 for code in codes):
            return now - started
        elapsed = now - started
        if elapsed > RUN_TIMEOUT_S:
            msg = f"bench scale-out: the {label} did not finish within {RUN_TIMEOUT_S:g} s"
            raise ScaleOutError(msg)
        if elapsed >= next_say:
            counts = " + ".join(f"{p.messages:,}" for p in procs)
            say(f"  {label}: {elapsed:.0f} s, messages decoded {counts} of {total:,}")
            next_say += PROGRESS_EVERY_S
        time.sleep(0.02)


def _digest(env: dict[str, str], out: Path) -> dict[str, dict]:
    done = subprocess.run([sys.executable, "-m", "bench.stores_digest", "--out", str(out)],
                          cwd=common.ROOT, env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, check=False)  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        msg = f"bench scale-out: the stores could not be read: {last}"
        raise ScaleOutError(msg)
    return json.loads(out.read_text())


def run_cluster(
    processes: int, stores: Settings, bootstrap: str, workdir: Path, total: int,
    config: Path | None = None, say: Callable[[str], None] = _say,
) -> ClusterRun:  # fmt: skip
    """Run `brokerflow run --until-end --json` in `processes` processes to the topics' end, on
    `stores` and a fresh data directory under `workdir`; digest the stores it left."""
    data_dir = workdir / f"data-{processes}p"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = _env(stores, bootstrap, data_dir)
    argv = [sys.executable, "-m", "brokerflow.cli", "run", "--until-end", "--json"]
    if config is not None:
        argv += ["--config", str(config)]
    if processes > 1:
        argv += ["-a", ";".join(f"127.0.0.1:{p}" for p in common.free_ports(processes))]
    procs: list[_RunProcess] = []
    try:
        started = time.perf_counter()
        for i in range(processes):
            log = workdir / f"run-{processes}p-process-{i}.log"
            procs.append(_RunProcess(i, [*argv, "-i", str(i)], env, log))
        wall_s = _wait(procs, started, total, say)
        summaries = [p.summary() for p in procs]
    finally:
        for p in procs:  # a process whose peer failed waits for it forever
            p.end()
    say(f"  {processes} process{'es' if processes > 1 else ''}: done in {wall_s:.1f} s; "
        "digesting the stores")  # fmt: skip
    digests = _digest(env, workdir / f"digests-{processes}p.json")
    return ClusterRun(processes, wall_s, summaries, digests)


# -- the benchmark -------------------------------------------------------------------------------


def run(settings: Settings, args: argparse.Namespace, say: Callable[[str], None] = _say,
        database: str = BENCH_DATABASE) -> dict:  # fmt: skip
    """Run the benchmark; print the table; write bench/results/scale-out.json."""
    partitions, compression = args.scale_out_partitions, args.scale_out_compression
    if partitions < 1:
        msg = f"bench scale-out: --scale-out-partitions must be at least 1, was {partitions}"
        raise ScaleOutError(msg)
    day = _day(args, say)
    # fix.unrouted holds the few lines the gateway could not route
    topics = {t: 1 if t == UNROUTED_TOPIC else partitions for t in INPUT_TOPICS}
    workdir = (settings.data_dir / "bench-scale-out").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    runs: dict[int, ClusterRun] = {}
    with mock_kafka.running(topics) as bootstrap, bench_stores(settings, database) as fresh:
        say(f"scale-out: {day.path} ({day.composition['messages']:,} messages) -> gateway "
            f"({compression}) -> mock Kafka at {bootstrap} (its own process)")  # fmt: skip
        sent = publish(day, bootstrap, compression, settings)
        check_kept(bootstrap, sent, partitions)
        say(f"scale-out: {sent['published']:,} messages published, all held by the brokers")
        try:
            for processes in PROCESS_COUNTS:
                stores = fresh(day)  # a new database with the day's books, Redis flushed
                say(f"== scale-out: brokerflow run --until-end, {processes} process"
                    + ("es x 1 worker" if processes > 1 else ""))  # fmt: skip
                runs[processes] = run_cluster(processes, stores, bootstrap, workdir,
                                              sent["published"], args.config, say)  # fmt: skip
        finally:
            for processes in PROCESS_COUNTS:  # chdb's files: the logs stay for a look
                shutil.rmtree(workdir / f"data-{processes}p", ignore_errors=True)
    return report(day, sent, runs, topics, compression)


def report(day: Day, sent: dict, runs: dict[int, ClusterRun], topics: dict[str, int],
           compression: str) -> dict:  # fmt: skip
    """Print the table and write the result file; return the yardsticks with the value."""
    one, two = runs[1], runs[2]
    published = sent["published"]
    one_rate, two_rate = published / one.wall_s, published / two.wall_s
    lost = sum(max(0, published - r.counted) for r in (one, two))
    diffs = differences(one.digests, two.digests)
    compared = one.digests

    def per_process(key: str) -> list[int]:
        return [s.get(key, 0) for s in two.summaries]

    yardsticks: dict = {
        "one_process_msgs_per_s": round(one_rate),
        "two_processes_msgs_per_s": round(two_rate),
        "one_process_wall_s": round(one.wall_s, 2),
        "two_processes_wall_s": round(two.wall_s, 2),
        "messages_per_process": per_process("messages"),
        # the work the keyed steps share out (quote shards, the ledger's partition)
        "quotes_per_process": per_process("quotes"),
        "executions_per_process": per_process("executions"),
        "engine_seconds_per_process": per_process("seconds"),
        "one_process_engine_seconds": one.summaries[0].get("seconds"),
        "published": published,
        "counted_one_process": one.counted,
        "counted_two_processes": two.counted,
        "late_events": one.late_events + two.late_events,
        "lost": lost,
        "nothing_lost": lost == 0 and one.counted == two.counted == published,
        "identical_stores": not diffs,
        "store_differences": diffs[:20],
        "stores_compared": {
            "redis_keys": sum(1 for k in compared if k.startswith("redis:")),
            "postgres_tables": sum(1 for k in compared if k.startswith("postgres:")),
            "clickhouse_tables": sum(1 for k in compared if k.startswith("clickhouse:")),
            "items": sum(d["items"] for d in compared.values()),
        },
        "gateway_msgs_per_s": sent["messages_per_s"],
        # deliveries of a message to a second partition (it names symbols of both): not counted
        "gateway_copies": sent.get("copies", 0),
        "kafka": {"brokers": mock_kafka.DEFAULT_BROKERS, "partitions": topics,
                  "compression": compression, "mock": "librdkafka's, in its own process"},
        "day": {k: day.composition[k] for k in ("spec", "messages_by_type")
                if k in day.composition},  # fmt: skip
    }
    value = round(two_rate / one_rate, 3)
    out = common.write_result("scale-out", "ratio", value, GOAL_RATIO, yardsticks)
    _print(day, yardsticks, value, out)
    return {"value": value, **yardsticks}


def _print(day: Day, y: dict, value: float, out: Path) -> None:
    def listed(values: list) -> str:
        return " / ".join(f"{v:,}" for v in values)

    stores = y["stores_compared"]
    differ = ", ".join(y["store_differences"][:5])
    rows = [
        ("1 process", f"{y['one_process_msgs_per_s']:,} msg/s",
         f"{y['one_process_wall_s']:.1f} s wall, start-up included"),
        ("2 processes x 1 worker", f"{y['two_processes_msgs_per_s']:,} msg/s",
         f"{y['two_processes_wall_s']:.1f} s"),
        ("2 processes / 1", f"{value:.2f}", f"goal >= {GOAL_RATIO}"),
        ("messages per process (decoded)", listed(y["messages_per_process"]),
         f"engine seconds {listed(y['engine_seconds_per_process'])}"),
        ("quotes / executions per process", listed(y["quotes_per_process"]),
         listed(y["executions_per_process"])),
        ("nothing lost", "yes" if y["nothing_lost"] else "NO",
         f"published {y['published']:,}; counted {y['counted_one_process']:,} and "
         f"{y['counted_two_processes']:,}; late events {y['late_events']:,}"),
        ("stores identical", "yes" if y["identical_stores"] else "NO",
         f"{stores['redis_keys']:,} Redis keys, {stores['postgres_tables']} PostgreSQL and "
         f"{stores['clickhouse_tables']} ClickHouse tables, {stores['items']:,} items"
         + (f"; differ: {differ}" if differ else "")),
    ]  # fmt: skip
    kafka = y["kafka"]
    parts = ", ".join(f"{t} {n}" for t, n in kafka["partitions"].items())
    print(f"scale-out: {day.path.name}, {y['published']:,} messages; mock Kafka in its own "
          f"process ({kafka['brokers']} brokers; partitions {parts}; {kafka['compression']})")
    for name, figure, note in rows:
        print(f"  {name:<34} {figure:>22}  {note}")
    speed = json.loads(out.read_text())["python_loop_mops"]
    met = value >= GOAL_RATIO and y["nothing_lost"] and y["identical_stores"]
    print(f"  machine speed: {speed} M Python loop iterations/s")
    print(f"  {'meets' if met else 'MISSES'} the goal; results in {out}")
