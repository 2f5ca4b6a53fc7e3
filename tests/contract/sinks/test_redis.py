"""The Redis quote writer against a real Redis: latest quote, stream, OHLC, and nothing twice."""

from __future__ import annotations

import datetime as dt
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
    """The contract's quote JSON as json.dumps writes it (compact), then the fields docs/edge.md
    adds (prev_close, change, change_pct, open, high, low): what Redis must hold."""
    fields = ("symbol", "bid", "bid_size", "ask", "ask_size", "ltp", "ltq", "volume", "ts", "seq")
    doc = dict(zip(fields, q[:10], strict=True))
    traded = q.prev_close is not None and q.open is not None and q.ltp is not None
    doc["prev_close"] = q.prev_close
    doc["change"] = round(q.ltp - q.prev_close, 8) if traded else None
    doc["change_pct"] = round((q.ltp - q.prev_close) / q.prev_close * 100, 2) if traded else None
    doc |= {"open": q.open, "high": q.high, "low": q.low}
    return json.dumps(doc, separators=(",", ":")).encode()


def test_stored_values_are_the_contract_json_byte_for_byte(client):
    empty_book = Quote("ACME", None, None, None, None, None, None, 0.0, DAY * 86_400_000, 1,
                       DAY, None, None, None, None)  # fmt: skip
    no_asks = quote("ÄCME", 1, 0.1)._replace(ask=None, ask_size=None)  # a non-ASCII symbol
    odd = quote("BOLT", 1, 1e-7)._replace(volume=1.5e22, ltq=0.30000000000000004)
    batch = [empty_book, no_asks, odd, quote("ACME", 2, 12345.678)._replace(prev_close=12000.5)]
    assert QuoteWriter(client).write(batch) == 4
    assert client.get("quote:ACME") == contract_json(batch[3])
    assert client.get("quote:ÄCME") == contract_json(no_asks)
    assert client.get("quote:BOLT") == contract_json(odd)
    entries = client.xrange("stream:quotes")
    assert [(f[b"symbol"].decode(), f[b"data"]) for _, f in entries] == [
        (q.symbol, contract_json(q)) for q in batch
    ]
    acme = json.loads(client.get("quote:ACME"))
    assert (acme["change"], acme["change_pct"]) == (345.178, 2.88)  # by hand: 345.178/12000.5
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


def test_change_is_null_before_the_days_first_trade_and_without_a_previous_close(client):
    morning = quote("ACME", 1, 10.0)._replace(open=None, high=None, low=None, close=None,
                                                prev_close=9.5)  # fmt: skip
    QuoteWriter(client).write([morning, quote("BOLT", 1, 5.0)])
    acme = json.loads(client.get("quote:ACME"))
    assert (acme["prev_close"], acme["change"], acme["change_pct"]) == (9.5, None, None)
    bolt = json.loads(client.get("quote:BOLT"))
    assert (bolt["prev_close"], bolt["change"], bolt["change_pct"]) == (None, None, None)


def test_change_has_no_float_noise_and_no_negative_zero():
    from sinks.redis import change_of

    assert change_of(101.3, 100.0) == (1.3, 1.3)
    assert change_of(99.9, 100.0) == (-0.1, -0.1)
    assert change_of(100.0, 100.0) == (0.0, 0.0)
    assert str(change_of(100.0, 100.0)[0]) == "0.0"
    assert change_of(10.0, 0.0) == (10.0, None)


def test_prev_close_reader_takes_the_latest_earlier_day_redis_holds(client, redis_db_url):
    from sinks.redis import PrevCloseReader

    client.set("ohlc:ACME:2025-11-21", json.dumps({"open": 1, "high": 2, "low": 1, "close": 9.75,
                                                   "volume": 5.0}))  # a Friday  # fmt: skip
    client.set("ohlc:ACME:2025-11-18", json.dumps({"close": 1.0}))  # older: not taken
    client.set("ohlc:ACME:2025-11-24", json.dumps({"close": 12.0}))  # the day itself: not taken
    client.set("ohlc:BOLT:2025-11-23", b"not json")
    reader = PrevCloseReader(redis_db_url)
    try:
        monday = (dt.date(2025, 11, 24) - dt.date(1970, 1, 1)).days
        assert reader.read([("ACME", monday), ("BOLT", monday), ("CARD", monday)]) == {
            "ACME": 9.75
        }
    finally:
        reader.close()
