"""Flows layer: the market-data flow. FIX W/X -> L1 book per symbol -> coalesced quotes -> Redis.

Steps (ids are recovery keys; renaming one orphans its state):
    shard_market_data  DecodedBatch -> (shard, [W/X events]); a shard holds many symbols, so
                       the engine sees a few items per chunk instead of one per message
    coalesce_quotes    stateful per shard: `QuoteCoalescer` (books + event-time coalescing)
    write_quotes       `RedisQuoteSink`: quote:{SYMBOL}, ohlc:{SYMBOL}:{day}, stream:quotes
Keys: shard = crc32(symbol) mod `quote_shards`; with several workers Bytewax routes each shard
to one worker, so one symbol always has one writer.
"""

from __future__ import annotations

import pickle
import time
import zlib
from datetime import UTC, datetime, timedelta

import bytewax.operators as op
from bytewax.dataflow import Stream

from brokerflow.metrics import FlowStats
from connectors.fix import DecodedBatch
from domain.quotes import NS_PER_MS, CoalescePolicy, Quote, QuoteCoalescer
from flows.context import FlowContext
from flows.operators import MD_TYPES
from sinks.redis import RedisQuoteSink

QUOTE_SHARDS = 16
QUIET_FLUSH_S = 1.0


def make_sharder(shards: int, stats: FlowStats):
    """Return the flat_map function grouping a batch's W/X events by shard key."""
    shard_of: dict[str, str] = {}

    def shard_market_data(batch: DecodedBatch) -> list[tuple[str, list]]:
        groups: dict[str, list] = {}
        for event in batch.events:
            if type(event) in MD_TYPES:
                symbol = event.symbol
                shard = shard_of.get(symbol)
                if shard is None:
                    shard = shard_of[symbol] = str(zlib.crc32(symbol.encode()) % shards)
                    stats.add("symbols")
                group = groups.get(shard)
                if group is None:
                    groups[shard] = [event]
                else:
                    group.append(event)
        return list(groups.items())

    return shard_market_data


class QuoteShardLogic(op.StatefulBatchLogic[list, list[Quote], bytes]):
    """One shard's books and coalescer as Bytewax state. Emits lists of quotes.

    In live mode a wall-clock timer estimates event time (last event time plus wall time since)
    to publish held states when their interval ends on a quiet market, and withheld small moves
    after `QUIET_FLUSH_S` of silence. Replays publish held states by event time and at the end.
    """

    def __init__(
        self, policy: CoalescePolicy, resume: bytes | None, live: bool, stats: FlowStats
    ) -> None:
        self.coalescer: QuoteCoalescer = (
            pickle.loads(resume) if resume is not None else QuoteCoalescer(policy)
        )
        self.live = live
        self.stats = stats
        self._wall_ns = time.time_ns()

    def _emit(self, quotes: list[Quote]) -> tuple[list[list[Quote]], bool]:
        if not quotes:
            return [], self.RETAIN
        crossed = sum(
            1 for q in quotes if q.bid is not None and q.ask is not None and q.bid > q.ask
        )
        if crossed:
            self.stats.add("crossed_quotes", crossed)
        return [quotes], self.RETAIN

    def on_batch(self, values: list[list]) -> tuple[list[list[Quote]], bool]:
        events = values[0] if len(values) == 1 else [e for v in values for e in v]
        if self.live:
            self._wall_ns = time.time_ns()
        return self._emit(self.coalescer.apply(events))

    def _estimated_event_ns(self) -> int:
        return self.coalescer.watermark + (time.time_ns() - self._wall_ns)

    def on_notify(self) -> tuple[list[list[Quote]], bool]:
        quotes = self.coalescer.flush_due(self._estimated_event_ns())
        if time.time_ns() - self._wall_ns >= QUIET_FLUSH_S * 1e9:
            quotes += self.coalescer.flush_withheld()
        return self._emit(quotes)

    def on_eof(self) -> tuple[list[list[Quote]], bool]:
        return self._emit(self.coalescer.flush_all())

    def notify_at(self) -> datetime | None:
        if not self.live:
            return None
        deadline = self.coalescer.next_deadline()
        if deadline is None:
            wait_s = QUIET_FLUSH_S
        else:
            wait_s = max(0.0, (deadline - self.coalescer.watermark) / 1e9)
        return datetime.fromtimestamp(self._wall_ns / 1e9, UTC) + timedelta(seconds=wait_s)

    def snapshot(self) -> bytes:
        return pickle.dumps(self.coalescer, protocol=pickle.HIGHEST_PROTOCOL)


def attach(decoded: Stream[DecodedBatch], ctx: FlowContext) -> None:
    """Add the market-data steps to a dataflow whose decoded FIX stream is `decoded`."""
    settings = ctx.settings
    policy = CoalescePolicy(
        interval_ns=settings.coalesce_ms * NS_PER_MS,
        min_move_bps=settings.coalesce_min_move_bps,
    )
    stats = ctx.stats
    shards = op.flat_map("shard_market_data", decoded, make_sharder(QUOTE_SHARDS, stats))
    quotes = op.stateful_batch(
        "coalesce_quotes",
        shards,
        lambda resume: QuoteShardLogic(policy, resume, ctx.live, stats),
    )
    op.output(
        "write_quotes",
        op.key_rm("unkey_quotes", quotes),
        RedisQuoteSink(ctx.redis_url, settings.redis_stream_maxlen, stats.add),
    )
