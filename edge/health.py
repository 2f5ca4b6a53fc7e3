"""Edge layer: the flows' health as operators see it, sampled every few seconds.

What exists to read, kept simple: the length and last entry of `stream:quotes` and
`stream:alerts` (lag = now minus the time Redis stamped on the last entry), the rates this edge
process sees on them, its connections and frames out, and the dead letters in PostgreSQL
(total and last hour) when a DSN is configured.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis

from edge import protocol
from edge.hub import ALERT_STREAM, QUOTE_STREAM, Hub

log = logging.getLogger("brokerflow.edge")

_DEAD_LETTERS = """
SELECT count(*), count(*) FILTER (WHERE received_at > now() - interval '1 hour')
FROM dead_letters
"""


async def _dead_letters(dsn: str) -> dict[str, int] | None:
    import psycopg

    try:
        async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=2) as conn:
            cur = await conn.execute(_DEAD_LETTERS)
            row = await cur.fetchone()
    except psycopg.Error as exc:
        log.warning("dead letters unreadable: %s", exc)
        return None
    return {"total": int(row[0]), "last_hour": int(row[1])} if row else None


async def _stream(client: aioredis.Redis, name: str, now_ms: int) -> dict[str, int | None]:
    length = await client.xlen(name)
    last = await client.xrevrange(name, "+", "-", count=1)
    last_ms = int(last[0][0].split(b"-")[0]) if last else None
    return {
        "length": int(length),
        "last_ms": last_ms,
        "lag_ms": None if last_ms is None else max(0, now_ms - last_ms),
    }


async def health_forever(hub: Hub) -> None:
    """Send a `health` frame to the operators every `health_s` while any is connected."""
    period = hub.config.health_s
    stats = hub.stats

    def conflated() -> int:
        return stats.queued - stats.updates_out

    last = (time.monotonic(), stats.quotes_in, stats.alerts_in, stats.frames_out, conflated())
    while True:
        await asyncio.sleep(period)
        now = time.monotonic()
        elapsed = max(now - last[0], 1e-6)
        rates = {
            "quotes_in_per_s": round((stats.quotes_in - last[1]) / elapsed, 1),
            "alerts_in_per_s": round((stats.alerts_in - last[2]) / elapsed, 1),
            "frames_out_per_s": round((stats.frames_out - last[3]) / elapsed, 1),
            "conflated_per_s": round((conflated() - last[4]) / elapsed, 1),
        }
        last = (now, stats.quotes_in, stats.alerts_in, stats.frames_out, conflated())
        if not hub.operators:
            continue
        now_ms = time.time_ns() // 1_000_000
        try:
            streams = {
                name: await _stream(hub.redis, name, now_ms)
                for name in (QUOTE_STREAM, ALERT_STREAM)
            }
        except aioredis.RedisError as exc:
            streams = {"error": str(exc)}
        dead = await _dead_letters(hub.config.postgres_dsn) if hub.config.postgres_dsn else None
        frame = protocol.json_frame(
            "health",
            ts=now_ms,
            streams=streams,
            edge={
                "connections": len(hub.sessions),
                "flush_period_ms": round(hub.flush_period_s * 1000, 1),
                **rates,
            },
            dead_letters=dead,
        )
        for session in list(hub.operators):
            session.sender.send_frame(frame)
