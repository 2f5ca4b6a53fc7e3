"""Flows layer: the market-data flow. FIX W/X -> L1 book per symbol -> coalesced quotes -> Redis.

Steps (ids are recovery keys; renaming one orphans its state):
    shard_market_data  DecodedBatch -> (shard, [W/X events]); a shard holds many symbols, so
                       the engine sees a few items per chunk instead of one per message
    coalesce_quotes    stateful per shard: `QuoteCoalescer` (books + event-time coalescing)
    write_quotes       `RedisQuoteSink`: quote:{SYMBOL}, ohlc:{SYMBOL}:{day}, stream:quotes
    evaluate_price_alerts / write_price_alerts   traders' price alerts on each shard's
                       published quotes (`flows.price_alerts`)
Book integrity (issue 21, docs/book-integrity.md): each shard's coalescer keeps a `BookIntegrity`
fed by its W/X and `BookDamaged` events; quotes of a stale book carry the flag. The shard counts
into `FlowStats`, per batch, of the symbols it has books of (a damaged line may name a symbol
that does not trade): `book_stale.{reason}` (quotes turned stale), `book_stale_symbols` (each
symbol once per run), `books_stale` (net: stale now), `book_stale_ns.{symbol}` (event time spent
stale: when the book turns sound again, and at the end), `book_duplicates` (increments whose
RptSeq was not new), `crossed_quotes` / `crossed_quotes_unflagged` (published with bid > ask);
and calls `FlowContext.request_snapshot` with the symbols whose quotes just turned stale.
The previous close of a symbol the shard sees for the first time (when the venue sends none) is
read once from its latest earlier `ohlc:` key (`PrevCloseReader`), before its first quote goes out.
Keys: shard = `domain.sharding.symbol_shard(symbol)`; with several workers Bytewax routes each
shard to one worker, so one symbol always has one writer.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from domain.events import REFERENCE_TYPES, OrderList, SecurityStatus
from domain.quotes import NS_PER_MS, CoalescePolicy, Quote, QuoteCoalescer
from domain.sharding import SYMBOL_SHARDS, symbol_shard
from flows import price_alerts
from flows.context import FlowContext
from flows.operators import MD_TYPES, ORDER_TYPES, FlowBatch, Progress
from flows.stats import FlowStats
from sinks.redis import PrevCloseReader, RedisQuoteSink

QUOTE_SHARDS = SYMBOL_SHARDS
QUIET_FLUSH_S = 1.0


class ShardBatch(NamedTuple):
    """One symbol shard's part of a decoded batch.

    Attributes:
        events: the shard's W/X events and, when the sharder was made `with_orders`, its order
            events (35=8/D/F/G/E), in stream order.
        has_orders: order events are among them.
        seqs: each event's sequence number (`FlowBatch.seqs`).
        progress: the input partition's progress (`flows.operators.Progress`): every shard the
            partition carries gets a batch, empty or not, so the steps that merge shards by
            sequence number know how far each shard has got.
        shard: the shard's key.
    """

    events: list
    has_orders: bool
    seqs: list[int]
    progress: Progress | None
    shard: str = ""


def make_sharder(
    shards: int, stats: FlowStats, with_orders: bool, keys: Sequence[str] | None = None
):
    """Return the flat_map function grouping a batch's events by shard key: `(shard,
    ShardBatch)` items, so the audit trail can take the quote current at each order event
    from the same state. `keys`: each shard's key name (`FlowContext.placement`)."""
    shard_of: dict[str, str] = {}
    names = list(keys) if keys else [str(n) for n in range(shards)]

    def shard_events(batch: FlowBatch) -> list[tuple[str, ShardBatch]]:
        groups: dict[str, tuple[list, list[int]]] = {}
        with_order_events: set[str] = set()
        progress = batch.progress
        for event, seq in zip(batch.events, batch.seqs, strict=True):
            kind = type(event)
            if kind in MD_TYPES:
                is_order = False
            elif with_orders and (
                kind in ORDER_TYPES or kind is OrderList or kind in REFERENCE_TYPES
            ):
                is_order = True  # a reference change rides along for margin (issue 20)
                if kind in REFERENCE_TYPES and progress is not None:
                    # every Kafka partition has a copy: the account's own partition sends it
                    if symbol_shard(event.symbol) not in progress.shards:
                        continue
            else:
                continue
            symbol = event.symbol
            shard = shard_of.get(symbol)
            if shard is None:
                shard = shard_of[symbol] = names[symbol_shard(symbol) % shards]
            group = groups.get(shard)
            if group is None:
                groups[shard] = ([event], [seq])
            else:
                group[0].append(event)
                group[1].append(seq)
            if is_order:
                with_order_events.add(shard)
        out = [
            (shard, ShardBatch(events, shard in with_order_events, seqs, progress, shard))
            for shard, (events, seqs) in groups.items()
        ]
        if progress is not None and progress.ordered:
            out += [(names[n], ShardBatch([], False, [], progress, names[n]))
                    for n in progress.shards if names[n] not in groups]  # fmt: skip
        return out

    return shard_events


class QuoteShardLogic(op.StatefulBatchLogic[ShardBatch, tuple[str, list], bytes]):
    """One shard's books and coalescer as Bytewax state.

    Emits `("quotes", [Quote…])` and, for order events, `("audit", [record…])` where each record
    is `make_audit(event, quote current at the event's time)`.

    In live mode a wall-clock timer estimates event time (last event time plus wall time since)
    to publish held states when their interval ends on a quiet market, and withheld small moves
    after `QUIET_FLUSH_S` of silence. Replays publish held states by event time and at the end.
    """

    def __init__(
        self,
        policy: CoalescePolicy,
        resume: bytes | None,
        live: bool,
        stats: FlowStats,
        make_audit: Callable[[object, Quote | None], object] | None = None,
        recovery: bool = True,
        prev_closes: Callable[[list[tuple[str, int]]], dict[str, float]] | None = None,
        request_snapshot: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.recovery = recovery
        self.prev_closes = prev_closes
        self.request_snapshot = request_snapshot
        self.coalescer: QuoteCoalescer = (
            pickle.loads(resume) if resume is not None else QuoteCoalescer(policy)
        )
        self.live = live
        self.stats = stats
        self.make_audit = make_audit
        self._wall_ns = time.time_ns()
        self._symbols = len(self.coalescer.books)
        # What this run has counted of the integrity counters (a resumed state's earlier
        # counts are the earlier run's): the stats get the differences.
        integrity = self.coalescer.integrity
        self._duplicates = integrity.duplicates
        self._stale_ns = dict(integrity.stale_ns)
        self._stale_now = 0
        self._went_stale: set[str] = set()

    def _emit(
        self, quotes: list[Quote], audit: list | None = None
    ) -> tuple[list[tuple[str, list]], bool]:
        out: list[tuple[str, list]] = []
        if quotes:
            crossed = [
                q for q in quotes if q.bid is not None and q.ask is not None and q.bid > q.ask
            ]
            if crossed:
                # published with bid > ask: flagged stale (the book's state), or not (a bug)
                unflagged = sum(1 for q in crossed if q.stale is None)
                self.stats.add_many(
                    {"crossed_quotes": len(crossed), "crossed_quotes_unflagged": unflagged}
                )
            out.append(("quotes", quotes))
        if audit:
            out.append(("audit", audit))
        return out, self.RETAIN

    def on_batch(self, values: list[ShardBatch]) -> tuple[list[tuple[str, list]], bool]:
        if self.live:
            self._wall_ns = time.time_ns()
        coalescer = self.coalescer
        quotes: list[Quote] = []
        audit: list = []
        for events, has_orders, *_ in values:
            statuses = getattr(events, "statuses", None)
            if statuses:  # the venue's statuses among them (flows.stops.shard): the bands
                start = 0
                for position, status, *_ in statuses:
                    if type(status) is SecurityStatus and (
                        status.low_limit_px is not None or status.high_limit_px is not None
                    ):
                        self._apply(events[start:position], has_orders, quotes, audit)
                        start = position
                        quotes += coalescer.set_band(
                            status.symbol, status.low_limit_px, status.high_limit_px,
                            status.ts_event,
                        )  # fmt: skip
                events = events[start:]  # noqa: PLW2901
            self._apply(events, has_orders, quotes, audit)
        if len(coalescer.books) != self._symbols:
            self.stats.add("symbols", len(coalescer.books) - self._symbols)
            self._symbols = len(coalescer.books)
        if coalescer.new_symbols:
            self._fill_prev_closes(quotes)
        if coalescer.turned_stale:
            self._turned_stale(coalescer.take_turned_stale())
        self._count_integrity()
        return self._emit(quotes, audit)

    def _turned_stale(self, turned: list[tuple[str, str]]) -> None:
        """Count the quotes that turned stale, by reason, and the symbols (once each per run);
        ask for the symbols' snapshots (`FlowContext.request_snapshot`)."""
        counts: dict[str, int] = {}
        for _, reason in turned:
            counts["book_stale." + reason] = counts.get("book_stale." + reason, 0) + 1
        symbols = list(dict.fromkeys(symbol for symbol, _ in turned))
        new = [s for s in symbols if s not in self._went_stale]
        if new:
            self._went_stale.update(new)
            counts["book_stale_symbols"] = len(new)
        self.stats.add_many(counts)
        if self.request_snapshot is not None:
            self.request_snapshot(symbols)

    def _count_integrity(self, end_ns: int | None = None) -> None:
        """Add to the stats what the shard's `BookIntegrity` counted since the last call, of
        the symbols it has books of (a damaged line may name a symbol that does not trade);
        with `end_ns` (the end of the input), the spells still open count up to it."""
        coalescer = self.coalescer
        integrity, books = coalescer.integrity, coalescer.books
        counts: dict[str, int] = {}
        if integrity.duplicates != self._duplicates:
            counts["book_duplicates"] = integrity.duplicates - self._duplicates
            self._duplicates = integrity.duplicates
        spent = integrity.stale_ns
        if spent != self._stale_ns:  # a book made sound ended a spell
            for symbol, ns in spent.items():
                if ns != self._stale_ns.get(symbol, 0) and symbol in books:
                    counts["book_stale_ns." + symbol] = ns - self._stale_ns.get(symbol, 0)
            self._stale_ns = dict(spent)
        stale = [(s, st) for s, st in integrity.stale_symbols().items() if s in books]
        if end_ns is not None:
            for symbol, status in stale:
                key = "book_stale_ns." + symbol
                counts[key] = counts.get(key, 0) + max(0, end_ns - status.since_ns)
        if len(stale) != self._stale_now:
            counts["books_stale"] = len(stale) - self._stale_now
            self._stale_now = len(stale)
        if counts:
            self.stats.add_many(counts)

    def _apply(self, events: list, has_orders: bool, quotes: list[Quote], audit: list) -> None:
        coalescer, make_audit = self.coalescer, self.make_audit
        if not has_orders:
            quotes += coalescer.apply(events)
            return
        if make_audit is None:  # order events routed here for another flow (stops)
            quotes += coalescer.apply([e for e in events if type(e) in MD_TYPES])
            return
        # Market data up to each order event first, so its snapshot is the state then.
        run: list = []
        for event in events:
            if type(event) in MD_TYPES:
                run.append(event)
                continue
            if type(event) in REFERENCE_TYPES:
                continue  # for margin; not an order event to audit
            if run:
                quotes += coalescer.apply(run)
                run = []
            # A NewOrderList (35=E) is audited as the orders it places.
            for order in event.orders if type(event) is OrderList else (event,):
                snapshot = coalescer.quote_at(order.symbol, order.ts_event)
                audit.append(make_audit(order, snapshot))
        if run:
            quotes += coalescer.apply(run)

    def _fill_prev_closes(self, quotes: list[Quote]) -> None:
        """Previous closes of the symbols first seen in this batch, from Redis (once each)."""
        coalescer = self.coalescer
        wanted = [(s, d) for s, d in coalescer.take_new_symbols()
                  if coalescer.books[s].prev_close is None]  # fmt: skip
        if not wanted or self.prev_closes is None:
            return
        found = self.prev_closes(wanted)
        for symbol, day in wanted:
            price = found.get(symbol)
            if price is not None:
                coalescer.set_prev_close(symbol, day, price, quotes)

    def _estimated_event_ns(self) -> int:
        return self.coalescer.watermark + (time.time_ns() - self._wall_ns)

    def on_notify(self) -> tuple[list[tuple[str, list]], bool]:
        quotes = self.coalescer.flush_due(self._estimated_event_ns())
        if time.time_ns() - self._wall_ns >= QUIET_FLUSH_S * 1e9:
            quotes += self.coalescer.flush_withheld()
        return self._emit(quotes)

    def on_eof(self) -> tuple[list[tuple[str, list]], bool]:
        self._count_integrity(end_ns=self.coalescer.watermark)
        return self._emit(self.coalescer.flush_all())

    def notify_at(self) -> datetime | None:
        if not self.live:
            return None
        deadline = self.coalescer.next_deadline()
        if deadline is not None:
            wait_s = max(0.0, (deadline - self.coalescer.watermark) / 1e9)
        elif self.coalescer.has_withheld():
            wait_s = QUIET_FLUSH_S
        else:
            # Nothing held: no timer until the next batch. (A time in the past here, as the
            # quiet flush's once it was done, had Bytewax call on_notify without a pause: a
            # core busy on an idle market.)
            return None
        return datetime.fromtimestamp(self._wall_ns / 1e9, UTC) + timedelta(seconds=wait_s)

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None  # Bytewax asks at every epoch end; without recovery nobody reads it
        return pickle.dumps(self.coalescer, protocol=pickle.HIGHEST_PROTOCOL)


@dataclass(frozen=True)
class QuoteStreams:
    """What the market-data steps give the other flows."""

    quotes: Stream[list[Quote]]  # every published quote batch
    audit: Stream[list]  # audit records of order events, each with its market snapshot


def shard(decoded: Stream[FlowBatch], ctx: FlowContext, with_orders: bool) -> Stream:
    """Group each decoded batch's events by symbol shard: `(shard, ShardBatch)`.

    With `with_orders`, order events (35=8/D/F/G) go to the shard of their symbol too, behind
    the market data that preceded them (the audit snapshot and the stop engine need that).
    """
    keys = ctx.placement.symbol if ctx.placement is not None else None
    sharder = make_sharder(QUOTE_SHARDS, ctx.stats, with_orders, keys)
    return op.flat_map("shard_market_data", decoded, sharder)


def attach(
    shards: Stream,
    ctx: FlowContext,
    make_audit: Callable[[object, Quote | None], object] | None = None,
) -> QuoteStreams:
    """Add the market-data steps to the shards of `shard(decoded, ...)`.

    With `make_audit` (and shards made `with_orders`), order events come out as audit records
    carrying the quote current at their event time.
    """
    settings = ctx.settings
    policy = CoalescePolicy(
        interval_ns=settings.coalesce_ms * NS_PER_MS,
        min_move_bps=settings.coalesce_min_move_bps,
    )
    stats = ctx.stats
    prev_closes = PrevCloseReader(ctx.redis_url, ctx.retry)  # one connection for every shard
    tagged = op.stateful_batch(
        "coalesce_quotes",
        shards,
        lambda resume: QuoteShardLogic(
            policy,
            resume,
            ctx.live,
            stats,
            make_audit,
            ctx.recovery,
            prev_closes.read,
            ctx.request_snapshot,
        ),
    )
    # Traders' price alerts, per shard on the published quotes (flows.price_alerts).
    price_alerts.attach(op.filter_map("price_alert_quotes", tagged, _shard_quotes), ctx)
    split = op.branch("split_quotes_audit", op.key_rm("unkey_quotes", tagged), _is_quotes)
    quotes = op.map("quote_batches", split.trues, _payload)
    audit = op.map("audit_batches", split.falses, _payload)
    op.output(
        "write_quotes",
        quotes,
        RedisQuoteSink(ctx.redis_url, settings.redis_stream_maxlen, stats.add, ctx.retry),
    )
    return QuoteStreams(quotes, audit)


def _is_quotes(item: tuple[str, list]) -> bool:
    return item[0] == "quotes"


def _payload(item: tuple[str, list]) -> list:
    return item[1]


def _shard_quotes(item: tuple[str, tuple[str, list]]) -> tuple[str, list] | None:
    """`(shard, [Quote])` of a shard's published quotes; None for its audit records."""
    shard, (tag, payload) = item
    return (shard, payload) if tag == "quotes" else None
