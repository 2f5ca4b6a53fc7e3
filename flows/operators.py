"""Flows layer: steps shared by every flow: decoding raw FIX chunks, sorting out dead letters.

The error type decides the outcome here, in one place: a line that fails to decode or parse
becomes a `DeadLetter` (the flow goes on); anything else raises and crashes the worker, and
Bytewax recovery replays from the last snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from connectors.fix import DecodedBatch, decode_lines
from connectors.raw import RawChunk
from domain.dead_letters import DeadLetter
from domain.events import (
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
    OrderRequest,
)
from flows.context import FlowContext
from sinks.alerts import AlertSink

MD_TYPES = (MarketDataSnapshot, MarketDataIncrement)
ORDER_TYPES = (ExecutionReport, OrderRequest)


def make_decoder(
    ctx: FlowContext, step_id: str = "decode_fix"
) -> Callable[[RawChunk], DecodedBatch]:
    """Return the map function of the decode step: chunk -> DecodedBatch, with counters."""
    stats = ctx.stats
    instruments = frozenset(ctx.settings.instruments) if ctx.settings.instruments else None

    def decode(chunk: RawChunk) -> DecodedBatch:
        batch = decode_lines(
            chunk.lines,
            chunk.source,
            chunk.first_line_no,
            step_id,
            ts_init=time.time_ns(),
            instruments=instruments,
        )
        stats.add_many(
            {
                "messages": batch.messages,
                "admin": batch.admin,
                "dead_letters": len(batch.dead_letters),
            }
        )
        return batch

    return decode


def alert_sink(ctx: FlowContext) -> AlertSink:
    """The sink every flow's alerts go to: PostgreSQL `alerts` and `stream:alerts`, counted."""
    return AlertSink(
        ctx.postgres_dsn, ctx.redis_url, ctx.settings.redis_stream_maxlen, ctx.stats.add,
        ctx.retry,
    )


def dead_letters_of(batch: DecodedBatch) -> Iterable[DeadLetter]:
    return batch.dead_letters
