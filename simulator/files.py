"""Simulator layer: writing a simulated session to a file, and the summary of what was written.

One writer for every simulator (market data, order flow, market status), so the files all have
the same shape: one message a line, ``\n``-terminated, written in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """What a simulation run emitted.

    Attributes:
        messages: messages written.
        by_type: messages per MsgType (35), e.g. ``{"W": 100, "X": 999900}``.
        symbols: symbols simulated.
        trades: trade entries (269=2) in 35=X messages (the opening prints in 35=W excluded).
        first_event_ns: event time of the first message, UTC nanoseconds (0 if none).
        last_event_ns: event time of the last message, UTC nanoseconds (0 if none).
        bytes_written: bytes written, newlines included (0 when nothing was written).
    """

    messages: int
    by_type: dict[str, int]
    symbols: int
    trades: int
    first_event_ns: int
    last_event_ns: int
    bytes_written: int = 0


def write_lines(
    path: str | Path,
    messages: Iterator[tuple[int, bytes]],
    progress: Callable[[int, int], None] | None = None,
    progress_every: int = 100_000,
    stop: Callable[[], bool] | None = None,
) -> tuple[int, int, dict[str, int], int, int]:
    """Write `(event time ns, message)` items one a line (``\\n``-terminated), in batches.

    Args:
        path: the output file (overwritten).
        messages: the messages, in event-time order.
        progress: called as ``progress(messages_written, event_time_ns)`` every
            ``progress_every`` messages.
        progress_every: see ``progress``.
        stop: asked after each message; True ends the file there.

    Returns:
        (messages written, bytes written, messages per MsgType, first and last event time).
    """
    by_type: dict[str, int] = {}
    first_ns = last_ns = written = size = 0
    batch: list[bytes] = []
    with open(path, "wb") as out:
        for ts_ns, message in messages:
            if not written:
                first_ns = ts_ns
            last_ns = ts_ns
            batch.append(message)
            written += 1
            start = message.index(b"\x0135=") + 4
            key = message[start : message.index(b"\x01", start)].decode()
            by_type[key] = by_type.get(key, 0) + 1
            if len(batch) == 10_000:
                size += out.write(b"\n".join(batch) + b"\n")
                batch.clear()
            if progress is not None and written % progress_every == 0:
                progress(written, ts_ns)
            if stop is not None and stop():
                break
        if batch:
            size += out.write(b"\n".join(batch) + b"\n")
    return written, size, dict(sorted(by_type.items())), first_ns, last_ns
