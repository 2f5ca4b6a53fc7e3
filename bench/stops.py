"""The stops benchmark: a quote stream through a book of resting stops, engine and end to end.

Printed in one run, next to each other:
    engine        `domain.stops.StopBook` alone (no dataflow): `--stops` resting stops
                  (plain stops, stop-limits, trailing stops by price and by bps; both sides;
                  most on last, some sells on bid and buys on ask) over `--symbols` symbols,
                  then `--quotes` random-walk quotes (bid, ask and last change on each) fed as
                  fast as they go. Reports quotes/s (overall, and the slowest window of
                  `WINDOW` quotes as "sustained"), the triggers fired, the trigger latency and
                  the memory per resting stop.
    end to end    `replay` with flows=("stops",) over a FIX file: the opening 35=W of every
                  symbol, `--flow-stops` resting stop orders (35=D 40=3/4/P), then
                  `--flow-quotes` 35=X messages from `MarketSimulator`; the stop_orders rows go
                  to a fresh PostgreSQL database and the children to a temporary --orders-out.
    yardstick     the same replay of the same file without the 35=D lines: the same stream
                  through the same steps (decode, shard, the stop step with its L1 books)
                  with no resting stops, so the difference is what the stops cost.

Latency:
    engine        per quote that fired at least one trigger, perf_counter_ns from before
                  `on_quote` to after the 35=D of every child it decided is encoded
                  (`new_order_single`, the flow's encoder): quote in -> child out, no I/O.
    end to end    wall time from the start of the decode of the chunk holding the triggering
                  quote to the moment the order-file writer encodes the child, which is after
                  the batch's stop_orders rows are committed to PostgreSQL (the sink writes the
                  state first). Measured by wrapping the decode function and the child encoder
                  the flow is built with; no flow code changes.

Memory per resting stop: growth of the process's resident set size (/proc/self/statm) from
before the orders are built to after they all rest, divided by the stops resting. It counts
everything a resting stop holds: its `StopOrder` and Decimals, its record, heap and dict
entries, and the ClOrdID and account strings.

Sizes: the engine part runs the issue's 1,000,000 stops by default; the end-to-end part
100,000 (`--flow-stops`), because the flow's intake grows faster than linearly with the book
on this kind of machine: the stop step's whole shard state is pickled (`snapshot`) at every
epoch end: 100,000 stops take ~8 s of intake, while a 1,000,000-stop file had written only
half its stop_orders rows after 10 minutes.

Quotes/s end to end counts 35=X messages (each one quote update of one symbol: a trade and/or a
bid/ask change) over the wall time from the decode of the first market-data chunk to the end
of the run; the 35=W and 35=D lines before it are timed separately as the intake.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import random
import sys
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import simplefix

import flows.pipeline
import flows.stops
from bench.common import DATA_DIR, percentile, rss_bytes, write_result
from bench.executions import fresh_database
from bench.ingest import BENCH_REDIS_DB
from brokerflow.commands.replay import replay
from brokerflow.runner import tuned_gc
from brokerflow.services import ensure_services
from brokerflow.settings import Settings
from connectors.fix.encode import OutboundOrder, new_order_single
from domain.stops import StopBook, StopOrder, Triggered
from simulator.market import DEFAULT_START_NS, MarketSimulator, format_price, symbol_names

GOAL_QUOTES_PER_S = 100_000
WINDOW = 100_000  # quotes per window of the "sustained" rate
SEED = 7
START_NS = DEFAULT_START_NS  # 14:30 UTC; Day orders expire at 21:00 UTC
QUOTE_GAP_NS = 10_000  # engine stream: 100,000 quotes per second of event time
STEP_SIGMA = 0.0005  # engine stream: relative std of a symbol's price move per quote
FLOW_RATE_PER_SYMBOL = 0.05  # flow stream: market events per symbol per simulated second


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _px(ticks: int) -> Decimal:
    return Decimal(format_price(ticks))


# -- the orders -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopSpec:
    """One generated stop, as plain values (both parts build their orders from these)."""

    cl_ord_id: str
    account: str
    symbol: str
    side: str  # "1" buy, "2" sell
    ord_type: str  # "3" stop, "4" stop-limit, "P" trailing stop
    stop_ticks: int  # stops and stop-limits
    limit_ticks: int  # stop-limits
    peg_offset: str  # trailing: price ("1.25") or bps ("150")
    peg_type: str  # trailing: "0" price, "1" bps
    reference: str | None  # engine only: "bid"/"ask" for some, else the default (last)


def stop_specs(
    count: int,
    symbols: list[str],
    last_ticks: list[int],
    rng: random.Random,
    min_distance: float,
    max_distance: float,
) -> Iterator[StopSpec]:
    """Yield `count` stops over `symbols` (round robin), each a random distance away.

    The mix: 55% stops (40=3), 30% stop-limits (40=4, limit 0.5% past the stop), 15% trailing
    stops (40=P, half a price offset, half bps); sides half and half; 15% of the stops and
    stop-limits reference the bid (sells) or the ask (buys). Distances are uniform in
    [`min_distance`, `max_distance`] of the symbol's price in `last_ticks`.
    """
    n_symbols = len(symbols)
    for i in range(count):
        s = i % n_symbols
        last = last_ticks[s]
        buy = rng.random() < 0.5
        distance = rng.uniform(min_distance, max_distance)
        r = rng.random()
        move = max(1, round(last * distance))
        stop = last + move if buy else max(1, last - move)
        ord_type, limit, peg_offset, peg_type, reference = "3", 0, "", "0", None
        if r < 0.85:
            if r >= 0.55:
                ord_type = "4"
                slip = max(1, round(stop * 0.005))
                limit = stop + slip if buy else max(1, stop - slip)
            if rng.random() < 0.15:
                reference = "ask" if buy else "bid"
        else:
            ord_type = "P"
            if rng.random() < 0.5:
                peg_offset = format_price(move)
            else:
                peg_type = "1"
                peg_offset = str(max(1, round(distance * 10_000)))
        yield StopSpec(
            cl_ord_id=f"S{i:07d}",
            account=f"ACC{i % 1000:04d}",
            symbol=symbols[s],
            side="1" if buy else "2",
            ord_type=ord_type,
            stop_ticks=stop,
            limit_ticks=limit,
            peg_offset=peg_offset,
            peg_type=peg_type,
            reference=reference,
        )


def stop_order(spec: StopSpec) -> StopOrder:
    """The domain order of a spec (fresh Decimals and strings, as a decoded 35=D has)."""
    trailing = spec.ord_type == "P"
    return StopOrder(
        cl_ord_id=spec.cl_ord_id,
        symbol=spec.symbol,
        side=spec.side,
        order_qty=Decimal("100"),
        ord_type=spec.ord_type,
        stop_px=None if trailing else _px(spec.stop_ticks),
        price=_px(spec.limit_ticks) if spec.ord_type == "4" else None,
        peg_offset_value=Decimal(spec.peg_offset) if trailing else None,
        peg_offset_type=spec.peg_type,
        reference=spec.reference,
        account=spec.account,
    )


# -- engine -----------------------------------------------------------------------------------


@dataclass
class EngineResult:
    stops: int
    symbols: int
    quotes: int
    accepted: int
    rejected: int
    build_seconds: int | float
    rss_bytes: int
    quote_seconds: float
    window_rates: list[float]
    triggers: int
    latencies_ns: list[int] = field(default_factory=list)  # one per quote that fired

    @property
    def bytes_per_stop(self) -> float:
        return self.rss_bytes / max(1, self.accepted)

    @property
    def quotes_per_s(self) -> float:
        return self.quotes / self.quote_seconds if self.quote_seconds else 0.0

    @property
    def sustained_per_s(self) -> float:
        return min(self.window_rates) if self.window_rates else self.quotes_per_s

    def latency(self, q: float) -> int:
        return percentile(sorted(self.latencies_ns), q)


def _opening_ticks(count: int, rng: random.Random) -> list[int]:
    # Log-uniform prices from 5 to 500, like the simulator's.
    low, high = math.log(5.0), math.log(500.0)
    return [round(math.exp(rng.uniform(low, high)) * 100) for _ in range(count)]


def _quote_chunk(
    rng: random.Random, symbols: list[str], ticks: list[int], first: int, count: int
) -> list[tuple[str, int, Decimal, Decimal, Decimal]]:
    """`count` quotes (symbol, ts_ns, bid, ask, last): a random walk of a random symbol each."""
    out = []
    n = len(symbols)
    gauss, randrange = rng.gauss, rng.randrange
    for i in range(first, first + count):
        s = randrange(n)
        last = max(2, round(ticks[s] * (1.0 + gauss(0.0, STEP_SIGMA))))
        ticks[s] = last
        spread = 1 + (last >= 10_000) + (last >= 30_000)
        out.append(
            (symbols[s], START_NS + 1 + i * QUOTE_GAP_NS, _px(last - 1), _px(last - 1 + spread),
             _px(last))
        )  # fmt: skip
    return out


def run_engine(
    stops: int = 1_000_000,
    symbols: int = 5_000,
    quotes: int = 1_000_000,
    say: Callable[[str], None] = _say,
    chunk: int = 10_000,
) -> EngineResult:
    """Build the book, measure its memory, then feed the quote stream; return the figures."""
    rng = random.Random(SEED)
    names = symbol_names(symbols)
    ticks = _opening_ticks(symbols, rng)
    book = StopBook()
    for name, t in zip(names, ticks, strict=True):
        book.on_quote(name, START_NS, bid=_px(t - 1), ask=_px(t), last=_px(t))

    say(f"engine: submitting {stops:,} stops over {symbols:,} symbols")
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    accepted = rejected = 0
    submit = book.submit
    with tuned_gc():
        for n, spec in enumerate(stop_specs(stops, names, ticks, rng, 0.005, 0.05), 1):
            outcome = submit(stop_order(spec), START_NS)[-1]
            if type(outcome).__name__ == "Accepted":
                accepted += 1
            else:
                rejected += 1
            if n % 250_000 == 0:
                say(f"engine: {n:,} stops submitted")
    build_seconds = time.perf_counter() - t0
    gc.collect()
    rss = rss_bytes() - rss0

    say(f"engine: {accepted:,} resting; feeding {quotes:,} quotes")
    latencies: list[int] = []
    window_rates: list[float] = []
    triggers = 0
    busy_ns = 0
    window_ns = window_n = 0
    seq = 0
    on_quote = book.on_quote
    clock = time.perf_counter_ns
    with tuned_gc():
        for first in range(0, quotes, chunk):
            batch = _quote_chunk(rng, names, ticks, first, min(chunk, quotes - first))
            c0 = clock()
            for symbol, ts, bid, ask, last in batch:
                q0 = clock()
                out = on_quote(symbol, ts, bid=bid, ask=ask, last=last)
                if out:
                    fired = 0
                    for o in out:
                        if type(o) is Triggered:
                            child = o.child
                            seq += 1
                            new_order_single(
                                OutboundOrder(child.cl_ord_id, child.account, child.symbol,
                                              child.side, child.order_qty, child.ord_type,
                                              child.price, o.ts_ns),
                                seq,
                            )  # fmt: skip
                            fired += 1
                    if fired:
                        latencies.append(clock() - q0)
                        triggers += fired
            spent = clock() - c0
            busy_ns += spent
            window_ns += spent
            window_n += len(batch)
            if window_n >= WINDOW:
                window_rates.append(window_n / (window_ns / 1e9))
                window_ns = window_n = 0
            done = first + len(batch)
            if done % 250_000 == 0:
                say(f"engine: {done:,} quotes, {triggers:,} triggers, {len(book):,} resting")
    return EngineResult(
        stops=stops, symbols=symbols, quotes=quotes, accepted=accepted, rejected=rejected,
        build_seconds=build_seconds, rss_bytes=rss, quote_seconds=busy_ns / 1e9,
        window_rates=window_rates, triggers=triggers, latencies_ns=latencies,
    )  # fmt: skip


# -- end to end -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowFiles:
    with_stops: Path  # 35=W per symbol, the 35=D stops, the 35=X stream
    without_stops: Path  # the same without the 35=D lines
    prefix_with: int  # lines before the first 35=X
    prefix_without: int
    market_messages: int  # 35=X lines


def _order_line(spec: StopSpec, seq: int, stamp: bytes) -> bytes:
    m = simplefix.FixMessage()
    m.append_pair(8, "FIX.4.4")
    m.append_pair(35, "D")
    m.append_pair(49, "CLIENT")
    m.append_pair(56, "BROKERFLOW")
    m.append_pair(34, seq)
    m.append_pair(52, stamp)
    m.append_pair(11, spec.cl_ord_id)
    m.append_pair(1, spec.account)
    m.append_pair(55, spec.symbol)
    m.append_pair(54, spec.side)
    m.append_pair(60, stamp)
    m.append_pair(38, 100)
    m.append_pair(40, spec.ord_type)
    if spec.ord_type == "P":
        m.append_pair(18, "a")
        m.append_pair(211, spec.peg_offset)
        m.append_pair(836, spec.peg_type)
    else:
        m.append_pair(99, format_price(spec.stop_ticks))
        if spec.ord_type == "4":
            m.append_pair(44, format_price(spec.limit_ticks))
    m.append_pair(59, "0")
    return m.encode() + b"\n"


def ensure_flow_files(
    stops: int,
    symbols: int,
    quotes: int,
    say: Callable[[str], None] = _say,
    data_dir: Path = DATA_DIR,
) -> FlowFiles:
    """Return the cached files of the end-to-end part, generating what is missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stem = f"stops-{symbols}-{quotes}"
    opening = data_dir / f"{stem}.open.fix"
    market = data_dir / f"{stem}.md.fix"
    without = data_dir / f"{stem}.nostops.fix"
    with_stops = data_dir / f"{stem}-{stops}.fix"
    if not (opening.exists() and market.exists()):
        say(f"generating {symbols:,} opening 35=W and {quotes:,} 35=X messages -> {market}")
        sim = MarketSimulator(symbols, seed=1, rate_per_symbol=FLOW_RATE_PER_SYMBOL)
        messages = sim.messages(limit=symbols + quotes)
        with open(opening.with_suffix(".tmp"), "wb") as fh:
            for _, (_, message) in zip(range(symbols), messages, strict=False):
                fh.write(message + b"\n")
        tmp = market.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            batch = []
            for n, (_, message) in enumerate(messages, 1):
                batch.append(message)
                if len(batch) == 10_000:
                    fh.write(b"\n".join(batch) + b"\n")
                    batch.clear()
                if n % 250_000 == 0:
                    say(f"  {n:,} market-data messages")
            if batch:
                fh.write(b"\n".join(batch) + b"\n")
        opening.with_suffix(".tmp").rename(opening)
        tmp.rename(market)
    if not without.exists():
        tmp = without.with_suffix(".tmp")
        tmp.write_bytes(opening.read_bytes() + market.read_bytes())
        tmp.rename(without)
    if not with_stops.exists():
        say(f"generating {stops:,} stop orders (35=D) -> {with_stops}")
        sim = MarketSimulator(symbols, seed=1, rate_per_symbol=FLOW_RATE_PER_SYMBOL)
        last_ticks = [sim.top_of_book(i)[4] for i in range(symbols)]  # the opening prints
        stamp = b"20261125-14:30:00.000"
        rng = random.Random(SEED)
        tmp = with_stops.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(opening.read_bytes())
            specs = stop_specs(stops, sim.symbols, last_ticks, rng, 0.0005, 0.02)
            for n, spec in enumerate(specs, 1):
                fh.write(_order_line(spec, n, stamp))
                if n % 250_000 == 0:
                    say(f"  {n:,} stop orders")
            with open(market, "rb") as md:
                while block := md.read(1 << 20):
                    fh.write(block)
        tmp.rename(with_stops)
    return FlowFiles(with_stops, without, symbols + stops, symbols, quotes)


@dataclass
class FlowRun:
    summary: dict
    seconds: float  # the whole replay
    market_seconds: float  # from the decode of the first 35=X chunk to the end
    latencies_ns: list[int]
    children: int

    @property
    def intake_seconds(self) -> float:
        return self.seconds - self.market_seconds


@contextlib.contextmanager
def _instrumented(prefix_lines: int) -> Iterator[dict]:
    """Wrap the flow's decode function and child encoder (module attributes the pipeline
    reads when it is built) to time market-data chunks and trigger latencies."""
    probe: dict = {"md_start": None, "chunk_ts": [], "chunk_wall": [], "latencies": []}
    make_decoder = flows.pipeline.make_decoder
    encode = flows.stops.encode_child_order
    clock = time.perf_counter_ns

    def make_timed_decoder(ctx, *args, **kwargs):  # noqa: ANN001, ANN202
        decode = make_decoder(ctx, *args, **kwargs)

        def timed(chunk):  # noqa: ANN001, ANN202
            wall = clock()
            batch = decode(chunk)
            if chunk.first_line_no + len(chunk.lines) - 1 > prefix_lines:
                if probe["md_start"] is None:
                    probe["md_start"] = wall
                stamps = [e.ts_event for e in batch.events if hasattr(e, "entries")]
                if stamps:
                    probe["chunk_ts"].append(max(stamps))
                    probe["chunk_wall"].append(wall)
            return batch

        return timed

    def timed_encode(order: OutboundOrder, seq: int) -> bytes:
        out = encode(order, seq)
        # The first chunk whose newest quote is at or after the trigger's event time holds the
        # triggering quote (or an earlier chunk does not: event times are non-decreasing).
        i = bisect_left(probe["chunk_ts"], order.ts_event)
        if i < len(probe["chunk_wall"]):
            probe["latencies"].append(clock() - probe["chunk_wall"][i])
        return out

    flows.pipeline.make_decoder = make_timed_decoder
    flows.stops.encode_child_order = timed_encode
    try:
        yield probe
    finally:
        flows.pipeline.make_decoder = make_decoder
        flows.stops.encode_child_order = encode


def run_flow(path: Path, prefix_lines: int, settings: Settings, orders_out: Path) -> FlowRun:
    """Replay `path` with flows=("stops",) into the settings' stores; time its phases."""
    with _instrumented(prefix_lines) as probe:
        t0 = time.perf_counter_ns()
        summary = replay([path], settings, progress=False, flows=("stops",), orders_out=orders_out)
        t1 = time.perf_counter_ns()
    md_start = probe["md_start"] or t1
    return FlowRun(
        summary=summary.as_dict(),
        seconds=(t1 - t0) / 1e9,
        market_seconds=(t1 - md_start) / 1e9,
        latencies_ns=probe["latencies"],
        children=summary.as_dict()["orders_out"],
    )


def _bench_settings(settings: Settings) -> Settings:
    endpoints = ensure_services(settings, {"redis", "postgres"})
    redis_url = urlunsplit(urlsplit(endpoints.redis_url)._replace(path=f"/{BENCH_REDIS_DB}"))
    return settings.model_copy(
        update={"redis_url": redis_url, "postgres_dsn": endpoints.postgres_dsn}
    )


def run_flows(
    settings: Settings,
    stops: int,
    symbols: int,
    quotes: int,
    say: Callable[[str], None] = _say,
    data_dir: Path = DATA_DIR,
) -> tuple[FlowFiles, FlowRun, FlowRun]:
    """Replay the file with stops, then without; return both runs (fresh database each)."""
    files = ensure_flow_files(stops, symbols, quotes, say, data_dir)
    base = _bench_settings(settings)
    runs = []
    for label, path, prefix in (
        ("with stops", files.with_stops, files.prefix_with),
        ("yardstick, no stops", files.without_stops, files.prefix_without),
    ):
        dsn = fresh_database(base.postgres_dsn)
        bench_settings = base.model_copy(update={"postgres_dsn": dsn})
        with redis.Redis.from_url(bench_settings.redis_url) as client:
            client.flushdb()  # the benchmark's own db: an empty stream:alerts for each run
        with tempfile.TemporaryDirectory(prefix="bench-stops-") as tmp:
            say(f"end to end ({label}): replaying {path.name}")
            runs.append(run_flow(path, prefix, bench_settings, Path(tmp) / "orders-out.fix"))
        if label == "with stops":
            with psycopg.connect(dsn) as conn:
                query = "SELECT status, count(*) FROM stop_orders GROUP BY status"
                counts = dict(conn.execute(query).fetchall())
            runs[-1].summary["stop_orders_rows"] = counts
    return files, runs[0], runs[1]


# -- the whole benchmark ----------------------------------------------------------------------


def _ms(ns: int) -> str:
    return f"{ns / 1e6:,.2f} ms" if ns >= 1_000_000 else f"{ns / 1e3:,.0f} µs"


def run(
    settings: Settings,
    stops: int = 1_000_000,
    symbols: int = 5_000,
    quotes: int = 1_000_000,
    flow_stops: int = 100_000,
    flow_quotes: int = 300_000,
    say: Callable[[str], None] = _say,
    data_dir: Path = DATA_DIR,
) -> dict:
    """Run both parts; print the table; write bench/results/stops.json; return the figures."""
    engine = run_engine(stops, symbols, quotes, say)
    gc.collect()
    flow = bare = files = None
    if flow_stops > 0 and flow_quotes > 0:
        files, flow, bare = run_flows(settings, flow_stops, symbols, flow_quotes, say, data_dir)

    yardsticks: dict = {
        "engine_stops_resting": engine.accepted,
        "engine_stops_rejected": engine.rejected,
        "engine_symbols": symbols,
        "engine_quotes": quotes,
        "engine_quotes_per_s_overall": round(engine.quotes_per_s),
        "engine_quotes_per_s_sustained_min_window": round(engine.sustained_per_s),
        "engine_window_quotes": WINDOW,
        "engine_triggers": engine.triggers,
        "engine_trigger_latency_p50_us": round(engine.latency(50) / 1e3, 1),
        "engine_trigger_latency_p99_us": round(engine.latency(99) / 1e3, 1),
        "engine_bytes_per_resting_stop_rss": round(engine.bytes_per_stop),
        "engine_submit_stops_per_s": round(engine.accepted / engine.build_seconds),
    }
    rows = [
        (f"engine: {quotes:,} quotes, {engine.accepted:,} stops resting",
         f"{engine.quotes_per_s:,.0f} q/s", f"goal >= {GOAL_QUOTES_PER_S:,}"),
        (f"  sustained (slowest {WINDOW:,}-quote window)", f"{engine.sustained_per_s:,.0f} q/s",
         f"goal >= {GOAL_QUOTES_PER_S:,}"),
        ("  triggers fired", f"{engine.triggers:,}",
         f"{engine.triggers / max(1, engine.accepted):.1%} of the resting stops"),
        ("  trigger latency p50 (quote in -> child 35=D)", _ms(engine.latency(50)),
         f"{len(engine.latencies_ns):,} firing quotes"),
        ("  trigger latency p99", _ms(engine.latency(99)), ""),
        ("  memory per resting stop (RSS delta)", f"{engine.bytes_per_stop:,.0f} B",
         f"{engine.rss_bytes / 2**20:,.0f} MiB for {engine.accepted:,}"),
        ("  stop intake (submit)", f"{engine.accepted / engine.build_seconds:,.0f} stops/s", ""),
    ]  # fmt: skip
    if flow is not None and bare is not None and files is not None:
        e2e = files.market_messages / flow.market_seconds
        bare_rate = files.market_messages / bare.market_seconds
        lat = sorted(flow.latencies_ns)
        stops_summary = flow.summary["stops"]
        yardsticks.update({
            "flow_stops_submitted": flow_stops,
            "flow_stops_accepted": stops_summary.get("accepted", 0),
            "flow_market_messages": files.market_messages,
            "flow_quotes_per_s": round(e2e),
            "flow_no_stops_quotes_per_s": round(bare_rate),
            "flow_with_over_without_stops": round(e2e / bare_rate, 3),
            "flow_triggers": stops_summary.get("triggered", 0),
            "flow_children_out": flow.children,
            "flow_trigger_latency_p50_ms": round(percentile(lat, 50) / 1e6, 2),
            "flow_trigger_latency_p99_ms": round(percentile(lat, 99) / 1e6, 2),
            "flow_intake_seconds": round(flow.intake_seconds, 2),
            "flow_intake_stops_per_s": round(flow_stops / max(1e-9, flow.intake_seconds)),
            "flow_market_seconds": round(flow.market_seconds, 2),
            "flow_dead_letters": flow.summary["dead_letters"],
            "flow_stop_orders_rows": flow.summary.get("stop_orders_rows", {}),
        })  # fmt: skip
        accepted = stops_summary.get("accepted", 0)
        rows += [
            (f"end to end: {files.market_messages:,} 35=X, {accepted:,} stops",
             f"{e2e:,.0f} q/s", f"goal >= {GOAL_QUOTES_PER_S:,}"),
            ("  triggers fired / children written", f"{stops_summary.get('triggered', 0):,}",
             f"{flow.children:,} children to --orders-out"),
            ("  trigger latency p50 (chunk decode -> child)", _ms(percentile(lat, 50)),
             f"{len(lat):,} children timed"),
            ("  trigger latency p99", _ms(percentile(lat, 99)), ""),
            ("  stop intake (35=D -> book + stop_orders)",
             f"{flow_stops / max(1e-9, flow.intake_seconds):,.0f} stops/s",
             f"{flow.intake_seconds:,.1f} s"),
            ("yardstick: same stream, no stops", f"{bare_rate:,.0f} q/s",
             "replay flows=stops, no 35=D"),
            ("end to end with stops / without", f"{e2e / bare_rate:.2f}", ""),
        ]  # fmt: skip
    out = write_result(
        "stops", "quotes/s", round(engine.sustained_per_s), GOAL_QUOTES_PER_S, yardsticks
    )
    head = f"stops: {engine.accepted:,} resting stops over {symbols:,} symbols, {quotes:,} quotes"
    if flow is not None:
        head += f"; end to end {flow_stops:,} stops, {flow_quotes:,} 35=X"
    print(head)
    for name, value, note in rows:
        print(f"  {name:<52} {value:>16}  {note}")
    speed = json.loads(out.read_text())["python_loop_mops"]
    print(f"  machine speed: {speed} M Python loop iterations/s (shared machines drift)")
    verdict = "meets" if engine.sustained_per_s >= GOAL_QUOTES_PER_S else "MISSES"
    line = f"  engine {verdict} the goal"
    if flow is not None and files is not None:
        e2e_ok = files.market_messages / flow.market_seconds >= GOAL_QUOTES_PER_S
        line += f"; end to end {'meets' if e2e_ok else 'MISSES'} it"
    print(f"{line}; results in {out}")
    return {"value": round(engine.sustained_per_s), **yardsticks}
