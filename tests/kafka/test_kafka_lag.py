"""The Kafka source reports how far each partition is behind (the metrics' lag gauge)."""

from __future__ import annotations

import time

from connectors.kafka import SEQ_HEADER, KafkaFixSource, encode_seq


def test_the_source_reports_each_partitions_lag_after_every_batch(kafka_bootstrap: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for seq in range(1, 101):
        producer.produce("fix.marketdata", b"8=FIX.4.4|35=X|", b"IBM", partition=0,
                         headers=[(SEQ_HEADER, encode_seq(seq))])  # fmt: skip
    producer.flush(10)
    lags: list[tuple[str, int, int]] = []
    source = KafkaFixSource(kafka_bootstrap, ("fix.marketdata",), until_end=True,
                            batch_messages=30, on_lag=lambda *lag: lags.append(lag))  # fmt: skip
    part = source.build_part("read", "fix.marketdata/0", None)
    read = 0
    deadline = time.monotonic() + 20
    while read < 100 and time.monotonic() < deadline:
        try:
            read += sum(len(chunk.seqs) for chunk in part.next_batch())
        except StopIteration:
            break
    part.close()
    assert read == 100
    behind = [lag for topic, partition, lag in lags if (topic, partition) == ("fix.marketdata", 0)]
    assert behind and behind[-1] == 0  # caught up at the end
    assert max(behind) >= 40  # and behind while reading (30 per batch out of 100)
