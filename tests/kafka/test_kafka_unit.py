"""Routing, sequence alignment and delivery checks of the Kafka connector and sink."""

from __future__ import annotations

import pytest

from connectors.kafka import (
    EXECUTIONS_TOPIC,
    MARKETDATA_TOPIC,
    UNROUTED_TOPIC,
    SequencedChunk,
    route_line,
)
from connectors.kafka_align import SequenceAligner
from sinks.kafka import CheckedProducer, KafkaDeliveryError


@pytest.mark.parametrize(
    ("line", "topic", "key"),
    [
        (b"8=FIX.4.4\x019=5\x0135=X\x0155=IBM\x0110=000\x01\n", MARKETDATA_TOPIC, b"IBM"),
        (b"8=FIX.4.4|9=5|35=W|55=MSFT|10=000|\n", MARKETDATA_TOPIC, b"MSFT"),
        (b"20261125 8=FIX.4.4\x0135=8\x011=ACC1\x0155=IBM\x01\n", EXECUTIONS_TOPIC, b"ACC1"),
        (b"8=FIX.4.4\x0135=D\x0111=C1\x0155=IBM\x01\n", EXECUTIONS_TOPIC, b"C1"),
        (b"8=FIX.4.4\x0135=j\x0158=no\x01\n", UNROUTED_TOPIC, None),
        (b"garbage without begin string\n", UNROUTED_TOPIC, None),
        (b"8=FIX.4.4\x019=5\x0155=IBM\x01\n", UNROUTED_TOPIC, None),
        (b"8=FIX.4.4\x019=5\x0135=X\x01268=1\x01269=2\x01270=1.5\x0110=000\x01\n",
         UNROUTED_TOPIC, None),
        (b"8=FIX.4.4\x0135=8\x0111=C1\x01150=0\x01\n", UNROUTED_TOPIC, None),
    ],
)
def test_route_line_by_msg_type(line: bytes, topic: str, key: bytes | None) -> None:
    route = route_line(line)
    assert (route.topic, route.key) == (topic, key)
    assert route.value.startswith(b"8=") or topic == UNROUTED_TOPIC
    assert (route.reason != "") == (topic == UNROUTED_TOPIC)


@pytest.mark.parametrize("line", [b"\n", b"# comment\n", b"8=FIX.4.4\x0135=0\x01\n"])
def test_route_line_skips_non_messages_and_admin(line: bytes) -> None:
    route = route_line(line)
    assert route.topic is None and route.reason


def _chunk(part: str, seqs: list[int], parts: int = 2, done: bool = False) -> SequencedChunk:
    return SequencedChunk(part, parts, seqs, [b"m%d\n" % s for s in seqs], done)


def _released(chunks) -> list[int]:
    return [c.first_line_no + i for c in chunks for i in range(len(c.lines))]


def test_aligner_releases_interleaved_partitions_in_sequence_order() -> None:
    aligner = SequenceAligner(chunk_lines=3)
    out = aligner.add(_chunk("md/0", [2, 3, 6]))
    assert out == []  # 1 may still come from the other partition
    out += aligner.add(_chunk("ex/0", [1, 4, 5, 7]))
    assert _released(out) == [1, 2, 3, 4, 5, 6, 7]
    assert [line for c in out for line in c.lines][:2] == [b"m1\n", b"m2\n"]
    assert aligner.gaps == 0 and aligner.pending == 0


def test_aligner_gives_up_a_number_every_partition_has_passed() -> None:
    aligner = SequenceAligner()
    out = aligner.add(_chunk("md/0", [1, 3]))
    assert _released(out) == [1]
    out = aligner.add(_chunk("ex/0", [4]))
    assert _released(out) == [3, 4]  # 2 can no longer come: both partitions are past it
    assert aligner.gaps == 1


def test_aligner_drops_a_redelivered_number_and_counts_it() -> None:
    aligner = SequenceAligner()
    aligner.add(_chunk("md/0", [1, 2], parts=1))
    out = aligner.add(_chunk("md/0", [2, 3], parts=1))
    assert _released(out) == [3]
    assert aligner.duplicates == 1


def test_aligner_flush_releases_what_is_held_at_the_end() -> None:
    aligner = SequenceAligner()
    aligner.add(_chunk("md/0", [2, 3], parts=3))
    assert _released(aligner.flush()) == [2, 3]
    assert aligner.gaps == 1


def test_checked_producer_raises_when_no_broker_takes_the_message() -> None:
    producer = CheckedProducer("127.0.0.1:1", {"message.timeout.ms": 300, "log_level": 0})
    producer.produce("fix.marketdata", b"8=FIX.4.4", b"IBM")
    with pytest.raises(KafkaDeliveryError, match="timed out"):
        producer.flush(5)


def test_checked_producer_counts_every_message_when_the_cluster_dies_midway() -> None:
    from confluent_kafka import KafkaException, Producer

    try:
        owner = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "", "log_level": 0})
        brokers = ",".join(
            f"{b.host}:{b.port}" for b in owner.list_topics(timeout=5).brokers.values()
        )
    except KafkaException as exc:
        pytest.skip(f"librdkafka's mock cluster did not start: {exc}")
    owner.produce("fix.marketdata", b"create the topic", b"IBM")
    owner.flush(10)  # a loaded machine: topic creation must not eat the quick timeout below
    quick = {"message.timeout.ms": 3000, "linger.ms": 0, "log_level": 0}
    producer = CheckedProducer(brokers, quick)
    for i in range(100):
        producer.produce("fix.marketdata", b"before %d" % i, b"IBM")
    producer.flush(10)
    assert producer.delivered["fix.marketdata"] == 100
    owner.flush(1)
    del owner  # the cluster goes away with its owner
    with pytest.raises(KafkaDeliveryError) as failed:
        for i in range(50):
            producer.produce("fix.marketdata", b"after %d" % i, b"IBM")
        producer.flush(10)
    assert producer.delivered["fix.marketdata"] + failed.value.count == 150
