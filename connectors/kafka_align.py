"""Connectors layer: put the Kafka partitions back into the gateway's order (pure, no I/O).

The gateway numbers every message it publishes 1, 2, 3, … (`bf-seq`), whatever its topic. One
partition delivers its messages in increasing order, but partitions are read independently, so
market data and order events arrive interleaved differently on every run. `SequenceAligner`
buffers what arrives early and releases runs of consecutive sequence numbers as `RawChunk`s, so
the flows see exactly the gateway's input order: the order a replay of the same file sees.

A number is given up as lost (counted in `gaps`, never silently) once every partition has
delivered a later one or ended: a partition's numbers only grow, so it can no longer come
(retention deleted it, or the gateway failed before it was delivered).
"""

from __future__ import annotations

from connectors.kafka import SequencedChunk
from connectors.raw import RawChunk

ALIGNED_SOURCE = "kafka:fix"
"""The source name of aligned chunks; a dead letter says `kafka:fix:{bf-seq}`."""


class SequenceAligner:
    """Merge sequenced chunks of many partitions into chunks in sequence order.

    Attributes:
        next_seq: the next sequence number to release.
        gaps: sequence numbers given up as lost.
        duplicates: messages dropped because their number was already released (a redelivery).
    """

    __slots__ = ("next_seq", "gaps", "duplicates", "_pending", "_high", "_done", "_parts", "_size")

    def __init__(self, chunk_lines: int = 2_000) -> None:
        self.next_seq = 1
        self.gaps = 0
        self.duplicates = 0
        self._pending: dict[int, bytes] = {}
        self._high: dict[str, int] = {}  # partition -> highest number it delivered
        self._done: set[str] = set()
        self._parts = 0
        self._size = chunk_lines

    @property
    def pending(self) -> int:
        """Messages held, waiting for an earlier number."""
        return len(self._pending)

    def add(self, chunk: SequencedChunk) -> list[RawChunk]:
        """Take one partition's chunk; return what can now be released, in sequence order."""
        out: list[RawChunk] = [
            # Not from our gateway (no bf-seq): used, in arrival order, without the guarantee.
            RawChunk(f"kafka:{chunk.partition}", offset, [value + b"\n"])
            for offset, value in chunk.offset_errors
        ]
        self._parts = max(self._parts, chunk.partitions)
        seqs = chunk.seqs
        if seqs:
            if seqs[0] < self.next_seq:
                fresh = [(s, line) for s, line in zip(seqs, chunk.lines, strict=True)
                         if s >= self.next_seq]  # fmt: skip
                self.duplicates += len(seqs) - len(fresh)
                self._pending.update(fresh)
            else:
                self._pending.update(zip(seqs, chunk.lines, strict=True))
            if seqs[-1] > self._high.get(chunk.partition, 0):
                self._high[chunk.partition] = seqs[-1]
        else:
            self._high.setdefault(chunk.partition, 0)
        if chunk.done:
            self._done.add(chunk.partition)
        self._release(out)
        return out

    def _release(self, out: list[RawChunk]) -> None:
        pending = self._pending
        while True:
            self._release_run(out)
            if not pending:
                return
            lowest_open = self._lowest_open_high()
            if lowest_open is None or lowest_open < self.next_seq:
                return  # a partition may still bring next_seq
            # Every partition passed next_seq (or ended): skip to the next number that can come.
            target = min(min(pending), lowest_open + 1)
            if target <= self.next_seq:
                return
            self.gaps += target - self.next_seq
            self.next_seq = target

    def _lowest_open_high(self) -> int | None:
        """The lowest high number of the partitions still open (a huge one if all ended), or
        None while some partition has not been heard from."""
        if len(self._high) < self._parts:
            return None
        open_highs = [h for p, h in self._high.items() if p not in self._done]
        return min(open_highs) if open_highs else 1 << 62

    def _release_run(self, out: list[RawChunk]) -> None:
        pop = self._pending.pop
        seq = self.next_seq
        size = self._size
        lines: list[bytes] = []
        first = seq
        while True:
            line = pop(seq, None)
            if line is None:
                break
            lines.append(line)
            seq += 1
            if len(lines) >= size:
                out.append(RawChunk(ALIGNED_SOURCE, first, lines))
                lines, first = [], seq
        if lines:
            out.append(RawChunk(ALIGNED_SOURCE, first, lines))
        self.next_seq = seq

    def flush(self) -> list[RawChunk]:
        """Release everything held, in order, counting the numbers never received (end of input)."""
        out: list[RawChunk] = []
        while self._pending:
            self._release_run(out)
            if self._pending:
                target = min(self._pending)
                self.gaps += target - self.next_seq
                self.next_seq = target
        return out
