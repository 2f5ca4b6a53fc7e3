"""`brokerflow demo [--seconds N]`: everything embedded, a simulated market over FIX, live.

The exchange simulator (`simulator.exchange_server`) listens on a free loopback port in a
background thread; the flows read it through a real FIX session (`connectors.fix.live`: logon,
35=V for every simulated symbol, 35=W/35=X market data and 35=8 drop copies of the synthetic
order flow), whose accounts and positions are loaded first so its executions reach the ledger.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

import redis

from brokerflow.commands.replay import add_observability_options, with_observability
from brokerflow.observability import instrument_sinks, serve_metrics
from brokerflow.runner import Progress, RunSummary, run_dataflow
from brokerflow.settings import load_settings
from brokerflow.stores import prepare_stores
from connectors.fix.live import FixSessionSource, LiveSession
from connectors.fix.session import SessionConfig
from flows.context import FlowContext
from flows.pipeline import ALL_FLOWS, build_pipeline
from simulator.exchange import ExchangeCore
from simulator.exchange_server import ExchangeThread, default_sessions
from simulator.market import symbol_names

SHOWN_SYMBOLS = 3


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        help="a simulated market through all flows into embedded stores, live",
        description="Start embedded services, run the simulated market in real time through "
        "the flows, and show live quotes. Ctrl-C (or --seconds) stops it with a summary.",
    )
    p.add_argument("--seconds", type=float, help="stop after N seconds and print a summary")
    p.add_argument("--symbols", type=int, default=50, help="simulated symbols (default 50)")
    p.add_argument("--rate", type=float, default=5.0, help="market events/s per symbol")
    p.add_argument("--seed", type=int, default=1, help="simulator seed")
    p.add_argument("--accounts", type=int, default=200, help="accounts of the synthetic flow")
    p.add_argument(
        "--orders-per-minute", type=float, default=120.0, help="synthetic orders per minute"
    )
    p.add_argument("--json", action="store_true", help="make the last line a JSON summary")
    add_observability_options(p)
    p.set_defaults(func=run)


DEMO_METRICS_PORT = 9464
"""The demo serves Prometheus metrics here unless --metrics-port or BROKERFLOW_METRICS_PORT
says otherwise (9464: the port Prometheus exporters conventionally use)."""


def _fmt(doc: dict) -> str:
    def px(x: object) -> str:
        return "-" if x is None else f"{x:g}"

    return f"{doc['symbol']} {px(doc['bid'])} x {px(doc['ask'])} last {px(doc['ltp'])}"


def run(args: argparse.Namespace) -> int:
    if args.symbols < 1 or args.rate <= 0 or (args.seconds is not None and args.seconds <= 0):
        msg = "brokerflow: error: --symbols, --rate and --seconds must be positive"
        print(msg, file=sys.stderr)
        return 2
    settings = with_observability(load_settings(args.config, args.data_dir), args)
    port = settings.metrics_port if settings.metrics_port or args.metrics_port == 0 else (
        DEMO_METRICS_PORT
    )
    endpoints = prepare_stores(settings, ALL_FLOWS)
    ctx = FlowContext(settings, endpoints.redis_url, endpoints.postgres_dsn, live=True)
    stop = threading.Event()
    run_id = f"SX{time.time_ns() // 1_000_000:x}"  # OrderID/ExecID prefix: new every demo
    core = ExchangeCore(args.symbols, time.time_ns(), args.seed, args.rate, args.accounts,
                        args.orders_per_minute, run_id=run_id)  # fmt: skip
    _load_accounts(core, settings.data_dir, endpoints.postgres_dsn)
    exchange = ExchangeThread(core, default_sessions())
    exchange_port = exchange.start()
    session = LiveSession(
        SessionConfig("BROKERFLOW", "SIMX", port=exchange_port, heartbeat_s=10, name="demo"),
        symbols=tuple(symbol_names(args.symbols)),
    )
    source = FixSessionSource([session], stop, args.seconds)
    flow = build_pipeline(source, ctx)
    if port:
        instrument_sinks(flow, ctx.stats)
        try:
            serve_metrics(port, ctx.stats)
        except OSError as exc:  # a second demo on the machine: go on without metrics
            print(f"  metrics  -> off: port {port} is taken ({exc.strerror})", file=sys.stderr)
            port = 0

    shown = symbol_names(args.symbols)[:SHOWN_SYMBOLS]
    client = redis.Redis.from_url(endpoints.redis_url, socket_timeout=2)

    def live_quotes() -> str:
        try:
            docs = [json.loads(v) for v in client.mget([f"quote:{s}" for s in shown]) if v]
        except (redis.RedisError, ValueError):
            return ""
        return "".join(f" | {_fmt(d)}" for d in docs)

    print(f"brokerflow demo: {args.symbols} simulated symbols, ~{args.rate:g} events/s each")
    print(f"  exchange -> FIX 4.4 acceptor SIMX on 127.0.0.1:{exchange_port} (sessions "
          "BROKERFLOW: market data + drop copy; BROKERFLOW-OE: orders)")  # fmt: skip
    print(f"  quotes   -> Redis {endpoints.redis_url}  (quote:{{SYMBOL}}, stream:quotes)")
    print(f"             e.g. redis-cli -u {endpoints.redis_url} GET quote:{shown[0]}")
    print("  problems -> PostgreSQL dead_letters; "
          "e.g. brokerflow sql postgres \"SELECT reason, count(*) FROM dead_letters GROUP BY 1\"")
    print("  ticks    -> ClickHouse market_ticks (chdb under the data dir unless configured); "
          "after the demo: brokerflow sql clickhouse \"SELECT symbol, count() FROM market_ticks "
          "GROUP BY symbol ORDER BY 2 DESC LIMIT 5\"")
    if port:
        print(f"  metrics  -> http://127.0.0.1:{port}/metrics  (Prometheus)")
    print("  stop with Ctrl-C" + (f" (or wait {args.seconds:g} s)" if args.seconds else ""))

    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    t0 = time.perf_counter()
    try:
        with Progress(ctx.stats, "demo", extra=live_quotes):
            run_dataflow(flow)
    finally:
        signal.signal(signal.SIGINT, previous)
        client.close()
        exchange.stop()
    summary = RunSummary(ctx.stats.snapshot(), time.perf_counter() - t0, ["fix:demo"])
    for line in summary.lines():
        print(line)
    if args.json:
        print(json.dumps(summary.as_dict()))
    return 0


def _load_accounts(core: ExchangeCore, data_dir: object, dsn: str) -> None:
    """Load the synthetic flow's accounts and positions (idempotent upserts)."""
    import tempfile
    from pathlib import Path

    from brokerflow.commands.load import KINDS, load_rows, read_accounts, read_positions

    with tempfile.TemporaryDirectory() as tmp:
        accounts, positions = Path(tmp) / "accounts.csv", Path(tmp) / "positions.csv"
        core.write_accounts(str(accounts), str(positions))
        load_rows(dsn, KINDS["accounts"], read_accounts(accounts), str(accounts))
        load_rows(dsn, KINDS["positions"], read_positions(positions), str(positions))
