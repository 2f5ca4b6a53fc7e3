"""Retries and give-ups are counted by store: what `brokerflow_sink_retries_total{store}` and
`brokerflow_sink_gave_up_total{store}` show, and the alert rules watch."""

from __future__ import annotations

import psycopg
import pytest
import redis

from sinks.retry import retry_counts, retry_with_backoff


def test_a_retried_write_counts_under_its_store_and_a_failed_one_as_given_up() -> None:
    retries0, gave_up0 = retry_counts()
    assert {"postgres", "redis", "clickhouse", "kafka"} <= set(retries0)  # zero before any
    calls = iter([redis.ConnectionError("down"), redis.ConnectionError("down"), None])

    def flaky() -> str:
        error = next(calls)
        if error is not None:
            raise error
        return "written"

    options = {"attempts": 3, "base_s": 0.0, "max_s": 0.0, "sleep": lambda _s: None}
    assert retry_with_backoff(flaky, retry_on=(redis.ConnectionError,), **options) == "written"

    def down() -> None:
        raise psycopg.OperationalError("connection refused")

    with pytest.raises(psycopg.OperationalError, match="connection refused"):
        retry_with_backoff(down, retry_on=(psycopg.OperationalError,), **options)
    retries, gave_up = retry_counts()
    assert retries["redis"] - retries0["redis"] == 2
    assert retries["postgres"] - retries0["postgres"] == 2
    assert gave_up["postgres"] - gave_up0["postgres"] == 1
    assert gave_up["redis"] == gave_up0["redis"]
