"""The price-alerts benchmark (issue 19), ENGINE ONLY for now: `domain.price_alerts`'s book.

    engine        `PriceAlertBook.on_price` over a quote stream of `--price-alerts-symbols`
                  symbols (`--price-alerts-quotes` last-trade prices, a random walk with a day's
                  volatility of `DAY_SIGMA`, round robin over the symbols), once with
                  `--price-alerts-count` resting alerts and once with none. The alerts: 40 %
                  ltp_above, 40 % ltp_below, 10 % each change_pct_above/below, a uniform
                  distance of `MIN_DISTANCE`..`MAX_DISTANCE` of the symbol's price away, on the
                  side where they wait; so the share the day's moves cross is what such a day
                  crosses (printed).
    estimate      what the book would cost the quotes flow: its extra time per quote (with
                  alerts minus without) against the quotes flow's measured msg/s
                  (bench/results/ingest.json), one `on_price` per market-data message (more
                  than the flow needs: it only has to call it when a symbol's LTP changes):
                  flow ratio = 1 / (1 + extra_s_per_quote * flow_msgs_per_s).

Not measured yet: the end-to-end figure (the quotes flow with the book wired in), because the
book is not wired into `flows/quotes.py` yet. The result says so (`end_to_end: false`).

Also reported: the time to rest the alerts, the resident memory per resting alert, and the
time to pickle one symbol's book (Bytewax snapshots a key's state at each epoch end in which
it changed).
"""

from __future__ import annotations

import gc
import json
import math
import pickle
import random
import sys
import time
from decimal import Decimal

# The committed results (bound at import, before `--quick` points write_result elsewhere): the
# quotes flow's full-size figure is the one to estimate against.
from bench.common import RESULTS_DIR, rss_bytes, write_result
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
TS0_MS = 1_765_000_000_000


def add_arguments(p) -> None:  # noqa: ANN001
    """The `--price-alerts-*` options of `brokerflow bench`."""
    p.add_argument("--price-alerts-count", type=int, default=1_000_000,
                   help="price-alerts: resting alerts")  # fmt: skip
    p.add_argument("--price-alerts-symbols", type=int, default=100,
                   help="price-alerts: symbols")  # fmt: skip
    p.add_argument("--price-alerts-quotes", type=int, default=1_000_000,
                   help="price-alerts: quotes (last-trade prices) fed to the book")  # fmt: skip


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
    count: int, names: list[str], opens: list[float], closes: list[float], rng: random.Random
) -> list[PriceAlert]:
    """`count` alerts round robin over the symbols, each a random distance from its price."""
    alerts = []
    n = len(names)
    for i in range(count):
        s = i % n
        r = rng.random()
        d = rng.uniform(MIN_DISTANCE, MAX_DISTANCE)
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


def _flow_msgs_per_s() -> float | None:
    try:
        return float(json.loads((RESULTS_DIR / "ingest.json").read_text())["value"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run(settings, args) -> dict:  # noqa: ANN001, ARG001
    """Run the engine part both ways; print the table; write bench/results/price-alerts.json."""
    count, n_symbols, n_quotes = (args.price_alerts_count, args.price_alerts_symbols,
                                  args.price_alerts_quotes)  # fmt: skip
    rng = random.Random(SEED)
    names, opens, closes, syms, pxs = quote_stream(n_symbols, n_quotes, rng)
    close_of = dict(zip(names, closes, strict=True))
    _say(f"price-alerts: {count:,} alerts over {n_symbols} symbols, {n_quotes:,} quotes")

    # Warm-up, and the yardstick: the same stream through an empty book.
    warm = min(50_000, n_quotes)
    _feed(PriceAlertBook(), syms[:warm], pxs[:warm], close_of)
    empty_s, _ = _feed(PriceAlertBook(), syms, pxs, close_of)

    gc.collect()
    rss0 = rss_bytes()
    alerts = make_alerts(count, names, opens, closes, rng)
    book = PriceAlertBook()
    with tuned_gc():
        t0 = time.perf_counter()
        for alert in alerts:
            book.add(alert)
        add_s = time.perf_counter() - t0
    del alerts
    gc.collect()
    bytes_per_alert = (rss_bytes() - rss0) / max(1, count)
    # Prime each symbol's previous close (change_pct alerts are priced from it).
    for s, name in enumerate(names):
        book.on_price(name, opens[s], closes[s], TS0_MS)
    resting = len(book)
    one = PriceAlertBook()
    for alert in make_alerts(count // max(1, n_symbols), names[:1], opens, closes, rng):
        one.add(alert)
    one.on_price(names[0], opens[0], closes[0], TS0_MS)
    t0 = time.perf_counter()
    snapshot = pickle.dumps(one)
    pickle_ms = (time.perf_counter() - t0) * 1000

    with_s, fired = _feed(book, syms, pxs, close_of)
    with_qps = n_quotes / with_s
    empty_qps = n_quotes / empty_s
    extra_ns = max(0.0, (with_s - empty_s) / n_quotes * 1e9)
    flow = _flow_msgs_per_s()
    est_ratio = 1 / (1 + extra_ns * 1e-9 * flow) if flow else None

    yardsticks = {
        "end_to_end": False,
        "note": "engine only: the book is not wired into the quotes flow yet",
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
        "flow_msgs_per_s_ingest_json": flow,
        "estimated_flow_ratio": round(est_ratio, 4) if est_ratio else None,
    }
    value = round(est_ratio, 4) if est_ratio is not None else round(with_qps / empty_qps, 3)
    path = write_result("price-alerts", "ratio (engine only; est. flow with/without alerts)",
                        value, GOAL_RATIO, yardsticks)  # fmt: skip
    rows = [
        ("engine, no alerts", f"{empty_qps:,.0f} quotes/s"),
        (f"engine, {resting:,} alerts", f"{with_qps:,.0f} quotes/s"),
        ("engine with / without", f"{with_qps / empty_qps:.3f}"),
        ("extra per quote", f"{extra_ns:,.0f} ns"),
        ("alerts fired", f"{fired:,} ({fired / max(1, resting):.1%} of those resting)"),
        ("resting alerts added", f"{count / add_s:,.0f} /s"),
        ("memory per resting alert", f"{bytes_per_alert:,.0f} B (RSS)"),
        (f"pickle one symbol ({len(one):,} alerts)", f"{pickle_ms:,.1f} ms, {len(snapshot):,} B"),
        ("quotes flow (ingest.json)", f"{flow:,.0f} msg/s" if flow else "not measured"),
        ("est. flow with / without", f"{est_ratio:.4f} (goal >= {GOAL_RATIO})"
         if est_ratio else "n/a"),  # fmt: skip
    ]
    print("price-alerts — ENGINE ONLY (PriceAlertBook.on_price, no dataflow); the end-to-end "
          "figure comes once the book is wired into flows/quotes.py")  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for label, figure in rows:
        print(f"  {label:<{width}}  {figure}")
    print(f"  -> {path}")
    return yardsticks
