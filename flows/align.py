"""Flows layer: the Kafka input in the gateway's order, ahead of the decoder.

Steps (ids are recovery keys; renaming one orphans its state):
    key_sequence   every `SequencedChunk` to the one key "fix" (one worker merges)
    align_fix      stateful: `SequenceAligner` releases runs of consecutive `bf-seq` numbers as
                   `RawChunk`s, so everything downstream sees the gateway's input order
    unkey_aligned  back to plain `RawChunk`s for `decode_fix`
The Kafka partitions are read in parallel by every worker of every process; the merge is one
step on one worker, and the keyed steps after the decoder spread out again as in a replay.
"""

from __future__ import annotations

import pickle

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.kafka import SequencedChunk
from connectors.kafka_align import SequenceAligner
from connectors.raw import RawChunk
from flows.context import FlowContext


class AlignLogic(op.StatefulBatchLogic[SequencedChunk, RawChunk, bytes]):
    """The aligner as Bytewax state; counts gaps and redeliveries into the run's stats."""

    def __init__(self, ctx: FlowContext, resume: bytes | None) -> None:
        self.aligner: SequenceAligner = (
            pickle.loads(resume) if resume is not None else SequenceAligner()
        )
        self.stats = ctx.stats
        self.recovery = ctx.recovery
        self._counted = (self.aligner.gaps, self.aligner.duplicates)

    def _count(self) -> None:
        gaps, duplicates = self.aligner.gaps, self.aligner.duplicates
        self.stats.add("kafka_gaps", gaps - self._counted[0])
        self.stats.add("kafka_duplicates", duplicates - self._counted[1])
        self._counted = (gaps, duplicates)

    def on_batch(self, values: list[SequencedChunk]) -> tuple[list[RawChunk], bool]:
        out: list[RawChunk] = []
        add = self.aligner.add
        for chunk in values:
            out += add(chunk)
        self._count()
        return out, self.RETAIN

    def on_eof(self) -> tuple[list[RawChunk], bool]:
        out = self.aligner.flush()
        self._count()
        return out, self.RETAIN

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None  # Bytewax asks at every epoch end; without recovery nobody reads it
        return pickle.dumps(self.aligner, protocol=pickle.HIGHEST_PROTOCOL)


def align(chunks: Stream[SequencedChunk], ctx: FlowContext) -> Stream[RawChunk]:
    """Merge the partitions' chunks into one stream of `RawChunk`s in `bf-seq` order."""
    keyed = op.key_on("key_sequence", chunks, _one_key)
    aligned = op.stateful_batch("align_fix", keyed, lambda resume: AlignLogic(ctx, resume))
    return op.key_rm("unkey_aligned", aligned)


def _one_key(_chunk: SequencedChunk) -> str:
    return "fix"
