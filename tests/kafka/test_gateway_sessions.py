"""`brokerflow gateway --config`: live FIX sessions (the exchange simulator on loopback) -> Kafka,
every message acknowledged before its session's position is recorded; a restart goes on from
there, and asks the counterparty to resend what it had not published."""

from __future__ import annotations

import json
from pathlib import Path

from brokerflow.cli import main
from tests.flows.test_live_run import _config, exchange  # noqa: F401 - a fixture

SOH = b"\x01"


def read_topic(bootstrap: str, topic: str, where: dict | None = None) -> list[bytes]:
    """Every message of `topic`, from the beginning (all partitions); with `where`, each
    message's (first) symbol -> the partitions it was found in, copies left out."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "gateway-test",
                         "enable.auto.commit": False})  # fmt: skip
    partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
    consumer.assign([TopicPartition(topic, n, OFFSET_BEGINNING) for n in partitions])
    out: list[bytes] = []
    idle = 0
    while idle < 6:
        batch = consumer.consume(1000, timeout=0.5)
        idle = 0 if batch else idle + 1
        for m in batch:
            if m.error() is None:
                out.append(m.value())
                copy = any(k == "bf-copy" for k, _ in m.headers() or ())
                if where is not None and SOH + b"55=" in m.value() and not copy:
                    symbol = m.value().split(SOH + b"55=", 1)[1].split(SOH, 1)[0]
                    where.setdefault(symbol, set()).add(m.partition())
    consumer.close()
    return out


def msg_type(raw: bytes) -> bytes:
    return raw.split(SOH + b"35=", 1)[1].split(SOH, 1)[0]


def gateway(config: Path, seconds: float, capsys) -> dict:
    capsys.readouterr()
    assert main(["gateway", "--config", str(config), "--seconds", str(seconds), "--json",
                 "-q"]) == 0  # fmt: skip
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_sessions_to_kafka_and_a_restart_resends_what_was_not_published(
    tmp_path, exchange, kafka_bootstrap, monkeypatch, capsys  # noqa: F811
):
    monkeypatch.setenv("BROKERFLOW_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("BROKERFLOW_DATA_DIR", str(tmp_path / "data"))
    config = _config(tmp_path, exchange.port)

    first = gateway(config, 3, capsys)
    assert first["topics"]["fix.events"] > 0
    state_path = tmp_path / "data" / "gateway" / "sessions.json"
    published = json.loads(state_path.read_text())["simx"]
    partitions: dict[bytes, set[int]] = {}
    events = read_topic(kafka_bootstrap, "fix.events", partitions)
    # The snapshot, the updates and the drop copy's reports, each symbol's in one partition.
    assert {msg_type(m) for m in events} == {b"W", b"X", b"8"}
    assert partitions and all(len(found) == 1 for found in partitions.values())

    # As if the gateway had crashed before recording its last 20 messages as published.
    state_path.write_text(json.dumps({"simx": published - 20}))
    second = gateway(config, 2, capsys)
    assert second["seq"][0] == first["seq"][1] + 1  # bf-seq goes on
    assert json.loads(state_path.read_text())["simx"] > published
    after = read_topic(kafka_bootstrap, "fix.events")
    resent = [m for m in after if SOH + b"43=Y" + SOH in m]
    assert resent, "the counterparty was not asked to resend the unpublished messages"
