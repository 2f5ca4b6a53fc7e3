"""A live run over the exchange simulator with the edge running: each trader's connection gets
the `order` frames of its accounts' executions as they happen, exactly the entries the flow wrote
to `stream:orders` for them, in order, and none of another trader's accounts."""

from __future__ import annotations

import asyncio
import json

import redis
from websockets.asyncio.client import connect

from tests.edge.conftest import running_edge
from tests.edge.test_edge_server import _drain, _until
from tests.flows import test_live_run as live

exchange, stores = live.exchange, live.stores  # the live run's fixtures

FIRST = tuple(f"ACC{n:05d}" for n in range(1, 11))
SECOND = tuple(f"ACC{n:05d}" for n in range(11, 21))


def test_live_run_pushes_each_traders_order_frames_to_its_connection(
    stores,
    exchange,
    tmp_path,
    capsys,
    redis_db_url,
):
    config = live._config(tmp_path, exchange.port)
    with running_edge(redis_db_url) as edge:

        async def scenario() -> tuple[list[dict], list[dict]]:
            async with (
                connect(edge.ws_url(edge.token("ann", "trader", FIRST))) as ann,
                connect(edge.ws_url(edge.token("bob", "trader", SECOND))) as bob,
            ):
                await _until(ann, "orders")
                await _until(bob, "orders")
                await asyncio.to_thread(live._run, config, 4, capsys)
                return await _drain(ann, 1.0), await _drain(bob, 1.0)

        ann_frames, bob_frames = asyncio.run(scenario())
    r = redis.Redis.from_url(stores.redis_url)
    written = [json.loads(f[b"data"]) for _, f in r.xrange("stream:orders")]
    r.close()
    for frames, accounts in ((ann_frames, FIRST), (bob_frames, SECOND)):
        got = [f["exec_id"] for f in frames if f["type"] == "order"]
        theirs = [f["exec_id"] for f in written if f["account"] in accounts]
        assert got, "no order frame reached the trader"
        assert got == theirs  # all of theirs, in the order written, none of the other's
    statuses = {f["status"] for f in written}
    assert {"NEW", "FILLED"} <= statuses or {"NEW", "PARTIALLY_FILLED"} <= statuses
