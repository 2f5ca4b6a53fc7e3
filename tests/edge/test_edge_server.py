"""The WebSocket edge against real Redis, with real WebSocket clients (`websockets`)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.edge.conftest import RunningEdge
from tests.eventually import eventually_async
from tests.scrape import Samples, scrape


async def _recv(ws, timeout: float = 3.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def _until(ws, kind: str, timeout: float = 3.0) -> dict[str, Any]:
    """The next frame of type `kind`, skipping others."""

    async def next_of_kind() -> dict[str, Any] | None:
        frame = await _recv(ws, timeout)
        return frame if frame["type"] == kind else None

    return await eventually_async(next_of_kind, timeout, 0, f"a {kind!r} frame")


async def _drain(ws, quiet_s: float = 0.3) -> list[dict[str, Any]]:
    """Every frame until none arrives for `quiet_s`."""
    frames = []
    while True:
        try:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), quiet_s)))
        except TimeoutError:
            return frames


def _quotes(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quote updates in order, batched frames (`quotes`) unpacked."""
    out = []
    for frame in frames:
        if frame["type"] == "quote":
            out.append(frame)
        elif frame["type"] == "quotes":
            out.extend(frame["quotes"])
    return out


def test_edge_subscribe_gives_snapshot_then_updates_in_seq_order(edge: RunningEdge):
    edge.set_quote("AAPL", seq=1, bid=100.0)

    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ws:
            hello = await _until(ws, "hello")
            assert hello["role"] == "trader"
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
            snapshot = await _until(ws, "snapshot")
            assert (snapshot["symbol"], snapshot["bid"], snapshot["seq"]) == ("AAPL", 100.0, 1)
            for seq in range(2, 12):
                edge.set_quote("AAPL", seq=seq, bid=100.0 + seq)
                await asyncio.sleep(0.03)  # updates spread in time, on purpose
            updates = _quotes(await _drain(ws))
            seqs = [q["seq"] for q in updates]
            assert seqs == sorted(set(seqs)) and seqs[0] > 1
            assert updates[-1]["seq"] == 11 and updates[-1]["bid"] == 111.0
            assert all(q["type"] == "quote" and q["symbol"] == "AAPL" for q in updates)

    asyncio.run(scenario())


def test_edge_unsubscribe_stops_updates(edge: RunningEdge):
    edge.set_quote("MSFT", seq=1)
    edge.set_quote("IBM", seq=1)

    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ws:
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["MSFT", "IBM"]}))
            await _until(ws, "snapshot")
            await _until(ws, "snapshot")
            await ws.send(json.dumps({"action": "unsubscribe", "symbols": ["MSFT"]}))
            assert (await _until(ws, "unsubscribed"))["symbols"] == ["MSFT"]
            edge.set_quote("MSFT", seq=2)
            edge.set_quote("IBM", seq=2)
            updates = _quotes(await _drain(ws))
            assert [(q["symbol"], q["seq"]) for q in updates] == [("IBM", 2)]

    asyncio.run(scenario())


def test_edge_trader_never_receives_another_accounts_alert(edge: RunningEdge):
    async def scenario() -> None:
        async with (
            connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ann,
            connect(edge.ws_url(edge.token("bob", "trader", ("B1", "B2")))) as bob,
            connect(edge.ws_url(edge.token("sue", "analyst"))) as sue,
        ):
            for ws in (ann, bob, sue):
                await _until(ws, "hello")
            edge.add_alert("al-1", "MARGIN_CALL", "B1")
            edge.add_alert("al-2", "STOP_TRIGGERED", "A1")
            edge.add_alert("al-3", "WASH_TRADE", "A1")
            edge.add_alert("al-4", "LIQUIDATION", "B2")
            got = {}
            for name, ws in (("ann", ann), ("bob", bob), ("sue", sue)):
                got[name] = [f["alert_id"] for f in await _drain(ws) if f["type"] == "alert"]
            assert got["ann"] == ["al-2"]  # not B1's margin call, not the surveillance alert
            assert got["bob"] == ["al-1", "al-4"]
            assert got["sue"] == ["al-3"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "token", [None, "not-a-token", "forged"], ids=["missing", "garbage", "bad-signature"]
)
def test_edge_bad_token_closes_with_4401(edge: RunningEdge, token: str | None):
    if token == "forged":
        from edge.tokens import issue_token

        other_key = b"some other key, also thirty-two bytes"
        token = issue_token(other_key, "mallory", "analyst", (), 2_000_000_000, 60)

    async def scenario() -> None:
        async with connect(edge.ws_url(token)) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await _recv(ws)
            assert closed.value.rcvd.code == 4401
            assert "token" in closed.value.rcvd.reason

    asyncio.run(scenario())


def test_edge_bad_input_gets_error_frames_and_the_connection_stays(edge: RunningEdge):
    edge.set_quote("AAPL", seq=1)

    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ws:
            await _until(ws, "hello")
            await ws.send("{not json")
            assert "not JSON" in (await _until(ws, "error"))["message"]
            await ws.send(json.dumps({"action": "buy"}))
            assert "unknown action" in (await _until(ws, "error"))["message"]
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["x" * 5000]}))
            assert "limit" in (await _until(ws, "error"))["message"]
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["NOPE"]}))
            error = await _until(ws, "error")
            assert error["symbols"] == ["NOPE"] and "unknown symbol" in error["message"]
            too_many = [f"S{i}" for i in range(51)]
            await ws.send(json.dumps({"action": "subscribe", "symbols": too_many}))
            assert "limit is 50" in (await _until(ws, "error"))["message"]
            await ws.send(json.dumps({"action": "ping"}))
            assert (await _until(ws, "pong"))["type"] == "pong"

    asyncio.run(scenario())


def test_edge_slow_client_gets_latest_quote_and_every_alert(edge: RunningEdge):
    """A client that stops reading: quotes conflate to the latest, alerts all arrive in order."""
    edge.set_quote("AAPL", seq=0)
    padding = "x" * 4000  # big frames fill the socket buffers quickly
    published = 300

    async def scenario() -> None:
        async with connect(
            edge.ws_url(edge.token("ann", "trader", ("A1",))), max_queue=1, max_size=None
        ) as ws:
            await _until(ws, "hello")
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
            await _until(ws, "snapshot")
            # Stop reading; the edge goes on publishing for ~1.5 s.
            sent_alerts = []
            for seq in range(1, published + 1):
                edge.set_quote("AAPL", seq=seq, pad=padding)
                if seq % 20 == 0:
                    sent_alerts.append(f"slow-{seq}")
                    edge.add_alert(sent_alerts[-1], "STOP_TRIGGERED", "A1")
                await asyncio.sleep(0.005)  # a publishing pace, on purpose
            frames = await _drain(ws, quiet_s=1.0)
            updates = _quotes(frames)
            alerts = [f["alert_id"] for f in frames if f["type"] == "alert"]
            assert alerts == sent_alerts
            assert updates[-1]["seq"] == published
            assert len(updates) < published / 2, "a backlog of every update was sent"

    asyncio.run(scenario())


def test_edge_reconnect_with_last_alert_id_gets_missed_alerts(edge: RunningEdge):
    async def scenario() -> None:
        token = edge.token("ann", "trader", ("A1",))
        async with connect(edge.ws_url(token)) as ws:
            await _until(ws, "hello")
            edge.add_alert("r-1", "STOP_TRIGGERED", "A1")
            seen = await _until(ws, "alert")
            assert seen["alert_id"] == "r-1"
        # Offline: three alerts, one of them another account's.
        edge.add_alert("r-2", "MARGIN_CALL", "A1")
        edge.add_alert("r-x", "MARGIN_CALL", "B9")
        edge.add_alert("r-3", "LIQUIDATION", "A1")
        missed = ["r-2", "r-3"]
        # The cursor is the stream_id of the last alert seen, or its alert_id.
        for n, cursor in enumerate((seen["stream_id"], seen["alert_id"])):
            async with connect(edge.ws_url(token, last_alert_id=cursor)) as ws:
                await _until(ws, "hello")
                edge.add_alert(f"r-live-{n}", "STOP_TRIGGERED", "A1")
                frames = await _drain(ws)
                ids = [f["alert_id"] for f in frames if f["type"] == "alert"]
                missed.append(f"r-live-{n}")
                assert ids == missed  # in order, each once, nothing of B9

    asyncio.run(scenario())


def test_edge_operator_receives_health(edge: RunningEdge):
    edge.set_quote("AAPL", seq=1)

    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("ops", "operator"))) as ws:
            health = await _until(ws, "health", timeout=5)
            assert health["streams"]["stream:quotes"]["length"] == 1
            assert health["edge"]["connections"] >= 1

    asyncio.run(scenario())


def test_edge_compression_is_negotiated_per_client(edge: RunningEdge):
    edge.set_quote("AAPL", seq=1, bid=42.0)

    async def scenario() -> None:
        token = edge.token("ann", "trader", ("A1",))
        async with connect(edge.ws_url(token, compress="1")) as ws:
            assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions")
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
            assert (await _until(ws, "snapshot"))["bid"] == 42.0
        async with connect(edge.ws_url(token)) as ws:  # offered by the client, not asked for
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None

    asyncio.run(scenario())


def _edge_metrics(edge: RunningEdge) -> Samples:
    return scrape(edge.http_url + "/metrics")


def test_edge_metrics_show_connections_by_role_and_what_it_sent(edge: RunningEdge):
    edge.set_quote("AAPL", seq=1, bid=100.0)

    async def scenario() -> None:
        async with (connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as trader,
                    connect(edge.ws_url(edge.token("sue", "analyst"))) as _analyst):  # fmt: skip
            await _until(trader, "hello")
            await trader.send(json.dumps({"action": "subscribe", "symbols": ["AAPL"]}))
            await _until(trader, "snapshot")
            for seq in range(2, 6):
                edge.set_quote("AAPL", seq=seq, bid=100.0 + seq)
                await asyncio.sleep(0.03)  # updates spread in time, on purpose
            updates = _quotes(await _drain(trader))
            m = await asyncio.to_thread(_edge_metrics, edge)
            connections = {dict(k)["role"]: v for (name, k), v in m.items()
                           if name == "brokerflow_edge_connections"}  # fmt: skip
            assert connections == {"trader": 1, "analyst": 1, "operator": 0}
            assert m[("brokerflow_edge_quotes_in_total", ())] >= 4
            assert m[("brokerflow_edge_updates_out_total", ())] >= len(updates) > 0
            assert m[("brokerflow_edge_frames_out_total", ())] >= 3  # hellos, snapshot, updates
            assert m[("brokerflow_edge_flush_period_seconds", ())] == edge.config.flush_ms / 1000
            assert m[("brokerflow_edge_slow_consumer_closes_total", ())] == 0
            # every edge metric the alert rules read is one this exports
            rules = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-rules.yml"
            read = set(re.findall(r"\bbrokerflow_edge_\w+", rules.read_text()))
            assert read and read <= {name for name, _labels in m}
        trader_gauge = ("brokerflow_edge_connections", (("role", "trader"),))

        async def trader_gone() -> bool:
            m = await asyncio.to_thread(_edge_metrics, edge)
            return m[trader_gauge] == 0  # closed: gone

        await eventually_async(trader_gone, 5, 0.05, "the trader's connection gauge at 0")

    asyncio.run(scenario())
