"""The Kafka source reports how far each partition is behind (the metrics' lag gauge)."""

from __future__ import annotations

import time

from connectors.kafka import SEQ_HEADER, KafkaFixSource, encode_seq


def test_the_source_reports_each_partitions_lag_after_every_batch(kafka_bootstrap: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    produced_ms = int(time.time() * 1000) - 60_000  # a gateway a minute ahead of the flows
    for seq in range(1, 101):
        producer.produce("fix.marketdata", b"8=FIX.4.4|35=X|", b"IBM", partition=0,
                         headers=[(SEQ_HEADER, encode_seq(seq))],
                         timestamp=produced_ms)  # fmt: skip
    producer.flush(10)
    lags: list[tuple[str, int, int, float]] = []
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
    mine = [(n, s) for topic, part, n, s in lags if (topic, part) == ("fix.marketdata", 0)]
    behind = [n for n, _s in mine]
    assert behind and behind[-1] == 0  # caught up at the end
    assert max(behind) >= 40  # and behind while reading (30 per batch out of 100)
    # in seconds: the messages were produced a minute before they were read
    assert all(60 <= s < 120 for _n, s in mine)


def test_a_quiet_partition_says_once_that_it_is_idle_and_again_when_it_speaks(
    kafka_bootstrap: str,
) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce("fix.events", b"8=FIX.4.4|35=X|", b"IBM", partition=0,
                     headers=[(SEQ_HEADER, encode_seq(5))])  # fmt: skip
    producer.flush(10)
    reports: list[tuple[str, bool]] = []
    lags: list[tuple[str, int, int, float]] = []
    source = KafkaFixSource(kafka_bootstrap, ("fix.events",), idle_s=0.3,
                            on_idle=lambda *r: reports.append(r),
                            on_lag=lambda *lag: lags.append(lag))  # fmt: skip
    part = source.build_part("read", "fix.events/0", None)

    def read_for(seconds: float) -> list:
        chunks, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            chunks += part.next_batch()
            time.sleep(0.02)
        return chunks

    chunks = read_for(1.5)
    assert [c.seqs for c in chunks if c.seqs] == [[5]]
    idle = [c for c in chunks if c.idle]
    assert len(idle) == 1 and idle[0].watermark == 5  # once per quiet spell, with how far
    assert reports == [("fix.events/0", True)]
    assert lags[-1] == ("fix.events", 0, 0, 0.0)  # idle: nothing behind, in either unit
    producer.produce("fix.events", b"8=FIX.4.4|35=X|", b"IBM", partition=0,
                     headers=[(SEQ_HEADER, encode_seq(9))])  # fmt: skip
    producer.flush(10)
    chunks = read_for(2.0)  # the consumer's fetch waits up to fetch.wait.max.ms (500 ms)
    assert [c.seqs for c in chunks if c.seqs] == [[9]]
    # It took part again, then went quiet again: a new spell, said once more.
    assert reports[:2] == [("fix.events/0", True), ("fix.events/0", False)]
    assert [c.watermark for c in chunks if c.idle] in ([], [9])
    assert part.snapshot() == (2, 9)  # the offset and the watermark, resumed together
    part.close()
