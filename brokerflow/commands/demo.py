"""`brokerflow demo [--seconds N]`: everything embedded, a simulated market over FIX, live.

The exchange simulator (`simulator.exchange_server`) listens on a free loopback port in a
background thread; the flows read it through a real FIX session (`connectors.fix.live`: logon,
35=V for every simulated symbol, 35=W/35=X market data and 35=8 drop copies of the synthetic
order flow), whose accounts and positions are loaded first so its executions reach the ledger,
margin has every account's opening state and surveillance knows the owners. A few clients' stop
orders (35=D 40=3, a sell and a buy around each of the first symbols' price), a wash trade and
a layering episode (`simulator.abuse`, for surveillance) enter through the drop copy once the
session has subscribed; their children go out on the order-entry session and
the exchange fills them. The WebSocket edge and its console run beside it (a child process on
the same Redis), with tokens printed for an analyst and a trader.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis

from brokerflow.commands.replay import (
    account_state,
    add_observability_options,
    breaker_opening,
    with_observability,
)
from brokerflow.commands.run import order_writers
from brokerflow.interrupts import stop_on_signals
from brokerflow.observability import serve_metrics, with_timed_sinks
from brokerflow.runner import Progress, RunSummary, run_dataflow
from brokerflow.services import Endpoints
from brokerflow.settings import Settings, load_settings
from brokerflow.stores import prepare_stores
from connectors.fix.live import FixSessionSource, LiveSession, OrderEntrySession
from connectors.fix.session import SessionConfig
from flows.context import FlowContext
from flows.pipeline import ALL_FLOWS, build_pipeline
from simulator.abuse import PATTERNS
from simulator.exchange import ExchangeCore, split_message
from simulator.exchange_server import ExchangeThread, default_sessions
from simulator.market import symbol_names
from simulator.stops import stop_order

SHOWN_SYMBOLS = 3
STOP_SYMBOLS = 10  # symbols that get a client's sell and buy stop
STOP_TICKS = 5  # stop prices this many cents from the last price: some fire within seconds
STOP_GUARD = 1_000  # ... plus 1/1,000 of it: the trades still in flight on the market-data
# session when the stop arrives on the drop copy (seen: 12 cents at 356) must not pass it
EDGE_PORT = 8765


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
    p.add_argument("--edge-port", type=int, default=EDGE_PORT,
                   help=f"the WebSocket edge and console (default {EDGE_PORT}; taken: any)")
    p.add_argument("--no-edge", action="store_true", help="do not start the edge")
    p.add_argument("--console-port", type=int, default=CONSOLE_PORT,
                   help=f"the analysts' workbench and its API (default {CONSOLE_PORT}; taken: "
                   "any)")  # fmt: skip
    add_observability_options(p)
    p.set_defaults(func=run)


CONSOLE_PORT = 8766
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
    stop = threading.Event()
    run_id = f"SX{time.time_ns() // 1_000_000:x}"  # OrderID/ExecID prefix: new every demo
    core = ExchangeCore(args.symbols, time.time_ns(), args.seed, args.rate, args.accounts,
                        args.orders_per_minute, run_id=run_id)  # fmt: skip
    _load_accounts(core, settings.data_dir, endpoints.postgres_dsn, endpoints.redis_url)
    opening, marks, owners = account_state(endpoints, set(ALL_FLOWS))
    accounts = sorted(opening or {})
    exchange = ExchangeThread(core, default_sessions())
    exchange_port = exchange.start()
    session = LiveSession(
        SessionConfig("BROKERFLOW", "SIMX", port=exchange_port, heartbeat_s=10, name="demo"),
        symbols=tuple(symbol_names(args.symbols)),
    )
    entry = OrderEntrySession(LiveSession(
        SessionConfig("BROKERFLOW-OE", "SIMX", port=exchange_port, heartbeat_s=10,
                      name="demo-oe"),
        purposes=frozenset({"order-entry"}),
    ))  # fmt: skip
    source = FixSessionSource([session], stop, args.seconds)
    ctx = FlowContext(
        settings, endpoints.redis_url, endpoints.postgres_dsn, live=True,
        margin_opening=opening, margin_marks=marks, owners=owners,
        breaker_opening=breaker_opening(settings, endpoints),
        order_writers=order_writers(entry, settings),
        request_snapshot=source.request_snapshot,  # stale books ask the exchange (issue 21)
    )  # fmt: skip
    _place_stops_when_subscribed(exchange, run_id, accounts, stop)
    flow = build_pipeline(source, ctx)
    edge = None if args.no_edge else _start_edge(settings, endpoints, args, accounts)
    workbench = _start_console(settings, endpoints, args, edge)
    if port:
        flow = with_timed_sinks(flow, ctx.stats)
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
    if edge is not None:
        _, edge_port, tokens = edge
        print(f"  console  -> http://127.0.0.1:{edge_port}/?token={tokens['analyst']}  (analyst)")
        print(f"              http://127.0.0.1:{edge_port}/?token={tokens['trader']}  (trader "
              f"of {tokens['account']})")
        print(f"  edge     -> ws://127.0.0.1:{edge_port}/ws?token=...  (quotes, alerts)")
    if workbench is not None:
        print(f"  workbench-> {workbench[0].url}/?token={workbench[1]}  (analysts: alert queue, "
              f"evidence, cases; API {workbench[0].url}/api/openapi.json)")  # fmt: skip
    print(f"  stops    -> {STOP_SYMBOLS * 2} client stop orders {STOP_TICKS} cents + 0.1 % "
          "around the market; children out on BROKERFLOW-OE, filled by the exchange")
    print("  stop with Ctrl-C" + (f" (or wait {args.seconds:g} s)" if args.seconds else ""))

    # Ctrl-C or SIGTERM (a supervisor, a test): the session logs out, the flows complete and
    # the edge child is stopped; the summary follows.
    t0 = time.perf_counter()
    try:
        with stop_on_signals(stop.set), Progress(ctx.stats, "demo", extra=live_quotes):
            run_dataflow(flow)
    finally:
        stop.set()  # the stops and abuse patterns not yet injected stay out (the exchange stops)
        client.close()
        entry.close()
        exchange.stop()
        if edge is not None:
            edge[0].terminate()
            edge[0].wait(10)
        if workbench is not None:
            workbench[0].stop()
            workbench[2].close()  # the console's share of the embedded store
    summary = RunSummary(ctx.stats.snapshot(), time.perf_counter() - t0, ["fix:demo"])
    for line in summary.lines():
        print(line)
    if args.json:
        print(json.dumps(summary.as_dict()))
    return 0


def _load_accounts(
    core: ExchangeCore, data_dir: object, dsn: str, redis_url: str | None = None
) -> None:
    """Load the synthetic flow's accounts and positions (idempotent upserts), and publish their
    holdings documents (the traders' positions frames) when given Redis."""
    import tempfile
    from pathlib import Path

    from brokerflow.commands.load import (
        KINDS,
        load_rows,
        publish_positions,
        read_accounts,
        read_positions,
    )

    with tempfile.TemporaryDirectory() as tmp:
        accounts, positions = Path(tmp) / "accounts.csv", Path(tmp) / "positions.csv"
        core.write_accounts(str(accounts), str(positions))
        rows = read_accounts(accounts)
        load_rows(dsn, KINDS["accounts"], rows, str(accounts))
        load_rows(dsn, KINDS["positions"], read_positions(positions), str(positions))
    if redis_url:
        publish_positions(dsn, redis_url, sorted({r[0] for r in rows}))


def _place_stops_when_subscribed(
    exchange: ExchangeThread, run_id: str, accounts: list[str], stop: threading.Event
) -> None:
    """Once the demo's session subscribed: a sell stop under and a buy stop over the last
    price of each of the first symbols, as clients' orders on the drop copy."""
    core = exchange.server.core

    def place() -> None:
        while not stop.wait(0.05):
            app = exchange.server.apps.get(("FIX.4.4", "SIMX", "BROKERFLOW"))
            if app is not None and app.subscribed:
                break
        else:
            return
        exchange.inject_built(stops)
        _abuse(exchange, run_id, accounts, stop)

    def stops() -> list:
        # On the exchange's thread: priced off the last trade already sent, so no later trade
        # can pass a stop before it arrives (it would be rejected as through the market).
        now = time.time_ns()
        out = []
        for i, symbol in enumerate(core.symbols[:STOP_SYMBOLS]):
            book = core.market.top_of_book(i)
            if book is None or not accounts:
                continue
            bid, _, ask, _, last = book
            price = last or (bid + ask) // 2
            account = accounts[i % len(accounts)]
            away = STOP_TICKS + price // STOP_GUARD
            around = (("2", price - away, "S"), ("1", price + away, "B"))
            for side, ticks, tag in around:
                raw = stop_order(f"{run_id}-STP{i}{tag}", account, symbol.decode(), side, ticks,
                                 now, i)  # fmt: skip
                out.append((b"D", split_message(raw)[1]))
        return out

    threading.Thread(target=place, name="demo-stops", daemon=True).start()


def _abuse(
    exchange: ExchangeThread, run_id: str, accounts: list[str], stop: threading.Event
) -> None:
    """A wash trade and a layering episode (`simulator.abuse`) by two accounts, in the drop
    copy: surveillance alerts them as it would real ones (until the demo stops)."""

    def inject(msg_type: bytes, body: Any) -> None:
        if not stop.is_set():  # the exchange's loop is closed once the demo has stopped
            exchange.inject(msg_type, body)

    core = exchange.server.core
    for n, name in enumerate(("wash", "layering")):
        book = core.market.top_of_book(n)
        if book is None or not accounts:
            continue
        price = book[4] or (book[0] + book[2]) // 2
        steps = PATTERNS[name](f"{run_id}-AB{n}", accounts[-1 - n], core.symbols[n].decode(),
                               price)  # fmt: skip
        for step in steps:
            timer = threading.Timer(step.delay_s, inject, (b"8", step.body))
            timer.daemon = True  # a stopped demo does not wait for the episode's last steps
            timer.start()


def _free_port(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_console(
    settings: Settings,
    endpoints: Endpoints,
    args: argparse.Namespace,
    edge: tuple[subprocess.Popen, int, dict[str, str]] | None,
) -> tuple[Any, str, Any] | None:
    """The workbench on a thread of this process: the flows here hold the embedded chdb store,
    which one process at a time may open, so the console that reads it must live here too.
    Returns the console, an analyst's token, and the console's store (closed by the caller)."""
    from brokerflow.commands.console import build_config
    from console.server import BackgroundConsole
    from domain.errors import ConfigError
    from edge.tokens import issue_token
    from sinks.clickhouse import ClickHouseError

    edge_url = f"ws://127.0.0.1:{edge[1]}/ws" if edge is not None else None
    try:
        config = build_config(settings, edge_url)
    except (ClickHouseError, ConfigError) as exc:
        print(f"  workbench-> off: {exc}", file=sys.stderr)
        return None
    try:
        console = BackgroundConsole(config, port=_free_port(args.console_port)).start()
    except (RuntimeError, OSError) as exc:
        config.clickhouse.close()
        print(f"  workbench-> off: {exc}", file=sys.stderr)
        return None
    token = edge[2]["analyst"] if edge is not None else issue_token(
        config.secret, "demo", "analyst", [], int(time.time()), 12 * 3600)
    return console, token, config.clickhouse


def _start_edge(
    settings: Settings, endpoints: Endpoints, args: argparse.Namespace, accounts: list[str]
) -> tuple[subprocess.Popen, int, dict[str, str]]:
    """The edge as a child process on the demo's Redis; tokens for an analyst and a trader, and
    a watchlist for the console's quote board."""
    import redis as redis_client

    from edge.tokens import edge_secret, issue_token

    port = _free_port(args.edge_port)
    env = {**os.environ, "BROKERFLOW_REDIS_URL": endpoints.redis_url,
           "BROKERFLOW_POSTGRES_DSN": endpoints.postgres_dsn}
    command = [sys.executable, "-m", "brokerflow.cli", "edge", "--host", "127.0.0.1",
               "--port", str(port), "--data-dir", str(settings.data_dir)]  # fmt: skip
    if args.config:
        command += ["--config", str(args.config)]
    log = Path(settings.data_dir) / "edge.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # Started with SIGINT blocked (inherited): Ctrl-C reaches the whole process group, and the
    # demo stops the edge itself (SIGTERM) once the flows have ended.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with log.open("ab") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    configured = settings.edge_secret.get_secret_value() if settings.edge_secret else None
    secret = edge_secret(configured, settings.data_dir)
    account = accounts[0] if accounts else "ACC00001"
    now, ttl = int(time.time()), 12 * 3600
    tokens = {
        "analyst": issue_token(secret, "demo", "analyst", [], now_s=now, ttl_s=ttl),
        "trader": issue_token(secret, "demo", "trader", [account], now_s=now, ttl_s=ttl),
        "account": account,
    }
    with redis_client.Redis.from_url(endpoints.redis_url) as r:
        r.delete("watchlist:demo")
        r.rpush("watchlist:demo", *symbol_names(args.symbols)[:10])
    return process, port, tokens
