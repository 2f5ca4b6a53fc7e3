"""Price bands in quotes (issue 19): the band of a 35=f (LowLimitPrice 1148 / HighLimitPrice
1149) is written into `quote:{SYMBOL}` by the quotes flow, after `"low"` (mode full's tail),
and kept until the venue sends another; the edge's mode full shows it. FIX files replayed into
real PostgreSQL and Redis, a real edge."""

from __future__ import annotations

import asyncio
import json

import redis
from websockets.asyncio.client import connect

from tests.edge.conftest import running_edge
from tests.edge.test_edge_server import _until
from tests.flows.test_quotes_flow import fix, snapshot, ts
from tests.flows.test_stops_flow import run, trade


def band(low: str | None, high: str | None, at_ms: int, seq: int, code: str = "") -> bytes:
    pairs: list[tuple[int, object]] = [(55, "ACME")]
    if code:
        pairs.append((326, code))
    if low is not None:
        pairs.append((1148, low))
    if high is not None:
        pairs.append((1149, high))
    pairs.append((60, ts(at_ms)))
    return fix("f", pairs, seq, ts(at_ms))


def quote(settings) -> tuple[bytes, dict]:
    r = redis.Redis.from_url(settings.redis_url)
    raw = r.get("quote:ACME")
    r.close()
    return raw, json.loads(raw)


def test_band_of_a_security_status_reaches_the_quote_after_its_full_tail(
    tmp_path, settings_factory
):
    settings = settings_factory()
    lines = [
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=1),
        trade("100.00", 100, 2),
    ]
    run(tmp_path, settings, lines, name="before.fix")
    raw, doc = quote(settings)
    assert b"band" not in raw  # no band yet: the fields are left out (the edge shows null)

    lines += [
        band("90.00", "110.00", 1_000, 3),  # a band alone: no state, the symbol still trades
        trade("100.50", 2_000, 4),
        band(None, "111.00", 3_000, 5, code="23"),  # fast market indication, one side
    ]
    summary, _ = run(tmp_path, settings, lines)
    assert summary["dead_letters"] == 0
    raw, doc = quote(settings)
    assert (doc["lower_band"], doc["upper_band"]) == (90.0, 111.0)
    assert doc["ltp"] == 100.5
    # the layout the edge cuts: everything of mode full after "open", the band last
    assert raw.index(b'"open":') < raw.index(b'"low":') < raw.index(b'"lower_band":')
    assert raw.endswith(b',"lower_band":90.0,"upper_band":111.0}')

    # over the edge: mode full shows the band, mode quote cuts it with the rest of the tail
    async def subscribe(mode: str) -> dict:
        async with connect(edge.ws_url(edge.token("ann", "trader", ("A1",)))) as ws:
            await _until(ws, "hello")
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["ACME"], "mode": mode}))
            return await _until(ws, "snapshot")

    with running_edge(settings.redis_url) as edge:
        full = asyncio.run(subscribe("full"))
        plain = asyncio.run(subscribe("quote"))
    assert (full["lower_band"], full["upper_band"], full["ltp"]) == (90.0, 111.0, 100.5)
    assert "lower_band" not in plain and "open" not in plain and plain["ltp"] == 100.5
