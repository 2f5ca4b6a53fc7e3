"""Connectors layer: FIX on Kafka. Topics, routing of raw FIX lines, and the Kafka source.

Topics (values are raw FIX messages, from `8=` to the CheckSum, without a newline):
    fix.marketdata   35=W/X, keyed by Symbol (55)
    fix.executions   35=8/D/F/G/E, keyed by Account (1), else ClOrdID (11)
    fix.unrouted     lines the gateway could not route (no `8=`, no MsgType, another MsgType,
                     market data without Symbol, an order event without Account and Symbol);
                     kept in sequence so the flows dead-letter them with the decoder's reason,
                     exactly as a replay of the file does
    orders.outbound  child orders (35=D/F) the flows send

Every message carries the gateway's sequence number in header `bf-seq` (8 bytes, big-endian):
1, 2, 3, … in the gateway's input order, across all topics. A key keeps one symbol's or one
account's messages in one partition, in order; the sequence number lets the flows put the
partitions back into the gateway's order (`connectors.kafka_align`), which the flows need: an
order event's audit snapshot, a stop's triggers and the margin marks depend on where the order
event stands among the prices, and those travel on different topics.

`KafkaFixSource` is our own thin source rather than `bytewax.connectors.kafka.KafkaSource`:
the latter emits one item per message (~2 µs per item per step in the engine), while this one
emits one `SequencedChunk` per poll of up to `batch_messages` messages, and can stop at the
end offsets it saw at start (`until_end`, for tests and benchmarks). Like Bytewax's, it uses no
consumer group: each Bytewax partition is one Kafka partition, its offset is the recovery state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from domain.errors import ConfigError

MARKETDATA_TOPIC = "fix.marketdata"
EXECUTIONS_TOPIC = "fix.executions"
UNROUTED_TOPIC = "fix.unrouted"
ORDERS_TOPIC = "orders.outbound"
INPUT_TOPICS = (MARKETDATA_TOPIC, EXECUTIONS_TOPIC, UNROUTED_TOPIC)
SEQ_HEADER = "bf-seq"

_MD_TYPES = frozenset((b"W", b"X"))
_ORDER_TYPES = frozenset((b"8", b"D", b"F", b"G", b"E"))
_ADMIN_TYPES = frozenset((b"0", b"1", b"2", b"3", b"4", b"5", b"A"))


@dataclass(frozen=True, slots=True)
class Route:
    """Where one input line goes.

    Attributes:
        topic: the topic, or None for a line that is not published (blank, comment, admin).
        key: the partition key (symbol or account), or None.
        value: the FIX message as published (from `8=`, no newline).
        reason: why a line went to `fix.unrouted` or was skipped, else "".
    """

    topic: str | None
    key: bytes | None
    value: bytes
    reason: str = ""


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
    # A message without the key its topic is partitioned by would land on an arbitrary
    # partition, out of order with its symbol's or account's other messages: unrouted instead.
    if msg_type in _MD_TYPES:
        symbol = _field(message, delimiter, b"55")
        if not symbol:
            return Route(UNROUTED_TOPIC, None, message, "market data without Symbol (55)")
        return Route(MARKETDATA_TOPIC, symbol, message)
    if msg_type in _ORDER_TYPES:
        account = _field(message, delimiter, b"1")
        if not account and not _field(message, delimiter, b"55"):
            reason = "order event without Account (1) or Symbol (55)"
            return Route(UNROUTED_TOPIC, None, message, reason)
        return Route(EXECUTIONS_TOPIC, account or _field(message, delimiter, b"11"), message)
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
        partitions: how many input partitions the source has in all (for the aligner's gap
            detection: a sequence number every partition has passed can never come).
        seqs: the messages' sequence numbers, increasing.
        lines: the messages, each with a newline (the decoder's fast path wants it).
        done: the partition reached its end (`until_end`); nothing more will come from it.
        offset_errors: messages without a readable `bf-seq` header (not from our gateway),
            as (offset, value): the aligner cannot place them and dead-letters them.
    """

    partition: str
    partitions: int
    seqs: list[int]
    lines: list[bytes]
    done: bool = False
    offset_errors: tuple[tuple[int, bytes], ...] = ()


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


LagReport = Callable[[str, int, int], None]


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
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        topic, _, number = name.rpartition("/")
        self._name = name
        self._partitions = partitions
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

    def next_batch(self) -> list[SequencedChunk]:
        if self._done:
            raise StopIteration
        if self._end is not None and self._offset >= self._end:
            self._done = True
            return [SequencedChunk(self._name, self._partitions, [], [], done=True)]
        messages = self._consumer.consume(self._batch, timeout=0)
        if not messages:
            # Never block the worker: ask to be called again shortly.
            self._awake = datetime.now(UTC) + timedelta(seconds=self._poll_s)
            return []
        self._awake = None
        seqs: list[int] = []
        lines: list[bytes] = []
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
            if seq is None:
                bad.append((message.offset(), message.value() or b""))
            else:
                seqs.append(seq)
                lines.append((message.value() or b"") + b"\n")
            self._offset = message.offset() + 1
        done = self._end is not None and self._offset >= self._end
        self._done = done
        if self._on_lag is not None:
            # The high watermark of the last fetch (cached: no round trip to the broker).
            _, high = self._consumer.get_watermark_offsets(self._tp, cached=True)
            if high >= 0:
                self._on_lag(self._tp.topic, self._tp.partition, max(0, high - self._offset))
        return [SequencedChunk(self._name, self._partitions, seqs, lines, done, tuple(bad))]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaFixSource(FixedPartitionedSource[SequencedChunk, int]):
    """Read the FIX topics, one Bytewax partition per Kafka partition (resumable by offset).

    Args:
        bootstrap: Kafka bootstrap servers.
        topics: the topics to read (all three input topics by default).
        until_end: stop each partition at the end offset it saw when it started.
        batch_messages: messages per poll and per emitted chunk, at most.
        poll_s: how long an idle partition waits before polling again.
        on_lag: called as `on_lag(topic, partition, messages behind the high watermark)` after
            every batch read (e.g. the metrics' Kafka lag gauge).
    """

    def __init__(
        self,
        bootstrap: str,
        topics: tuple[str, ...] = INPUT_TOPICS,
        until_end: bool = False,
        batch_messages: int = 2_000,
        poll_s: float = 0.01,
        on_lag: LagReport | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._on_lag = on_lag
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
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _KafkaPartition:
        return _KafkaPartition(
            self._bootstrap,
            for_part,
            len(self.list_parts()),
            resume_state,
            self._until_end,
            self._batch,
            self._poll_s,
            self._on_lag,
        )


def last_published_seq(bootstrap: str, timeout_s: float = 10.0) -> int:
    """The highest `bf-seq` on the input topics (0 when empty): a restarted gateway goes on
    from the next number, so the flows' aligner never sees a number twice."""
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
