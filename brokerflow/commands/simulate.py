"""`brokerflow simulate`: write a deterministic simulated FIX 4.4 market-data session to a file.

Needs no service. Progress goes to stderr every 100,000 messages, then one summary line.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from simulator.market import DEFAULT_RATE_PER_SYMBOL, DEFAULT_START_NS, MarketSimulator

DEFAULT_START = "2026-11-25T14:30:00Z"
PROGRESS_EVERY = 100_000


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        msg = f"must be a positive integer, was {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        msg = f"must be a positive number, was {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _utc_instant(text: str) -> int:
    """Parse an ISO 8601 instant with a zone (``2026-11-25T14:30:00Z``) to UTC nanoseconds."""
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        msg = f"must be an ISO 8601 time with a zone, e.g. {DEFAULT_START}, was {text!r}"
        raise argparse.ArgumentTypeError(msg)
    seconds = int((stamp - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 1_000_000_000 + stamp.microsecond * 1_000


def _one_line_error(prog: str) -> object:
    def error(message: str) -> NoReturn:
        # argparse would print the whole usage first; the contract asks for one line.
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)

    return error


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the ``simulate`` subcommand.

    Args:
        sub: the subparsers of the ``brokerflow`` parser.
        common: the parser holding the options every command shares.
    """
    p = sub.add_parser(
        "simulate",
        parents=[common],
        help="write a simulated FIX 4.4 market-data session to a file",
        description=(
            "Write a deterministic simulated trading session (35=W snapshots, then bursty 35=X "
            "incrementals: quotes, trades, volume) as FIX 4.4, one SOH-delimited message a line."
        ),
    )
    p.add_argument("--symbols", type=_positive_int, required=True, help="number of symbols")
    p.add_argument(
        "--minutes", type=_positive_float, required=True, help="simulated minutes of trading"
    )
    p.add_argument("--out", type=Path, required=True, help="output file (.fix)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--start",
        type=_utc_instant,
        default=DEFAULT_START_NS,
        metavar="ISO_TIME",
        help=f"session start, UTC (default {DEFAULT_START})",
    )
    p.add_argument(
        "--rate",
        type=_positive_float,
        default=DEFAULT_RATE_PER_SYMBOL,
        help="mean market events per symbol per second (default %(default)s; 1-4 messages each)",
    )
    p.error = _one_line_error(p.prog)  # type: ignore[method-assign]
    p.set_defaults(func=run)


def _clock(ts_ns: int) -> str:
    stamp = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{ts_ns // 1_000_000 % 1000:03d}Z"


def run(args: argparse.Namespace) -> int:
    """Write the file and print the summary.

    Args:
        args: the parsed ``simulate`` arguments.

    Returns:
        0 on success, 2 if the output directory does not exist.
    """
    out: Path = args.out
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        print(
            f"brokerflow simulate: error: --out directory {str(parent)!r} does not exist",
            file=sys.stderr,
        )
        return 2
    sim = MarketSimulator(
        symbols=args.symbols, seed=args.seed, start_ns=args.start, rate_per_symbol=args.rate
    )
    began = time.perf_counter()

    def progress(messages: int, ts_ns: int) -> None:
        rate = messages / max(time.perf_counter() - began, 1e-9)
        print(
            f"simulate: {messages:,} messages, event time {_clock(ts_ns)}, {rate:,.0f} msg/s",
            file=sys.stderr,
            flush=True,
        )

    summary = sim.write_file(
        out, minutes=args.minutes, progress=progress, progress_every=PROGRESS_EVERY
    )
    seconds = time.perf_counter() - began
    span = (
        f"{_clock(summary.first_event_ns)} .. {_clock(summary.last_event_ns)}"
        if summary.messages
        else "none"
    )
    print(
        f"simulate: wrote {summary.messages:,} messages to {out} "
        f"({', '.join(f'{k}={v:,}' for k, v in summary.by_type.items())}), "
        f"{summary.symbols} symbols, {summary.trades:,} trades, event time {span}, "
        f"{summary.bytes_written / 1e6:,.1f} MB, {seconds:.1f} s, "
        f"{summary.messages / max(seconds, 1e-9):,.0f} msg/s",
        file=sys.stderr,
    )
    return 0
