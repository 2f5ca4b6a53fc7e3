"""Fixtures of the Kafka tests: librdkafka's mock cluster (the real Kafka protocol, in process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def kafka_bootstrap() -> Iterator[str]:
    """A fresh 3-broker mock cluster for one test; its "host:port,…" bootstrap servers.

    The cluster lives as long as the producer that created it; topics are auto-created with 4
    partitions on first use (the mock cluster cannot create topics through the admin API).
    """
    try:
        from confluent_kafka import KafkaException, Producer

        owner = Producer({"test.mock.num.brokers": 3, "bootstrap.servers": "", "log_level": 0})
        metadata = owner.list_topics(timeout=5)
    except (ImportError, KafkaException) as exc:
        pytest.skip(f"librdkafka's mock cluster did not start: {exc}")
    brokers = ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())
    if not brokers:
        pytest.skip("librdkafka's mock cluster started without brokers")
    yield brokers
    del owner
