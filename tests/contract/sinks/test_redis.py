"""The Redis quote writer against a real Redis: latest quote, stream, OHLC, and nothing twice."""

from __future__ import annotations

import json

import pytest
import redis

from domain.quotes import Quote
from sinks.redis import QuoteWriter

DAY = 20_417  # 2025-11-25


def quote(symbol: str, seq: int, bid: float, ts: int | None = None) -> Quote:
    ts = ts if ts is not None else DAY * 86_400_000 + 52_200_000 + seq
    return Quote(symbol, bid, 100.0, bid + 0.01, 200.0, bid, 10.0, 1_000.0 + seq, ts, seq, DAY,
                 bid, bid + 1, bid - 1, bid)  # fmt: skip


@pytest.fixture
def client(redis_db_url: str):
    c = redis.Redis.from_url(redis_db_url)
    yield c
    c.close()


def stream(client: redis.Redis) -> list[tuple[str, int]]:
    return [
        (f[b"symbol"].decode(), json.loads(f[b"data"])["seq"])
        for _, f in client.xrange("stream:quotes")
    ]


def test_latest_quote_stream_in_order_and_ohlc(client):
    writer = QuoteWriter(client)
    batch = [quote("ACME", 1, 10.0), quote("BOLT", 1, 5.0), quote("ACME", 2, 10.5)]
    assert writer.write(batch) == 3
    assert json.loads(client.get("quote:ACME"))["seq"] == 2
    assert json.loads(client.get("quote:ACME"))["bid"] == 10.5
    assert stream(client) == [("ACME", 1), ("BOLT", 1), ("ACME", 2)]
    assert json.loads(client.get("ohlc:ACME:2025-11-25"))["high"] == 11.5


def test_a_batch_sent_again_after_a_lost_reply_adds_nothing(client):
    writer = QuoteWriter(client)
    batch = [quote("ACME", 1, 10.0), quote("ACME", 2, 10.1), quote("BOLT", 1, 5.0)]
    writer._send(batch)
    writer._send(batch)  # what a retry does when the first reply was lost in a dropped connection
    assert stream(client) == [("ACME", 1), ("ACME", 2), ("BOLT", 1)]
    writer._send([quote("ACME", 3, 10.2)])  # the next batch still goes out
    assert stream(client)[-1] == ("ACME", 3)


def test_quotes_older_than_what_redis_holds_are_skipped(client):
    QuoteWriter(client).write([quote("ACME", 5, 10.0)])
    restarted = QuoteWriter(client)  # a restart replays a stretch of input
    replayed = [quote("ACME", 4, 9.0), quote("ACME", 5, 10.0), quote("ACME", 6, 10.2)]
    assert restarted.write(replayed) == 1
    assert stream(client) == [("ACME", 5), ("ACME", 6)]
