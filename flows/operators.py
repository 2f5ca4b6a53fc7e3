"""Flows layer: steps shared by every flow: decoding raw FIX chunks, sorting out dead letters.

The error type decides the outcome here, in one place: a line that fails to decode or parse
becomes a `DeadLetter` (the flow goes on); anything else raises and crashes the worker, and
Bytewax recovery replays from the last snapshot.
"""

from __future__ import annotations

import logging
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
DEAD_LETTER_BURST = 100
"""Dead letters from one chunk that make a `dead_letter_burst` log line (one per chunk)."""

log = logging.getLogger("brokerflow.flows")


def make_decoder(
    ctx: FlowContext, step_id: str = "decode_fix"
) -> Callable[[RawChunk], DecodedBatch]:
    """Return the map function of the decode step: chunk -> DecodedBatch, with counters."""
    stats = ctx.stats
    instruments = frozenset(ctx.settings.instruments) if ctx.settings.instruments else None

    source_kinds: dict[str, str] = {}

    def decode(chunk: RawChunk) -> DecodedBatch:
        batch = decode_lines(
            chunk.lines,
            chunk.source,
            chunk.first_line_no,
            step_id,
            ts_init=time.time_ns(),
            instruments=instruments,
        )
        kind = source_kinds.get(chunk.source)
        if kind is None:  # "file:/x.fix" -> "file": a bounded label for the metrics
            kind = source_kinds[chunk.source] = chunk.source.partition(":")[0] or "unknown"
        counts = {
            "messages": batch.messages,
            "messages_in." + kind: batch.messages,
            "admin": batch.admin,
            "dead_letters": len(batch.dead_letters),
        }
        for letter in batch.dead_letters:  # by error class (DecodeError, FieldError)
            key = "dead_letters_by." + letter.error
            counts[key] = counts.get(key, 0) + 1
        stats.add_many(counts)
        if len(batch.dead_letters) >= DEAD_LETTER_BURST:
            reasons = {k[16:]: v for k, v in counts.items() if k.startswith("dead_letters_by.")}
            log.warning(
                "dead_letter_burst",
                extra={"fields": {"source": chunk.source, "first_line": chunk.first_line_no,
                                  "messages": batch.messages,
                                  "dead_letters": len(batch.dead_letters), "by_error": reasons}},
            )  # fmt: skip
        return batch

    return decode


def alert_sink(ctx: FlowContext) -> AlertSink:
    """The sink every flow's alerts go to: PostgreSQL `alerts` and `stream:alerts`, counted."""
    return AlertSink(
        ctx.postgres_dsn, ctx.redis_url, ctx.settings.redis_stream_maxlen, ctx.stats.add,
        ctx.retry, recovery=ctx.recovery,
    )


def dead_letters_of(batch: DecodedBatch) -> Iterable[DeadLetter]:
    return batch.dead_letters
