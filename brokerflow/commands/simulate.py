"""`brokerflow simulate`: write a deterministic simulated FIX 4.4 session to a file.

Market data only by default (those bytes are what benchmarks and tests rely on); with
``--orders`` the client orders (35=D/F/G) and the broker's execution reports (35=8) of a
population of accounts are merged in, and the accounts' opening state is written as the CSVs of
``brokerflow load accounts`` / ``load positions``. Needs no service. Progress goes to stderr
every 100,000 messages, then one summary line.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from simulator.market import DEFAULT_RATE_PER_SYMBOL, DEFAULT_START_NS, MarketSimulator
from simulator.market_status import (
    IndexFall,
    StatusScenario,
    opening_prices,
    parse_halt,
    parse_index_fall,
    parse_market_halt,
    write_merged,
)
from simulator.orders import DEFAULT_ACCOUNTS, DEFAULT_ORDERS_PER_MINUTE, OrderFlowSimulator

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
        help="write a simulated FIX 4.4 session (market data, optionally order flow) to a file",
        description=(
            "Write a deterministic simulated trading session (35=W snapshots, then bursty 35=X "
            "incrementals: quotes, trades, volume) as FIX 4.4, one SOH-delimited message a line. "
            "With --orders, client orders (35=D new, 35=F cancel, 35=G replace) and the broker's "
            "execution reports (35=8: acks, partial and full fills, cancels, replaces, rejects, "
            "trade busts) are merged in event-time order, and the accounts' opening cash and "
            "positions are written as CSVs for `brokerflow load accounts/positions`. Without "
            "--orders the output is market data only, byte for byte as before."
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
    add_integrity_options(p)
    orders = p.add_argument_group("order flow (only with --orders)")
    orders.add_argument(
        "--orders",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="merge simulated order flow and execution reports into the file (default: off)",
    )
    orders.add_argument(
        "--orders-per-minute",
        type=_positive_float,
        default=None,
        help=f"mean new orders per simulated minute (default {DEFAULT_ORDERS_PER_MINUTE:g})",
    )
    orders.add_argument(
        "--accounts",
        type=_positive_int,
        default=None,
        help=f"number of accounts (default {DEFAULT_ACCOUNTS})",
    )
    orders.add_argument(
        "--accounts-out",
        type=Path,
        default=None,
        metavar="FILE.csv",
        help="opening accounts CSV (default: --out with .accounts.csv)",
    )
    orders.add_argument(
        "--positions-out",
        type=Path,
        default=None,
        metavar="FILE.csv",
        help="opening positions CSV (default: --out with .positions.csv)",
    )
    orders.add_argument(
        "--reference-changes",
        action="store_const",
        const=True,
        default=None,
        help="also the back office's changes during the day: accounts opened (35=UA), which "
        "then trade, and deposits and withdrawals (35=UC); docs/reference-data.md",
    )
    add_status_options(p)
    p.error = _one_line_error(p.prog)  # type: ignore[method-assign]
    p.set_defaults(func=run)


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        msg = f"must be a percentage from 0 to 100, was {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_integrity_options(p: argparse.ArgumentParser) -> None:
    """Book-integrity test options (issue 21; docs/book-integrity.md), shared with
    `simulate-exchange`: every 35=X carries RptSeq (83) per symbol whatever they say."""
    group = p.add_argument_group("book integrity (issue 21: lost incrementals, snapshots)")
    group.add_argument(
        "--drop-incrementals", type=_percent, default=0.0, metavar="PCT",
        help="lose PCT %% of the 35=X messages upstream (seeded): not sent, their RptSeq (83) "
        "numbers skipped, as a lost update would (default 0)",
    )  # fmt: skip
    group.add_argument(
        "--snapshot-every", type=_positive_float, default=None, metavar="SECONDS",
        help="an unsolicited 35=W full refresh per symbol every SECONDS of market time "
        "(default: only the opening ones)",
    )  # fmt: skip


def _spec(parse):
    def check(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    check.__name__ = parse.__name__.removeprefix("parse_").replace("_", "-")
    return check


def add_status_options(p: argparse.ArgumentParser) -> None:
    """The market-status scenario's options (`simulator.market_status`), shared with
    `simulate-exchange`. Times are minutes after the start; fractions allowed."""
    group = p.add_argument_group(
        "market status (issue 19: halts, price bands, a falling index; docs/operations.md)"
    )
    group.add_argument(
        "--halt", type=_spec(parse_halt), action="append", default=[],
        metavar="SYMBOL@MIN+DUR",
        help="halt SYMBOL at minute MIN for DUR minutes (35=f 326=2, then 326=17); repeatable",
    )  # fmt: skip
    group.add_argument(
        "--market-halt", type=_spec(parse_market_halt), action="append", default=[],
        metavar="MIN+DUR",
        help="halt the whole market at minute MIN for DUR minutes (35=h 340=1, then 340=2)",
    )  # fmt: skip
    group.add_argument(
        "--bands", type=_positive_float, metavar="PCT",
        help="a price band for every symbol at the start: its opening price -/+ PCT %% "
        "(35=f LowLimitPrice 1148 / HighLimitPrice 1149)",
    )  # fmt: skip
    group.add_argument(
        "--index-fall", type=_spec(parse_index_fall), metavar="PCT@MIN+DUR",
        help="an index symbol (--index-symbol) whose previous close is sent at the start "
        "(269=5) and which prints every second, falling PCT %% from minute MIN over DUR "
        "minutes; with [market_status] index_symbol set, the flows' circuit breaker trips "
        "at 10/15/20 %%",
    )  # fmt: skip
    group.add_argument(
        "--index-symbol", default="IDX", help="the falling index's symbol (default IDX)"
    )
    group.add_argument(
        "--index-close", type=_positive_float, default=20_000.0,
        help="the index's previous close (default 20000)",
    )  # fmt: skip


def status_scenario(
    args: argparse.Namespace, market: MarketSimulator, start_ns: int
) -> StatusScenario | None:
    """The scenario the options ask for (None: none); a halt of an unknown symbol is a one-line
    error (exit 2)."""
    halts = [*args.halt, *args.market_halt]
    if not halts and args.bands is None and args.index_fall is None:
        return None
    for halt in args.halt:
        if halt.symbol not in market.symbols:
            known = ", ".join(market.symbols[:5])
            print(
                f"brokerflow {args.command}: error: --halt {halt.symbol}: not a simulated symbol "
                f"({known}, ...)",
                file=sys.stderr,
            )
            sys.exit(2)
    index = None
    if args.index_fall is not None:
        pct, at_s, over_s = args.index_fall
        index = IndexFall(pct, at_s, over_s, args.index_symbol, args.index_close)
    return StatusScenario(
        start_ns, sorted(halts, key=lambda h: (h.at_s, h.symbol or "")), args.bands,
        opening_prices(market) if args.bands is not None else {}, index,
    )  # fmt: skip


def _clock(ts_ns: int) -> str:
    stamp = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC)
    return f"{stamp:%Y-%m-%dT%H:%M:%S}.{ts_ns // 1_000_000 % 1000:03d}Z"


def run(args: argparse.Namespace) -> int:
    """Write the file and print the summary.

    Args:
        args: the parsed ``simulate`` arguments.

    Returns:
        0 on success, 2 if an output directory does not exist.

    Raises:
        SystemExit: (code 2) if an order-flow option is given without ``--orders``.
    """
    out: Path = args.out
    order_options = {
        "--orders-per-minute": args.orders_per_minute,
        "--accounts": args.accounts,
        "--accounts-out": args.accounts_out,
        "--positions-out": args.positions_out,
        "--reference-changes": args.reference_changes,
    }
    given = [name for name, value in order_options.items() if value is not None]
    if given and not args.orders:
        print(f"brokerflow simulate: error: {given[0]} needs --orders", file=sys.stderr)
        sys.exit(2)
    accounts_out = args.accounts_out or out.with_suffix(".accounts.csv")
    positions_out = args.positions_out or out.with_suffix(".positions.csv")
    targets = [("--out", out)]
    if args.orders:
        targets += [("--accounts-out", accounts_out), ("--positions-out", positions_out)]
    for option, target in targets:
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            print(
                f"brokerflow simulate: error: {option} directory {str(parent)!r} does not exist",
                file=sys.stderr,
            )
            return 2
    market = MarketSimulator(
        symbols=args.symbols, seed=args.seed, start_ns=args.start, rate_per_symbol=args.rate,
        drop_incrementals=args.drop_incrementals, snapshot_every_s=args.snapshot_every,
    )  # fmt: skip
    scenario = status_scenario(args, market, args.start)
    sim: MarketSimulator | OrderFlowSimulator = market
    if args.orders:
        sim = OrderFlowSimulator(
            market,
            accounts=args.accounts or DEFAULT_ACCOUNTS,
            orders_per_minute=args.orders_per_minute or DEFAULT_ORDERS_PER_MINUTE,
            reference_changes=bool(args.reference_changes),
        )
        sim.accounts_csv(accounts_out)
        sim.positions_csv(positions_out)
    began = time.perf_counter()

    def progress(messages: int, ts_ns: int) -> None:
        rate = messages / max(time.perf_counter() - began, 1e-9)
        print(
            f"simulate: {messages:,} messages, event time {_clock(ts_ns)}, {rate:,.0f} msg/s",
            file=sys.stderr,
            flush=True,
        )

    if scenario is None:
        summary = sim.write_file(
            out, minutes=args.minutes, progress=progress, progress_every=PROGRESS_EVERY
        )
    else:
        until_ns = args.start + round(args.minutes * 60 * 1_000_000_000)
        summary = write_merged(sim, scenario, out, until_ns, progress, PROGRESS_EVERY)
    seconds = time.perf_counter() - began
    orders = (
        f"; {sim.orders_sent:,} orders, {sim.fills_emitted:,} fills, opening state in "
        f"{accounts_out} and {positions_out}"
        if isinstance(sim, OrderFlowSimulator)
        else ""
    )
    if market.dropped:
        orders += f"; {market.dropped:,} incrementals dropped (--drop-incrementals)"
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
        f"{summary.messages / max(seconds, 1e-9):,.0f} msg/s{orders}",
        file=sys.stderr,
    )
    return 0
