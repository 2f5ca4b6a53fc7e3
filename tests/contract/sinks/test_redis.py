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


def contract_json(q: Quote) -> bytes:
    """The contract's quote JSON as json.dumps writes it (compact): what Redis must hold."""
    fields = ("symbol", "bid", "bid_size", "ask", "ask_size", "ltp", "ltq", "volume", "ts", "seq")
    return json.dumps(dict(zip(fields, q[:10], strict=True)), separators=(",", ":")).encode()


def test_stored_values_are_the_contract_json_byte_for_byte(client):
    empty_book = Quote("ACME", None, None, None, None, None, None, 0.0, DAY * 86_400_000, 1,
                       DAY, None, None, None, None)  # fmt: skip
    no_asks = quote("ÄCME", 1, 0.1)._replace(ask=None, ask_size=None)  # a non-ASCII symbol
    odd = quote("BOLT", 1, 1e-7)._replace(volume=1.5e22, ltq=0.30000000000000004)
    batch = [empty_book, no_asks, odd, quote("ACME", 2, 12345.678)]
    assert QuoteWriter(client).write(batch) == 4
    assert client.get("quote:ACME") == contract_json(batch[3])
    assert client.get("quote:ÄCME") == contract_json(no_asks)
    assert client.get("quote:BOLT") == contract_json(odd)
    entries = client.xrange("stream:quotes")
    assert [(f[b"symbol"].decode(), f[b"data"]) for _, f in entries] == [
        (q.symbol, contract_json(q)) for q in batch
    ]
    bar = json.loads(client.get("ohlc:ACME:2025-11-25"))
    assert bar == {"open": 12345.678, "high": 12346.678, "low": 12344.678, "close": 12345.678,
                   "volume": 1002.0}  # fmt: skip
    assert 0 < client.ttl("ohlc:ACME:2025-11-25") <= 7 * 86_400


def test_a_batch_over_midnight_sets_the_bar_of_each_day(client):
    today = quote("ACME", 1, 10.0)
    tomorrow = quote("ACME", 2, 20.0, ts=(DAY + 1) * 86_400_000)._replace(day=DAY + 1)
    QuoteWriter(client).write([today, tomorrow])
    assert json.loads(client.get("ohlc:ACME:2025-11-25"))["close"] == 10.0
    assert json.loads(client.get("ohlc:ACME:2025-11-26"))["close"] == 20.0


def test_numbers_are_written_right_when_the_remembered_texts_overflow(client, monkeypatch):
    import sinks.redis

    monkeypatch.setattr(sinks.redis, "_TEXTS_MAX", 8)  # cleared every few numbers
    batch = [quote("ACME", n, 10.0 + n / 100) for n in range(1, 60)]
    QuoteWriter(client).write(batch)
    data = [f[b"data"] for _, f in client.xrange("stream:quotes")]
    assert data == [contract_json(q) for q in batch]
    assert len(sinks.redis._texts) <= 8
