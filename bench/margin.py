"""The margin benchmark: the margin flow as users run it, and its engine alone.

Printed in one run, next to each other:
    FULL FLOW     (the result's `value`) `replay` with flows=("quotes", "margin") over a
                  simulated FIX market-data file (`--margin-symbols` 35=W, then
                  `--margin-flow-quotes` 35=X at about 100,000 messages per second of event
                  time), `--margin-flow-accounts` accounts x `--margin-holdings` holdings loaded
                  into a scratch PostgreSQL database `brokerflow_bench_margin` as `brokerflow
                  load` does: reading, decoding, Bytewax, the margin steps, `account_margin`
                  and the alerts into the stores. Wall time of the replay, start-up included.
                  Yardstick, in the same run: the same file with flows=("quotes",). The
                  margin-call latency is not measured here (only in the engine part).
    engine only   `bench.margin_engine`: the margin steps' logic without Bytewax, decoding or
                  sinks, every figure labelled "engine only" and kept under `engine_…` keys;
                  its yardstick, one full recomputation of every account.


No 2-process part: the only cluster the product runs is `brokerflow run -i/-a` over Kafka, and
there every chunk passes one `align_fix` step and then the one `margin_feed` step, each on one
worker, so a second process holds some account shards and adds copying (issue 17 measured
0.87x of one process for quotes, ledger, stops and margin). An earlier part here forked the
account shards outside Bytewax, which no user can run; it was removed. Scale-out belongs to
issue 17's benchmark.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from bench.common import write_result
from bench.margin_engine import (
    GOAL_P99_S,
    GOAL_QUOTES_PER_S,
    INITIAL,
    MAINTENANCE,
    SEED,
    TARGET_ACCOUNTS,
    account_specs,
    batch_recompute,
    build_book,
    engine_figures,
    engine_rows,
    fanout_demand,
    run_stream,
    screen_pass,
)
from brokerflow.settings import Settings
from simulator.market import MarketSimulator, format_price

__all__ = ["DEFAULTS", "account_specs", "add_arguments", "options", "run"]

NAME = "margin"
DEFAULTS = {
    "accounts": 1_000_000,
    "holdings": 20,
    "symbols": 5_000,
    "quotes": 2_000_000,  # an upper bound: the stream stops at --seconds first at large sizes
    "seconds": 60.0,
    "batch": 100,
    "near": 0.01,
    "flow_accounts": 2_000,
    "flow_quotes": 200_000,
}
BENCH_DATABASE = "brokerflow_bench_margin"
BENCH_REDIS_DB = 14  # flushed; not the other benchmarks' 15, which one may be using right now


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the full flow ------------------------------------------------------------------------------


@dataclass
class FlowRun:
    summary: dict
    seconds: float  # wall time of `replay`: the accounts' load, the flow's start and its run

    @property
    def messages_per_s(self) -> float:
        return self.summary["messages"] / self.seconds if self.seconds else 0.0


@dataclass
class FlowResult:
    accounts: int
    positions: int
    messages: int  # 35=W + 35=X in the file
    event_seconds: float  # event time the 35=X span
    margin: FlowRun  # flows=("quotes", "margin")
    quotes_only: FlowRun  # flows=("quotes",): the yardstick, same file, same run


def _bench_settings(settings: Settings) -> Settings:
    """The settings with a fresh `brokerflow_bench_margin` database and the bench Redis db."""
    from bench.common import scratch_database
    from brokerflow.services import ensure_services

    endpoints = ensure_services(settings, {"redis", "postgres"})
    dsn = scratch_database(endpoints.postgres_dsn, BENCH_DATABASE)
    redis_url = urlunsplit(urlsplit(endpoints.redis_url)._replace(path=f"/{BENCH_REDIS_DB}"))
    return settings.model_copy(update={"postgres_dsn": dsn, "redis_url": redis_url})


def _flushed_replay(path: Path, settings: Settings, flows: tuple[str, ...]) -> FlowRun:
    import redis

    from brokerflow.commands.replay import replay

    assert settings.redis_url is not None  # set by `_bench_settings`
    with redis.Redis.from_url(settings.redis_url) as client:
        client.flushdb()  # no opening marks and no quotes already there: the file's 35=W give them
    gc.collect()
    t0 = time.perf_counter()
    summary = replay([path], settings, progress=False, flows=flows)
    return FlowRun(summary.as_dict(), time.perf_counter() - t0)


def run_full_flow(
    settings: Settings,
    accounts: int,
    holdings: int,
    symbols: int,
    messages: int,
    near: float,
    say: Callable[[str], None] = _say,
) -> FlowResult:
    """The product as users run it: generated accounts and positions loaded into PostgreSQL
    (`brokerflow load`'s upserts) and `replay` of a simulated market-data file (about 100,000
    messages per second of event time over `symbols`) with flows=("quotes", "margin"): reading,
    decoding, Bytewax, the margin steps and their sinks. The yardstick, in the same run: the
    same file with flows=("quotes",). Redis is emptied before each replay."""
    from brokerflow.commands.load import ACCOUNTS, POSITIONS, load_rows

    bench_settings = _bench_settings(settings)
    assert bench_settings.postgres_dsn is not None
    # 8 market events a second per symbol, 1-4 messages each: about 100,000 messages a second
    # of event time over 5,000 symbols (the span is measured and reported).
    sim = MarketSimulator(symbols, seed=SEED, rate_per_symbol=8.0)
    ticks = [sim.top_of_book(i)[4] for i in range(symbols)]
    gen = np.random.default_rng(SEED + 2)
    account_rows, position_rows = [], []
    for spec in account_specs(accounts, holdings, ticks, near, gen):
        account_rows.append(
            (spec.account, "owner", Decimal(spec.cash_cents).scaleb(-2), INITIAL, MAINTENANCE)
        )
        for s, qty in spec.holdings:
            position_rows.append(
                (spec.account, sim.symbols[s], Decimal(qty), Decimal(format_price(ticks[s])),
                 f"bench:{spec.account}")
            )  # fmt: skip
    say(f"full flow: loading {accounts:,} accounts and {len(position_rows):,} positions")
    load_rows(bench_settings.postgres_dsn, ACCOUNTS, account_rows, "accounts")
    load_rows(bench_settings.postgres_dsn, POSITIONS, position_rows, "positions")
    with tempfile.TemporaryDirectory(prefix="bench-margin-") as tmp:
        path = Path(tmp) / "market.fix"
        first_ns = last_ns = 0
        with open(path, "wb") as fh:
            for n, (ts, message) in enumerate(sim.messages(limit=symbols + messages)):
                fh.write(message + b"\n")
                if n == symbols:
                    first_ns = ts
                last_ns = ts
        say(f"full flow: yardstick, replaying {symbols:,} 35=W + {messages:,} 35=X through "
            "quotes alone")  # fmt: skip
        quotes_only = _flushed_replay(path, bench_settings, ("quotes",))
        say(f"full flow: replaying the same file through quotes + margin, {accounts:,} accounts "
            f"in {BENCH_DATABASE}")  # fmt: skip
        margin = _flushed_replay(path, bench_settings, ("quotes", "margin"))
    return FlowResult(
        accounts, len(position_rows), symbols + messages, (last_ns - first_ns) / 1e9, margin,
        quotes_only,
    )  # fmt: skip


# -- options and the whole benchmark ------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the margin benchmark's options, each `--margin-NAME` only, with its default set: a
    plain `--quotes` or `--symbols` belongs to another benchmark (stops), and sharing it gave
    this benchmark the other one's size."""
    specs = (
        ("accounts", int, "engine only: accounts in the in-memory state (goal: 1,000,000)"),
        ("holdings", int, "distinct symbols held per account"),
        ("symbols", int, "symbols"),
        ("quotes", int, "engine only: at most this many quotes in the stream"),
        ("seconds", float, "engine only: at most this much wall time in the stream"),
        ("batch", int, "engine only: quotes per batch into the ordered step (100 = 1 ms of "
                       "event time)"),
        ("near", float, "share of the accounts built to breach (excess near 0)"),
        ("flow-accounts", int, "full flow: accounts in PostgreSQL (0 skips the part)"),
        ("flow-quotes", int, "full flow: market-data messages (35=X) in the file"),
    )  # fmt: skip
    for name, kind, text in specs:
        dest = "margin_" + name.replace("-", "_")
        default = DEFAULTS[name.replace("-", "_")]
        parser.add_argument(
            f"--margin-{name}", dest=dest, type=kind, default=default,
            help=f"margin: {text} (default {default:,})",
        )  # fmt: skip


def options(args: argparse.Namespace | None) -> dict:
    """The sizes: `--margin-NAME` where given (or parsed), else `DEFAULTS`."""
    out = {}
    for name, default in DEFAULTS.items():
        value = getattr(args, f"margin_{name}", None)
        out[name] = default if value is None else value
    return out


def run(
    settings: Settings, args: argparse.Namespace | None = None, say: Callable[[str], None] = _say
) -> dict:
    """Run the benchmark; print the table; write bench/results/margin.json; return figures.

    The result's `value` is the full flow's rate (None when `--margin-flow-accounts 0` skips
    it); the engine-only figures are under `engine_…` keys."""
    o = options(args)
    accounts, holdings, symbols = o["accounts"], o["holdings"], o["symbols"]
    say(f"engine only: building {accounts:,} accounts x {holdings} holdings over {symbols:,} "
        f"symbols ({o['near']:.1%} built to breach)")  # fmt: skip
    book = build_book(settings, accounts, holdings, symbols, o["near"], say)
    mark_ms = settings.margin_mark_ms
    demand = fanout_demand(book, GOAL_QUOTES_PER_S, mark_ms)
    say(f"engine only: {book.holdings:,} positions in {book.build_seconds:,.0f} s, "
        f"{book.rss_bytes / 2**20:,.0f} MiB; yardstick: one full recomputation")  # fmt: skip
    full = batch_recompute(book)
    screen_s = screen_pass(book)
    say(f"engine only: stream of up to {o['quotes']:,} quotes or {o['seconds']:,.0f} s, "
        f"batches of {o['batch']:,}")  # fmt: skip
    stream = run_stream(book, o["quotes"], o["seconds"], o["batch"], say)
    yardsticks = engine_figures(book, stream, demand, mark_ms, o["batch"])
    yardsticks.update({
        "engine_only": "domain.margin_marks.MarkPublisher and domain.margin_shard.MarginShard "
                       "called directly: no Bytewax, no decoding, no sinks",
        "batch_full_recompute_seconds": round(full.seconds, 2),
        "batch_full_recompute_accounts_per_s": round(full.accounts_per_s),
        "batch_full_recompute_deficits": full.deficits,
        "screen_pass_seconds": round(screen_s, 4),
        "screen_pass_accounts_per_s": round(accounts / screen_s) if screen_s else None,
    })  # fmt: skip
    p99 = stream.latency(99)
    rows = engine_rows(book, stream, demand, full, screen_s)
    near = book.near
    del book  # the full flow's process memory without the engine's state
    flow = None
    if o["flow_accounts"] > 0 and o["flow_quotes"] > 0:
        flow = run_full_flow(
            settings, o["flow_accounts"], holdings, symbols, o["flow_quotes"], o["near"], say
        )
    value = None
    if flow is not None:
        m, q = flow.margin, flow.quotes_only
        value = round(m.messages_per_s)
        yardsticks.update({
            "flow_accounts": flow.accounts,
            "flow_positions": flow.positions,
            "flow_messages": flow.messages,
            "flow_event_seconds": round(flow.event_seconds, 3),
            "flow_seconds": round(m.seconds, 2),
            "flow_messages_per_s": value,
            "flow_engine_seconds": m.summary["seconds"],
            "flow_alerts": m.summary["alerts"],
            "flow_dead_letters": m.summary["dead_letters"],
            "flow_quotes_only_seconds": round(q.seconds, 2),
            "flow_quotes_only_messages_per_s": round(q.messages_per_s),
            "flow_margin_over_quotes_only": round(m.messages_per_s / q.messages_per_s, 3)
            if q.messages_per_s else None,
        })  # fmt: skip
        alerts = ", ".join(f"{k} {v:,}" for k, v in m.summary["alerts"].items()) or "none"
        rows[:0] = [
            (f"FULL FLOW: replay quotes+margin, {flow.accounts:,} accounts",
             f"{m.messages_per_s:,.0f} msg/s",
             f"goal >= {GOAL_QUOTES_PER_S:,}; {flow.messages:,} 35=W/X in {m.seconds:,.1f} s "
             f"wall ({flow.event_seconds:,.2f} s of event time); Bytewax, decoding, sinks"),
            ("  yardstick: the same file, quotes alone", f"{q.messages_per_s:,.0f} msg/s",
             f"{q.seconds:,.1f} s; quotes+margin / quotes alone "
             f"{yardsticks['flow_margin_over_quotes_only'] or 0:.2f}"),
            ("  alerts of the full flow", "", f"{alerts}; "
             f"{m.summary['dead_letters']:,} dead letters"),
        ]  # fmt: skip
    else:
        rows[:0] = [("FULL FLOW", "not run", "--margin-flow-accounts 0")]
    out = write_result(NAME, "messages/s", value, GOAL_QUOTES_PER_S, yardsticks)
    head = (f"margin: full flow {o['flow_accounts']:,} accounts; engine only {accounts:,} "
            f"accounts (goal {TARGET_ACCOUNTS:,}) x {holdings} holdings over {symbols:,} symbols, "
            f"batches of {o['batch']:,} quotes")  # fmt: skip
    print(head)
    for name, value_text, note in rows:
        print(f"  {name:<52} {value_text:>18}  {note}")
    speed = json.loads(out.read_text())["python_loop_mops"]
    print(f"  machine speed: {speed} M Python loop iterations/s (shared machines drift)")
    verdicts = []
    if flow is not None:
        ok = flow.margin.messages_per_s >= GOAL_QUOTES_PER_S
        verdicts.append(f"full flow {'meets' if ok else 'MISSES'} the rate goal")
    ok = stream.sustained_per_s >= GOAL_QUOTES_PER_S
    ok_lat = bool(stream.latencies_ns) and p99 < GOAL_P99_S * 1e9
    verdicts.append(f"engine only: rate {'meets' if ok else 'MISSES'} the goal, call p99 (all "
                    f"calls) {'meets' if ok_lat else 'MISSES'} it")  # fmt: skip
    print(f"  {'; '.join(verdicts)}; results in {out}")
    return {"value": value, **yardsticks, "called": stream.called, "near": near}
