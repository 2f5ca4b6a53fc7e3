"""The surveillance benchmark: a simulated trading day of order events through every model.

Printed in one run, next to each other:
    end to end   `replay` with flows=("surveillance",) over a cached FIX file: decode ->
                 `surveil_route` -> symbol models (self-match, round trips, spoofing, marking
                 the close, pump and dump) and account models (order-to-trade, ownership) ->
                 alerts to PostgreSQL `alerts` (a fresh database `brokerflow_bench_surv` holding
                 the file's accounts and owners) and Redis `stream:alerts` (the bench db).
                 The process's RSS is sampled from a thread every `RSS_EVERY_S` during the run:
                 start (before the replay), peak, end (the last sample of the run) and after.
    yardstick    the same file through `replay` with flows=() (decode and dead letters only):
                 the same stream through the flow with the models off. It runs first, so its
                 RSS (sampled the same way) is the baseline the models-on run starts from.
    models alone the same file decoded (chunk by chunk, untimed) and fed through `route` into
                 the shards' `SymbolModels` and `AccountModels` directly, no Bytewax, no sinks;
                 timed is `route` + the models (+ the end-of-input judgements). The models'
                 state sizes are printed at the start (after the first chunk), the middle and
                 the end of the day. Findings are counted once per key, as the alert store
                 keeps them (marking the close is judged at the close and again by
                 `close_input` at the end of the input, with the same keys), so they should
                 equal the end-to-end alerts by kind.

The file: `OrderFlowSimulator` over `MarketSimulator(symbols, rate_per_symbol=MARKET_RATE)`
from 14:30 UTC for `minutes` simulated minutes (the default 405 runs past the 21:00 close, so
marking the close is judged in the stream), `accounts` accounts (their owners from the file's
accounts CSV) and `orders_per_minute` new orders a simulated minute.

The figure counts what the models process: the execution reports (35=8) that `route` sends to
them (ExecType 0, 4, 5, F, C, 8 or 3, with an Account (1); each goes to one symbol shard and one
account shard and counts once), less those the flow dead-letters as too late
(`surveillance_late_s`). It divides them by the wall time of the whole replay, which also
decodes the file's market data and the client 35=D/F/G, which no model sees. The models-off
yardstick divides the same count by its own replay's wall time (like for like). Issue 6 stated
its goal as ">= 20,000 order events/s through all models", counting 35=D/F/G among order
events; only 35=8 reach the models, so the goal is held against the reports they process. The
file's order messages (35=8/D/F/G) per second of the replay are kept in the result as
`end_to_end_order_messages_per_s`, the figure this benchmark printed before.
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from bench.common import DATA_DIR, rss_bytes, scratch_database, write_result
from bench.ingest import BENCH_REDIS_DB
from brokerflow.commands.load import ACCOUNTS, load_rows, read_accounts
from brokerflow.commands.replay import replay
from brokerflow.services import ensure_services
from brokerflow.settings import Settings
from connectors.fix import decode_lines
from connectors.fix.parse import DecodedBatch
from domain.sharding import SYMBOL_SHARDS
from domain.surveillance import Finding
from flows.surveillance import ACCOUNT_SHARDS, AccountModels, SymbolModels, inputs_of, route
from simulator.market import MarketSimulator
from simulator.orders import OrderFlowSimulator

GOAL_REPORTS_PER_S = 20_000  # issue 6: ">= 20,000 order events/s through all models"
BENCH_DATABASE = "brokerflow_bench_surv"
SEED = 23
MARKET_RATE = 0.02  # market events per symbol per simulated second (light: orders are the load)
ORDER_TYPES = frozenset({"8", "D", "F", "G"})  # order messages; only 35=8 reach the models
RSS_EVERY_S = 0.1
CHUNK_LINES = 5_000  # models alone: lines decoded per batch (the file source's order of size)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the input ---------------------------------------------------------------------------------


def ensure_file(
    minutes: float,
    orders_per_minute: float,
    accounts: int,
    symbols: int,
    say: Callable[[str], None] = _say,
    data_dir: Path = DATA_DIR,
) -> Path:
    """Return the cached trading-day file (and its accounts CSV), generating it if needed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"surv-{minutes:g}m-{orders_per_minute:g}opm-{accounts}a-{symbols}s.fix"
    accounts_csv = path.with_suffix(".accounts.csv")
    if path.exists() and accounts_csv.exists():
        return path
    say(f"generating {minutes:g} simulated minutes at {orders_per_minute:g} orders/min for "
        f"{accounts:,} accounts over {symbols:,} symbols -> {path}")  # fmt: skip
    sim = OrderFlowSimulator(
        MarketSimulator(symbols=symbols, seed=SEED, rate_per_symbol=MARKET_RATE),
        accounts=accounts,
        orders_per_minute=orders_per_minute,
    )
    tmp = path.with_suffix(".tmp")

    def progress(written: int, ts_ns: int) -> None:
        clock = time.strftime("%H:%M", time.gmtime(ts_ns // 1_000_000_000))
        say(f"  {written:,} messages, event time {clock} UTC")

    sim.write_file(tmp, minutes=minutes, progress=progress, progress_every=100_000)
    sim.accounts_csv(accounts_csv)
    tmp.rename(path)
    return path


def count_types(path: Path) -> Counter[str]:
    """Messages of the file by MsgType (35)."""
    counts: Counter[str] = Counter()
    with open(path, "rb") as fh:
        for line in fh:
            start = line.find(b"\x0135=")
            if start < 0:
                continue
            start += 4
            counts[line[start : line.index(b"\x01", start)].decode()] += 1
    return counts


def fresh_database(server_dsn: str) -> str:
    """(Re)create the benchmark's own database on the server; return its DSN."""
    return scratch_database(server_dsn, BENCH_DATABASE)


# -- memory ------------------------------------------------------------------------------------


class RssSampler:
    """Samples this process's RSS from a thread every `every_s` seconds while in a `with`."""

    def __init__(self, every_s: float = RSS_EVERY_S) -> None:
        self.every_s = every_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self._t0, rss_bytes()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._t0 = time.perf_counter()
        self.start = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = rss_bytes()

    @property
    def peak(self) -> int:
        return max([self.start, *(r for _, r in self.samples)])

    @property
    def end(self) -> int:
        return self.samples[-1][1] if self.samples else self.after

    def deciles_mib(self) -> list[float]:
        """RSS at 10 %, 20 %, ... 100 % of the run's time, in MiB."""
        return [round(self.at(n / 10) / 2**20) for n in range(1, 11)]

    def at(self, fraction: float) -> int:
        """The first sample at or after `fraction` of the run's time."""
        if not self.samples:
            return self.start
        cut = self.samples[-1][0] * fraction
        return next(r for t, r in self.samples if t >= cut)


# -- end to end --------------------------------------------------------------------------------


@dataclass
class FlowRun:
    summary: dict
    seconds: float
    rss: RssSampler


def run_replay(path: Path, settings: Settings, flows: tuple[str, ...]) -> FlowRun:
    gc.collect()
    with RssSampler() as rss:
        t0 = time.perf_counter()
        summary = replay([path], settings, progress=False, flows=flows).as_dict()
        seconds = time.perf_counter() - t0
    return FlowRun(summary, seconds, rss)


# -- models alone ------------------------------------------------------------------------------


@dataclass
class ModelsRun:
    seconds: float = 0.0
    decode_seconds: float = 0.0
    reports_seen: int = 0  # execution reports routed to the models (see `route`), once each
    market_trades: int = 0  # 35=X with trades routed to the symbol models
    findings: Counter[str] = field(default_factory=Counter)  # distinct keys, by kind
    findings_raw: int = 0  # before dropping repeated keys (the alert store keeps one per key)
    keys: set[str] = field(default_factory=set)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> model -> size
    rss: dict[str, int] = field(default_factory=dict)

    @property
    def reports_per_s(self) -> float:
        return self.reports_seen / self.seconds if self.seconds else 0.0

    def add(self, findings: list[Finding]) -> None:
        self.findings_raw += len(findings)
        for f in findings:
            if f.key not in self.keys:
                self.keys.add(f.key)
                self.findings[f.kind] += 1


def state_sizes(symbols: list[SymbolModels], accounts: list[AccountModels]) -> dict[str, int]:
    """The models' state, summed over the shards: `len(model)` where defined, plus the
    spoofing model's resting orders and the pump-and-dump accumulations (its largest state)."""
    return {
        "self_match": sum(len(m.self_match) for m in symbols),
        "round_trips": sum(len(m.round_trips) for m in symbols),
        "spoofing_suspects": sum(len(m.spoofing) for m in symbols),
        "spoofing_resting": sum(
            len(r)
            for m in symbols
            for r in m.spoofing._resting.values()  # noqa: SLF001
        ),
        "pump_accumulations": sum(len(m.pump._positions) for m in symbols),  # noqa: SLF001
        "order_to_trade": sum(len(m.otr) for m in accounts),
    }


def late_reports(dsn: str) -> int:
    """Execution reports the flow dead-lettered as too late for the models (not processed)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE step_id = 'surveil_symbols'"
        ).fetchone()
    return int(row[0]) if row else 0


def run_models(path: Path, owners: dict[str, str], say: Callable[[str], None] = _say) -> ModelsRun:
    """Feed the file through `route` and the shards' models directly; time route + models."""
    symbols = [SymbolModels(owners) for _ in range(SYMBOL_SHARDS)]
    accounts = [AccountModels(owners) for _ in range(ACCOUNT_SHARDS)]
    by_key: dict[str, SymbolModels | AccountModels] = {}
    for n in range(SYMBOL_SHARDS):
        by_key[f"s{n}"] = symbols[n]
    for n in range(ACCOUNT_SHARDS):
        by_key[f"a{n}"] = accounts[n]
    lines = path.read_bytes().splitlines(keepends=True)
    total = len(lines)
    run = ModelsRun()
    middle = (total // CHUNK_LINES // 2) * CHUNK_LINES
    gc.collect()
    run.rss["start"] = rss_bytes()
    for first in range(0, total, CHUNK_LINES):
        t0 = time.perf_counter()
        batch: DecodedBatch = decode_lines(lines[first : first + CHUNK_LINES], "bench", first + 1)
        t1 = time.perf_counter()
        findings = []
        for key, routed in route(batch):
            items = inputs_of(routed)
            on = by_key[key].on
            for item in items:
                findings += on(item)
            if key[0] == "a":
                run.reports_seen += len(items)
            else:
                run.market_trades += sum(1 for item in items if type(item) is tuple)
        t2 = time.perf_counter()
        run.decode_seconds += t1 - t0
        run.seconds += t2 - t1
        run.add(findings)
        if first == 0:
            run.sizes["start"] = state_sizes(symbols, accounts)
        if first == middle:
            run.sizes["middle"] = state_sizes(symbols, accounts)
            run.rss["middle"] = rss_bytes()
    t0 = time.perf_counter()
    closing = [f for m in (*symbols, *accounts) for f in m.close_input()]
    run.seconds += time.perf_counter() - t0
    run.add(closing)
    run.sizes["end"] = state_sizes(symbols, accounts)
    run.rss["end"] = rss_bytes()
    run.sizes.setdefault("middle", run.sizes["end"])
    run.rss.setdefault("middle", run.rss["end"])
    del lines
    return run


# -- the whole benchmark -----------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def _bench_settings(settings: Settings) -> Settings:
    """The settings with a fresh `brokerflow_bench_surv` database and an empty bench Redis db."""
    endpoints = ensure_services(settings, {"redis", "postgres"})
    dsn = fresh_database(endpoints.postgres_dsn)
    redis_url = urlunsplit(urlsplit(endpoints.redis_url)._replace(path=f"/{BENCH_REDIS_DB}"))
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()  # the benchmark's own db: an empty stream:alerts
    return settings.model_copy(update={"postgres_dsn": dsn, "redis_url": redis_url})


def run(
    settings: Settings,
    minutes: float = 405,
    orders_per_minute: float = 250,
    accounts: int = 5_000,
    symbols: int = 100,
    say: Callable[[str], None] = _say,
    data_dir: Path = DATA_DIR,
) -> dict:
    """Run all three parts; print the table; write bench/results/surveillance.json."""
    path = ensure_file(minutes, orders_per_minute, accounts, symbols, say, data_dir)
    types = count_types(path)
    order_messages = sum(n for t, n in types.items() if t in ORDER_TYPES)
    messages_in_file = sum(types.values())
    bench_settings = _bench_settings(settings)
    account_rows = read_accounts(path.with_suffix(".accounts.csv"))
    load_rows(bench_settings.postgres_dsn, ACCOUNTS, account_rows, "accounts")
    owners = {row[0]: row[1] for row in account_rows if row[1]}

    # The yardstick first: its RSS is then the process's baseline for the file and the
    # dataflow, and what the models-on run adds on top of it is the models' doing.
    say(f"yardstick: replaying {path.name} with flows=() (decode and dead letters only)")
    bare = run_replay(path, bench_settings, ())
    say(f"end to end: replaying {path.name} with flows=surveillance")
    flow = run_replay(path, bench_settings, ("surveillance",))
    with psycopg.connect(bench_settings.postgres_dsn) as conn:
        alert_rows = dict(
            conn.execute("SELECT kind, count(*) FROM alerts GROUP BY kind ORDER BY kind").fetchall()
        )
    late = late_reports(bench_settings.postgres_dsn)
    say("models alone: route + SymbolModels/AccountModels, no Bytewax")
    models = run_models(path, owners, say)

    # What the models process: the reports `route` gives them (the same function and decoder
    # as the flow's), less the ones the flow dead-lettered as too late.
    reports = models.reports_seen - late
    e2e = reports / flow.seconds
    bare_rate = reports / bare.seconds
    growth = flow.rss.end - flow.rss.at(0.25)
    yardsticks = {
        "file": path.name,
        "simulated_minutes": minutes,
        "messages_in_file": messages_in_file,
        "messages_by_type": dict(sorted(types.items())),
        "order_messages": order_messages,
        "reports_to_models": reports,
        "reports_too_late": late,
        "accounts": accounts,
        "symbols": symbols,
        "end_to_end_seconds": round(flow.seconds, 2),
        "end_to_end_messages_per_s": round(messages_in_file / flow.seconds),
        "end_to_end_reports_per_s": round(e2e),
        "end_to_end_order_messages_per_s": round(order_messages / flow.seconds),
        "alerts_by_kind": alert_rows,
        "alerts_new_in_run": flow.summary["alerts"],
        "dead_letters": flow.summary["dead_letters"],
        "rss_start_mib": round(flow.rss.start / 2**20, 1),
        "rss_at_quarter_mib": round(flow.rss.at(0.25) / 2**20, 1),
        "rss_peak_mib": round(flow.rss.peak / 2**20, 1),
        "rss_end_mib": round(flow.rss.end / 2**20, 1),
        "rss_after_mib": round(flow.rss.after / 2**20, 1),
        "rss_samples": len(flow.rss.samples),
        "rss_deciles_mib": flow.rss.deciles_mib(),
        "models_off_reports_per_s": round(bare_rate),
        "models_off_seconds": round(bare.seconds, 2),
        "models_off_rss_start_mib": round(bare.rss.start / 2**20, 1),
        "models_off_rss_peak_mib": round(bare.rss.peak / 2**20, 1),
        "models_off_rss_end_mib": round(bare.rss.end / 2**20, 1),
        "models_off_rss_deciles_mib": bare.rss.deciles_mib(),
        "models_on_over_off": round(e2e / bare_rate, 3),
        "models_alone_reports_seen": models.reports_seen,
        "models_alone_market_trades": models.market_trades,
        "models_alone_reports_per_s": round(models.reports_per_s),
        "models_alone_seconds": round(models.seconds, 2),
        "models_alone_findings": dict(sorted(models.findings.items())),
        "models_alone_findings_raw": models.findings_raw,
        "models_alone_state": models.sizes,
        "models_alone_rss_mib": {k: round(v / 2**20, 1) for k, v in models.rss.items()},
    }
    out = write_result("surveillance", "reports/s", round(e2e), GOAL_REPORTS_PER_S, yardsticks)

    alerts_text = ", ".join(f"{k} {v:,}" for k, v in alert_rows.items()) or "none"
    finding_text = ", ".join(f"{k} {v:,}" for k, v in sorted(models.findings.items())) or "none"
    rows = [
        (f"end to end: {reports:,} execution reports to the models", f"{e2e:,.0f} rep/s",
         f"goal >= {GOAL_REPORTS_PER_S:,}; {flow.seconds:,.1f} s; {late:,} too late"),
        (f"  order messages (35=8/D/F/G): {order_messages:,}",
         f"{order_messages / flow.seconds:,.0f} msg/s", "35=D/F/G reach no model"),
        ("  all messages (incl. market data)", f"{messages_in_file / flow.seconds:,.0f} msg/s",
         f"{messages_in_file:,} messages, {flow.summary['dead_letters']:,} dead letters"),
        ("  alerts (PostgreSQL alerts)", f"{sum(alert_rows.values()):,}", alerts_text),
        ("  RSS start (before the replay)", _mib(flow.rss.start), "after the models-off run"),
        ("  RSS at 25% of the run", _mib(flow.rss.at(0.25)), ""),
        ("  RSS peak", _mib(flow.rss.peak), f"{len(flow.rss.samples):,} samples"),
        ("  RSS end (last sample of the run)", _mib(flow.rss.end),
         f"{growth / 2**20:+,.1f} MiB since 25%"),
        ("  RSS at 10%, 20%, ... 100% of the run (MiB)", "",
         " ".join(str(v) for v in flow.rss.deciles_mib())),
        ("yardstick: same file, models off (flows=())", f"{bare_rate:,.0f} rep/s",
         f"the same {reports:,} reports over its {bare.seconds:,.1f} s, run first"),
        ("  RSS start / peak / end (models off)", _mib(bare.rss.peak),
         f"{_mib(bare.rss.start)} / {_mib(bare.rss.peak)} / {_mib(bare.rss.end)}"),
        ("end to end models on / off", f"{e2e / bare_rate:.2f}", ""),
        (f"models alone: {models.reports_seen:,} exec reports seen",
         f"{models.reports_per_s:,.0f} rep/s",
         f"route + models, {models.seconds:,.1f} s (decode {models.decode_seconds:,.1f} s "
         f"untimed)"),
        ("  findings (distinct keys)", f"{sum(models.findings.values()):,}",
         f"{finding_text}; {models.findings_raw:,} before dedup"),
    ]  # fmt: skip
    for stage in ("start", "middle", "end"):
        sizes = models.sizes[stage]
        rows.append(
            (f"  state at the {stage}", _mib(models.rss[stage]) if stage in models.rss else "",
             ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
        )  # fmt: skip
    print(f"surveillance: {path.name}, {minutes:g} simulated minutes, {accounts:,} accounts")
    for label, value, note in rows:
        print(f"  {label:<52} {value:>14}  {note}")
    speed = json.loads(out.read_text())["python_loop_mops"]
    print(f"  machine speed: {speed} M Python loop iterations/s (shared machines drift)")
    verdict = "meets" if e2e >= GOAL_REPORTS_PER_S else "MISSES"
    print(f"  end to end {verdict} the goal; results in {out}")
    return {"value": round(e2e), **yardsticks}
