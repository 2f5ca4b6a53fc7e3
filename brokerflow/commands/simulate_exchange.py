"""`brokerflow simulate-exchange --port P`: a FIX acceptor serving simulated market data and
execution reports (`simulator.exchange`, `simulator.exchange_server`).

Sessions: those of `--config FILE` (`[[fix.session]]` tables with `role = "acceptor"`,
`drop_copy = true|false`), else SIMX <- BROKERFLOW (market data, drop copy, orders) and
SIMX <- BROKERFLOW-OE (orders). One log line per session event on stderr; Ctrl-C (or
`--seconds`) stops it with a summary.

An idle market (e.g. to measure what the flows cost when nothing trades): `--quiet-after S`
stops market data and the synthetic order flow S seconds after the first subscription, and
SIGUSR1 switches it quiet / live at any time; the sessions stay logged on and heartbeat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import time

from brokerflow.commands.simulate import (
    add_integrity_options,
    add_status_options,
    status_scenario,
)
from connectors.fix.live import load_live_sessions
from domain.errors import ConfigError
from simulator.abuse import PATTERNS
from simulator.exchange import ExchangeCore, Routed
from simulator.exchange_server import ExchangeServer, ExchangeSession, default_sessions

log = logging.getLogger("brokerflow.exchange")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "simulate-exchange",
        parents=[common],
        help="a FIX acceptor serving simulated market data and execution reports",
        description="Serve a simulated market over FIX: 35=V is answered with 35=W then 35=X, "
        "35=D is filled against the book (35=F cancels), and a synthetic order flow of many "
        "accounts goes out as 35=8 drop copies.",
    )
    p.add_argument("--port", type=int, default=9878, help="TCP port (default 9878; 0: any)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--symbols", type=int, default=50, help="simulated symbols (default 50)")
    p.add_argument("--rate", type=float, default=5.0, help="market events/s per symbol")
    p.add_argument("--accounts", type=int, default=200, help="accounts of the synthetic flow")
    p.add_argument(
        "--orders-per-minute", type=float, default=120.0,
        help="synthetic orders per minute (0: none; default 120)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1, help="simulator seed")
    p.add_argument("--seconds", type=float, help="stop after N seconds with a summary")
    p.add_argument(
        "--abuse", type=float, metavar="SECONDS",
        help="every SECONDS, one surveillance pattern (wash, layering, round-trips, otr in "
        "turn) by the next synthetic account in the drop copy (simulator/abuse.py)",
    )  # fmt: skip
    p.add_argument(
        "--quiet-after", type=float, metavar="SECONDS",
        help="go quiet (no market data, no synthetic orders: heartbeats only) SECONDS after "
        "the first market-data subscription; SIGUSR1 also switches quiet / live",
    )  # fmt: skip
    p.add_argument("--store-dir", default="", help="persist the sessions' messages under DIR")
    p.add_argument(
        "--accounts-out", nargs=2, metavar=("ACCOUNTS.csv", "POSITIONS.csv"),
        help="write the synthetic accounts and positions (for `brokerflow load`) and go on",
    )  # fmt: skip
    add_status_options(p)
    add_integrity_options(p)
    p.set_defaults(func=run)


def exchange_sessions(args: argparse.Namespace) -> list[ExchangeSession]:
    """The acceptor sessions of `--config`, else the default ones."""
    config = getattr(args, "config", None)
    if config is not None:
        sessions = [s for s in load_live_sessions(config) if s.config.role == "acceptor"]
        if sessions:
            return [ExchangeSession(s.config, s.drop_copy) for s in sessions]
    return default_sessions(args.store_dir)


def run(args: argparse.Namespace) -> int:
    if args.symbols < 1 or args.rate <= 0 or args.accounts < 1 or args.orders_per_minute < 0:
        msg = "--symbols, --rate and --accounts must be positive, --orders-per-minute >= 0"
        raise ConfigError(msg)
    sessions = exchange_sessions(args)
    core = ExchangeCore(
        args.symbols, time.time_ns(), args.seed, args.rate, args.accounts,
        args.orders_per_minute, run_id=f"SX{int(time.time()):x}",
        drop_incrementals=args.drop_incrementals, snapshot_every_s=args.snapshot_every,
    )  # fmt: skip
    scenario = status_scenario(args, core.market, core.market.start_ns)
    if scenario is not None:
        core.add_status(scenario)
    if args.accounts_out:
        core.write_accounts(*args.accounts_out)
    if args.abuse is not None and args.abuse <= 0:
        msg = f"--abuse must be a positive number of seconds, was {args.abuse}"
        raise ConfigError(msg)
    if args.quiet_after is not None and args.quiet_after < 0:
        msg = f"--quiet-after must be a number of seconds >= 0, was {args.quiet_after}"
        raise ConfigError(msg)
    t0 = time.monotonic()
    server = ExchangeServer(core, sessions)
    asyncio.run(_serve(server, args.host, args.port, args.seconds, args.abuse, args.quiet_after))
    seconds = time.monotonic() - t0
    for line in summary_lines(server, seconds):
        print(line)
    return 0


async def _serve(
    server: ExchangeServer,
    host: str,
    port: int,
    seconds: float | None,
    abuse_s: float | None = None,
    quiet_after_s: float | None = None,
) -> None:
    bound = await server.start(host, port)
    names = ", ".join(f"{s.config.target_comp_id} -> {s.config.sender_comp_id}"
                      for s in server.sessions.values())  # fmt: skip
    print(f"simulate-exchange: {len(server.core.symbols)} symbols on {host}:{bound} "
          f"(sessions {names})", flush=True)  # fmt: skip
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, done.set)
        loop.add_signal_handler(signal.SIGTERM, done.set)
        loop.add_signal_handler(signal.SIGUSR1, lambda: server.set_quiet(not server.quiet))
    abuse = asyncio.create_task(_abuse(server, abuse_s)) if abuse_s else None
    quiet = (
        asyncio.create_task(_quiet_after(server, quiet_after_s))
        if quiet_after_s is not None else None
    )  # fmt: skip
    try:
        if seconds is None:
            await done.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), seconds)
    finally:
        for task in (abuse, quiet):
            if task is not None:
                task.cancel()
        await server.close()


async def _quiet_after(server: ExchangeServer, seconds: float) -> None:
    while not any(app.subscribed for app in server.apps.values()):
        await asyncio.sleep(0.1)
    await asyncio.sleep(seconds)
    server.set_quiet(True)


async def _abuse(server: ExchangeServer, every_s: float) -> None:
    """Start the next pattern every `every_s` seconds; send each of its steps on time."""
    core = server.core
    accounts = core.order_flow.accounts if core.order_flow is not None else []
    names = list(PATTERNS)
    loop = asyncio.get_running_loop()
    for n in itertools.count():
        await asyncio.sleep(every_s)
        index = n % len(core.symbols)
        book = core.market.top_of_book(index)
        if book is None or not accounts:
            continue
        name, account = names[n % len(names)], accounts[n % len(accounts)]
        symbol = core.symbols[index].decode()
        price = book[4] or (book[0] + book[2]) // 2
        steps = PATTERNS[name](f"{core.run_id}-AB{n}", account, symbol, price)
        log.info("abuse: %s by %s in %s (%d execution reports)", name, account, symbol,
                 len(steps))  # fmt: skip
        for step in steps:
            loop.call_later(step.delay_s, _drop_copy, server, step.body)


def _drop_copy(server: ExchangeServer, body: list) -> None:
    server.deliver([Routed(None, b"8", body)])
    server.flush()


def summary_lines(server: ExchangeServer, seconds: float) -> list[str]:
    s = server.core.stats
    sent = server.sent
    total = sum(sent.values())
    return [
        f"exchange ran {seconds:.1f} s: {total:,} application messages sent "
        f"({', '.join(f'35={k} {v:,}' for k, v in sorted(sent.items())) or 'none'})",
        f"  market    {s.incrementals:,} incremental refreshes generated, {s.snapshots:,} "
        f"snapshots sent ({s.snapshot_requests:,} snapshot requests), "
        f"{server.core.market.dropped:,} incrementals dropped",
        f"  orders    {s.orders_received:,} received, {s.fills:,} filled, {s.cancels:,} "
        f"cancelled, {s.rejects:,} rejected, {s.duplicates:,} duplicate ClOrdIDs ignored",
        f"  drop copy {s.drop_copies:,} synthetic execution reports",
    ]
