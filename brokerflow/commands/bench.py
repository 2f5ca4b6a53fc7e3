"""`brokerflow bench [NAME]`: the benchmarks; prints a table, writes bench/results/NAME.json."""

from __future__ import annotations

import argparse

from brokerflow.settings import load_settings

BENCHMARKS = (
    "ingest", "ingest-kafka", "executions", "stops", "margin", "surveillance", "edge",
    "fix-session",
)


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
        "--fix-messages", type=int, default=200_000,
        help="fix-session: 35=X messages the venue streams to our initiator",
    )
    p.add_argument(
        "--simplefix-messages",
        type=int,
        help="run the simplefix yardstick over only the first N messages (default: all)",
    )
    p.add_argument(
        "--stops", type=int, default=1_000_000, help="stops: resting stops in the engine part"
    )
    p.add_argument("--symbols", type=int, default=5_000, help="stops: symbols")
    p.add_argument(
        "--quotes", type=int, default=1_000_000, help="stops: quotes fed to the engine part"
    )
    p.add_argument(
        "--flow-stops",
        type=int,
        default=100_000,
        help="stops: resting stops (35=D) in the end-to-end file (0 skips the end-to-end part)",
    )
    p.add_argument(
        "--flow-quotes",
        type=int,
        default=300_000,
        help="stops: market-data messages (35=X) in the end-to-end file",
    )
    p.add_argument("--profile", action="store_true", help="profile the end-to-end run")
    p.add_argument(
        "--surv-minutes",
        type=float,
        default=405,
        help="surveillance: simulated minutes from 14:30 UTC (default 405: past the close)",
    )
    p.add_argument(
        "--surv-orders-per-minute",
        type=float,
        default=250,
        help="surveillance: new orders per simulated minute",
    )
    p.add_argument("--surv-accounts", type=int, default=5_000, help="surveillance: accounts")
    p.add_argument("--surv-symbols", type=int, default=100, help="surveillance: symbols")
    from bench import margin

    margin.add_arguments(p)  # --accounts, --holdings, --margin-*
    from bench import edge

    edge.add_arguments(p)  # --edge-*
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, args.data_dir)
    for name in [args.name] if args.name else BENCHMARKS:
        if name == "ingest":
            from bench import ingest

            ingest.run(settings, args.messages, args.simplefix_messages, args.profile)
        elif name == "ingest-kafka":
            from bench import ingest_kafka

            # The mock cluster keeps ~5 MB per partition: at most 300,000 messages here.
            ingest_kafka.run(settings, min(args.messages, 300_000))
        elif name == "executions":
            from bench import executions

            executions.run(settings, args.fills)
        elif name == "stops":
            from bench import stops

            stops.run(
                settings,
                stops=args.stops,
                symbols=args.symbols,
                quotes=args.quotes,
                flow_stops=args.flow_stops,
                flow_quotes=args.flow_quotes,
            )
        elif name == "margin":
            from bench import margin

            margin.run(settings, args)
        elif name == "edge":
            from bench import edge

            edge.run(settings, args)
        elif name == "fix-session":
            from bench import fix_session

            fix_session.run(args.fix_messages)
        elif name == "surveillance":
            from bench import surveillance

            surveillance.run(
                settings,
                minutes=args.surv_minutes,
                orders_per_minute=args.surv_orders_per_minute,
                accounts=args.surv_accounts,
                symbols=args.surv_symbols,
            )
    return 0
