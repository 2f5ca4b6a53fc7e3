"""The traders' `positions` frames against a real edge, Redis and PostgreSQL: the holdings
documents come from the ledger writer booking fills, the margin documents from the margin
sink's publisher, the marks from quotes as the quote flow writes them."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import connect

from domain.positions import margin_doc
from sinks.ledger import LedgerWriter
from sinks.positions import MARGIN, PositionsPublisher
from sinks.postgres import migrate
from tests.contract.sinks.test_ledger import fill
from tests.edge.conftest import RunningEdge
from tests.eventually import eventually_async

D = Decimal


def _positions(raw: str | bytes) -> dict[str, Any] | None:
    frame = json.loads(raw, parse_float=Decimal)
    return frame if frame["type"] == "positions" else None


async def _next_positions(ws, timeout: float = 4.0) -> dict[str, Any]:
    """The next positions frame, skipping other frames."""

    async def next_positions() -> dict[str, Any] | None:
        return _positions(await asyncio.wait_for(ws.recv(), timeout))

    return await eventually_async(next_positions, timeout, 0, "a positions frame")


async def _collect(ws, seconds: float) -> list[dict[str, Any]]:
    """Every positions frame that arrives within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    frames = []
    while (left := deadline - loop.time()) > 0:
        try:
            frame = _positions(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            break
        if frame is not None:
            frames.append(frame)
    return frames


def _holding(frame: dict[str, Any], symbol: str) -> dict[str, Any]:
    [holding] = [h for h in frame["holdings"] if h["symbol"] == symbol]
    return holding


@pytest.fixture
def ledger(pg_dsn: str, redis_db_url: str):
    """Book fills as the ledger flow does, publishing holdings documents to the edge's Redis."""
    migrate(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "INSERT INTO accounts (account, owner, cash) VALUES "
            "('A1', 'ann', 100000), ('B1', 'bob', 5000)"
        )
    publisher = PositionsPublisher(redis_db_url)
    conn = psycopg.connect(pg_dsn, autocommit=True)
    writer = LedgerWriter(conn, positions=publisher)
    yield lambda *events: writer.apply(list(events))
    conn.close()
    publisher.close()


def test_edge_positions_on_connect_after_a_fill_and_a_mark_move_never_another_account(
    edge: RunningEdge, ledger, redis_db_url: str
):
    ledger(
        fill("E1", "100", "10.00", "100", cl_ord_id="c1", account="A1", symbol="ACME", n=1),
        fill("E2", "10", "50.00", "10", cl_ord_id="c2", account="B1", symbol="XYZ", n=2),
    )
    margins = PositionsPublisher(redis_db_url)
    at = 1_700_000_000_500
    margins.publish(MARGIN, [
        ("A1", at, margin_doc("A1", D("99050"), D("98750"), "NORMAL", at)),
        ("B1", at, margin_doc("B1", D("4900"), D("4750"), "NORMAL", at)),
    ])  # fmt: skip
    edge.set_quote("ACME", 1, bid=10.5)  # last trade 10.5: the mark
    edge.set_quote("XYZ", 1, bid=40.0)

    async def scenario() -> None:
        async with (
            connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ann,
            connect(edge.ws_url(edge.token("bob", "trader", ("B1",)))) as bob,
        ):
            first = await _next_positions(ann)
            assert {k: first[k] for k in ("account", "cash", "equity", "excess", "state")} == {
                "account": "A1", "cash": D("99000.00"), "equity": D("99050"),
                "excess": D("98750"), "state": "NORMAL",
            }  # fmt: skip
            assert _holding(first, "ACME") == {
                "symbol": "ACME", "quantity": 100, "avg_price": D("10.000000"), "mark": D("10.5"),
                "unrealised_pnl": 100 * (D("10.5") - D("10")),  # 50
                "realised_pnl_today": 0,
            }  # fmt: skip
            assert [h["symbol"] for h in first["holdings"]] == ["ACME"]
            bob_first = await _next_positions(bob)
            assert bob_first["account"] == "B1"
            assert _holding(bob_first, "XYZ")["unrealised_pnl"] == 10 * (D("40.0") - D("50"))

            # A fill: A1 sells 40 at 10.80 (realised 40 x 0.80 = 32 today).
            ledger(fill("E3", "40", "10.80", "40", cl_ord_id="c3", account="A1",
                        symbol="ACME", side="2", n=3))  # fmt: skip
            after_fill = await _next_positions(ann)
            acme = _holding(after_fill, "ACME")
            assert (acme["quantity"], acme["realised_pnl_today"]) == (60, D("32.00"))
            assert acme["unrealised_pnl"] == 60 * (D("10.5") - D("10"))  # 30
            assert after_fill["cash"] == D("99000.00") + 40 * D("10.80")

            # The mark moves: the last trade is now 11.25.
            edge.set_quote("ACME", 2, bid=11.25)
            moved = await _next_positions(ann)
            acme = _holding(moved, "ACME")
            assert acme["mark"] == D("11.25")
            assert acme["unrealised_pnl"] == 60 * (D("11.25") - D("10"))  # 75

            # Twenty mark moves in quick succession: coalesced, at most one frame a second.
            started = time.monotonic()
            for seq in range(3, 23):
                edge.set_quote("ACME", seq, bid=11.0 + seq / 100)
                await asyncio.sleep(0.02)
            frames = await _collect(ann, 2.5)
            elapsed = time.monotonic() - started
            assert 1 <= len(frames) <= int(elapsed) + 1 < 20
            last = _holding(frames[-1], "ACME")
            assert last["mark"] == D("11.22")
            assert last["unrealised_pnl"] == 60 * (D("11.22") - D("10"))

            # Bob: B1's frame on connect, and nothing since (nothing of B1 changed).
            assert await _collect(bob, 0.5) == []
            for frame in (first, after_fill, moved, *frames):
                assert frame["account"] == "A1"

    asyncio.run(scenario())
    margins.close()
