"""`brokerflow gateway [FILE…]`: FIX in, Kafka out: each message to its topic, in sequence.

Market data (35=W/X) and order events (35=8/D/F/G/E) go to `fix.events` keyed by Symbol (55),
each symbol to the partition of its shard (`connectors.kafka.symbol_partition`), so a symbol's
prices and orders stay in one partition, in order; lines that cannot be routed go to
`fix.unrouted` with the reason counted here, so the flows dead-letter them as a replay would.
Every message carries the gateway's sequence number (`bf-seq`), continued across restarts from
the topics' end.

Reference changes (35=UA/UC) from the back office's drop folder (`[reference] inbox` of
`--config`, `connectors.reference_inbox`) are sequenced among the FIX messages, keyed by account.

The input is anything that yields `RawChunk`s (`FixInput`): FIX log files, or the FIX
sessions of `--config` (`connectors.fix.live.SessionFeed`: each chunk's deliveries are
acknowledged before the session's position is recorded, so a restart asks for a resend of what
was not published).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from brokerflow.interrupts import stop_on_signals
from brokerflow.settings import Settings, load_settings
from connectors.file import DEFAULT_CHUNK_BYTES, check_fix_file
from connectors.fix.live import SessionFeed
from connectors.kafka import (
    COPY_HEADER,
    FIX_TOPIC,
    SEQ_HEADER,
    UNROUTED_TOPIC,
    Route,
    encode_seq,
    last_published_seq,
    route_line,
    symbol_partition,
)
from connectors.raw import RawChunk
from connectors.reference_inbox import InboxInput, postgres_lookup
from domain.errors import ConfigError
from domain.sharding import used_partitions
from sinks.kafka import CheckedProducer


class FixInput(Protocol):
    """Where the gateway's FIX comes from: batches of raw lines, in arrival order."""

    def chunks(self) -> Iterator[RawChunk]: ...


@dataclass(frozen=True)
class FileInput:
    """FIX log files read in order, as `replay` reads them (one message per line)."""

    paths: list[Path]
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    stop: threading.Event = field(default_factory=threading.Event)  # set: end here (Ctrl-C)

    def chunks(self) -> Iterator[RawChunk]:
        for path in self.paths:
            line_no = 1
            with path.open("rb") as fh:
                while not self.stop.is_set() and (lines := fh.readlines(self.chunk_bytes)):
                    yield RawChunk(f"file:{path}", line_no, lines)
                    line_no += len(lines)


@dataclass
class GatewayStats:
    """What the gateway did, in numbers."""

    lines: int = 0
    published: Counter[str] = field(default_factory=Counter)  # queued, per topic
    delivered: Counter[str] = field(default_factory=Counter)  # acknowledged, per topic
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> lines
    unrouted: Counter[str] = field(default_factory=Counter)  # reason -> lines
    first_seq: int = 0
    last_seq: int = 0
    seconds: float = 0.0
    copies: int = 0  # extra deliveries of messages naming symbols of several partitions

    def as_dict(self) -> dict:
        published = sum(self.published.values())
        return {
            "lines": self.lines,
            "published": published,
            "topics": dict(sorted(self.delivered.items())),
            "copies": self.copies,
            "unrouted": dict(self.unrouted.most_common()),
            "skipped": dict(self.skipped.most_common()),
            "seq": [self.first_seq, self.last_seq],
            "seconds": round(self.seconds, 3),
            "messages_per_s": round(published / self.seconds) if self.seconds > 0 else 0,
        }

    def lines_out(self) -> list[str]:
        d = self.as_dict()
        out = [
            f"lines         {d['lines']:>12,}",
            f"published     {d['published']:>12,}  ({d['messages_per_s']:,}/s over "
            f"{d['seconds']:.2f} s; bf-seq {self.first_seq:,}..{self.last_seq:,})",
        ]
        for topic in (FIX_TOPIC, UNROUTED_TOPIC):
            out.append(f"  {topic:<16} {self.delivered.get(topic, 0):>9,}  delivered")
        if self.copies:
            out.append(f"  of which {self.copies:,} copies of messages naming symbols of "
                       "several partitions")  # fmt: skip
        for reason, n in self.unrouted.most_common():
            out.append(f"unrouted      {n:>12,}  {reason}")
        for reason, n in self.skipped.most_common():
            out.append(f"skipped       {n:>12,}  {reason}")
        return out


def publish(
    source: Iterable[RawChunk],
    producer: CheckedProducer,
    first_seq: int,
    stats: GatewayStats,
    acknowledge: Callable[[RawChunk], None] | None = None,
) -> GatewayStats:
    """Route and produce every line of `source`, numbering the published ones from `first_seq`;
    wait for every delivery report. Raises `KafkaDeliveryError` if one failed.

    With `acknowledge` (a live input that must know what is safely in Kafka), each chunk's
    deliveries are awaited before `acknowledge(chunk)` and the next chunk."""
    t0 = time.perf_counter()
    seq = first_seq
    stats.first_seq = first_seq
    produce = producer.produce
    published = stats.published
    partitions = producer.partitions(FIX_TOPIC)
    placed: dict[bytes, int] = {}  # symbol -> its partition
    for chunk in source:
        for line in chunk.lines:
            route = route_line(line)
            topic = route.topic
            if topic is None:
                stats.skipped[route.reason] += 1
                continue
            headers = [(SEQ_HEADER, encode_seq(seq))]
            if route.reason:
                stats.unrouted[route.reason] += 1
                produce(topic, route.value, None, headers)
            else:
                key = route.key
                partition = placed.get(key)
                if partition is None:
                    partition = placed[key] = symbol_partition(key, partitions)
                produce(topic, route.value, key, headers, partition)
                if route.broadcast:  # a reference change: a copy to every other partition
                    _copies(route, partition, placed, partitions, headers, produce, stats, True)
                elif len(route.symbols) > 1:  # a copy to each other partition it names
                    _copies(route, partition, placed, partitions, headers, produce, stats)
            published[topic] += 1
            seq += 1
        stats.lines += len(chunk.lines)
        if acknowledge is not None:
            producer.flush()
            acknowledge(chunk)
        else:
            producer.poll()
    producer.flush()
    stats.delivered = producer.delivered
    stats.last_seq = seq - 1
    stats.seconds = time.perf_counter() - t0
    return stats


def _copies(
    route: Route,
    home: int,
    placed: dict[bytes, int],
    partitions: int,
    headers: list,
    produce: Callable,
    stats: GatewayStats,
    every: bool = False,
) -> None:
    """A message naming symbols of other partitions goes there too, marked as a copy, so
    each symbol's events stay in its own partition's order (`connectors.kafka.COPY_HEADER`);
    with `every`, to every partition that holds symbol shards."""
    sent = {home}
    targets: list[int]
    if every:
        targets = list(range(used_partitions(partitions)))
    else:
        targets = []
        for symbol in route.symbols[1:]:
            partition = placed.get(symbol)
            if partition is None:
                partition = placed[symbol] = symbol_partition(symbol, partitions)
            targets.append(partition)
    for partition in targets:
        if partition not in sent:
            sent.add(partition)
            produce(route.topic, route.value, route.key, [*headers, (COPY_HEADER, b"1")],
                    partition)  # fmt: skip
            stats.copies += 1


def run_gateway(
    settings: Settings,
    source: FixInput,
    overrides: dict | None = None,
    progress: bool = True,
) -> GatewayStats:
    """Publish `source` to the Kafka of `settings`, going on from the topics' last `bf-seq`."""
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        msg = "the gateway needs Kafka: set BROKERFLOW_KAFKA_BOOTSTRAP (or kafka_bootstrap)"
        raise ConfigError(msg)
    first_seq = last_published_seq(bootstrap) + 1
    producer = CheckedProducer(bootstrap, overrides)
    stats = GatewayStats()
    stop = threading.Event()
    if progress:
        threading.Thread(target=_progress, args=(stats, stop), daemon=True).start()
    try:
        acknowledge = getattr(source, "acknowledge", None)
        return publish(source.chunks(), producer, first_seq, stats, acknowledge)
    finally:
        stop.set()


def _progress(stats: GatewayStats, stop: threading.Event) -> None:
    t0 = time.monotonic()
    while not stop.wait(1.0):
        n = sum(stats.published.values())
        print(
            f"gateway: {n:,} published, {sum(stats.unrouted.values()):,} unrouted, "
            f"{time.monotonic() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "gateway",
        parents=[common],
        help="FIX -> Kafka: route each message to its topic (FIX sessions or log files)",
        description="Publish FIX messages to fix.events (keyed by symbol), in sequence: "
        "from FIX log files, or from the [[fix.session]] initiators of --config (market-data "
        "and drop-copy sessions) until Ctrl-C / SIGTERM or --seconds.",
    )
    p.add_argument("files", nargs="*", type=Path, metavar="FILE", help="FIX log files")
    p.add_argument("--seconds", type=float, help="FIX sessions: stop after N seconds")
    p.add_argument("--json", action="store_true", help="make the last line a JSON summary")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.add_argument(
        "--compression",
        choices=("lz4", "zstd", "none"),
        default="lz4",
        help="producer compression (default lz4)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, args.data_dir)
    source: FixInput
    if args.files:
        for path in args.files:
            check_fix_file(path)
        source = FileInput(args.files)
        stop = source.stop.set
    else:
        sessions = settings.fix_sessions()
        if not sessions:
            msg = "no input: give FIX log files, or --config with [[fix.session]] tables"
            raise ConfigError(msg)
        state = settings.data_dir / "gateway" / "sessions.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        feed = SessionFeed(sessions, state, args.seconds)
        source, stop = feed, feed.stop
        if settings.metrics_port:  # the sessions' state, sequence numbers, resends, rejects
            from brokerflow.metrics import FlowStats
            from brokerflow.observability import serve_metrics

            serve_metrics(settings.metrics_port, FlowStats())
    inbox = settings.reference_inbox()
    if inbox is not None:  # the back office's reference changes, among the FIX messages
        dsn = settings.postgres_dsn  # unset: no checks against the ledger (it dead-letters)
        source = InboxInput(source, inbox, postgres_lookup(dsn) if dsn else None)
    with stop_on_signals(stop):  # Ctrl-C, SIGTERM: stop reading, flush, then summarise
        stats = run_gateway(
            settings,
            source,
            {"compression.type": args.compression},
            progress=not args.quiet,
        )
    for line in stats.lines_out():
        print(line)
    if args.json:
        print(json.dumps(stats.as_dict()))
    return 0
