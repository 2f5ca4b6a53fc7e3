"""`brokerflow bench [NAME]`: the benchmarks; prints a table, writes bench/results/NAME.json."""

from __future__ import annotations

import argparse

from brokerflow.settings import load_settings

BENCHMARKS = ("ingest", "executions")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="run the benchmarks (prints a table, writes bench/results/NAME.json)",
    )
    p.add_argument("name", nargs="?", choices=BENCHMARKS, help="one benchmark (default: all)")
    p.add_argument(
        "--messages", type=int, default=1_000_000, help="ingest: messages in the input file"
    )
    p.add_argument("--fills", type=int, default=200_000, help="executions: fills in the input file")
    p.add_argument(
        "--simplefix-messages",
        type=int,
        help="run the simplefix yardstick over only the first N messages (default: all)",
    )
    p.add_argument("--profile", action="store_true", help="profile the end-to-end run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, args.data_dir)
    for name in [args.name] if args.name else BENCHMARKS:
        if name == "ingest":
            from bench import ingest

            ingest.run(settings, args.messages, args.simplefix_messages, args.profile)
        elif name == "executions":
            from bench import executions

            executions.run(settings, args.fills)
    return 0
