"""Domain layer: merge ordered inputs by sequence number, driven by watermarks (pure, no I/O).

A step that combines keys (an account's fills among the marks of all its symbols; an account's
orders across symbols) is fed by several inputs, each in its own order: the symbol shards of a
Kafka run, each read from one partition. Every item carries the sequence number of the message
it came from (the gateway's `bf-seq`, or the line number in a replay), and every input says how
far it has got: its watermark, the highest number it has passed. `WatermarkMerge` releases the
items every input has passed, in sequence order, so the step sees the same order however the
inputs were spread over workers and processes and however fast each one ran: the order a
replay of the same file gives, by construction.

As in Flink and Kafka Streams, an input that has ended (`done`) or gone idle (`idle`: nothing
for longer than the idle timeout, reported by the source) no longer holds the others back.
An idle input that speaks again takes part again; an item it brings that the merge has
already released past is late: it is released at once, out of order, and counted.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

Item = tuple[int, Any]  # (sequence number, payload)
END_SEQ = 1 << 62
"""The sequence number of what an input flushes when the whole input has ended: after every
real number, in every run (equal ones go in the order of their inputs' names)."""


@dataclass(slots=True)
class _Input:
    items: list[Item] = field(default_factory=list)  # held, in sequence order
    watermark: int = 0
    done: bool = False
    idle: bool = False


class WatermarkMerge:
    """Items of many inputs, each in sequence order, released in one sequence order.

    Args:
        inputs: how many inputs feed the merge. Nothing is released before every one of them
            was heard from (or the merge is flushed at the end of the input).

    Attributes:
        released: the highest sequence number released so far.
        late: items that came after the merge had released past them (from an input that had
            been idle), released out of order.
    """

    __slots__ = ("_inputs", "_expected", "released", "late")

    def __init__(self, inputs: int) -> None:
        self._inputs: dict[Hashable, _Input] = {}
        self._expected = inputs
        self.released = 0
        self.late = 0

    @property
    def held(self) -> int:
        """Items waiting for a slower input."""
        return sum(len(i.items) for i in self._inputs.values())

    def add(
        self,
        source: Hashable,
        items: list[Item],
        watermark: int,
        done: bool = False,
        idle: bool = False,
    ) -> list[Item]:
        """Take what `source` brings and how far it got; return what can now be released.

        `items` are in increasing sequence order, all at most `watermark`. `idle` says the
        source has had nothing for longer than the idle timeout; any later call without it
        (items or not) makes it take part again.
        """
        state = self._inputs.get(source)
        if state is None:
            # Kept in the order of the inputs' names: equal sequence numbers of different
            # inputs (what each flushes at its end) go in that order, not in arrival order.
            state = _Input()
            inputs = {**self._inputs, source: state}
            self._inputs = dict(sorted(inputs.items(), key=lambda kv: str(kv[0])))
        out: list[Item] = []
        if items:
            if items[0][0] <= self.released:  # only after idleness: released past already
                cut = bisect_right(items, self.released, key=_seq)
                self.late += cut
                out += items[:cut]
                items = items[cut:]
            state.items += items
        if watermark > state.watermark:
            state.watermark = watermark
        state.done = state.done or done
        state.idle = idle
        self._release(out)
        return out

    def _release(self, out: list[Item]) -> None:
        inputs = self._inputs
        if len(inputs) < self._expected:
            return
        bound: int | None = None
        for state in inputs.values():
            if not (state.done or state.idle) and (bound is None or state.watermark < bound):
                bound = state.watermark
        if bound is None:  # every input ended or is idle: all they brought can go
            bound = max((s.items[-1][0] for s in inputs.values() if s.items), default=0)
        if bound <= self.released:
            return
        ready: list[Item] = []
        for state in self._inputs.values():
            held = state.items
            if held and held[0][0] <= bound:
                cut = bisect_right(held, bound, key=_seq)
                ready += held[:cut]
                del held[:cut]
        ready.sort(key=_seq)  # stable: equal numbers go in the order of their inputs' names
        out += ready
        self.released = bound


    def flush(self) -> list[Item]:
        """The end of the input: everything held, in sequence order."""
        ready: list[Item] = []
        for state in self._inputs.values():
            ready += state.items
            state.items = []
            state.done = True
        ready.sort(key=_seq)
        if ready:
            self.released = max(self.released, ready[-1][0])
        return ready


def _seq(item: Item) -> int:
    return item[0]
