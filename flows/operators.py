"""Flows layer: steps shared by every flow: decoding raw FIX chunks, sorting out dead letters.

The error type decides the outcome here, in one place: a line that fails to decode or parse
becomes a `DeadLetter` (the flow goes on); anything else raises and crashes the worker, and
Bytewax recovery replays from the last snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bytewax.outputs import FixedPartitionedSink

from connectors.fix import DecodedBatch, decode_lines
from connectors.kafka import SequencedChunk
from connectors.raw import RawChunk
from domain.dead_letters import DeadLetter
from domain.events import (
    REFERENCE_TYPES,
    BookDamaged,
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
    OrderRequest,
)
from domain.sharding import SYMBOL_SHARDS, partition_shards, symbol_shard
from domain.watermarks import WatermarkMerge
from flows.context import FlowContext
from sinks.alerts import AlertSink

ALL_SHARDS = tuple(range(SYMBOL_SHARDS))
KAFKA_SOURCE = "kafka:fix"
"""The source name of Kafka messages: a dead letter says `kafka:fix:{bf-seq}`."""

# BookDamaged (issue 21) travels with its symbol's market data: sharded like W/X.
MD_TYPES = (MarketDataSnapshot, MarketDataIncrement, BookDamaged)
ORDER_TYPES = (ExecutionReport, OrderRequest)
DEAD_LETTER_BURST = 100
"""Dead letters from one chunk that make a `dead_letter_burst` log line (one per chunk)."""

log = logging.getLogger("brokerflow.flows")


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one input partition has got, carried by each of its decoded batches: what the
    steps that combine partitions (`domain.watermarks.WatermarkMerge`) wait on.

    Attributes:
        source: the input partition ("fix.events/3", a file).
        sources: how many input partitions feed the run.
        shards: the symbol shards whose messages this partition carries.
        last: its watermark: every message up to this sequence number has been read.
        ordered: sequence numbers are one order across partitions (Kafka's `bf-seq`, or the
            lines of a run's only file). Otherwise (several files, FIX sessions) they are
            not comparable, and the combining steps take batches in arrival order.
        done: the partition ended; idle: it has had nothing for longer than the idle timeout.
    """

    source: str
    sources: int
    shards: tuple[int, ...]
    last: int
    ordered: bool
    done: bool = False
    idle: bool = False


@dataclass(frozen=True, slots=True)
class FlowBatch(DecodedBatch):
    """A decoded batch with each event's sequence number and its partition's progress."""

    seqs: list[int] = field(default_factory=list)
    progress: Progress | None = None


def make_decoder(
    ctx: FlowContext, step_id: str = "decode_fix"
) -> Callable[[RawChunk | SequencedChunk], FlowBatch]:
    """Return the map function of the decode step: chunk -> FlowBatch, with counters.

    It runs on the worker that read the chunk: every worker decodes its own partitions.
    """
    stats = ctx.stats
    instruments = frozenset(ctx.settings.instruments) if ctx.settings.instruments else None
    ordered_files = ctx.ordered_inputs  # 1: a replay of one file, in line order

    source_kinds: dict[str, str] = {}

    def decode_file(chunk: RawChunk) -> FlowBatch:
        ts_init = time.time_ns()
        batch = decode_lines(
            chunk.lines, chunk.source, chunk.first_line_no, step_id, ts_init, instruments
        )
        first = chunk.first_line_no
        progress = Progress(
            chunk.source, max(1, ordered_files), ALL_SHARDS, first + len(chunk.lines) - 1,
            ordered=ordered_files > 0,
        )  # fmt: skip
        events, lines = batch.events, batch.lines
        if chunk.damaged:
            events, lines = _with_damaged(events, lines, chunk.damaged)
        return FlowBatch(
            events, batch.dead_letters, batch.admin, batch.messages, lines,
            [first + line for line in lines], progress,
        )  # fmt: skip

    shard_of: dict[str, int] = {}

    def decode_partition(chunk: SequencedChunk) -> FlowBatch:
        ts_init = time.time_ns()
        seqs = chunk.seqs
        batch = decode_lines(chunk.lines, KAFKA_SOURCE, seqs, step_id, ts_init, instruments)
        events, letters, lines = batch.events, batch.dead_letters, batch.lines
        admin, messages = batch.admin, batch.messages
        shards: tuple[int, ...] = ()  # the unrouted topic carries no symbol
        if chunk.shard_partitions:
            number = int(chunk.partition.rpartition("/")[2])
            shards = partition_shards(number, chunk.shard_partitions)
            # A message naming symbols of several partitions reaches each of them: here only
            # the events of this partition's shards, and the copy counts nowhere.
            events, lines = _own_events(events, lines, frozenset(shards), shard_of)
            if chunk.copies:
                messages -= len(chunk.copies)
                copied = {f"{KAFKA_SOURCE}:{seqs[i]}" for i in chunk.copies}
                letters = [d for d in letters if d.source not in copied]
        if chunk.offset_errors:  # not from our gateway (no bf-seq): in arrival order
            last_seq = seqs[-1] if seqs else 0
            for offset, value in chunk.offset_errors:
                extra = decode_lines([value + b"\n"], f"kafka:{chunk.partition}", offset, step_id,
                                     ts_init, instruments)  # fmt: skip
                events = events + extra.events
                lines = lines + [len(seqs)] * len(extra.events)
                letters = letters + extra.dead_letters
                admin += extra.admin
                messages += extra.messages
            seqs = [*seqs, last_seq]
        progress = Progress(
            chunk.partition, chunk.partitions, shards, chunk.watermark, True, chunk.done,
            chunk.idle,
        )  # fmt: skip
        return FlowBatch(events, letters, admin, messages, lines, [seqs[i] for i in lines],
                         progress)  # fmt: skip

    def decode(chunk: RawChunk | SequencedChunk) -> FlowBatch:
        if type(chunk) is SequencedChunk:
            batch = decode_partition(chunk)
            source = KAFKA_SOURCE
        else:
            batch = decode_file(chunk)
            source = chunk.source
        kind = source_kinds.get(source)
        if kind is None:  # "file:/x.fix" -> "file": a bounded label for the metrics
            kind = source_kinds[source] = source.partition(":")[0] or "unknown"
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
                extra={"fields": {"source": batch.progress.source,
                                  "first_line": batch.seqs[0] if batch.seqs else None,
                                  "messages": batch.messages,
                                  "dead_letters": len(batch.dead_letters), "by_error": reasons}},
            )  # fmt: skip
        return batch

    return decode


def _with_damaged(events: list, lines: list[int], damaged: tuple) -> tuple[list, list[int]]:
    """The decoded events with a source's own (`RawChunk.damaged`: a FIX session's lost
    messages) each placed before the first event of its line or a later one."""
    out_events: list = []
    out_lines: list[int] = []
    extra = iter(sorted(damaged, key=lambda item: item[0]))
    pending = next(extra, None)
    for event, line in zip(events, lines, strict=True):
        while pending is not None and pending[0] <= line:
            out_events.append(pending[1])
            out_lines.append(pending[0])
            pending = next(extra, None)
        out_events.append(event)
        out_lines.append(line)
    while pending is not None:
        out_events.append(pending[1])
        out_lines.append(pending[0])
        pending = next(extra, None)
    return out_events, out_lines


def merged(merge: WatermarkMerge | None, part: Any, count: Callable[[str, int], None]) -> list:
    """The `(sequence number, item)`s of a combining step's input `part` (margin's `FeedPart`,
    surveillance's `AccountPart`) that can go now: as far as every input of `merge` has
    passed, when sequence numbers order the inputs (`part.ordered`), else all, as they came.
    Items released after an idle input spoke again are out of order: counted as late. `merge`
    may be None while only unordered parts come."""
    if not part.ordered:
        return part.items
    assert merge is not None  # made with the first ordered part
    late = merge.late
    released = merge.add(part.source, part.items, part.watermark, part.done, part.idle)
    if merge.late != late:
        count("late_events", merge.late - late)
    return released


def _own_events(
    events: list, lines: list[int], shards: frozenset[int], shard_of: dict[str, int]
) -> tuple[list, list[int]]:
    """The events (and their lines) whose symbol is in `shards`; the lists themselves when
    all are (the usual case: a partition holds its own symbols' messages)."""
    keep: list[int] | None = None
    for i, event in enumerate(events):
        symbol = event.symbol
        shard = shard_of.get(symbol)
        if shard is None:
            shard = shard_of[symbol] = symbol_shard(symbol)
        if shard not in shards and type(event) not in REFERENCE_TYPES:
            # (a reference change is in every partition, each copy at its place: kept)
            if keep is None:
                keep = list(range(i))
        elif keep is not None:
            keep.append(i)
    if keep is None:
        return events, lines
    return [events[i] for i in keep], [lines[i] for i in keep]


class OnLastProcess(FixedPartitionedSink):
    """A sink of one partition (one writer: the ledger, the alerts, `account_margin`), run on
    the last process of a cluster: the first one holds the embedded
    ClickHouse writer and the audit trail, so the writers are shared out instead of piling up
    there. A partition is placed on a process that lists it, so the others list none."""

    def __init__(self, sink: FixedPartitionedSink, ctx: FlowContext) -> None:
        self._sink = sink
        self._here = ctx.process_id == ctx.processes - 1

    def list_parts(self) -> list[str]:
        return self._sink.list_parts() if self._here else []

    def part_fn(self, item_key: str) -> int:
        return self._sink.part_fn(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> Any:
        return self._sink.build_part(step_id, for_part, resume_state)


def alert_sink(ctx: FlowContext) -> FixedPartitionedSink:
    """The sink every flow's alerts go to: PostgreSQL `alerts` and `stream:alerts`, counted."""
    return OnLastProcess(AlertSink(
        ctx.postgres_dsn, ctx.redis_url, ctx.settings.redis_stream_maxlen, ctx.stats.add,
        ctx.retry, recovery=ctx.recovery,
    ), ctx)  # fmt: skip


def dead_letters_of(batch: DecodedBatch) -> Iterable[DeadLetter]:
    return batch.dead_letters
