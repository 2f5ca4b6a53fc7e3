"""The price-alerts benchmark (issue 19): "1,000,000 resting price alerts cost the quotes flow
under 10 % of its throughput". Two measurements, printed side by side:

    flow          the quotes flow as users run it: `brokerflow replay FILE --flows quotes --json`
                  in a process of its own over the ingest benchmark's simulated day
                  (`--price-alerts-messages` messages of 100 symbols, `bench.ingest.ensure_file`),
                  against a PostgreSQL database holding `--price-alerts-count` ACTIVE price
                  alerts and against one holding none, alternated (without, with, without,
                  with, ... `--price-alerts-rounds` times; Redis flushed and the fired rows made
                  ACTIVE again before each run, so every run does the same work). The alerts
                  are placed as the engine's are (below), around each symbol's open in that
                  day (read from the first run's `ohlc:` keys). The value is the ratio of the
                  best throughputs (with / without) in steady state: the one-time start-up
                  load of the alerts (the run's own `price_alerts.load_ms`, printed apart) is
                  taken out of the with-alerts run's time; the whole-run figures are printed too.
                  A third database holds as many alerts `FAR_DISTANCES` away, which no move of
                  the day reaches: the cost of resting alone, apart from the writes of the
                  alerts that fire (printed beside, `flow_ratio_resting_only_steady`).
    engine only   `PriceAlertBook.on_price` alone over a quote stream of
                  `--price-alerts-symbols` symbols (`--price-alerts-quotes` last-trade prices, a
                  random walk with a day's volatility of `DAY_SIGMA`, round robin over the
                  symbols), once with `--price-alerts-count` resting alerts and once with none.
                  The alerts: 40 % ltp_above, 40 % ltp_below, 10 % each change_pct_above/below,
                  a uniform distance of `MIN_DISTANCE`..`MAX_DISTANCE` of the symbol's price
                  away, on the side where they wait; so the share the day's moves cross is what
                  such a day crosses (printed). Also: the time to rest the alerts, the resident
                  memory per resting alert, and the time to pickle one symbol's book (why the
                  flow does not snapshot the book: `flows.price_alerts`).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import random
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import redis

from bench.common import rss_bytes, scratch_database, write_result
from brokerflow.runner import tuned_gc
from domain.price_alerts import (
    CHANGE_PCT_ABOVE,
    CHANGE_PCT_BELOW,
    LTP_ABOVE,
    LTP_BELOW,
    PriceAlert,
    PriceAlertBook,
)

GOAL_RATIO = 0.9  # the issue: 1,000,000 alerts cost the quotes flow under 10 % of its throughput
SEED = 19
DAY_SIGMA = 0.02  # a symbol's price moves ~2 % (one std) over the day's quotes
MIN_DISTANCE = 0.002
MAX_DISTANCE = 0.08
# The flow's "resting only" alerts: far enough that no day's move reaches them.
FAR_DISTANCES = (0.4, 0.8)
TS0_MS = 1_765_000_000_000


def add_arguments(p) -> None:  # noqa: ANN001
    """The `--price-alerts-*` options of `brokerflow bench`."""
    p.add_argument("--price-alerts-count", type=int, default=1_000_000,
                   help="price-alerts: resting alerts")  # fmt: skip
    p.add_argument("--price-alerts-symbols", type=int, default=100,
                   help="price-alerts: symbols")  # fmt: skip
    p.add_argument("--price-alerts-quotes", type=int, default=1_000_000,
                   help="price-alerts: last-trade prices fed to the book (engine)")  # fmt: skip
    p.add_argument("--price-alerts-messages", type=int, default=1_000_000,
                   help="price-alerts: messages of the simulated day the flow replays")  # fmt: skip
    p.add_argument("--price-alerts-rounds", type=int, default=2,
                   help="price-alerts: flow runs each way, alternated")  # fmt: skip
    p.add_argument("--price-alerts-flow", action=argparse.BooleanOptionalAction, default=True,
                   help="price-alerts: measure the flow too (else the engine only)")  # fmt: skip


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def quote_stream(
    symbols: int, quotes: int, rng: random.Random
) -> tuple[list[str], list[float], list[float], list[str], list[float]]:
    """The symbols, their opening prices and previous closes, and the stream (symbol, ltp)."""
    names = [f"S{i:04d}" for i in range(symbols)]
    opens = [round(rng.uniform(10, 500), 2) for _ in range(symbols)]
    closes = [round(o / (1 + rng.gauss(0, 0.01)), 2) for o in opens]
    per_symbol = max(1, quotes // symbols)
    step = DAY_SIGMA / math.sqrt(per_symbol)
    px = [float(o) for o in opens]
    stream_sym: list[str] = []
    stream_px: list[float] = []
    for i in range(quotes):
        s = i % symbols
        px[s] = round(px[s] * (1 + rng.gauss(0, step)), 2)
        stream_sym.append(names[s])
        stream_px.append(px[s])
    return names, opens, closes, stream_sym, stream_px


def make_alerts(
    count: int,
    names: list[str],
    opens: list[float],
    closes: list[float],
    rng: random.Random,
    distances: tuple[float, float] = (MIN_DISTANCE, MAX_DISTANCE),
) -> list[PriceAlert]:
    """`count` alerts round robin over the symbols, each a random distance (a fraction of the
    price, uniform in `distances`) from its price."""
    alerts = []
    n = len(names)
    for i in range(count):
        s = i % n
        r = rng.random()
        d = rng.uniform(*distances)
        if r < 0.4:
            cond, value = LTP_ABOVE, Decimal(f"{opens[s] * (1 + d):.2f}")
        elif r < 0.8:
            cond, value = LTP_BELOW, Decimal(f"{opens[s] * (1 - d):.2f}")
        else:
            # the percentage from the previous close that is `d` away from the open
            up = r < 0.9
            target = opens[s] * (1 + d if up else 1 - d)
            pct = (target / closes[s] - 1) * 100
            cond, value = (CHANGE_PCT_ABOVE if up else CHANGE_PCT_BELOW), Decimal(f"{pct:.2f}")
        alerts.append(PriceAlert(i + 1, f"u{i % 10_000}", None, names[s], cond, value))
    return alerts


def _feed(book: PriceAlertBook, syms: list[str], pxs: list[float], close_of: dict) -> tuple:
    on_price = book.on_price
    fired = 0
    gc.collect()
    with tuned_gc():
        t0 = time.perf_counter()
        for i, (sym, px) in enumerate(zip(syms, pxs, strict=True)):
            out = on_price(sym, px, close_of[sym], TS0_MS + i)
            if out:
                fired += len(out)
        seconds = time.perf_counter() - t0
    return seconds, fired


def engine(args) -> tuple[dict, list[tuple[str, str]]]:  # noqa: ANN001
    """The book alone both ways: (yardsticks `engine_*`, table rows)."""
    count, n_symbols, n_quotes = (args.price_alerts_count, args.price_alerts_symbols,
                                  args.price_alerts_quotes)  # fmt: skip
    rng = random.Random(SEED)
    names, opens, closes, syms, pxs = quote_stream(n_symbols, n_quotes, rng)
    close_of = dict(zip(names, closes, strict=True))
    _say(f"engine only: {count:,} alerts over {n_symbols} symbols, {n_quotes:,} quotes")

    # Warm-up, and the yardstick: the same stream through an empty book.
    warm = min(50_000, n_quotes)
    _feed(PriceAlertBook(), syms[:warm], pxs[:warm], close_of)
    empty_s, _ = _feed(PriceAlertBook(), syms, pxs, close_of)

    gc.collect()
    rss0 = rss_bytes()
    # What the flow's load hands the book: (id, symbol, condition, value) rows.
    alerts = [(a.id, a.symbol, a.condition, float(a.value))
              for a in make_alerts(count, names, opens, closes, rng)]  # fmt: skip
    book = PriceAlertBook()
    with tuned_gc():
        t0 = time.perf_counter()
        book.add_many(alerts)
        add_s = time.perf_counter() - t0
    del alerts
    gc.collect()
    bytes_per_alert = (rss_bytes() - rss0) / max(1, count)
    # Prime each symbol's previous close (change_pct alerts are priced from it).
    for s, name in enumerate(names):
        book.on_price(name, opens[s], closes[s], TS0_MS)
    resting = len(book)
    one = PriceAlertBook()
    few = make_alerts(count // max(1, n_symbols), names[:1], opens, closes, rng)
    one.add_many((a.id, a.symbol, a.condition, float(a.value)) for a in few)
    one.on_price(names[0], opens[0], closes[0], TS0_MS)
    t0 = time.perf_counter()
    snapshot = pickle.dumps(one)
    pickle_ms = (time.perf_counter() - t0) * 1000

    with_s, fired = _feed(book, syms, pxs, close_of)
    del book
    with_qps = n_quotes / with_s
    empty_qps = n_quotes / empty_s
    extra_ns = max(0.0, (with_s - empty_s) / n_quotes * 1e9)
    figures = {
        "engine_alerts_resting": resting,
        "engine_symbols": n_symbols,
        "engine_quotes": n_quotes,
        "engine_quotes_per_s_with_alerts": round(with_qps),
        "engine_quotes_per_s_no_alerts": round(empty_qps),
        "engine_with_over_without": round(with_qps / empty_qps, 3),
        "engine_extra_ns_per_quote": round(extra_ns, 1),
        "engine_alerts_fired": fired,
        "engine_share_fired": round(fired / max(1, resting), 4),
        "engine_add_alerts_per_s": round(count / add_s),
        "engine_bytes_per_resting_alert_rss": round(bytes_per_alert),
        "engine_pickle_one_symbol_ms": round(pickle_ms, 1),
        "engine_pickle_one_symbol_bytes": len(snapshot),
        "engine_alerts_per_symbol": len(one),
    }
    rows = [
        ("engine only, no alerts", f"{empty_qps:,.0f} quotes/s"),
        (f"engine only, {resting:,} alerts", f"{with_qps:,.0f} quotes/s"),
        ("engine only, with / without", f"{with_qps / empty_qps:.3f}"),
        ("engine only, extra per quote", f"{extra_ns:,.0f} ns"),
        ("engine only, alerts fired",
         f"{fired:,} ({fired / max(1, resting):.1%} of those resting)"),
        ("engine only, alerts rested", f"{count / add_s:,.0f} /s"),
        ("engine only, memory per alert", f"{bytes_per_alert:,.0f} B (RSS)"),
        (f"engine only, pickle one symbol ({len(one):,} alerts)",
         f"{pickle_ms:,.1f} ms, {len(snapshot):,} B"),
    ]  # fmt: skip
    return figures, rows


# -- the flow ----------------------------------------------------------------------------------


def replay_quotes(path: Path, dsn: str, redis_url: str) -> dict:
    """`brokerflow replay PATH --flows quotes --json` in a process of its own, on these stores
    (Redis flushed first: the same writes every run); return its JSON summary."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    env = {**os.environ, "BROKERFLOW_POSTGRES_DSN": dsn, "BROKERFLOW_REDIS_URL": redis_url,
           "BROKERFLOW_DQ": "false", "BROKERFLOW_METRICS_PORT": "0"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "brokerflow.cli", "replay", str(path), "--flows", "quotes",
         "--json", "--quiet"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        msg = f"bench price-alerts: replay failed ({done.returncode}): {done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return json.loads(done.stdout.strip().splitlines()[-1])


def day_prices(redis_url: str) -> tuple[list[str], list[float], list[float]]:
    """The symbols the run published, each one's open of the day and its previous close (the
    open when the day has none: change_pct alerts then sit as far from it as the others)."""
    with redis.Redis.from_url(redis_url) as client:
        keys = sorted(k.decode() for k in client.scan_iter("ohlc:*", count=1000))
        days = [json.loads(v) for v in client.mget(keys)]
        quotes = client.mget([f"quote:{k.split(':')[1]}" for k in keys])
    names, opens, closes = [], [], []
    for key, day, raw in zip(keys, days, quotes, strict=True):
        quote = json.loads(raw) if raw else {}
        names.append(key.split(":")[1])
        opens.append(float(day["open"]))
        closes.append(float(quote.get("prev_close") or day["open"]))
    return names, opens, closes


def rest_alerts(dsn: str, alerts: list[PriceAlert]) -> float:
    """COPY the alerts in as ACTIVE rows (the store's trigger stamps each); return seconds."""
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy("COPY price_alerts (user_id, account, symbol, condition, value) "
                      "FROM STDIN") as copy:  # fmt: skip
            for a in alerts:
                copy.write_row((a.user, "BENCH", a.symbol, a.condition, a.value))
        cur.execute("ANALYZE price_alerts")
    return time.perf_counter() - t0


def reset_alerts(dsn: str) -> None:
    """Every alert ACTIVE again and no alert recorded, as before the first run."""
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE price_alerts SET status = 'ACTIVE', fired_at = NULL, "
                     "fired_ltp = NULL WHERE status <> 'ACTIVE'")  # fmt: skip
        conn.execute("DELETE FROM alerts")


def load_seconds(dsn: str, symbols: list[str]) -> tuple[float, int]:
    """The start-up cost apart: what a run does before its first evaluation, for every symbol
    at once (`PriceAlertReader.load` + `PriceAlertBook.add`); (seconds, alerts)."""
    from sinks.price_alerts import PriceAlertReader

    reader = PriceAlertReader(dsn)
    gc.collect()
    with tuned_gc():
        t0 = time.perf_counter()
        alerts = reader.load(symbols)
        PriceAlertBook().add_many(alerts)
        seconds = time.perf_counter() - t0
    reader.close()
    return seconds, len(alerts)


def flow(settings, args) -> tuple[dict, list[tuple[str, str]], float]:  # noqa: ANN001
    """The quotes flow both ways, alternated: (yardsticks, table rows, steady-state ratio)."""
    from bench.ingest import ensure_file
    from bench.pipeline import reserved_redis_db
    from brokerflow.services import ensure_services

    path = ensure_file(args.price_alerts_messages)
    endpoints = ensure_services(settings, {"redis", "postgres"})
    count, rounds = args.price_alerts_count, max(1, args.price_alerts_rounds)
    with reserved_redis_db(endpoints.redis_url) as redis_url:
        empty = scratch_database(endpoints.postgres_dsn, "bench_price_alerts_none")
        full = scratch_database(endpoints.postgres_dsn, "bench_price_alerts_full")
        far = scratch_database(endpoints.postgres_dsn, "bench_price_alerts_far")
        without: list[dict] = []
        with_alerts: list[dict] = []
        resting: list[dict] = []
        _say(f"flow: replay of {path.name} (quotes flow), no alerts")
        without.append(replay_quotes(path, empty, redis_url))
        names, opens, closes = day_prices(redis_url)
        alerts = make_alerts(count, names, opens, closes, random.Random(SEED))
        _say(f"flow: resting {count:,} alerts over {len(names)} symbols in PostgreSQL")
        insert_s = rest_alerts(full, alerts)
        del alerts
        rest_alerts(far, make_alerts(count, names, opens, closes, random.Random(SEED),
                                     FAR_DISTANCES))  # fmt: skip
        load_s, loaded = load_seconds(full, names)
        for n in range(rounds):
            if n:
                _say(f"flow: round {n + 1}, no alerts")
                without.append(replay_quotes(path, empty, redis_url))
            _say(f"flow: round {n + 1}, {count:,} alerts")
            reset_alerts(full)
            with_alerts.append(replay_quotes(path, full, redis_url))
            _say(f"flow: round {n + 1}, {count:,} alerts none of which fires")
            resting.append(replay_quotes(path, far, redis_url))
    messages = without[0]["messages"]

    def steady(run: dict) -> float:  # msg/s with the run's own one-time alert load taken out
        return run["messages"] / (run["seconds"] - run["price_alerts"]["load_ms"] / 1000)

    best_without = max(r["messages_per_s"] for r in without)
    best_with = max(steady(r) for r in with_alerts)
    best_with_whole = max(r["messages_per_s"] for r in with_alerts)
    ratio = best_with / best_without
    best_resting = max(steady(r) for r in resting)
    in_run_load = min(r["price_alerts"]["load_ms"] for r in with_alerts) / 1000
    fired = with_alerts[-1]["price_alerts"]["fired"]
    figures = {
        "flow_messages": messages,
        "flow_symbols": len(names),
        "flow_rounds": rounds,
        "flow_alerts_resting": with_alerts[-1]["price_alerts"]["loaded"],
        "flow_msgs_per_s_no_alerts": round(best_without),
        "flow_msgs_per_s_with_alerts_steady": round(best_with),
        "flow_msgs_per_s_with_alerts_whole_run": round(best_with_whole),
        "flow_ratio_steady": round(ratio, 4),
        "flow_ratio_whole_run": round(best_with_whole / best_without, 4),
        "flow_msgs_per_s_resting_only_steady": round(best_resting),
        "flow_ratio_resting_only_steady": round(best_resting / best_without, 4),
        "flow_runs_resting_only_msgs_per_s": [r["messages_per_s"] for r in resting],
        "flow_resting_only_fired": resting[-1]["price_alerts"]["fired"],
        "flow_runs_no_alerts_msgs_per_s": [r["messages_per_s"] for r in without],
        "flow_runs_with_alerts_msgs_per_s": [r["messages_per_s"] for r in with_alerts],
        "flow_run_seconds_no_alerts": min(r["seconds"] for r in without),
        "flow_startup_load_s_in_run": round(in_run_load, 3),
        "startup_load_s_apart": round(load_s, 3),
        "startup_alerts_loaded_apart": loaded,
        "flow_alerts_fired": fired,
        "flow_quotes_published": with_alerts[-1]["quotes"],
        "rest_alerts_copy_s": round(insert_s, 1),
    }
    seconds = figures["flow_run_seconds_no_alerts"]
    rows = [
        ("input", f"{messages:,} messages, {len(names)} symbols, {seconds:.1f} s a run "
                  f"({rounds} runs each way, alternated; best of each)"),
        ("quotes flow, no alerts", f"{best_without:,.0f} msg/s"),
        (f"quotes flow, {figures['flow_alerts_resting']:,} alerts",
         f"{best_with:,.0f} msg/s steady state ({best_with_whole:,.0f} msg/s whole run)"),
        ("quotes flow, with / without", f"{ratio:.3f} steady state (goal >= {GOAL_RATIO}); "
                                         f"{best_with_whole / best_without:.3f} whole run"),
        (f"quotes flow, {figures['flow_alerts_resting']:,} alerts, none fires",
         f"{best_resting:,.0f} msg/s steady state: {best_resting / best_without:.3f} of without "
         f"(the alerts {FAR_DISTANCES[0]:.0%}-{FAR_DISTANCES[1]:.0%} away: the cost of resting "
         "alone, without the writes of fired ones)"),
        ("start-up: load the alerts", f"{in_run_load:.2f} s in the run; {load_s:.2f} s measured "
                                      f"apart ({loaded:,} rows read and rested)"),
        ("alerts fired per run", f"{fired:,} (rows FIRED, alerts and stream entries written)"),
    ]  # fmt: skip
    return figures, rows, ratio


def run(settings, args) -> dict:  # noqa: ANN001
    """Run the flow and the engine both ways; print the table; write
    bench/results/price-alerts.json (value: the flow's steady-state ratio; engine only when
    `--no-price-alerts-flow`)."""
    figures: dict = {}
    rows: list[tuple[str, str]] = []
    ratio = None
    with_flow = getattr(args, "price_alerts_flow", True)
    if with_flow:
        figures, rows, ratio = flow(settings, args)
    engine_figures, engine_rows = engine(args)
    yardsticks = {"end_to_end": with_flow, **figures, **engine_figures}
    if with_flow:
        unit = "ratio (quotes flow msg/s with / without the alerts, steady state)"
        value = round(ratio, 4)
        print("price-alerts — the quotes flow as `brokerflow replay --flows quotes` runs it, "
              "with the alerts in PostgreSQL vs none. Steady state: the input is long enough "
              "that the run is mostly steady; the one-time load of the alerts at start-up is "
              "taken out of the with-alerts time and shown on its own line.")  # fmt: skip
    else:
        unit = "ratio (engine only: PriceAlertBook quotes/s with / without the alerts)"
        value = engine_figures["engine_with_over_without"]
        print("price-alerts — ENGINE ONLY (PriceAlertBook.on_price, no dataflow)")
    path = write_result("price-alerts", unit, value, GOAL_RATIO, yardsticks)
    table = rows + engine_rows
    width = max(len(r[0]) for r in table)
    for label, figure in table:
        print(f"  {label:<{width}}  {figure}")
    print(f"  -> {path}")
    return yardsticks
