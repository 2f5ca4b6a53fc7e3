"""Prometheus metrics of a replay: the /metrics page shows non-zero counters for every flow that
ran, dead letters by error class, alerts by kind and the histograms (tests/conftest.py stores)."""

from __future__ import annotations

import socket

import pytest

from brokerflow.commands.replay import replay
from brokerflow.observability import set_kafka_idle, set_kafka_lag, stop_metrics
from tests.flows.test_dq_flow import fill
from tests.flows.test_quotes_flow import snapshot, write_file
from tests.scrape import Samples
from tests.scrape import scrape as scrape_url


@pytest.fixture
def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    yield free
    stop_metrics(free)


def scrape(port: int) -> Samples:
    return scrape_url(f"127.0.0.1:{port}")


def test_metrics_after_replay_count_every_flow_that_ran(tmp_path, settings_factory, port):
    settings = settings_factory(metrics_port=port, dq=True, dq_budget_share=1.0)
    lines = [
        snapshot("ACME", 0, "9.99", 500, "10.01", 400),
        snapshot("CROS", 1, "30.05", 100, "30.00", 100),  # crossed: a data-quality failure
        fill(10),  # ACC1 is no account here: the ledger makes it a dead letter
        b"8=FIX.4.4|9=5|35=0|10=000|",  # bad checksum: a DecodeError dead letter
    ]
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False,
           flows=("quotes", "ledger"))  # fmt: skip
    set_kafka_lag("fix.events", 0, 42, 1.5)
    set_kafka_idle("fix.unrouted/1", True)

    m = scrape(port)

    assert m[("brokerflow_messages_in_total", (("source", "file"),))] == 4
    out = {labels: v for (name, labels), v in m.items() if name == "brokerflow_messages_out_total"}
    flows = {dict(labels)["flow"] for labels, v in out.items() if v > 0}
    assert {"quotes", "ledger", "dead_letters", "quality"} <= flows
    assert m[("brokerflow_dead_letters_total", (("reason", "DecodeError"),))] == 1
    assert m[("brokerflow_dead_letters_total", (("reason", "DataQualityError"),))] == 1
    assert m[("brokerflow_dq_rows_total", (("outcome", "failed"), ("suite", "quotes")))] == 1
    assert m[("brokerflow_dq_coverage_ratio", (("suite", "quotes"),))] == 1.0
    quotes_step = (("step", "write_quotes"),)
    assert m[("brokerflow_sink_write_seconds_count", quotes_step)] > 0
    assert m[("brokerflow_batch_items_sum", quotes_step)] == 2
    assert m[("brokerflow_end_to_end_latency_seconds_count", quotes_step)] > 0
    lag = (("partition", "0"), ("topic", "fix.events"))
    assert m[("brokerflow_kafka_lag_messages", lag)] == 42
    assert m[("brokerflow_kafka_lag_seconds", lag)] == 1.5
    idle = (("partition", "1"), ("topic", "fix.unrouted"))
    assert m[("brokerflow_kafka_partition_idle", idle)] == 1
