"""Connectors layer: FIX on Kafka. Topics, routing of raw FIX lines, and the Kafka source.

Topics (values are raw FIX messages, from `8=` to the CheckSum, without a newline):
    fix.events       35=W/X and 35=8/D/F/G/E, keyed by Symbol (55), in partition
                     `symbol_shard(symbol) % partitions` (`domain.sharding`): a symbol's market
                     data and its order events share one partition, in the gateway's order;
                     reference changes (35=UA/UC, `connectors.fix.reference`) keyed by Account
                     (1) the same way (the flows shard them by account), with a copy in every
                     other partition (`COPY_HEADER`), so that every partition has it in order
                     with its own fills (the ledger books each partition in its own order)
    fix.unrouted     lines the gateway could not route (no `8=`, no MsgType, another MsgType,
                     no Symbol); kept in sequence so the flows dead-letter them with the
                     decoder's reason, exactly as a replay of the file does
    orders.outbound  child orders (35=D/F) the flows send

Every message carries the gateway's sequence number in header `bf-seq` (8 bytes, big-endian):
1, 2, 3, … in the gateway's input order, across all topics and partitions. Each worker reads
and decodes its own partitions; a partition holds whole symbol shards, so every symbol-keyed
step sees its symbols' messages in the gateway's order, and the steps that combine symbols (an
account's margin, its order-to-trade ratio) merge their inputs by `bf-seq` up to every
partition's watermark (`domain.watermarks`): the results are a replay's, however the
partitions were spread over workers and processes.

`KafkaFixSource` is our own thin source rather than `bytewax.connectors.kafka.KafkaSource`:
the latter emits one item per message (~2 µs per item per step in the engine), while this one
emits one `SequencedChunk` per poll of up to `batch_messages` messages, can stop at the
end offsets it saw at start (`until_end`, for tests and benchmarks), and says when a partition
has gone idle. Like Bytewax's, it uses no consumer group: each Bytewax partition is one Kafka
partition, its offset is the recovery state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from domain.errors import ConfigError
from domain.sharding import symbol_shard, used_partitions

FIX_TOPIC = "fix.events"
UNROUTED_TOPIC = "fix.unrouted"
ORDERS_TOPIC = "orders.outbound"
INPUT_TOPICS = (FIX_TOPIC, UNROUTED_TOPIC)
SEQ_HEADER = "bf-seq"
COPY_HEADER = "bf-copy"
"""On a copy of a message that names symbols of several partitions (a 35=X updating several
instruments): each partition gets the message, so each symbol's events stay in its partition's
order; only the first symbol's partition counts it and dead-letters it."""
IDLE_S = 2.0
"""A partition with nothing new for this long, and nothing left to read, is idle: the steps
that merge partitions stop waiting for it (until it brings messages again)."""


def symbol_partition(symbol: bytes, partitions: int) -> int:
    """The partition of `fix.events` a symbol's messages go to: whole symbol shards per
    partition, so more than `SYMBOL_SHARDS` partitions would leave some empty."""
    return symbol_shard(symbol.decode("utf-8", "replace")) % used_partitions(partitions)


_MD_TYPES = frozenset((b"W", b"X"))
_ORDER_TYPES = frozenset((b"8", b"D", b"F", b"G", b"E"))
_ADMIN_TYPES = frozenset((b"0", b"1", b"2", b"3", b"4", b"5", b"A"))
_REFERENCE_TYPES = frozenset((b"UA", b"UC"))  # connectors.fix.reference


@dataclass(frozen=True, slots=True)
class Route:
    """Where one input line goes.

    Attributes:
        topic: the topic, or None for a line that is not published (blank, comment, admin).
        key: the partition key (the message's first symbol), or None.
        value: the FIX message as published (from `8=`, no newline).
        reason: why a line went to `fix.unrouted` or was skipped, else "".
        symbols: every symbol the message names, first first: a 35=X may update several
            instruments, a 35=E list several orders.
        broadcast: the message goes to every partition of the topic (its key's first, the
            others as copies): a reference change (35=UA/UC), so that each partition carries
            it at its place among its own fills.
    """

    topic: str | None
    key: bytes | None
    value: bytes
    reason: str = ""
    symbols: tuple[bytes, ...] = ()
    broadcast: bool = False


def _symbols(message: bytes, delimiter: bytes) -> tuple[bytes, ...]:
    """Every Symbol (55) of a message, each once, in order of appearance."""
    parts = message.split(delimiter + b"55=")
    if len(parts) == 2:  # the usual case: one symbol
        return (parts[1].split(delimiter, 1)[0],)
    return tuple(dict.fromkeys(p.split(delimiter, 1)[0] for p in parts[1:]))


def _field(message: bytes, delimiter: bytes, tag: bytes) -> bytes | None:
    """The value of the first `tag` field after the header, or None."""
    marker = delimiter + tag + b"="
    start = message.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = message.find(delimiter, start)
    return message[start:] if end < 0 else message[start:end]


def route_line(line: bytes) -> Route:
    """Route one FIX log line by MsgType (35): its topic, key and the message to publish.

    Only routing is checked here (MsgType and the key); BodyLength, CheckSum and fields are the
    decoder's to judge in the flows, so a garbled message becomes the same dead letter it
    would in a replay.

    >>> route_line(b"8=FIX.4.4|9=5|35=X|55=IBM|10=000|\\n").key
    b'IBM'
    """
    text = line.rstrip(b"\r\n")
    stripped = text.strip()
    if not stripped or stripped.startswith(b"#"):
        return Route(None, None, b"", "not a message (blank or comment)")
    start = text.find(b"8=")
    if start < 0:
        return Route(UNROUTED_TOPIC, None, text, "no BeginString (8=) on the line")
    message = text[start:]
    delimiter = b"\x01" if b"\x01" in message else b"|"
    msg_type = _field(message, delimiter, b"35")
    if not msg_type:
        return Route(UNROUTED_TOPIC, None, message, "no MsgType (35)")
    # A message without the symbol the topic is partitioned by would land on an arbitrary
    # partition, out of order with its symbol's other messages: unrouted instead.
    if msg_type in _MD_TYPES or msg_type in _ORDER_TYPES:
        symbols = _symbols(message, delimiter)
        if not symbols or not symbols[0]:
            kind = "market data" if msg_type in _MD_TYPES else "order event"
            return Route(UNROUTED_TOPIC, None, message, f"{kind} without Symbol (55)")
        return Route(FIX_TOPIC, symbols[0], message, symbols=symbols)
    if msg_type in _REFERENCE_TYPES:
        # Keyed by account (its shard takes it to margin), and copied to every partition: the
        # ledger books each partition in its order, so each must carry the change at its place.
        account = _field(message, delimiter, b"1")
        if not account:
            return Route(UNROUTED_TOPIC, None, message, "reference change without Account (1)")
        return Route(FIX_TOPIC, account, message, symbols=(account,), broadcast=True)
    if msg_type in _ADMIN_TYPES:
        return Route(None, None, message, "session-level message (not published)")
    kind = msg_type.decode("ascii", "backslashreplace")
    return Route(UNROUTED_TOPIC, None, message, f"MsgType (35) {kind} is not routed")


def encode_seq(seq: int) -> bytes:
    return seq.to_bytes(8, "big")


def decode_seq(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


@dataclass(frozen=True, slots=True)
class SequencedChunk:
    """Raw FIX messages of one Kafka partition with their gateway sequence numbers.

    Attributes:
        partition: "topic/partition".
        partitions: how many input partitions the source has in all (the steps that merge
            partitions wait on each of them).
        seqs: the messages' sequence numbers, increasing.
        lines: the messages, each with a newline (the decoder's fast path wants it).
        done: the partition reached its end (`until_end`); nothing more will come from it.
        offset_errors: messages without a readable `bf-seq` header (not from our gateway),
            as (offset, value): used in arrival order, without the guarantee.
        watermark: the highest sequence number the partition has delivered so far.
        idle: nothing new for `IDLE_S` and nothing left to read (no seqs, no lines).
        shard_partitions: the partitions of `fix.events` (this one carries the symbol shards
            with `shard % shard_partitions == number`), 0 for a topic without symbols.
        copies: the indexes of the lines that are copies (`COPY_HEADER`).
    """

    partition: str
    partitions: int
    seqs: list[int]
    lines: list[bytes]
    done: bool = False
    offset_errors: tuple[tuple[int, bytes], ...] = ()
    watermark: int = 0
    idle: bool = False
    shard_partitions: int = 0
    copies: tuple[int, ...] = ()


def consumer_config(bootstrap: str) -> dict:
    """The consumer settings of the flows (no group: offsets are Bytewax recovery state)."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": "brokerflow-unused",  # required by librdkafka; nothing is committed
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        # Larger fetches: the flows want many messages per poll.
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        "queued.min.messages": 200_000,
    }


def list_partitions(bootstrap: str, topics: tuple[str, ...], timeout_s: float = 10.0) -> list[str]:
    """The "topic/partition" names of `topics` that exist on the cluster, in a fixed order."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        msg = f"Kafka at {bootstrap} did not answer: {exc.args[0]}"
        raise ConfigError(msg) from None
    parts: list[str] = []
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None:
            continue  # not created yet: nothing was published to it
        parts += [f"{topic}/{p}" for p in sorted(meta.partitions)]
    return parts


LagReport = Callable[[str, int, int, float], None]  # topic, partition, messages, seconds
IdleReport = Callable[[str, bool], None]


class _KafkaPartition(StatefulSourcePartition[SequencedChunk, int]):
    def __init__(
        self,
        bootstrap: str,
        name: str,
        partitions: int,
        offset: int | None,
        until_end: bool,
        batch_messages: int,
        poll_s: float,
        on_lag: LagReport | None = None,
        shard_partitions: int = 0,
        idle_s: float = IDLE_S,
        on_idle: IdleReport | None = None,
        watermark: int = 0,
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        topic, _, number = name.rpartition("/")
        self._name = name
        self._partitions = partitions
        self._shard_partitions = shard_partitions
        self._idle_s = idle_s
        self._on_idle = on_idle
        self._watermark = watermark
        self._quiet_since = time.monotonic()
        self._idle = False
        self._consumer = Consumer(consumer_config(bootstrap))
        tp = TopicPartition(topic, int(number), OFFSET_BEGINNING if offset is None else offset)
        self._consumer.assign([tp])
        self._tp = TopicPartition(topic, int(number))
        self._on_lag = on_lag
        self._end: int | None = None
        if until_end:
            _, self._end = self._consumer.get_watermark_offsets(tp, timeout=10)
        self._offset = offset or 0
        self._batch = batch_messages
        self._poll_s = poll_s
        self._awake: datetime | None = None
        self._done = False

    def _chunk(self, seqs: list[int], lines: list[bytes], **flags: Any) -> SequencedChunk:
        return SequencedChunk(self._name, self._partitions, seqs, lines,
                              watermark=self._watermark,
                              shard_partitions=self._shard_partitions, **flags)  # fmt: skip

    def next_batch(self) -> list[SequencedChunk]:
        if self._done:
            raise StopIteration
        if self._end is not None and self._offset >= self._end:
            self._done = True
            return [self._chunk([], [], done=True)]
        messages = self._consumer.consume(self._batch, timeout=0)
        if not messages:
            # Never block the worker: ask to be called again shortly.
            self._awake = datetime.now(UTC) + timedelta(seconds=self._poll_s)
            return self._idle_check()
        self._awake = None
        self._quiet_since = time.monotonic()
        if self._idle:
            self._idle = False
            if self._on_idle is not None:
                self._on_idle(self._name, False)
        seqs: list[int] = []
        lines: list[bytes] = []
        copies: list[int] = []  # the lines that are copies (`COPY_HEADER`)
        produced_ms = -1  # the last message's Kafka timestamp: when the gateway produced it
        bad: list[tuple[int, bytes]] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal() or not error.retriable():
                    msg = f"{self._name}: {error.str()}"
                    raise RuntimeError(msg)
                continue  # librdkafka retries a retriable consumer error itself
            headers = message.headers()
            seq = None
            if headers:
                for key, raw in headers:
                    if key == SEQ_HEADER and raw is not None and len(raw) == 8:
                        seq = int.from_bytes(raw, "big")
                    elif key == COPY_HEADER:
                        copies.append(len(lines))
            if seq is None:
                if copies and copies[-1] == len(lines):
                    copies.pop()
                bad.append((message.offset(), message.value() or b""))
            else:
                seqs.append(seq)
                lines.append((message.value() or b"") + b"\n")
            self._offset = message.offset() + 1
            produced_ms = message.timestamp()[1]
        done = self._end is not None and self._offset >= self._end
        self._done = done
        if seqs and seqs[-1] > self._watermark:
            self._watermark = seqs[-1]
        if self._on_lag is not None:
            # The high watermark of the last fetch (cached: no round trip to the broker). In
            # seconds: how long ago the last message read was produced (the gateway's produce
            # time, Kafka's CreateTime), i.e. how late the flows are reading the input.
            _, high = self._consumer.get_watermark_offsets(self._tp, cached=True)
            late_s = max(0.0, time.time() - produced_ms / 1000) if produced_ms > 0 else 0.0
            if high >= 0:
                self._on_lag(self._tp.topic, self._tp.partition, max(0, high - self._offset),
                             late_s)  # fmt: skip
        return [self._chunk(seqs, lines, done=done, offset_errors=tuple(bad),
                            copies=tuple(copies))]  # fmt: skip

    def _idle_check(self) -> list[SequencedChunk]:
        """Once per quiet spell: the partition has had nothing for `idle_s` and has nothing
        left to read (its offset is at the high watermark of the last fetch)."""
        if self._idle or self._end is not None:
            return []  # a run to the end waits for every partition's end instead
        if time.monotonic() - self._quiet_since < self._idle_s:
            return []
        _, high = self._consumer.get_watermark_offsets(self._tp, cached=True)
        if high < 0 or high > self._offset:
            return []  # not fetched from yet, or messages there not fetched: not idle
        self._idle = True
        if self._on_lag is not None:
            self._on_lag(self._tp.topic, self._tp.partition, 0, 0.0)  # nothing behind
        if self._on_idle is not None:
            self._on_idle(self._name, True)
        return [self._chunk([], [], idle=True)]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> tuple[int, int]:
        return (self._offset, self._watermark)

    def close(self) -> None:
        self._consumer.close()


class KafkaFixSource(FixedPartitionedSource[SequencedChunk, tuple[int, int]]):
    """Read the FIX topics, one Bytewax partition per Kafka partition (resumable by offset).

    Args:
        bootstrap: Kafka bootstrap servers.
        topics: the topics to read (all three input topics by default).
        until_end: stop each partition at the end offset it saw when it started.
        batch_messages: messages per poll and per emitted chunk, at most.
        poll_s: how long an idle partition waits before polling again.
        on_lag: called as `on_lag(topic, partition, messages behind the high watermark, seconds
            since the last message read was produced)` after every batch read, and with zeros
            when the partition goes idle (the metrics' Kafka lag gauges).
        idle_s: the idle timeout (`IDLE_S`); on_idle: called as `on_idle("topic/partition",
            idle)` when a partition goes idle and when it speaks again.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: tuple[str, ...] = INPUT_TOPICS,
        until_end: bool = False,
        batch_messages: int = 2_000,
        poll_s: float = 0.01,
        on_lag: LagReport | None = None,
        idle_s: float = IDLE_S,
        on_idle: IdleReport | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._on_lag = on_lag
        self._idle_s = idle_s
        self._on_idle = on_idle
        self._topics = topics
        self._until_end = until_end
        self._batch = batch_messages
        self._poll_s = poll_s
        self._parts: list[str] | None = None

    def list_parts(self) -> list[str]:
        if self._parts is None:
            self._parts = list_partitions(self._bootstrap, self._topics)
        return self._parts

    def build_part(
        self, step_id: str, for_part: str, resume_state: tuple[int, int] | int | None
    ) -> _KafkaPartition:
        parts = self.list_parts()
        symbol_parts = sum(1 for p in parts if p.rpartition("/")[0] == FIX_TOPIC)
        offset, watermark = (
            resume_state if isinstance(resume_state, tuple) else (resume_state, 0)
        )  # an int: a snapshot of a release before watermarks
        return _KafkaPartition(
            self._bootstrap,
            for_part,
            len(parts),
            offset,
            self._until_end,
            self._batch,
            self._poll_s,
            self._on_lag,
            used_partitions(symbol_parts) if for_part.rpartition("/")[0] == FIX_TOPIC else 0,
            self._idle_s,
            self._on_idle,
            watermark,
        )


def last_published_seq(bootstrap: str, timeout_s: float = 10.0) -> int:
    """The highest `bf-seq` on the input topics (0 when empty): a restarted gateway goes on
    from the next number, so no number is used twice."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(bootstrap))
    try:
        wanted: list[TopicPartition] = []
        for name in list_partitions(bootstrap, INPUT_TOPICS, timeout_s):
            topic, _, number = name.rpartition("/")
            tp = TopicPartition(topic, int(number))
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            if high > low:
                wanted.append(TopicPartition(topic, int(number), high - 1))
        if not wanted:
            return 0
        consumer.assign(wanted)
        last, waiting = 0, {(tp.topic, tp.partition) for tp in wanted}
        deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
        while waiting and datetime.now(UTC) < deadline:
            for message in consumer.consume(len(waiting), timeout=0.5):
                if message.error() is not None:
                    continue
                waiting.discard((message.topic(), message.partition()))
                for key, raw in message.headers() or ():
                    if key == SEQ_HEADER and raw is not None and len(raw) == 8:
                        last = max(last, int.from_bytes(raw, "big"))
        if waiting:
            msg = f"could not read the last message of {len(waiting)} partitions in time"
            raise ConfigError(msg)
        return last
    finally:
        consumer.close()
