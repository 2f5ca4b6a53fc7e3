"""Flows layer: steps shared by every flow: decoding raw FIX chunks, sorting out dead letters.

The error type decides the outcome here, in one place: a line that fails to decode or parse
becomes a `DeadLetter` (the flow goes on); anything else raises and crashes the worker, and
Bytewax recovery replays from the last snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from connectors.fix.codec import DecodedBatch, decode_lines
from connectors.raw import RawChunk
from domain.dead_letters import DeadLetter
from domain.events import MarketDataIncrement, MarketDataSnapshot
from flows.context import FlowContext

MD_TYPES = (MarketDataSnapshot, MarketDataIncrement)


def make_decoder(
    ctx: FlowContext, step_id: str = "decode_fix"
) -> Callable[[RawChunk], DecodedBatch]:
    """Return the map function of the decode step: chunk -> DecodedBatch, with counters."""
    stats = ctx.stats
    instruments = frozenset(ctx.settings.instruments) if ctx.settings.instruments else None

    def decode(chunk: RawChunk) -> DecodedBatch:
        batch = decode_lines(chunk.lines, chunk.source, chunk.first_line_no, step_id)
        if instruments is not None:
            _drop_unknown_instruments(batch, instruments, chunk.source, step_id)
        stats.add_many(
            {
                "messages": batch.messages,
                "admin": batch.admin,
                "dead_letters": len(batch.dead_letters),
            }
        )
        return batch

    return decode


def _drop_unknown_instruments(
    batch: DecodedBatch, instruments: frozenset[str], source: str, step_id: str
) -> None:
    kept = []
    now = time.time_ns()
    for event in batch.events:
        symbol = getattr(event, "symbol", None)
        if symbol is None or symbol in instruments:
            kept.append(event)
        else:
            batch.dead_letters.append(
                DeadLetter(
                    source=source,
                    reason=f"Symbol(55) {symbol!r} is not in the configured instrument list",
                    raw=b"",
                    step_id=step_id,
                    error="FieldError",
                    tag=55,
                    ts_init=now,
                )
            )
    batch.events[:] = kept


def dead_letters_of(batch: DecodedBatch) -> Iterable[DeadLetter]:
    return batch.dead_letters
