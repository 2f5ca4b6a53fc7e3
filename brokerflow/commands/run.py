"""`brokerflow run`: the flows live, reading FIX from Kafka (the topics `gateway` fills).

Every process of a cluster runs the same command with its own `--process-id` and the same
`--addresses`; the Kafka partitions are shared out among all workers of all processes.
`--until-end` stops at the end offsets seen at start (tests, benchmarks, catching up); without
it the run goes on until interrupted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from brokerflow.commands.replay import run_flows, with_overrides
from brokerflow.runner import RunSummary
from brokerflow.settings import Settings, load_settings
from connectors.kafka import INPUT_TOPICS, KafkaFixSource
from domain.errors import ConfigError
from flows.pipeline import ALL_FLOWS


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="live flows from Kafka (BROKERFLOW_KAFKA_BOOTSTRAP), as configured",
        description="Run every flow over the FIX topics the gateway fills, in its order.",
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
        msg = "run needs Kafka: set BROKERFLOW_KAFKA_BOOTSTRAP (FIX sessions are not wired yet)"
        raise ConfigError(msg)
    if workers < 1:
        msg = f"--workers must be at least 1, was {workers}"
        raise ConfigError(msg)
    return run_flows(
        KafkaFixSource(bootstrap, INPUT_TOPICS, until_end=until_end),
        settings,
        "run",
        workers=workers,
        progress=progress,
        flows=flows,
        orders_out=orders_out,
        recovery_dir=recovery_dir,
        snapshot_s=snapshot_s,
        inputs=[f"kafka:{t}" for t in INPUT_TOPICS],
        sequenced=True,
        # A run to the end is a replay of what Kafka holds: its output depends on the input
        # alone. A live run also publishes held quotes when the market goes quiet.
        live=not until_end,
        process_id=process_id,
        addresses=addresses,
    )


def run(args: argparse.Namespace) -> int:
    settings = with_overrides(load_settings(args.config, args.data_dir), args.overrides)
    addresses = parse_addresses(args.addresses, args.process_id)
    summary = run_kafka(
        settings,
        until_end=args.until_end,
        workers=args.workers,
        process_id=args.process_id,
        addresses=addresses,
        progress=not args.quiet,
        flows=[name.strip() for name in args.flows.split(",") if name.strip()],
        orders_out=args.orders_out,
        recovery_dir=args.recovery_dir,
        snapshot_s=args.snapshot_s,
    )
    for line in summary.lines():
        print(line)
    counts = summary.counts
    print(
        f"kafka         {counts.get('kafka_gaps', 0):>12,}  bf-seq numbers never received, "
        f"{counts.get('kafka_duplicates', 0):,} redelivered (dropped)"
    )
    if args.json:
        print(json.dumps({**summary.as_dict(), "kafka_gaps": counts.get("kafka_gaps", 0)}))
    return 0
