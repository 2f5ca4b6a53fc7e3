"""Connectors layer: the unit every source emits, so flows do not care where FIX came from.

A file, a FIX session or a Kafka partition all yield `RawChunk`s: a few hundred to a few thousand
raw lines (one FIX message each) with where they came from. Carrying chunks instead of single
messages keeps the engine's per-item cost (~2 µs per item per step) off the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawChunk:
    """Raw FIX lines from one source partition, in arrival order.

    Attributes:
        source: names the partition for dead letters ("file:/path/day.fix").
        first_line_no: 1-based position of `lines[0]` in the partition (line or message number).
        lines: the raw lines, with or without their newline; may hold blank or comment lines.
        damaged: events the source itself adds, each before the line at its index: a live
            FIX session's `BookDamaged` for messages it lost (`connectors.fix.live`).
    """

    source: str
    first_line_no: int
    lines: list[bytes]
    damaged: tuple = ()
