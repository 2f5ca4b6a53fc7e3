"""`brokerflow bench [NAME]`: the benchmarks; prints a table, writes bench/results/NAME.json.

The benchmarks' own command line. bench sits above the CLI (it drives replay, load and the
services), so `brokerflow.cli` loads this module by name at run time instead of importing it.

Without NAME every benchmark runs and one summary table ends the run (`bench/summary.py`),
also written as bench/results/summary.json and SUMMARY.md. `--summary-only` builds that table
from the results already there; `--quick` runs everything at small sizes into
bench/data/quick-results/, so the committed full-size results stay as they are.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.names import BENCHMARKS
from brokerflow.settings import load_settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="run the benchmarks (prints a table, writes bench/results/NAME.json)",
    )
    p.add_argument(
        "name",
        nargs="?",
        choices=(*BENCHMARKS, "compare"),
        help="one benchmark (default: all); compare: base commit against current, back to back",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (minutes, not hours); results go to bench/data/quick-results/",
    )
    p.add_argument(
        "--summary-only",
        action="store_true",
        help="run nothing: build the summary table (and the README's) from bench/results/",
    )
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
        help="surveillance: new orders per simulated minute (default 250)",
    )
    p.add_argument(
        "--surv-accounts", type=int, default=5_000, help="surveillance: accounts (default 5,000)"
    )
    p.add_argument(
        "--surv-symbols", type=int, default=100, help="surveillance: symbols (default 100)"
    )
    from bench import margin

    margin.add_arguments(p)  # --margin-* only: a plain --quotes is the stops benchmark's
    from bench import edge

    edge.add_arguments(p)  # --edge-*
    from bench import pipeline

    pipeline.add_arguments(p)  # --pipeline-* (scale-out's day too)
    from bench import scale_out

    scale_out.add_arguments(p)  # --scale-out-*
    from bench import audit

    audit.add_arguments(p)  # --audit-* (--quick shrinks them in bench/audit.py)
    from bench import price_alerts

    price_alerts.add_arguments(p)  # --price-alerts-*
    from bench import run_cpu

    run_cpu.add_arguments(p)  # --run-cpu-*
    from bench import compare

    compare.add_arguments(p)  # bench compare --base REV --only ... --repeat N
    p.set_defaults(func=run)
    _FULL_DEFAULTS.update({dest: p.get_default(dest) for dest in QUICK_SIZES})


# `--quick`: each benchmark small enough that all of them take a few minutes. Applied only to
# options left at their full-size default.
QUICK_SIZES: dict[str, object] = {
    "messages": 100_000,
    "simplefix_messages": 20_000,
    "fills": 20_000,
    "fix_messages": 50_000,
    "stops": 100_000,
    "symbols": 1_000,
    "quotes": 100_000,
    "flow_stops": 10_000,
    "flow_quotes": 30_000,
    "surv_minutes": 405,
    "surv_orders_per_minute": 40,
    "surv_accounts": 1_000,
    "surv_symbols": 20,
    "margin_accounts": 20_000,
    "margin_symbols": 500,
    "margin_quotes": 50_000,
    "margin_seconds": 10.0,
    "margin_flow_accounts": 200,
    "margin_flow_quotes": 20_000,
    "edge_clients": 100,
    "edge_rates": "1000,5000",
    "edge_seconds": 3.0,
    "pipeline_symbols": 20,
    "pipeline_minutes": 5.0,
    "pipeline_accounts": 500,
    "pipeline_stops": 2_000,
    "pipeline_rounds": 1,
    "price_alerts_count": 100_000,
    "price_alerts_quotes": 100_000,
    "price_alerts_messages": 100_000,
    "price_alerts_rounds": 1,
    "run_cpu_warmup": 5.0,
    "run_cpu_window": 5.0,
}
_FULL_DEFAULTS: dict[str, object] = {}


def _apply_quick(args: argparse.Namespace) -> None:
    for dest, value in QUICK_SIZES.items():
        if getattr(args, dest, None) == _FULL_DEFAULTS.get(dest):
            setattr(args, dest, value)


def _results_dir(quick: bool) -> Path:
    from bench import common

    return common.DATA_DIR / "quick-results" if quick else common.RESULTS_DIR


def _summarise(results_dir: Path, failed: dict[str, str], readme: bool) -> int:
    from bench import summary

    results = summary.load_results(results_dir, BENCHMARKS)
    if not results:
        print(f"brokerflow: error: no results in {results_dir}", file=sys.stderr)
        return 2
    doc = summary.build_summary(results, failed)
    print(summary.render_text(doc))
    json_path, md_path = summary.write_summary(doc, results_dir)
    print(f"wrote {json_path} and {md_path}")
    if readme:
        from bench import common

        path = common.ROOT / "README.md"
        if path.is_file() and summary.update_readme(path, doc):
            print(f"refreshed the benchmark table in {path}")
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    if args.name == "compare":  # runs `brokerflow bench` of two checkouts, sizes applied there
        from bench import compare

        return compare.run(args)
    if args.summary_only:
        return _summarise(_results_dir(args.quick), {}, readme=not args.quick)
    if args.quick:
        _apply_quick(args)
        from bench import common

        # write_result reads RESULTS_DIR when it writes: quick figures stay out of bench/results.
        common.RESULTS_DIR = _results_dir(quick=True)
    settings = load_settings(args.config, args.data_dir)
    if args.name:
        _run_one(args.name, args, settings)
        return 0
    failed: dict[str, str] = {}
    for name in BENCHMARKS:
        started = time.monotonic()
        print(f"== bench {name}", flush=True)
        try:
            _run_one(name, args, settings)
        except (Exception, SystemExit) as exc:  # one broken benchmark must not hide the rest
            failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            print(f"brokerflow: bench {name} failed: {failed[name]}", file=sys.stderr, flush=True)
        print(f"== bench {name}: {time.monotonic() - started:.0f} s", flush=True)
    return _summarise(_results_dir(args.quick), failed, readme=False)


def _run_one(name: str, args: argparse.Namespace, settings) -> None:  # noqa: ANN001
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
    elif name == "pipeline":
        from bench import pipeline

        pipeline.run(settings, args)
    elif name == "scale-out":
        from bench import scale_out

        scale_out.run(settings, args)
    elif name == "price-alerts":
        from bench import price_alerts

        price_alerts.run(settings, args)
    elif name == "run-cpu":
        from bench import run_cpu

        run_cpu.run(settings, args)
    elif name == "audit":
        from bench import audit

        audit.run(settings, args)
    elif name == "surveillance":
        from bench import surveillance

        surveillance.run(
            settings,
            minutes=args.surv_minutes,
            orders_per_minute=args.surv_orders_per_minute,
            accounts=args.surv_accounts,
            symbols=args.surv_symbols,
        )
