"""Routing, partitions, decoding where read, and delivery checks of the Kafka connector."""

from __future__ import annotations

import pytest

from brokerflow.settings import Settings
from connectors.kafka import (
    FIX_TOPIC,
    UNROUTED_TOPIC,
    SequencedChunk,
    route_line,
    symbol_partition,
)
from domain.sharding import SYMBOL_SHARDS, partition_shards, symbol_shard
from flows.context import FlowContext
from flows.operators import KAFKA_SOURCE, make_decoder
from sinks.kafka import CheckedProducer, KafkaDeliveryError


@pytest.mark.parametrize(
    ("line", "topic", "key"),
    [
        (b"8=FIX.4.4\x019=5\x0135=X\x0155=IBM\x0110=000\x01\n", FIX_TOPIC, b"IBM"),
        (b"8=FIX.4.4|9=5|35=W|55=MSFT|10=000|\n", FIX_TOPIC, b"MSFT"),
        (b"20261125 8=FIX.4.4\x0135=8\x011=ACC1\x0155=IBM\x01\n", FIX_TOPIC, b"IBM"),
        (b"8=FIX.4.4\x0135=D\x0111=C1\x0155=IBM\x01\n", FIX_TOPIC, b"IBM"),
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


def test_each_symbol_shard_lives_in_one_partition_whatever_the_partition_count() -> None:
    symbols = [f"SYM{n:04d}" for n in range(500)] + ["AAPL", "MSFT", "BRK.B"]
    for partitions in (1, 2, 3, 4, 6, 8, 16, 32):
        used = set()
        for symbol in symbols:
            p = symbol_partition(symbol.encode(), partitions)
            used.add(p)
            assert symbol_shard(symbol) in partition_shards(p, min(partitions, SYMBOL_SHARDS))
        assert used == set(range(min(partitions, SYMBOL_SHARDS)))  # every partition has work


def _framed(body: bytes) -> bytes:
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01" % (sum(head + body) % 256)


def test_a_partitions_chunk_decodes_where_it_is_read_with_its_sequence_numbers() -> None:
    good = b"8=FIX.4.4\x019=5\x0135=X\x0155=IBM\x0110=000\x01"
    market = [_framed(b"35=X\x0149=V\x0156=B\x0134=%d\x0152=20261125-14:30:00\x01268=1\x01"
                      b"279=0\x01269=2\x0155=IBM\x01270=10\x01271=5\x01" % n)
              for n in (1, 2)]  # fmt: skip
    home = symbol_partition(b"IBM", 4)
    other = _framed(b"35=X\x0149=V\x0156=B\x0134=3\x0152=20261125-14:30:00\x01268=1\x01"
                    b"279=0\x01269=2\x0155=AAPL\x01270=10\x01271=5\x01")  # fmt: skip
    assert symbol_partition(b"AAPL", 4) != home
    lines = [market[0], good, other, market[1]]
    # AAPL's message here is a copy (another partition's symbol): neither counted nor kept.
    chunk = SequencedChunk(f"{FIX_TOPIC}/{home}", 5, [7, 19, 33, 40],
                           [line + b"\n" for line in lines], watermark=40, shard_partitions=4,
                           copies=(2,))  # fmt: skip
    ctx = FlowContext(Settings(), "redis://unused", "postgresql://unused")
    batch = make_decoder(ctx)(chunk)
    assert [d.source for d in batch.dead_letters] == [f"{KAFKA_SOURCE}:19"]  # bad BodyLength
    # the bad line is an X that still names IBM: its book is damaged, at that line (issue 21)
    assert batch.seqs == [7, 19, 40] and [e.symbol for e in batch.events] == ["IBM"] * 3
    assert type(batch.events[1]).__name__ == "BookDamaged"
    assert batch.messages == 3
    p = batch.progress
    assert (p.source, p.sources, p.last, p.ordered) == (f"{FIX_TOPIC}/{home}", 5, 40, True)
    assert symbol_shard("IBM") in p.shards and symbol_shard("AAPL") not in p.shards


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
