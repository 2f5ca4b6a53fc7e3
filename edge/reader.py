"""Edge layer: the one reader of the Redis streams an edge process fans out.

`STREAMS` is the table stream -> name of the `Hub` method that takes its entries (a list of
`(entry_id, fields)`, in stream order); a new stream is one row here and one handler in the hub.
XREAD BLOCK on every stream of the table from its tail at start; entries are handed to the hub
in the batches Redis returns. On a lost connection it reconnects with backoff and continues
after the last entry it saw (entries trimmed meanwhile are gone; clients then see a `seq` gap,
and alerts can still be replayed by id from what the stream keeps).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from domain.backoff import Backoff
from edge.hub import ALERT_STREAM, ORDER_STREAM, QUOTE_STREAM, Entries, Hub
from edge.market_status import MARKET_STATUS_STREAM
from edge.positions import POSITIONS_STREAM

log = logging.getLogger("brokerflow.edge")

BLOCK_MS = 1000
COUNT = 5000
RECONNECT = Backoff(0.1, 5.0)
"""Waits between tries while Redis is unreachable: 0.1 s doubling up to 5 s."""

# stream -> Hub method its entries go to. Add a row for a new stream (and the method).
STREAMS: dict[str, str] = {
    QUOTE_STREAM: "on_quotes",
    ALERT_STREAM: "on_alerts",
    ORDER_STREAM: "on_orders",
    POSITIONS_STREAM: "on_positions",
    MARKET_STATUS_STREAM: "on_market_status",
}


def stream_handlers(hub: Hub) -> dict[str, Callable[[Entries], None]]:
    """The table bound to `hub`: stream -> handler."""
    return {stream: getattr(hub, method) for stream, method in STREAMS.items()}


async def tail_ids(client: aioredis.Redis, streams: list[str]) -> dict[str, str]:
    """The id of the last entry of each stream now ("0-0" for an empty stream)."""
    async with client.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xrevrange(stream, "+", "-", count=1)
        lasts = await pipe.execute()
    return {
        stream: last[0][0].decode() if last else "0-0"
        for stream, last in zip(streams, lasts, strict=True)
    }


async def read_streams(url: str, hub: Hub, ready: asyncio.Event | None = None) -> None:
    """Read the streams of `STREAMS` for ever, dispatching to `hub`; set `ready` once positioned."""
    client = aioredis.Redis.from_url(url, socket_keepalive=True)
    handlers = stream_handlers(hub)
    ids: dict[str, str] | None = None
    failures = 0
    try:
        while True:
            try:
                if ids is None:
                    ids = await tail_ids(client, list(handlers))
                    if ready is not None:
                        ready.set()
                replies = await client.xread(ids, count=COUNT, block=BLOCK_MS)
                failures = 0
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
                failures += 1
                delay = RECONNECT.delay(failures)
                log.warning("stream reader: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            for stream, entries in replies:
                name = stream.decode() if isinstance(stream, bytes) else stream
                if not entries:
                    continue
                ids[name] = entries[-1][0].decode()
                handlers[name](entries)
    finally:
        await client.aclose()
