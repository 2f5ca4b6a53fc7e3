"""Connectors layer: a simulated feed as a live Bytewax source, paced by the wall clock.

The feed's session starts "now", and each poll emits the messages whose event time has come,
so the flows see the same shape of traffic a FIX session would deliver. The feed itself is
given (a producer such as `simulator.MarketSimulator`): connectors are sources and never import
the simulator, which sits above them (its exchange speaks FIX through `connectors.fix`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.raw import RawChunk

MAX_CHUNK = 5_000
IDLE_POLL_S = 0.05


class _PacedPartition(StatefulSourcePartition[RawChunk, int]):
    def __init__(
        self,
        messages: Iterator[tuple[int, bytes]],
        skip: int,
        stop: threading.Event,
        until_ns: int | None,
    ) -> None:
        self._messages = messages
        self._emitted = 0
        for _ in range(skip):
            next(self._messages)
            self._emitted += 1
        self._stop = stop
        self._until_ns = until_ns
        self._held: tuple[int, bytes] | None = None
        self._next_awake: datetime | None = None

    def next_batch(self) -> list[RawChunk]:
        now = time.time_ns()
        if self._stop.is_set() or (self._until_ns is not None and now >= self._until_ns):
            raise StopIteration
        lines: list[bytes] = []
        first = self._emitted + 1
        held = self._held
        while len(lines) < MAX_CHUNK:
            if held is None:
                held = next(self._messages)
            if held[0] > now:
                break
            lines.append(held[1])
            held = None
        self._held = held
        self._emitted += len(lines)
        if held is not None and not lines:
            wait_s = min(IDLE_POLL_S, max(0.0, (held[0] - now) / 1e9))
            self._next_awake = datetime.now(UTC) + timedelta(seconds=wait_s)
        else:
            self._next_awake = None
        return [RawChunk("sim:market", first, lines)] if lines else []

    def next_awake(self) -> datetime | None:
        return self._next_awake

    def snapshot(self) -> int:
        return self._emitted


class PacedSimulatorSource(FixedPartitionedSource[RawChunk, int]):
    """A simulated feed in real time, from `start_ns` (default: now) until stopped.

    Args:
        feed: given the session's start (UTC nanoseconds), the feed's `(event time ns, message)`
            items in event-time order, the same for the same start (a resumed partition skips
            what it had emitted); e.g.
            ``lambda start: MarketSimulator(symbols, seed, start, rate).messages()``.
        stop: set it to end the stream (the flow then ends cleanly).
        seconds: stop by itself after this many seconds, if given.
        start_ns: the session's start (default: now).
    """

    def __init__(
        self,
        feed: Callable[[int], Iterator[tuple[int, bytes]]],
        stop: threading.Event,
        seconds: float | None = None,
        start_ns: int | None = None,
    ) -> None:
        self._feed = feed
        self._stop = stop
        self._start_ns = start_ns if start_ns is not None else time.time_ns()
        self._until_ns = None if seconds is None else self._start_ns + int(seconds * 1e9)

    def list_parts(self) -> list[str]:
        return ["sim:market"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _PacedPartition:
        messages = self._feed(self._start_ns)
        return _PacedPartition(messages, resume_state or 0, self._stop, self._until_ns)
