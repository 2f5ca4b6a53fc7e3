"""`brokerflow run [--config FILE]`: the flows live, reading FIX from sessions or Kafka.

With `[[fix.session]]` tables in `--config` (initiators; `connectors.fix.live`), the flows read
the market-data and drop-copy sessions, and the stop engine's child orders go out on the
order-entry session (and to the `orders.outbound` topic when Kafka is configured). Ctrl-C (or
`--seconds`) logs the sessions out and ends the run with its summary.

Without sessions the flows read the Kafka topics `gateway` fills. Every process of a cluster
runs the same command with its own `--process-id` and the same
`--addresses`; the Kafka partitions are shared out among all workers of all processes.
`--until-end` stops at the end offsets seen at start (tests, benchmarks, catching up); without
it the run goes on until interrupted.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from pathlib import Path

from brokerflow.commands.replay import run_flows, with_overrides
from brokerflow.observability import set_kafka_idle, set_kafka_lag
from brokerflow.runner import RunSummary
from brokerflow.settings import Settings, load_settings
from connectors.fix.live import (
    FixSessionSource,
    LiveSession,
    OrderEntrySession,
)
from connectors.kafka import INPUT_TOPICS, KafkaFixSource
from domain.errors import ConfigError
from flows.pipeline import ALL_FLOWS


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="live flows from FIX sessions ([[fix.session]] in --config) or Kafka",
        description="Run every flow over the FIX sessions of --config, else over the FIX "
        "topics the gateway fills, in its order.",
    )
    p.add_argument(
        "--seconds", type=float, help="FIX sessions: stop after N seconds with the summary"
    )
    p.add_argument(
        "--until-end",
        action="store_true",
        help="stop at the end of the topics as they stand at start (tests, benchmarks)",
    )
    p.add_argument("--json", action="store_true", help="make the last line a JSON summary")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.add_argument("--workers", "-w", type=int, default=1, help="Bytewax worker threads")
    p.add_argument(
        "--process-id", "-i", type=int, default=0, help="this process's index in --addresses"
    )
    p.add_argument(
        "--addresses",
        "-a",
        help='every process of the cluster, "host:port;host:port" (same on each process)',
    )
    p.add_argument("--orders-out", type=Path, metavar="FILE", help="stop children to FILE")
    p.add_argument("--recovery-dir", type=Path, metavar="DIR", help="Bytewax recovery state")
    p.add_argument("--snapshot-s", type=float, default=1.0, metavar="S", help="seconds/snapshot")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="MODEL.PARAM=VALUE",
        help="override a surveillance parameter",
    )
    p.add_argument(
        "--flows",
        default=",".join(ALL_FLOWS),
        help=f"comma-separated flows to run (default: all: {','.join(ALL_FLOWS)})",
    )
    p.set_defaults(func=run)


def parse_addresses(text: str | None, process_id: int) -> list[str] | None:
    """`"h:p;h:p"` as a list, checked against `process_id`; None for a single process."""
    if not text:
        if process_id:
            msg = f"--process-id {process_id} needs --addresses"
            raise ConfigError(msg)
        return None
    addresses = [a.strip() for a in text.split(";") if a.strip()]
    for address in addresses:
        host, sep, port = address.rpartition(":")
        if not (sep and host and port.isdigit()):
            msg = f"--addresses: {address!r} is not host:port"
            raise ConfigError(msg)
    if not 0 <= process_id < len(addresses):
        msg = f"--process-id {process_id} is not an index of the {len(addresses)} --addresses"
        raise ConfigError(msg)
    return addresses


def run_kafka(
    settings: Settings,
    *,
    until_end: bool = False,
    workers: int = 1,
    process_id: int = 0,
    addresses: list[str] | None = None,
    progress: bool = True,
    flows: tuple[str, ...] | list[str] = ALL_FLOWS,
    orders_out: Path | None = None,
    recovery_dir: Path | None = None,
    snapshot_s: float = 1.0,
) -> RunSummary:
    """Run the flows over the Kafka FIX topics; return this process's summary."""
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        msg = (
            "run needs FIX sessions ([[fix.session]] tables in --config) or Kafka "
            "(BROKERFLOW_KAFKA_BOOTSTRAP)"
        )
        raise ConfigError(msg)
    if workers < 1:
        msg = f"--workers must be at least 1, was {workers}"
        raise ConfigError(msg)
    return run_flows(
        KafkaFixSource(
            bootstrap,
            INPUT_TOPICS,
            until_end=until_end,
            on_lag=set_kafka_lag,
            on_idle=set_kafka_idle,
        ),
        settings,
        "run",
        workers=workers,
        progress=progress,
        flows=flows,
        orders_out=orders_out,
        recovery_dir=recovery_dir,
        snapshot_s=snapshot_s,
        inputs=[f"kafka:{t}" for t in INPUT_TOPICS],
        # A run to the end is a replay of what Kafka holds: its output depends on the input
        # alone. A live run also publishes held quotes when the market goes quiet.
        live=not until_end,
        process_id=process_id,
        addresses=addresses,
    )


def order_writers(
    entry: OrderEntrySession | None, settings: Settings
) -> tuple[Callable[..., object], ...]:
    """Factories of the stop children's writers: the order-entry session, `orders.outbound`."""
    from sinks.fix_orders import FixOrderWriter, OrdersToKafka
    from sinks.retry import RetryPolicy

    factories: list[Callable[..., object]] = []
    if entry is not None:
        policy = RetryPolicy.lasting(settings.sink_retry_s)
        factories.append(lambda encode, count: FixOrderWriter(entry, encode, count, policy))
    if settings.kafka_bootstrap:
        bootstrap = settings.kafka_bootstrap
        factories.append(lambda encode, count: OrdersToKafka(bootstrap, encode))
    return tuple(factories)


def order_entry(sessions: list[LiveSession]) -> OrderEntrySession | None:
    """The order-entry session, logging on in the background (None when none is configured)."""
    entry = [s for s in sessions if "order-entry" in s.purposes]
    if len(entry) > 1:
        msg = f"one order-entry session at most, {len(entry)} are configured"
        raise ConfigError(msg)
    return OrderEntrySession(entry[0]) if entry else None


def run_sessions(
    settings: Settings,
    sessions: list[LiveSession],
    *,
    seconds: float | None = None,
    stop: threading.Event | None = None,
    progress: bool = True,
    flows: tuple[str, ...] | list[str] = ALL_FLOWS,
    orders_out: Path | None = None,
    recovery_dir: Path | None = None,
    snapshot_s: float = 1.0,
) -> RunSummary:
    """Run the flows over the market-data and drop-copy sessions; return the summary."""
    stop = stop or threading.Event()
    source = FixSessionSource(sessions, stop, seconds)
    entry = order_entry(sessions)  # logged on before the first child order needs it
    try:
        return run_flows(
            source,
            settings,
            "run",
            progress=progress,
            flows=flows,
            orders_out=orders_out,
            recovery_dir=recovery_dir,
            snapshot_s=snapshot_s,
            inputs=[f"fix:{s.name}" for s in sessions if s.is_source],
            live=True,
            order_writers=order_writers(entry, settings),
            stop=stop,  # Ctrl-C or SIGTERM: the sessions log out, the flows complete
            request_snapshot=source.request_snapshot,  # stale books: 35=V 263=0 (issue 21)
        )
    finally:
        if entry is not None:
            entry.close()


def run(args: argparse.Namespace) -> int:
    settings = with_overrides(load_settings(args.config, args.data_dir), args.overrides)
    sessions = [
        s
        for s in settings.fix_sessions()
        if s.config.role == "initiator"
    ]
    flows = [name.strip() for name in args.flows.split(",") if name.strip()]
    if sessions:
        summary = run_sessions(
            settings, sessions, seconds=args.seconds, progress=not args.quiet, flows=flows,
            orders_out=args.orders_out, recovery_dir=args.recovery_dir,
            snapshot_s=args.snapshot_s,
        )  # fmt: skip
        for line in summary.lines():
            print(line)
        if args.json:
            print(json.dumps(summary.as_dict()))
        return 0
    addresses = parse_addresses(args.addresses, args.process_id)
    summary = run_kafka(
        settings,
        until_end=args.until_end,
        workers=args.workers,
        process_id=args.process_id,
        addresses=addresses,
        progress=not args.quiet,
        flows=flows,
        orders_out=args.orders_out,
        recovery_dir=args.recovery_dir,
        snapshot_s=args.snapshot_s,
    )
    for line in summary.lines():
        print(line)
    counts = summary.counts
    print(
        f"late          {counts.get('late_events', 0):>12,}  events merged out of order (an "
        "idle partition spoke again)"
    )
    if args.json:
        print(json.dumps({**summary.as_dict(), "late_events": counts.get("late_events", 0)}))
    return 0
