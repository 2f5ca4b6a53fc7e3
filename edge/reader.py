"""Edge layer: the one reader of `stream:quotes` and `stream:alerts` in an edge process.

XREAD BLOCK on both streams from their tail at start; entries are handed to the hub in the
batches Redis returns. On a lost connection it reconnects with backoff and continues after the
last entry it saw (entries trimmed meanwhile are gone; clients then see a `seq` gap, and alerts
can still be replayed by id from what the stream keeps).
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from edge.hub import ALERT_STREAM, QUOTE_STREAM, Hub

log = logging.getLogger("brokerflow.edge")

BLOCK_MS = 1000
COUNT = 5000


async def tail_ids(client: aioredis.Redis) -> dict[str, str]:
    """The id of the last entry of each stream now ("0-0" for an empty stream)."""
    ids = {}
    for stream in (QUOTE_STREAM, ALERT_STREAM):
        last = await client.xrevrange(stream, "+", "-", count=1)
        ids[stream] = last[0][0].decode() if last else "0-0"
    return ids


async def read_streams(url: str, hub: Hub, ready: asyncio.Event | None = None) -> None:
    """Read both streams for ever, dispatching to `hub`; set `ready` once positioned."""
    client = aioredis.Redis.from_url(url, socket_keepalive=True)
    ids: dict[str, str] | None = None
    backoff = 0.1
    try:
        while True:
            try:
                if ids is None:
                    ids = await tail_ids(client)
                    if ready is not None:
                        ready.set()
                replies = await client.xread(ids, count=COUNT, block=BLOCK_MS)
                backoff = 0.1
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
                log.warning("stream reader: %s; retrying in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for stream, entries in replies:
                name = stream.decode() if isinstance(stream, bytes) else stream
                if not entries:
                    continue
                ids[name] = entries[-1][0].decode()
                if name == QUOTE_STREAM:
                    hub.on_quotes(entries)
                else:
                    hub.on_alerts(entries)
    finally:
        await client.aclose()
