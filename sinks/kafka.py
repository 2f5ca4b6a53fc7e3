"""Sinks layer: Kafka producing that checks every delivery report (nothing is lost silently).

Bytewax's own `KafkaSink` flushes after every batch and ignores delivery errors, so a message
the broker refused is gone without a word. `CheckedProducer` keeps a delivery callback on every
message: librdkafka retries what can be retried (the idempotent producer keeps each partition's
order through retries, and gives up after `message.timeout.ms`); a report that still carries an
error is final, and the next `produce`, `poll` or `flush` raises `KafkaDeliveryError` naming the
topic, key and reason. `KafkaSink` is the Bytewax sink on top (the flows' outbound orders).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from domain.errors import BrokerflowError

PRODUCER_DEFAULTS: dict[str, Any] = {
    # Exactly one copy per message, in order per partition, through retries.
    "enable.idempotence": True,
    "acks": "all",
    "max.in.flight.requests.per.connection": 5,
    # Batching as a busy producer runs it: wait up to 20 ms to fill 1 MiB batches, compressed.
    "linger.ms": 20,
    "batch.size": 1024 * 1024,
    "batch.num.messages": 100_000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1024 * 1024,
    # Retries happen inside this bound; a message not delivered by then is reported failed.
    "message.timeout.ms": 120_000,
}

Headers = list[tuple[str, bytes]]


class KafkaDeliveryError(BrokerflowError):
    """A message was not delivered after librdkafka's retries (or could not be queued).

    Attributes:
        failures: (topic, key, reason) of each failed message, the first ones.
        count: how many failed in all.
    """

    def __init__(self, failures: list[tuple[str, bytes | None, str]], count: int) -> None:
        topic, key, reason = failures[0]
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(f"Kafka did not take a message for {topic} key {key!r}: {reason}{more}")
        self.failures = failures
        self.count = count


class CheckedProducer:
    """A librdkafka producer whose every delivery report is checked.

    Args:
        bootstrap: Kafka bootstrap servers.
        overrides: producer settings over `PRODUCER_DEFAULTS` (e.g. `compression.type`).

    Attributes:
        delivered: messages acknowledged by the brokers, per topic.
    """

    def __init__(self, bootstrap: str, overrides: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Producer

        config = {**PRODUCER_DEFAULTS, **(overrides or {}), "bootstrap.servers": bootstrap}
        self._producer = Producer(config)
        self.delivered: Counter[str] = Counter()
        self._failed: list[tuple[str, bytes | None, str]] = []
        self._failed_count = 0

    def _report(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered[message.topic()] += 1
            return
        self._failed_count += 1
        if len(self._failed) < 10:
            self._failed.append((message.topic(), message.key(), error.str()))

    def _check(self) -> None:
        if self._failed_count:
            raise KafkaDeliveryError(self._failed, self._failed_count)

    def partitions(self, topic: str, timeout_s: float = 10.0) -> int:
        """How many partitions `topic` has (asking for it creates it where the cluster
        creates topics on first use)."""
        from confluent_kafka import KafkaException

        try:
            meta = self._producer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise KafkaDeliveryError([(topic, None, exc.args[0].str())], 0) from None
        if meta is None or meta.error is not None or not meta.partitions:
            reason = "no such topic" if meta is None or meta.error is None else meta.error.str()
            raise KafkaDeliveryError([(topic, None, reason)], 0)
        return len(meta.partitions)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int = -1,
    ) -> None:
        """Queue one message (to `partition`, else by key); raise if an earlier one failed.
        Waits while the queue is full."""
        from confluent_kafka import KafkaException

        produce = self._producer.produce
        while True:
            try:
                produce(topic, value, key, partition, headers=headers,
                        on_delivery=self._report)  # fmt: skip
                break
            except BufferError:
                self._producer.poll(0.05)  # queue full: serve delivery reports, then retry
            except KafkaException as exc:
                raise KafkaDeliveryError([(topic, key, exc.args[0].str())], 1) from None
        if self._failed_count:
            self._check()

    def poll(self) -> None:
        """Serve delivery reports that are ready; raise if one failed."""
        self._producer.poll(0)
        self._check()

    def flush(self, timeout_s: float = 130.0) -> None:
        """Wait until every queued message is delivered or failed; raise on any failure."""
        remaining = self._producer.flush(timeout_s)
        self._check()
        if remaining:
            msg = f"{remaining} messages still undelivered after {timeout_s:.0f} s"
            raise KafkaDeliveryError([("?", None, msg)], remaining)


class _KafkaSinkPartition(StatelessSinkPartition[tuple[str, bytes | None, bytes]]):
    def __init__(self, bootstrap: str, overrides: dict[str, Any] | None) -> None:
        self._producer = CheckedProducer(bootstrap, overrides)

    def write_batch(self, items: list[tuple[str, bytes | None, bytes]]) -> None:
        produce = self._producer.produce
        for topic, key, value in items:
            produce(topic, value, key)
        # Serve reports as they come; the batch is not held up waiting for acknowledgements.
        self._producer.poll()

    def close(self) -> None:
        self._producer.flush()


class KafkaSink(DynamicSink[tuple[str, bytes | None, bytes]]):
    """Write `(topic, key, value)` items to Kafka, every delivery checked (see module doc).

    A failed delivery raises in the worker at the next batch or at close, so the run stops
    instead of going on without the message; Bytewax recovery then resumes from the last
    snapshot, and the idempotent keys downstream absorb what is sent twice.
    """

    def __init__(self, bootstrap: str, overrides: dict[str, Any] | None = None) -> None:
        self._bootstrap = bootstrap
        self._overrides = overrides

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaSinkPartition:
        return _KafkaSinkPartition(self._bootstrap, self._overrides)
