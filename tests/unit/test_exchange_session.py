"""`simulate-exchange` over real FIX sessions on loopback: our initiator against its acceptor."""

from __future__ import annotations

import asyncio
import time

from connectors.fix.live import market_data_request
from connectors.fix.session import Initiator, SessionConfig
from simulator.exchange import ExchangeCore
from simulator.exchange_server import ExchangeServer, default_sessions


def _type(raw: bytes) -> bytes:
    return raw.split(b"\x0135=", 1)[1].split(b"\x01", 1)[0]


def _field(raw: bytes, tag: int) -> bytes:
    return raw.split(b"\x01%d=" % tag, 1)[1].split(b"\x01", 1)[0]


async def _session(sender: str, until, seconds: float = 5.0, orders=()) -> list[bytes]:
    core = ExchangeCore(4, time.time_ns(), rate_per_symbol=30, accounts=10, orders_per_minute=300)
    server = ExchangeServer(core, default_sessions())
    port = await server.start()
    initiator = Initiator(SessionConfig(sender, "SIMX", port=port, heartbeat_s=5))
    initiator.start()
    received: list[bytes] = []
    try:
        await initiator.wait_logged_on(5)
        symbols = tuple(s.decode() for s in core.symbols[:2])
        if sender == "BROKERFLOW":
            initiator.send(market_data_request("R1", symbols))
        for order in orders:
            initiator.send((b"D", [(11, order[0]), (1, b"ACC1"), (55, symbols[0]),
                                   (54, order[1]), (60, b"20260101-00:00:00"), (38, b"200"),
                                   (40, b"1")]))  # fmt: skip
        deadline = time.monotonic() + seconds
        batches = initiator.batches().__aiter__()
        while time.monotonic() < deadline and not until(received):
            try:
                batch = await asyncio.wait_for(batches.__anext__(), 0.5)
            except TimeoutError:
                continue
            received.extend(batch.messages)
    finally:
        await initiator.stop()
        await server.close()
    return received


def test_a_market_data_request_is_answered_with_snapshots_then_incrementals():
    received = asyncio.run(_session("BROKERFLOW", lambda r: sum(_type(m) == b"X" for m in r) > 5))
    md = [m for m in received if _type(m) in (b"W", b"X")]
    assert [_type(m) for m in md[:2]] == [b"W", b"W"]
    assert {_field(m, 55) for m in md[:2]} == {b"AAPL", b"MSFT"}
    assert sum(_type(m) == b"X" for m in md) > 5 and b"W" not in [_type(m) for m in md[2:]]
    assert all(_field(m, 55) in (b"AAPL", b"MSFT") for m in md)  # only what was asked for


def test_an_order_sent_on_the_order_entry_session_comes_back_filled():
    def filled(r: list[bytes]) -> bool:
        return sum(_type(m) == b"8" and _field(m, 150) == b"F" for m in r) >= 2

    received = asyncio.run(
        _session("BROKERFLOW-OE", filled, orders=[(b"OE-1", b"1"), (b"OE-2", b"2")])
    )
    reports = [(_field(m, 11), _field(m, 150), _field(m, 39)) for m in received]
    assert reports == [(b"OE-1", b"0", b"0"), (b"OE-1", b"F", b"2"),
                       (b"OE-2", b"0", b"0"), (b"OE-2", b"F", b"2")]  # fmt: skip
    fills = [m for m in received if _field(m, 150) == b"F"]
    assert [_field(m, 32) for m in fills] == [b"200", b"200"]
