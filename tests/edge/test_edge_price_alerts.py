"""Traders' price alerts over the WebSocket (issue 19, part 3), end to end: a real edge, real
PostgreSQL and Redis, and FIX files replayed through the real quotes flow (`replay`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest
from websockets.asyncio.client import connect

from brokerflow.commands.replay import replay
from edge.price_alerts import NO_POSTGRES
from sinks.postgres import migrate
from tests.edge.conftest import RunningEdge, running_edge
from tests.edge.test_edge_server import _drain, _until
from tests.flows.test_price_alerts_flow import day_file

LIMIT = 3


@pytest.fixture
def settings(settings_factory):
    made = settings_factory()
    migrate(made.postgres_dsn)
    return made


@pytest.fixture
def edge_pg(settings):
    """An edge on the test's Redis db and PostgreSQL database, a limit of `LIMIT` alerts."""
    with running_edge(settings.redis_url, postgres_dsn=settings.postgres_dsn,
                      price_alerts_max_per_user=LIMIT) as running:  # fmt: skip
        yield running


def run_quotes(settings, path: Path) -> None:
    replay([path], settings, progress=False, flows=("quotes",))


async def ask(ws, message: dict, kind: str) -> dict:
    await ws.send(json.dumps(message))
    return await _until(ws, kind, timeout=10)


async def create(ws, **fields) -> dict:
    return await ask(ws, {"action": "alert.create", **fields}, "alert.created")


def test_price_alert_set_over_the_websocket_fires_once_as_a_frame_and_a_row(
    tmp_path, settings, edge_pg: RunningEdge
):
    # The symbol is known once the quotes flow has published it (quote:AAPL).
    run_quotes(settings, day_file(tmp_path / "open.fix", ["100.00"]))
    crossing = day_file(tmp_path / "day.fix", ["100.50", "101.20", "100.90", "101.60"])

    async def scenario() -> None:
        ann = edge_pg.ws_url(edge_pg.token("ann", "trader", ("ACC1",)))
        bob = edge_pg.ws_url(edge_pg.token("bob", "trader", ("ACC2",)))
        async with connect(ann) as ws, connect(bob) as other:
            await _until(ws, "hello")
            await _until(other, "hello")
            created = await create(ws, symbol="aapl", condition="ltp_above", value=101)
            assert created == {"type": "alert.created", "id": created["id"], "symbol": "AAPL",
                               "condition": "ltp_above", "value": 101.0, "account": "ACC1",
                               "status": "ACTIVE"}  # fmt: skip

            await asyncio.to_thread(run_quotes, settings, crossing)
            fired = await _until(ws, "price_alert", timeout=10)
            ts = fired.pop("ts")
            stream_id = fired.pop("stream_id")
            assert fired == {"type": "price_alert", "id": created["id"], "symbol": "AAPL",
                             "condition": "ltp_above", "value": 101.0, "ltp": 101.2,
                             "account": "ACC1"}  # fmt: skip
            assert ts == 1_795_617_001_000  # 2026-11-25 14:30:01 UTC: the trade at 101.20

            # A restart over the same prices fires nothing again: the next price_alert frame
            # is the one of an alert set afterwards (frames come in stream order).
            await asyncio.to_thread(run_quotes, settings, crossing)
            later = await create(ws, symbol="AAPL", condition="ltp_above", value="101.5")
            await asyncio.to_thread(run_quotes, settings, crossing)
            assert (await _until(ws, "price_alert", timeout=10))["id"] == later["id"]
            assert [f for f in await _drain(ws) if f["type"] == "price_alert"] == []
            assert [f for f in await _drain(other) if f["type"] == "price_alert"] == []

            listed = await ask(ws, {"action": "alert.list"}, "alert.list")
            assert [(a["id"], a["status"], a["fired_ltp"]) for a in listed["alerts"]] == [
                (created["id"], "FIRED", 101.2), (later["id"], "FIRED", 101.6)]  # fmt: skip

        # A reconnect that resumes from before the first frame gets both again, as frames.
        async with connect(edge_pg.ws_url(edge_pg.token("ann", "trader", ("ACC1",)),
                                          last_alert_id="0-0")) as ws:  # fmt: skip
            first = await _until(ws, "price_alert", timeout=10)
            second = await _until(ws, "price_alert", timeout=10)
            assert (first["id"], first["stream_id"], second["id"]) == (
                created["id"], stream_id, later["id"])  # fmt: skip

    asyncio.run(scenario())
    counts = "SELECT count(*), count(DISTINCT details->>'id') FROM alerts WHERE kind = %s"
    with psycopg.connect(settings.postgres_dsn) as conn:
        assert conn.execute(counts, ("PRICE_ALERT",)).fetchone() == (2, 2)


def test_price_alert_refused_beyond_the_limit_and_bad_input_names_the_field(
    settings, edge_pg: RunningEdge
):
    edge_pg.set_quote("AAPL", seq=1, bid=100.0)

    async def scenario() -> None:
        token = edge_pg.token("ann", "trader", ("ACC1", "ACC2"))
        async with connect(edge_pg.ws_url(token)) as ws:
            await _until(ws, "hello")
            good = {"symbol": "AAPL", "condition": "ltp_below", "account": "ACC1"}

            async def error(**fields) -> dict:
                return await ask(ws, {"action": "alert.create", **good, **fields}, "error")

            for fields, field in [
                ({"symbol": "ZZZZ", "value": 90}, "symbol"),  # no quote:ZZZZ
                ({"symbol": "not a symbol!", "value": 90}, "symbol"),
                ({"condition": "ltp_between", "value": 90}, "condition"),
                ({"value": "abc"}, "value"),
                ({"value": -1}, "value"),
                ({"value": None}, "value"),
                ({"value": 90, "account": "ACC9"}, "account"),  # not in the token
                ({"value": 90, "account": None}, "account"),  # the token has two
            ]:
                frame = await error(**fields)
                assert frame["field"] == field, (fields, frame)
                assert frame["message"].startswith(f"{field}: "), frame
                assert frame["action"] == "alert.create"
            assert (await error(symbol="ZZZZ", value=90))["message"] == (
                "symbol: unknown symbol ZZZZ")  # fmt: skip

            ids = [(await create(ws, **good, value=90 - i))["id"] for i in range(LIMIT)]
            refused = await error(value=80)
            assert refused["message"].startswith("limit: user ann already holds 3 active")
            # Deleting one frees a place; deleting it twice, or another's, names the id.
            deleted = await ask(ws, {"action": "alert.delete", "id": ids[0]}, "alert.deleted")
            assert deleted == {"type": "alert.deleted", "id": ids[0]}
            again = await ask(ws, {"action": "alert.delete", "id": ids[0]}, "error")
            assert again["field"] == "id"
            bad_id = await ask(ws, {"action": "alert.delete", "id": "x"}, "error")
            assert bad_id["message"].startswith("id: ")
            await create(ws, **good, value=80)
            listed = await ask(ws, {"action": "alert.list"}, "alert.list")
            assert [a["value"] for a in listed["alerts"]] == [89.0, 88.0, 80.0]

        async with connect(edge_pg.ws_url(edge_pg.token("eve", "trader", ("ACC3",)))) as ws:
            await _until(ws, "hello")
            theirs = await ask(ws, {"action": "alert.delete", "id": ids[1]}, "error")
            assert theirs["field"] == "id"
            assert (await ask(ws, {"action": "alert.list"}, "alert.list"))["alerts"] == []

    asyncio.run(scenario())


def test_price_alerts_without_postgres_answer_an_error(edge: RunningEdge):
    async def scenario() -> None:
        async with connect(edge.ws_url(edge.token("ann", "trader", ("ACC1",)))) as ws:
            await _until(ws, "hello")
            for message in ({"action": "alert.list"},
                            {"action": "alert.create", "symbol": "AAPL",
                             "condition": "ltp_above", "value": 1}):  # fmt: skip
                frame = await ask(ws, message, "error")
                assert frame["message"] == NO_POSTGRES

    asyncio.run(scenario())
