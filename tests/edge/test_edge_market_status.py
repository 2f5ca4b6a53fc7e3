"""Market status on the edge (issue 19): a real edge and Redis, the statuses written by the
flows' own sink (`sinks.market_status.write_statuses`). On connect the current statuses (the
market's, then each symbol not OPEN); then every change at once to every connection."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect

from domain.circuit_breaker import CircuitBreakerStatus
from domain.events import HALTED, SecurityStatus
from domain.market_status import MarketStatusBook
from sinks.market_status import HALTED_SYMBOLS, write_statuses
from tests.edge.conftest import RunningEdge
from tests.edge.test_edge_server import _drain, _until

T = 1_796_000_000_000_000_000  # event time, ns
MIN = 60 * 10**9


def symbol(name: str, state: str | None, ts: int, code: str = "2") -> SecurityStatus:
    return SecurityStatus(name, state, code, "news" if state == HALTED else None, None, None, ts)


def statuses(frames: list[dict]) -> list[tuple]:
    return [(f["scope"], f["state"], f["level"]) for f in frames if f["type"] == "market_status"]


def test_connect_gets_the_current_statuses_then_every_change_reaches_every_connection(
    edge: RunningEdge,
):
    book = MarketStatusBook()
    trip = CircuitBreakerStatus(HALTED, 1, T + 45 * MIN, "index circuit breaker level 1", T)
    before = [
        book.apply(trip),
        book.apply(symbol("AAPL", HALTED, T + 1)),
        book.apply(symbol("MSFT", HALTED, T + 2)),
        book.apply(symbol("MSFT", "OPEN", T + 3, "17")),  # reopened: not in the snapshot
    ]
    write_statuses(edge.redis, before, 1000)
    assert edge.redis.smembers(HALTED_SYMBOLS) == {b"AAPL"}

    async def scenario() -> None:
        trader_url = edge.ws_url(edge.token("ann", "trader", ("A1",)))
        analyst_url = edge.ws_url(edge.token("bob", "analyst"))
        async with connect(trader_url) as trader, connect(analyst_url) as analyst:
            for ws in (trader, analyst):
                await _until(ws, "hello")
                first = await _until(ws, "market_status")
                assert (first["scope"], first["state"], first["level"]) == ("market", HALTED, 1)
                assert first["until"] == (T + 45 * MIN) // 10**6
                assert first["source"] == "circuit_breaker"
                rest = await _drain(ws)
                assert statuses(rest) == [("AAPL", HALTED, None)]  # no MSFT, nothing twice
            # live: AAPL reopens, then the breaker's halt ends; both go to both at once
            write_statuses(edge.redis, [book.apply(symbol("AAPL", "OPEN", T + 4, "17"))], 1000)
            reopen = CircuitBreakerStatus("OPEN", 1, None, "ended", T + 45 * MIN)
            write_statuses(edge.redis, [book.apply(reopen)], 1000)
            for ws in (trader, analyst):
                frames = await _drain(ws)
                assert statuses(frames) == [("AAPL", "OPEN", None), ("market", "OPEN", None)]
        assert edge.redis.smembers(HALTED_SYMBOLS) == set()

        # a later connection: the market OPEN, no symbol halted
        async with connect(trader_url) as late:
            await _until(late, "hello")
            frames = [await _until(late, "market_status"), *await _drain(late)]
            assert statuses(frames) == [("market", "OPEN", None)]

    asyncio.run(scenario())


def test_snapshot_and_stream_replayed_by_the_sink_add_nothing(edge: RunningEdge):
    book = MarketStatusBook()
    changes = [book.apply(symbol("IBM", HALTED, T))]
    assert write_statuses(edge.redis, changes, 1000) == 1
    assert write_statuses(edge.redis, changes, 1000) == 0  # a replay: no second entry
    assert edge.redis.xlen("stream:market_status") == 1

    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ws:
            await _until(ws, "hello")
            first = await _until(ws, "market_status")
            assert (first["scope"], first["state"], first["reason"]) == ("IBM", HALTED, "news")
            assert first["ts"] == T // 10**6  # event time, epoch ms
            assert statuses(await _drain(ws)) == []

    asyncio.run(scenario())
