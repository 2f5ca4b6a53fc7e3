"""The margin benchmark's engine-only part (`bench.margin` prints it beside the full flow).

Printed under "engine only" beside the full flow:
    engine only   `domain.margin_marks.MarkPublisher` (one publisher holding every symbol)
                  and `domain.margin_shard.MarginShard` (one per account shard) driven
                  directly, without Bytewax, decoding or sinks: the quotes into the
                  publisher, every mark it publishes into every shard, as the flow's steps
                  (`flows.margin.FeedLogic`, `AccountLogic`) pass them. `--margin-accounts`
                  accounts x `--margin-holdings` holdings over `--margin-symbols` symbols, then
                  random-walk quotes (35=X increments with a bid, an offer and a trade) fed as
                  fast as they go in batches of `--margin-batch` quotes, until
                  `--margin-quotes` quotes or `--margin-seconds` of wall time, whichever comes
                  first. Every figure of this part is labelled "engine only" and kept under
                  `engine_…` keys.
    yardstick     (of the engine part) the batch approach of the design: one full recomputation
                  of every account with `domain.margin.margin_figures` (the once-a-minute loop),
                  timed once, in accounts/s (not the stream's unit: no ratio is drawn).

The engine part's opening state (built in memory, no PostgreSQL): symbol popularity is
Zipf-like (exponent `ZIPF_S`), both for which symbols an account holds and for which symbol a
quote is for. Positions are long, 0.5..2.5 x the account's base value (with 20 holdings none is
above 21 % of its account: no CONCENTRATION alerts; the flow's default has no concentration
add-on rate). Cash makes the equity ratio uniform in 0.45..1.5 for most accounts;
`--margin-near` of them are built to breach: their excess over the 30 % maintenance
requirement is under `NEAR_EXCESS` of their gross value, so a small fall of one holding calls
them. Every account starts with marks for all its symbols (the flow's opening marks) and a
NORMAL monitor; every symbol has a published mark at a random moment of the last 250 ms of
event time (a warm, mid-session state: no cold-start burst where all 5,000 symbols publish at
once). The full flow's accounts are generated the same way (`account_specs`).

Event time: `QUOTE_GAP_NS` = 10 µs between quotes, i.e. 100,000 quotes per second of EVENT
time, the goal rate. A symbol's marks are coalesced to one per `margin_mark_ms` (250 ms) of
event time, so at that rate each symbol quoted 4+ times a second publishes 4 marks a second.
Every account shard gets every mark; when event time passes the end of a 250 ms window, each
shard screens all its accounts (sparse matrix-vector products) and evaluates exactly
only those whose verdict may have changed. For comparison the table prints what a per-holder
fan-out would ask for: sum over symbols of holders x min(4, quotes of it per second)
evaluations per second. At the end of the stream the end of the input is fed (the last
window is judged).

Latency (engine only): per MARGIN_CALL, wall time from the earliest quote batch that can hold
its breaching quote entering the publisher (perf_counter_ns before the batch goes in)
to its account shard's `MarginShard.marks` returning the alert: the earliest batch behind
the marks of the account's symbols applied in the alert's window, a held mark counting from
the first quote of its hold that moved the price (`BreachOrigins`). An upper bound on the
true latency: it counts the window's wait and the coalescing hold. This is service latency
with the input already waiting (wall time, so the bench's own quote generation between
batches counts too); a live feed arriving faster than the stream rate measured here would
queue in front of it and wait longer still. The goal (p99 < 1 s) is judged on all calls; the
p99 after the first event-time second is printed beside it as a subset, not as the goal.

Memory per account (engine only): growth of the process's resident set size
(/proc/self/statm) from before the state is built to after (gc collected), divided by the
accounts: the `MarginBook`s (the sparse holdings and their absolute values, float and Decimal
cash, the rates, the names), the monitors, and what the generator left in the allocator. The
flow additionally keeps the opening `OpeningAccount` dicts alive in its context; not counted
here.

Engine yardstick: the design's batch loop, `margin_figures` over every account (Decimal, per
account, from the book's exact holdings), timed once; next to it, one screen pass of every
shard (the float recomputation of every account the stream does per window), timed once.
"""

from __future__ import annotations

import gc
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.common import percentile, rss_bytes
from brokerflow.runner import tuned_gc
from domain.events import (
    MD_BID,
    MD_CHANGE,
    MD_NEW,
    MD_OFFER,
    MD_TRADE,
    MarketDataIncrement,
    MdEntry,
)
from domain.margin import margin_figures
from domain.margin_book import MarginBook
from domain.margin_marks import MarkPublisher, SymbolMark
from domain.margin_shard import SHARDS, AccountShard, MarginEffects, MarginShard, shard_of
from domain.quotes import NS_PER_MS, SymbolBook
from domain.watermarks import END_SEQ
from simulator.market import DEFAULT_START_NS, format_price, symbol_names

GOAL_QUOTES_PER_S = 100_000
GOAL_P99_S = 1.0
TARGET_ACCOUNTS = 1_000_000
SEED = 11
ZIPF_S = 0.8  # popularity of the k-th symbol ~ 1 / k**ZIPF_S
NEAR_EXCESS = 1e-4  # accounts built to breach: excess uniform in (0, NEAR_EXCESS x gross)
START_NS = DEFAULT_START_NS
QUOTE_GAP_NS = 10_000  # 100,000 quotes per second of event time
NS_PER_S = 1_000_000_000
STEP_SIGMA = 0.0005  # relative std of a symbol's price move per quote
WINDOWS = 10  # the stream is cut into this many windows; "sustained" is the slowest
INITIAL = Decimal("0.50")
MAINTENANCE = Decimal("0.30")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the accounts -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One generated account as plain values: holdings as (symbol index, quantity)."""

    account: str
    holdings: tuple[tuple[int, int], ...]
    cash_cents: int
    near: bool


def opening_ticks(symbols: int, gen: np.random.Generator) -> list[int]:
    """Log-uniform opening prices from 5 to 500, in cents."""
    prices = np.exp(gen.uniform(math.log(5.0), math.log(500.0), symbols))
    return [max(2, int(round(p * 100))) for p in prices]


def popularity(symbols: int) -> np.ndarray:
    """Zipf-like weights of the symbols (index 0 is the most popular), summing to 1."""
    w = 1.0 / np.arange(1, symbols + 1, dtype=float) ** ZIPF_S
    return w / w.sum()


def account_specs(
    accounts: int,
    holdings: int,
    ticks: list[int],
    near: float,
    gen: np.random.Generator,
    chunk: int = 50_000,
) -> Iterator[AccountSpec]:
    """Yield the accounts: `holdings` distinct symbols each (Zipf-like), long positions of
    0.5..2.5 x the account's base value, cash for an equity ratio uniform in 0.45..1.5, or, for
    a `near` share of them, an excess under `NEAR_EXCESS` of the gross value."""
    n_symbols = len(ticks)
    holdings = min(holdings, n_symbols)
    p = popularity(n_symbols)
    cum = np.cumsum(p).tolist()
    topup = random.Random(int(gen.integers(1 << 30)))
    for first in range(0, accounts, chunk):
        n = min(chunk, accounts - first)
        draws = gen.choice(n_symbols, size=(n, 2 * holdings), p=p).tolist()
        base = np.exp(gen.normal(math.log(2_500.0), 0.8, n)).tolist()
        sizes = np.clip(np.exp(gen.normal(0.0, 0.5, (n, holdings))), 0.5, 2.5).tolist()
        is_near = (gen.random(n) < near).tolist()
        share = gen.random(n).tolist()
        for i in range(n):
            chosen = list(dict.fromkeys(draws[i]))[:holdings]
            while len(chosen) < holdings:
                s = topup.choices(range(n_symbols), cum_weights=cum)[0]
                if s not in chosen:
                    chosen.append(s)
            positions = []
            gross = 0
            for s, size in zip(chosen, sizes[i], strict=False):
                qty = max(1, round(base[i] * size * 100 / ticks[s]))
                positions.append((s, qty))
                gross += qty * ticks[s]
            # excess = cash + 0.7 x gross (long only, maintenance 30 %): aim at `target` cents
            if is_near[i]:
                target = int(share[i] * NEAR_EXCESS * gross)
            else:
                target = int((0.15 + 1.05 * share[i]) * gross)
            cash = -(7 * gross) // 10 + target + 1  # excess in (target, target + 1] cents
            yield AccountSpec(f"M{first + i:07d}", tuple(positions), cash, is_near[i])


# -- the in-memory state ------------------------------------------------------------------------


@dataclass
class Book:
    names: list[str]
    ticks: list[int]  # the symbols' current prices (cents); the quote stream walks these
    feed: MarkPublisher
    account_shards: list[MarginShard]
    near: set[str]
    accounts: int
    holdings: int  # positions in all
    holders: list[int]  # per symbol index
    rss_bytes: int
    build_seconds: float


def build_book(
    settings: Any,
    accounts: int,
    holdings: int,
    symbols: int,
    near: float,
    say: Callable[[str], None] = _say,
) -> Book:
    """The publisher's and the `SHARDS` account shards' state, as the flow's steps build it
    from the opening accounts and marks (a `MarginBook` per account shard), plus each symbol's
    last published mark at a random moment of the last interval. `settings`: the margin rules
    (`brokerflow.settings.Settings`' `margin_*` values)."""
    gen = np.random.default_rng(SEED)
    names = symbol_names(symbols)
    ticks = opening_ticks(symbols, gen)
    marks = [Decimal(format_price(t)) for t in ticks]  # one object per symbol, as the flow
    account_shards = [MarginShard.configured(settings, _uncounted) for _ in range(SHARDS)]
    columns = [([], [], [0], [], []) for _ in range(SHARDS)]  # names, indices, indptr, data, cash
    holders = [0] * symbols
    near_accounts: set[str] = set()
    n_positions = 0

    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    with tuned_gc():
        for n, spec in enumerate(account_specs(accounts, holdings, ticks, near, gen), 1):
            shard = shard_of(spec.account)
            account_names, indices, indptr, data, cash = columns[shard]
            account_names.append(spec.account)
            for s, qty in sorted(spec.holdings):
                indices.append(s)
                data.append(float(qty))
                holders[s] += 1
            indptr.append(len(indices))
            cash.append(Decimal(spec.cash_cents).scaleb(-2))
            n_positions += len(spec.holdings)
            if spec.near:
                near_accounts.add(spec.account)
            if n % 200_000 == 0:
                say(f"state: {n:,} accounts built ({time.perf_counter() - t0:,.0f} s)")
        interval = settings.margin_mark_ms * NS_PER_MS
        publisher = MarkPublisher(interval)
        for s in range(symbols):
            at = START_NS - int(gen.integers(1, interval))
            px = ticks[s] / 100
            publisher.symbols[names[s]] = SymbolMark(SymbolBook(names[s]), px, at, px)
            publisher.throttle.sent(names[s], at)
        publisher.watermark = START_NS
        for n, (account_names, indices, indptr, data, cash) in enumerate(columns):
            q = sp.csr_matrix(
                (np.array(data), np.array(indices, np.int32), np.array(indptr, np.int64)),
                shape=(len(account_names), symbols),
            )
            k = len(account_names)
            book = MarginBook.from_columns(
                account_names, cash, [INITIAL] * k, [MAINTENANCE] * k, q, names
            )
            book.set_marks(dict(zip(names, marks, strict=True)))
            book.judged[:] = True  # every account starts marked, as `_load` finds it
            book.set_baseline()
            account_shards[n].state = AccountShard(
                book, ["owner"] * k, marks=dict(zip(names, marks, strict=True))
            )
        columns.clear()
    build_seconds = time.perf_counter() - t0
    gc.collect()
    return Book(
        names=names, ticks=ticks, feed=publisher, account_shards=account_shards,
        near=near_accounts, accounts=accounts, holdings=n_positions, holders=holders,
        rss_bytes=rss_bytes() - rss0, build_seconds=build_seconds,
    )  # fmt: skip


def fanout_demand(book: Book, quotes_per_s: float, mark_ms: int) -> float:
    """Account evaluations per second of event time the marks ask for at `quotes_per_s`."""
    per_s = 1000 / mark_ms
    p = popularity(len(book.names))
    return float(
        sum(h * min(per_s, quotes_per_s * w) for h, w in zip(book.holders, p, strict=True))
    )


# -- the yardstick: full recomputation ----------------------------------------------------------


@dataclass
class BatchResult:
    accounts: int
    seconds: float
    deficits: int

    @property
    def accounts_per_s(self) -> float:
        return self.accounts / self.seconds if self.seconds else 0.0


def batch_recompute(book: Book) -> BatchResult:
    """One pass of `margin_figures` over every account at its current marks (the design's
    once-a-minute loop); counts the accounts in deficit."""
    deficits = n = 0
    policy = book.account_shards[0].policy
    t0 = time.perf_counter()
    with tuned_gc():
        for shard in book.account_shards:
            state = shard.state
            b = state.book
            for i in range(len(b.names)):
                f = margin_figures(
                    b.cash[i], b.holdings(i), state.marks, b.initial[i], b.maintenance[i], policy
                )
                deficits += f.in_deficit
                n += 1
    return BatchResult(n, time.perf_counter() - t0, deficits)


def screen_pass(book: Book) -> float:
    """Seconds for one screen of every account shard (what each window costs)."""
    t0 = time.perf_counter()
    for shard in book.account_shards:
        shard.state.book.screen(shard.top_rate)
    return time.perf_counter() - t0


# -- the stream ---------------------------------------------------------------------------------


@dataclass
class StreamResult:
    quotes: int
    batches: int
    seconds: float  # busy wall time of the two steps
    window_rates: list[float]
    marks: int  # (account, symbol, mark) items fanned out
    evaluations: int  # account_margin rows: one per evaluated mark
    alerts: dict[str, int]
    called: set[str]
    latencies_ns: list[int] = field(default_factory=list)  # breaching quote in -> alert out
    processing_ns: list[int] = field(default_factory=list)  # publishing batch in -> alert out
    event_seconds: float = 0.0
    stopped_by: str = "quotes"
    untimed_calls: int = 0  # calls no mark of the window explains (none expected)
    settled_ns: list[int] = field(default_factory=list)  # calls after the first second

    @property
    def quotes_per_s(self) -> float:
        return self.quotes / self.seconds if self.seconds else 0.0

    @property
    def sustained_per_s(self) -> float:
        return min(self.window_rates) if self.window_rates else self.quotes_per_s

    @property
    def evaluations_per_s(self) -> float:
        return self.evaluations / self.seconds if self.seconds else 0.0

    def latency(self, q: float) -> int:
        return percentile(sorted(self.latencies_ns), q)

    def processing(self, q: float) -> int:
        return percentile(sorted(self.processing_ns), q)


def _uncounted(name: str, n: int) -> None:
    """The shards' counts: the flow's statistics; nobody reads them here."""


def _marks_only(published: list) -> list:
    """The marks among what the publisher published (not its stale-book notices)."""
    return [m for m in published if type(m) is tuple]


def _deliver(shard: MarginShard, published: list, effects: MarginEffects) -> None:
    """What the publisher published, in order, into one account shard."""
    start = 0
    for i, item in enumerate(published):
        if type(item) is not tuple:  # a stale-book notice among the marks
            if start < i:
                shard.marks(published, start, i, effects)
            shard.stale(item, effects)
            start = i + 1
    if start < len(published):
        shard.marks(published, start, len(published), effects)


def _quote_batch(
    book: Book, rng: random.Random, picks: list[int], first: int
) -> list[MarketDataIncrement]:
    """Quotes `first`.. : a random-walk step of the picked symbol each (bid, offer, trade)."""
    out = []
    ticks, names, gauss = book.ticks, book.names, rng.gauss
    for i, s in enumerate(picks, first):
        last = max(2, round(ticks[s] * (1.0 + gauss(0.0, STEP_SIGMA))))
        ticks[s] = last
        entries = (MdEntry(MD_BID, MD_CHANGE, (last - 1) / 100, 100.0),
                   MdEntry(MD_OFFER, MD_CHANGE, (last + 1) / 100, 100.0),
                   MdEntry(MD_TRADE, MD_NEW, last / 100, 100.0))  # fmt: skip
        out.append(MarketDataIncrement(names[s], START_NS + (i + 1) * QUOTE_GAP_NS, entries))
    return out


class BreachOrigins:
    """Per MARGIN_CALL, the earliest batch its breaching quote can have entered in.

    The account shards judge marks per window of event time; the bench replays the shards'
    window logic over the published marks (every shard gets every mark, and the bench sends no
    fills, so all shards cut the same windows). An account NORMAL at one window's end and called
    at the next was put in deficit by a mark of one of its symbols applied in between; a mark
    carries the quotes of its symbol since the previous published mark (a mark held back by
    coalescing counts from the first quote of its hold that moved the price). So the earliest
    batch behind the marks of the account's symbols in the alert's window bounds the breaching
    quote's entry from below, and the latency measured from it bounds the true one from above.
    """

    def __init__(self, window_ns: int) -> None:
        self.window_ns = window_ns
        self.hold: dict[str, int] = {}  # symbol -> batch of its first move not yet published
        self.published_px: dict[str, float] = {}  # the last published mark of each symbol
        self.window_end: int | None = None
        self.applied = 0
        self.open: dict[str, int] = {}  # symbol -> earliest batch behind its marks, this window
        self.closed: dict[int, dict[str, int]] = {}  # the window's last event time -> `open`

    def batch(self, qs: list[MarketDataIncrement], marks: list, b: int) -> None:
        """Quotes `qs` went in as batch `b` and the feed published `marks`."""
        last: dict[str, int] = {}
        published = self.published_px
        hold = self.hold
        for q in qs:
            if q.entries[-1].price != published.get(q.symbol):  # it moves the mark
                hold.setdefault(q.symbol, b)
                last[q.symbol] = q.ts_event
            else:  # back at the published mark: what moved it before goes out with nothing
                hold.pop(q.symbol, None)
                last.pop(q.symbol, None)
        self.published(marks, b, last)

    def published(self, marks: list, b: int, last: dict[str, int] | None = None) -> None:
        for symbol, _, ts, px in marks:
            self.published_px[symbol] = px
            if self.window_end is not None and ts >= self.window_end:
                self.end()
            origin = self.hold.pop(symbol, b)
            if last and last.get(symbol, 0) > ts:
                self.hold[symbol] = b  # a later quote of this batch is not behind this mark
            self.open[symbol] = min(self.open.get(symbol, origin), origin)
            self.applied = max(self.applied, ts)
            if self.window_end is None:
                self.window_end = (ts // self.window_ns + 1) * self.window_ns

    def end(self) -> None:
        if self.window_end is not None:
            self.closed[self.applied] = self.open
            self.open, self.window_end = {}, None

    def origin(self, event_time: int, symbols: Iterable[str]) -> int | None:
        window = self.closed.get(event_time, {})
        return min((window[s] for s in symbols if s in window), default=None)


def run_stream(
    book: Book,
    quotes: int,
    seconds: float,
    batch: int,
    say: Callable[[str], None] = _say,
) -> StreamResult:
    """Feed quotes batch by batch through the ordered step, then the account shards; at the
    end, the end of the input (the last window is judged)."""
    gen = np.random.default_rng(SEED + 1)
    rng = random.Random(SEED + 1)
    p = popularity(len(book.names))
    origins = BreachOrigins(book.account_shards[0].window_ns)
    origins.published_px = {s: m.published for s, m in book.feed.symbols.items()}
    batch_in: list[int] = []
    feed, account_shards = book.feed, book.account_shards
    clock = time.perf_counter_ns
    budget_ns = int(seconds * 1e9)
    busy = part_busy = 0
    part_n = 0
    part_size = max(batch, quotes // WINDOWS)
    part_ns = budget_ns // WINDOWS
    part_rates: list[float] = []
    fed = marks = evaluations = 0
    alerts: dict[str, int] = {}
    called: set[str] = set()
    latencies: list[int] = []
    processing: list[int] = []
    stopped_by = "quotes"
    next_say = time.monotonic() + 10
    picks_all: list[int] = []
    unexplained = 0
    settled: list[int] = []  # the calls after the first event-time second (start-up burst)

    def through_accounts(published: list, end_ns: int | None = None) -> list:
        """Every published mark into every account shard (as `AccountLogic` takes them);
        at the end of the input, the end of event time too."""
        done = []
        if not published and end_ns is None:
            return done  # nothing for the shards (the flow sends them nothing either)
        delivered = sum(1 for m in published if type(m) is tuple)
        for n, shard in enumerate(account_shards):
            effects = MarginEffects()
            _deliver(shard, published, effects)
            if end_ns is not None:
                shard.end(end_ns, effects)
            done.append((clock(), n, delivered, effects))
        return done

    def account(done: list, t_in: int) -> None:
        nonlocal marks, evaluations, unexplained
        for t_out, k, delivered, e in done:
            marks += delivered
            evaluations += len(e.rows)
            for alert in e.alerts:
                alerts[alert.kind] = alerts.get(alert.kind, 0) + 1
                if alert.kind != "MARGIN_CALL":
                    continue
                called.add(alert.account)
                shard = account_shards[k].state
                held = shard.book.holdings(shard.book.index[alert.account])
                origin = origins.origin(alert.event_time, held)
                if origin is None:
                    unexplained += 1  # no mark of its symbols in the window: not timed
                    continue
                latencies.append(t_out - batch_in[origin])
                if alert.event_time >= START_NS + NS_PER_S:
                    settled.append(t_out - batch_in[origin])
                processing.append(t_out - t_in)

    with tuned_gc():
        b = 0
        while fed < quotes:
            n = min(batch, quotes - fed)
            if len(picks_all) < n:
                picks_all = gen.choice(len(p), size=max(n, 50_000), p=p).tolist()
            picks, picks_all = picks_all[:n], picks_all[n:]
            qs = _quote_batch(book, rng, picks, fed)
            t_in = clock()
            batch_in.append(t_in)
            out: list = []
            feed.apply(qs, list(range(fed, fed + n)), out, [])
            published = [m for _, m in out]
            done = through_accounts(published)
            spent = clock() - t_in
            origins.batch(qs, _marks_only(published), b)
            account(done, t_in)
            busy += spent
            part_busy += spent
            part_n += n
            fed += n
            b += 1
            if part_n >= part_size or part_busy >= part_ns:
                part_rates.append(part_n / (part_busy / 1e9))
                part_busy = part_n = 0
            if time.monotonic() >= next_say:
                next_say = time.monotonic() + 10
                say(f"stream: {fed:,} quotes, {evaluations:,} evaluations, "
                    f"{alerts.get('MARGIN_CALL', 0):,} calls, {busy / 1e9:,.0f} s")  # fmt: skip
            if busy >= budget_ns and fed < quotes:
                stopped_by = "seconds"
                break
        t_in = clock()
        batch_in.append(t_in)
        out = []
        feed.flush(None, out, END_SEQ)  # the end: the held marks, then the last window
        published = [m for _, m in out]
        done = through_accounts(published, feed.watermark)
        busy += clock() - t_in
        origins.published(_marks_only(published), b)
        origins.end()
        account(done, t_in)
    if part_n and (not part_rates or part_n >= part_size // 2 or part_busy >= part_ns // 2):
        part_rates.append(part_n / (part_busy / 1e9))
    return StreamResult(
        quotes=fed, batches=len(batch_in), seconds=busy / 1e9, window_rates=part_rates,
        marks=marks, evaluations=evaluations, alerts=alerts, called=called,
        latencies_ns=latencies, processing_ns=processing, settled_ns=settled,
        event_seconds=fed * QUOTE_GAP_NS / 1e9, stopped_by=stopped_by,
        untimed_calls=unexplained,
    )  # fmt: skip


def _ms(ns: int) -> str:
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:,.2f} s"
    return f"{ns / 1e6:,.2f} ms" if ns >= 1_000_000 else f"{ns / 1e3:,.0f} µs"


def engine_figures(book: Book, stream: StreamResult, demand: float, mark_ms: int,
                   batch: int) -> dict:  # fmt: skip
    """The engine-only part's figures for the result, every key `engine_…`."""
    p50, p99 = stream.latency(50), stream.latency(99)
    settled99 = percentile(sorted(stream.settled_ns), 99) if stream.settled_ns else 0
    proc50, proc99 = stream.processing(50), stream.processing(99)
    demand_ratio = demand / stream.evaluations_per_s if stream.evaluations else float("inf")
    figures = {
        "accounts": book.accounts,
        "accounts_goal": TARGET_ACCOUNTS,
        "holdings_per_account": book.holdings // max(1, book.accounts),
        "positions": book.holdings,
        "symbols": len(book.names),
        "holders_per_symbol_mean": round(book.holdings / len(book.names)),
        "holders_per_symbol_max": max(book.holders),
        "accounts_built_to_breach": len(book.near),
        "event_time_quotes_per_s": round(1e9 / QUOTE_GAP_NS),
        "mark_interval_ms": mark_ms,
        "batch_quotes": batch,
        "stream_quotes": stream.quotes,
        "stream_stopped_by": stream.stopped_by,
        "stream_seconds": round(stream.seconds, 2),
        "stream_event_seconds": round(stream.event_seconds, 4),
        "quotes_per_s_overall": round(stream.quotes_per_s, 1),
        "quotes_per_s_sustained_min_window": round(stream.sustained_per_s, 1),
        "quotes_per_s_by_tenth": [round(r) for r in stream.window_rates],
        "marks_fanned_out": stream.marks,
        "evaluations": stream.evaluations,
        "evaluations_per_s": round(stream.evaluations_per_s),
        "fanout_demand_evaluations_per_event_s": round(demand),
        "fanout_demand_over_capacity": round(demand_ratio, 1),
        "alerts": stream.alerts,
        "margin_calls": stream.alerts.get("MARGIN_CALL", 0),
        "margin_calls_of_accounts_built_to_breach": len(stream.called & book.near),
        "accounts_called": len(stream.called),
        "accounts_called_not_built_to_breach": len(stream.called - book.near),
        "margin_call_latency_p50_ms": round(p50 / 1e6, 2),
        "margin_call_latency_p99_ms": round(p99 / 1e6, 2),
        "margin_call_latency_after_first_second_p99_ms": round(settled99 / 1e6, 2),
        "margin_call_latency_after_first_second_samples": len(stream.settled_ns),
        "margin_call_latency_goal_p99_ms": GOAL_P99_S * 1000,
        "margin_call_latency_samples": len(stream.latencies_ns),
        "margin_call_latency_untimed": stream.untimed_calls,
        "margin_call_processing_p50_ms": round(proc50 / 1e6, 2),
        "margin_call_processing_p99_ms": round(proc99 / 1e6, 2),
        "state_rss_bytes": book.rss_bytes,
        "state_bytes_per_account_rss": round(book.rss_bytes / max(1, book.accounts)),
        "state_build_seconds": round(book.build_seconds, 1),
    }
    return {f"engine_{k}": v for k, v in figures.items()}


def engine_rows(
    book: Book, stream: StreamResult, demand: float, full: BatchResult, screen_s: float
) -> list[tuple[str, str, str]]:
    """The engine-only part's lines of the table: (name, value, note)."""
    accounts = book.accounts
    e = engine_figures(book, stream, demand, 0, 0)
    calls = e["engine_margin_calls"]
    p50, p99 = stream.latency(50), stream.latency(99)
    settled99 = percentile(sorted(stream.settled_ns), 99) if stream.settled_ns else 0
    proc50, proc99 = stream.processing(50), stream.processing(99)
    return [
        (f"engine only: {stream.quotes:,} quotes, {accounts:,} accounts",
         f"{stream.quotes_per_s:,.1f} q/s", "no Bytewax, no decoding, no sinks"),
        ("  sustained (slowest of the stream's windows)", f"{stream.sustained_per_s:,.1f} q/s",
         f"goal >= {GOAL_QUOTES_PER_S:,}; {len(stream.window_rates)} windows; stopped by "
         f"--margin-{stream.stopped_by}"),
        ("  event time covered", f"{stream.event_seconds * 1000:,.1f} ms",
         f"at {1e9 / QUOTE_GAP_NS:,.0f} quotes per event-time second"),
        ("  exact account evaluations (screened candidates)",
         f"{stream.evaluations_per_s:,.0f} /s",
         f"{stream.evaluations:,} for {stream.marks:,} mark deliveries ({SHARDS} shards)"),
        ("  a per-holder fan-out would need", f"{demand:,.0f} /s",
         f"{e['engine_fanout_demand_over_capacity']:,.0f}x the evaluations the screen needed"),
        ("  margin calls raised (calls / cures)",
         f"{calls:,} / {stream.alerts.get('MARGIN_CALL_CURED', 0):,}",
         f"{e['engine_margin_calls_of_accounts_built_to_breach']:,} of the {len(book.near):,} "
         f"built to breach called, {e['engine_accounts_called_not_built_to_breach']:,} others"),
        ("  margin-call latency p50 (quote in -> alert out)", _ms(p50),
         f"{len(stream.latencies_ns):,} calls timed"),
        ("  margin-call latency p99, all calls", _ms(p99), f"goal < {GOAL_P99_S:g} s"),
        ("    p99 after the first event-time second",
         _ms(settled99) if stream.settled_ns else "no calls",
         f"{len(stream.settled_ns):,} calls, a subset: not the goal's figure"),
        ("  of which processing p50 (mark's batch in -> out)", _ms(proc50),
         "the rest is the coalescing hold, in slowed event time"),
        ("  processing p99", _ms(proc99), ""),
        ("  memory per account (RSS delta of the state)",
         f"{book.rss_bytes / max(1, accounts):,.0f} B",
         f"{book.rss_bytes / 2**20:,.0f} MiB; built in {book.build_seconds:,.0f} s"),
        ("  yardstick: full recomputation (margin_figures)", f"{full.accounts_per_s:,.0f} acct/s",
         f"{full.seconds:,.1f} s for {full.accounts:,}; {full.deficits:,} in deficit"),
        ("  the screen's float recomputation of every account",
         f"{accounts / screen_s if screen_s else 0:,.0f} acct/s",
         f"{screen_s * 1000:,.1f} ms per window for {accounts:,}"),
    ]  # fmt: skip
