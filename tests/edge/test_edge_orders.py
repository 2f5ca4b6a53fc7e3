"""Order status on the WebSocket edge (issue 19, part 1): FIX files through the flows, real Redis
and PostgreSQL, the real edge server and WebSocket clients.

A trader's orders go through every status and its connections get the `order` frames in order,
with the reject's Text(58); another account's trader gets none of them; a reconnect gets the
open orders as one `orders` frame and no frame twice; a stop that fires reaches its trader as
TRIGGERED, and a child the kill switch holds as HELD with the reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import redis
from websockets.asyncio.client import connect

from brokerflow.commands.replay import replay
from edge.claims import Claims
from edge.config import EdgeConfig
from edge.hub import Hub
from sinks.order_status import OrderStatusWriter
from tests.edge.conftest import RunningEdge
from tests.edge.test_edge_server import _drain, _until
from tests.flows.test_executions_flow import load
from tests.flows.test_order_status_feed import report
from tests.flows.test_quotes_flow import incremental, ts, write_file


def _epoch_ms(fix_time: str) -> int:
    at = dt.datetime.strptime(fix_time, "%Y%m%d-%H:%M:%S.%f").replace(tzinfo=dt.UTC)
    return int(at.timestamp() * 1000)


def _orders(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == "order"]


def _accounts(settings, tmp_path, monkeypatch, *rows: str) -> None:
    (tmp_path / "accounts.csv").write_text("account,owner,cash\n" + "\n".join(rows) + "\n")
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)


def test_edge_order_frames_of_every_status_reach_only_their_trader_in_order(
    edge: RunningEdge, settings_factory, tmp_path, monkeypatch
):
    settings = settings_factory(redis_url=edge.config.redis_url)
    _accounts(settings, tmp_path, monkeypatch, "T1,tess,1000000", "U1,uma,1000000")
    # fmt: off
    lines = [
        report("E1", "T1", "C1", "0", "0", 0, 1),
        report("E2", "T1", "C1", "F", "1", 10, 2, last=40, cum=40, leaves=60, avg="10.00"),
        report("E3", "T1", "C2", "5", "1", 20, 3, orig="C1", qty=80, cum=40, leaves=40,
               avg="10.00"),  # replaced down to 80
        report("E4", "T1", "C2", "F", "2", 30, 4, qty=80, last=40, cum=80, leaves=0,
               avg="10.00"),
        report("E5", "T1", "C2", "H", "1", 40, 5, qty=80, cum=40, leaves=40, avg="10.00",
               ref="E4"),  # the exchange busts the last fill: the order is open again
        report("E6", "T1", "C2", "G", "1", 45, 6, qty=80, last=30, cum=30, leaves=50,
               avg="10.00", ref="E2"),  # and corrects the first
        report("E7", "T1", "C9", "8", "8", 50, 7, order="O9", leaves=0,
               text="price outside the daily band"),
        report("E8", "T1", "C3", "0", "0", 60, 8, order="O3"),
        report("E9", "T1", "C3", "C", "C", 70, 9, order="O3", leaves=0),  # expired
        report("E10", "T1", "C4", "0", "0", 80, 10, order="O4"),
        report("E11", "T1", "C4-X", "4", "4", 90, 11, order="O4", leaves=0, orig="C4"),
        report("E12", "T1", "C5", "0", "0", 100, 12, order="O5"),
        report("F1", "U1", "D1", "0", "0", 5, 13, order="P1"),
        report("F2", "U1", "D1", "F", "2", 15, 14, order="P1", last=100, cum=100, leaves=0,
               avg="10.00"),
    ]
    # fmt: on
    day = write_file(tmp_path / "day.fix", lines)

    async def scenario() -> None:
        tess_url = edge.ws_url(edge.token("tess", "trader", ("T1",)))
        async with (
            connect(tess_url) as tess,
            connect(edge.ws_url(edge.token("uma", "trader", ("U1",)))) as uma,
            connect(edge.ws_url(edge.token("sue", "analyst"))) as sue,
        ):
            await _until(tess, "hello")
            assert (await _until(tess, "orders"))["orders"] == []  # nothing open yet
            await _until(uma, "orders")
            await _until(sue, "hello")
            await asyncio.to_thread(replay, [day], settings, progress=False, flows=("ledger",))
            got = _orders(await _drain(tess, 1.0))
            uma_got = _orders(await _drain(uma))
            sue_got = await _drain(sue)
        assert [(f["exec_id"], f["cl_ord_id"], f["status"], f["exec_type"]) for f in got] == [
            ("E1", "C1", "NEW", "NEW"),
            ("E2", "C1", "PARTIALLY_FILLED", "TRADE"),
            ("E3", "C2", "REPLACED", "REPLACED"),
            ("E4", "C2", "FILLED", "TRADE"),
            ("E5", "C2", "PARTIALLY_FILLED", "TRADE_CANCEL"),
            ("E6", "C2", "PARTIALLY_FILLED", "TRADE_CORRECT"),
            ("E7", "C9", "REJECTED", "REJECTED"),
            ("E8", "C3", "NEW", "NEW"),
            ("E9", "C3", "EXPIRED", "EXPIRED"),
            ("E10", "C4", "NEW", "NEW"),
            ("E11", "C4-X", "CANCELED", "CANCELED"),
            ("E12", "C5", "NEW", "NEW"),
        ]
        assert {f["account"] for f in got} == {"T1"}
        assert got[6]["reason"] == "price outside the daily band"
        assert got[2]["orig_cl_ord_id"] == "C1"
        fill = got[1]
        assert (fill["last_qty"], fill["last_px"], fill["cum_qty"], fill["leaves_qty"]) == (
            40, 10.0, 40, 60)  # fmt: skip
        assert [(f["cl_ord_id"], f["status"]) for f in uma_got] == [
            ("D1", "NEW"), ("D1", "FILLED")]  # fmt: skip
        assert all(f["type"] != "order" for f in sue_got)  # an analyst is no trader

        # A reconnect: the open orders (the replaced C2 after its bust and correction, C5),
        # their latest frames, once each; then no order frame again.
        async with connect(tess_url) as again:
            await _until(again, "hello")
            snapshot = (await _until(again, "orders"))["orders"]
            rest = _orders(await _drain(again))
        assert [(o["cl_ord_id"], o["exec_id"], o["status"]) for o in snapshot] == [
            ("C2", "E6", "PARTIALLY_FILLED"), ("C5", "E12", "NEW")]  # fmt: skip
        assert rest == []

    asyncio.run(scenario())
    client = redis.Redis.from_url(settings.redis_url)
    assert set(client.hkeys("orders:open:T1")) == {b"C2", b"C5"}
    assert client.exists("orders:open:U1") == 0  # its one order is filled
    assert 0 < client.ttl("orders:open:T1") <= 36 * 3600
    client.close()


class _Recorder:
    """A connection's socket side that keeps what the hub sends it."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def send_frame(self, payload: bytes) -> None:
        self.frames.append(json.loads(payload))

    def close(self, code: int, reason: str) -> None:
        pass


def _order(exec_id: str, cl_ord_id: str, status: str, account: str = "A1") -> tuple:
    data = json.dumps({"type": "order", "account": account, "cl_ord_id": cl_ord_id,
                       "status": status, "exec_id": exec_id, "ts": 1})  # fmt: skip
    final = status in ("FILLED", "CANCELED")
    return (exec_id, account, data, "" if final else cl_ord_id, cl_ord_id if final else "", "")


def test_edge_open_order_snapshot_with_live_frames_meanwhile_has_no_duplicate_or_gap(
    redis_db_url: str,
):
    """Frames the reader hands over before, during and after the snapshot read: each of the
    order's changes reaches the client once, in order, either in the snapshot or live."""
    writer = OrderStatusWriter(redis_db_url)
    sync = redis.Redis.from_url(redis_db_url)

    async def scenario() -> None:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_db_url)
        config = EdgeConfig(redis_url=redis_db_url, secret=b"x" * 32)
        hub = Hub(config, client)
        other = _Recorder()
        await hub.open_orders(hub.add(other, Claims("bo", "trader", frozenset({"B1"}), 0)))
        me = _Recorder()
        session = hub.add(me, Claims("al", "trader", frozenset({"A1"}), 0))
        writer.write([_order("X1", "K1", "NEW"), _order("X2", "K2", "NEW")])
        entries = sync.xrange("stream:orders")
        hub.on_orders(entries[:1])  # read before the snapshot: held
        writer.write([_order("X3", "K1", "PARTIALLY_FILLED"), _order("X4", "K2", "FILLED"),
                      _order("Y1", "L1", "NEW", "B1")])  # fmt: skip
        await hub.open_orders(session)
        writer.write([_order("X5", "K1", "FILLED"), _order("X6", "K3", "NEW")])
        entries = sync.xrange("stream:orders")
        hub.on_orders(entries[1:3])  # a reader behind: in the snapshot already
        hub.on_orders(entries[3:])
        hub.on_orders(entries[3:])  # the same entries twice: sent once
        await client.aclose()
        assert [f["type"] for f in me.frames] == ["orders", "order", "order"]
        assert [(o["cl_ord_id"], o["exec_id"]) for o in me.frames[0]["orders"]] == [("K1", "X3")]
        assert [f["exec_id"] for f in me.frames[1:]] == ["X5", "X6"]
        assert [f.get("exec_id", f["type"]) for f in other.frames] == ["orders", "Y1"]

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
        sync.close()


def test_edge_stop_trigger_reaches_its_trader_as_triggered(
    edge: RunningEdge, settings_factory, tmp_path, monkeypatch
):
    from tests.flows.test_stops_flow import stop

    settings = settings_factory(redis_url=edge.config.redis_url)
    _accounts(settings, tmp_path, monkeypatch, "ACC1,alice,100000", "ACC2,bob,100000")

    def trade(px: str, at_ms: int, seq: int) -> bytes:
        return incremental([[(279, 0), (269, 2), (55, "ACME"), (270, px), (271, 100)]], at_ms, seq)

    lines = [trade("100.00", 0, 1), stop("S1", "2", "99.50", 100, 2), trade("99.00", 1_000, 3)]
    day = write_file(tmp_path / "day.fix", lines)

    async def scenario() -> tuple[list, list]:
        async with (
            connect(edge.ws_url(edge.token("alice", "trader", ("ACC1",)))) as alice,
            connect(edge.ws_url(edge.token("bob", "trader", ("ACC2",)))) as bob,
        ):
            await _until(alice, "orders")
            await _until(bob, "orders")
            await asyncio.to_thread(
                replay, [day], settings, progress=False, flows=("quotes", "stops"),
                orders_out=tmp_path / "out.fix",
            )  # fmt: skip
            return _orders(await _drain(alice, 1.0)), _orders(await _drain(bob))

    got, bob_got = asyncio.run(scenario())
    assert [(f["cl_ord_id"], f["status"], f["child_cl_ord_id"]) for f in got] == [
        ("S1", "TRIGGERED", "S1.T")]  # fmt: skip
    frame = got[0]
    assert (frame["account"], frame["symbol"], frame["side"]) == ("ACC1", "ACME", "SELL")
    assert (frame["last_px"], frame["trigger_px"], frame["stop_px"]) == (99.0, 99.0, 99.5)
    assert frame["leaves_qty"] == 100
    assert frame["ts"] == _epoch_ms(ts(1_000))  # the event time of the trade that fired it
    assert bob_got == []
    # Replayed again: the trigger is on the stream once.
    replay([day], settings, progress=False, flows=("quotes", "stops"))
    client = redis.Redis.from_url(settings.redis_url)
    triggered = [f for _, f in client.xrange("stream:orders") if b"TRIGGERED" in f[b"data"]]
    assert len(triggered) == 1
    client.close()


def test_stop_sink_held_child_becomes_a_held_order_frame_with_the_reason(
    tmp_path, pg_dsn, redis_db_url
):
    from brokerflow.commands.halt import halt
    from connectors.fix.encode import OutboundOrder
    from flows.stops import encode_child_order as _encode
    from sinks.postgres import migrate
    from sinks.stops import TRIGGERED, StopOutputSink, StopRow, StopWrites

    migrate(pg_dsn)
    halt(pg_dsn, "ACC1", "review", "ops")
    sink = StopOutputSink(pg_dsn, tmp_path / "out.fix", _encode, redis_url=redis_db_url)
    part = sink.build_part("write_stops", "stops", None)
    row = StopRow("S9", "ACC1", "ACME", "2", "3", Decimal("99.50"), None, Decimal(10), None,
                  TRIGGERED, Decimal("99.00"), 5_000_000_000, "S9.T")  # fmt: skip
    child = OutboundOrder("S9.T", "ACC1", "ACME", "2", Decimal(10), "1", None, 5_000_000_000)
    try:
        part.write_batch([StopWrites((row,), (("S9.T", child),))])
        part._background.drain()
        part.write_batch([StopWrites((row,), (("S9.T", child),))])  # a replay: nothing new
        part._background.drain()
    finally:
        part.close()
    client = redis.Redis.from_url(redis_db_url)
    frames = [json.loads(f[b"data"]) for _, f in client.xrange("stream:orders")]
    assert [(f["cl_ord_id"], f["status"]) for f in frames] == [
        ("S9", "TRIGGERED"), ("S9.T", "HELD")]  # fmt: skip
    held = frames[1]
    assert held["reason"] == "kill switch (ACC1): review"
    assert (held["stop_cl_ord_id"], held["account"], held["ts"]) == ("S9", "ACC1", 5000)
    # Open: the held child (the venue's reports take over once released); the stop is done.
    assert client.hkeys("orders:open:ACC1") == [b"S9.T"]
    client.close()
