"""Subscription modes and watchlists (issue 19), against a real edge, real Redis and the quotes
the real sink writes (`sinks.redis.QuoteWriter`), with `websockets` clients."""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import connect

from domain.quotes import Quote
from sinks.redis import QuoteWriter
from tests.edge.conftest import RunningEdge
from tests.edge.test_edge_server import _drain, _quotes, _until

LTP_FIELDS = {"type", "symbol", "ltp", "ts", "seq"}
QUOTE_FIELDS = {"type", "symbol", "bid", "bid_size", "ask", "ask_size", "ltp", "ltq", "volume",
                "ts", "seq", "prev_close", "change", "change_pct"}  # fmt: skip
FULL_FIELDS = QUOTE_FIELDS | {"open", "high", "low", "lower_band", "upper_band"}


def write(edge: RunningEdge, symbol: str, seq: int, ltp: float) -> None:
    """A quote as the quotes flow writes it: previous close 100.0, traded today."""
    ts = int(time.time() * 1000) + seq
    day = ts // 86_400_000
    q = Quote(symbol, ltp - 0.01, 100.0, ltp + 0.01, 200.0, ltp, 10.0, 500.0 + seq, ts, seq, day,
              99.0, max(ltp, 101.0), min(ltp, 98.0), ltp, 100.0)  # fmt: skip
    QuoteWriter(edge.redis).write([q])


def test_each_mode_has_exactly_its_fields_and_a_resubscribe_changes_it(edge: RunningEdge):
    for symbol in ("AAPL", "MSFT", "IBM"):
        write(edge, symbol, 1, 101.5)

    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ws:
            await _until(ws, "hello")
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"], "mode": "ltp"}))
            assert set(await _until(ws, "snapshot")) == LTP_FIELDS
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["MSFT"]}))  # default
            snapshot = await _until(ws, "snapshot")
            assert set(snapshot) == QUOTE_FIELDS
            # By hand: 101.5 - 100.0 = 1.5, 1.5 %
            assert (snapshot["prev_close"], snapshot["change"], snapshot["change_pct"]) == (
                100.0, 1.5, 1.5)  # fmt: skip
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["IBM"], "mode": "full"}))
            snapshot = await _until(ws, "snapshot")
            assert set(snapshot) == FULL_FIELDS
            assert (snapshot["open"], snapshot["lower_band"], snapshot["upper_band"]) == (
                99.0, None, None)  # fmt: skip
            await _drain(ws)
            for symbol in ("AAPL", "MSFT", "IBM"):
                write(edge, symbol, 2, 99.25)
            updates = {q["symbol"]: q for q in _quotes(await _drain(ws))}
            assert set(updates["AAPL"]) == LTP_FIELDS and updates["AAPL"]["ltp"] == 99.25
            assert set(updates["MSFT"]) == QUOTE_FIELDS
            assert (updates["MSFT"]["change"], updates["MSFT"]["change_pct"]) == (-0.75, -0.75)
            assert set(updates["IBM"]) == FULL_FIELDS and updates["IBM"]["seq"] == 2

            # Subscribing again in another mode changes the symbol's mode, with a snapshot.
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"], "mode": "full"}))
            snapshot = await _until(ws, "snapshot")
            assert set(snapshot) == FULL_FIELDS and snapshot["symbol"] == "AAPL"
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["IBM"], "mode": "ltp"}))
            assert set(await _until(ws, "snapshot")) == LTP_FIELDS
            await _drain(ws)
            for symbol in ("AAPL", "IBM"):
                write(edge, symbol, 3, 100.0)
            updates = {q["symbol"]: q for q in _quotes(await _drain(ws))}
            assert set(updates["AAPL"]) == FULL_FIELDS and updates["AAPL"]["change"] == 0.0
            assert set(updates["IBM"]) == LTP_FIELDS

    asyncio.run(scenario())


def test_two_clients_in_different_modes_of_one_symbol(edge: RunningEdge):
    write(edge, "AAPL", 1, 101.0)

    async def scenario() -> None:
        url = edge.ws_url(edge.token("ann", "trader", ("A1",)))
        async with connect(url) as a, connect(url) as b:
            await _until(a, "hello")
            await _until(b, "hello")
            await a.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"], "mode": "ltp"}))
            await b.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
            await _until(a, "snapshot")
            await _until(b, "snapshot")
            write(edge, "AAPL", 2, 102.0)
            assert set(_quotes(await _drain(a))[-1]) == LTP_FIELDS
            assert set(_quotes(await _drain(b))[-1]) == QUOTE_FIELDS

    asyncio.run(scenario())


def test_unknown_mode_is_an_error_naming_the_field(edge: RunningEdge):
    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ws:
            await _until(ws, "hello")
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"], "mode": "x"}))
            error = await _until(ws, "error")
            message = "mode: unknown value 'x' (ltp, quote or full)"
            assert error == {"type": "error", "message": message}

    asyncio.run(scenario())


def test_watchlist_persists_with_a_30_day_ttl_and_survives_a_reconnect(edge: RunningEdge):
    url = edge.ws_url(edge.token("wendy", "trader", ("A1",)))

    async def first() -> None:
        async with connect(url) as ws:
            assert (await _until(ws, "hello"))["watchlist"] == []
            await ws.send(json.dumps({"action": "watch.add", "symbols": ["AAPL", "MSFT"]}))
            assert await _until(ws, "watch") == {"type": "watch", "symbols": ["AAPL", "MSFT"]}
            await ws.send(json.dumps({"action": "watch.add", "symbols": ["MSFT", "IBM", "IBM"]}))
            assert (await _until(ws, "watch"))["symbols"] == ["AAPL", "MSFT", "IBM"]
            await ws.send(json.dumps({"action": "watch.remove", "symbols": ["AAPL", "NOPE"]}))
            assert (await _until(ws, "watch"))["symbols"] == ["MSFT", "IBM"]

    async def second() -> None:
        async with connect(url) as ws:
            assert (await _until(ws, "hello"))["watchlist"] == ["MSFT", "IBM"]

    asyncio.run(first())
    assert edge.redis.lrange("watchlist:wendy", 0, -1) == [b"MSFT", b"IBM"]
    assert 30 * 86_400 - 60 <= edge.redis.ttl("watchlist:wendy") <= 30 * 86_400
    edge.redis.expire("watchlist:wendy", 100)
    asyncio.run(second())
    assert edge.redis.ttl("watchlist:wendy") <= 100  # reading does not refresh it

    async def third() -> None:
        async with connect(url) as ws:
            await _until(ws, "hello")
            await ws.send(json.dumps({"action": "watch.add", "symbols": ["AAPL"]}))
            await _until(ws, "watch")

    asyncio.run(third())
    assert edge.redis.ttl("watchlist:wendy") > 30 * 86_400 - 60  # each write refreshes it


def test_watch_bad_input_gets_an_error_naming_the_field(edge: RunningEdge):
    limit = edge.config.max_symbols

    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("walt", "trader", ("A1",)))) as ws:
            await _until(ws, "hello")
            await ws.send(json.dumps({"action": "watch.add", "symbols": ["AAPL", 5]}))
            message = (await _until(ws, "error"))["message"]
            assert message == "watch.add: symbols: '5' is not a symbol"
            await ws.send(json.dumps({"action": "watch.add", "symbols": "AAPL"}))
            assert "watch.add: symbols" in (await _until(ws, "error"))["message"]
            too_many = [f"S{i}" for i in range(limit + 1)]
            await ws.send(json.dumps({"action": "watch.add", "symbols": too_many}))
            message = (await _until(ws, "error"))["message"]
            assert message.startswith("watch.add: symbols") and f"limit is {limit}" in message
            await ws.send(json.dumps({"action": "watch.add", "symbols": too_many[:limit]}))
            assert len((await _until(ws, "watch"))["symbols"]) == limit
            await ws.send(json.dumps({"action": "watch.add", "symbols": ["ONE_MORE"]}))
            message = (await _until(ws, "error"))["message"]
            assert message.startswith("watch.add: symbols") and f"limit is {limit}" in message

    asyncio.run(scenario())
    assert edge.redis.llen("watchlist:walt") == limit


def test_mode_frames_of_odd_documents_are_json_with_the_modes_fields():
    from edge import protocol

    docs = [
        b'{"symbol":"AAPL","bid":1.0,"ltp":101.3,"ltq":5.0,"ts":17,"seq":2,"prev_close":100.0,'
        b'"change":1.3,"change_pct":1.3,"open":100.0,"high":102.0,"low":99.0}',
        b'{"symbol":"A\\"B","ltp":null,"ts":1,"seq":3}',  # an escaped symbol: parsed instead
        b'{"bid":1,"symbol":"X","ltp":1e-07,"ts":2,"seq":3}',  # symbol not first
        b'{"symbol":"OLD","bid":1.0,"ltp":2.5,"ts":1,"seq":9}',  # written before prev_close
        b"{}",
    ]
    for data in docs:
        doc = json.loads(data)
        ltp = json.loads(protocol.mode_frame(data, "ltp", b"snapshot"))
        wanted = {k: doc.get(k) for k in ("symbol", "ltp", "ts", "seq")}
        assert ltp == {"type": "snapshot", **wanted}
        if data == b"{}":
            continue
        quote = json.loads(protocol.mode_frame(data, "quote"))
        assert {"prev_close", "change", "change_pct"} <= set(quote) and "open" not in quote
        full = json.loads(protocol.mode_frame(data, "full"))
        assert set(full) == set(quote) | {"open", "high", "low", "lower_band", "upper_band"}
        assert {k: v for k, v in full.items() if k in doc} == doc
