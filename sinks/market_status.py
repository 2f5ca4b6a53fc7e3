"""Sinks layer: the market's status (issue 19) to Redis and PostgreSQL.

Items are `("status", [MarketStatusChanged…])` from the stop engine's shards (each symbol's
changes from its shard, a market-wide change from one shard), in the order decided:

- Redis: `market:status` (scope "market") and `symbol:status:{SYMBOL}`, JSON with the
  contract's `market_status` fields (`MarketStatusChanged.to_json`): the latest value per key.
- PostgreSQL `trading_halts` (source 'venue', actor 'venue'): a row when a scope stops trading
  (OPEN -> HALTED/CLOSED), `started_at` its event time; `ended_at` set when it opens again.
  Idempotent: a replay adds no second row (unique on source, scope, started_at) and ends none
  twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import psycopg
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from domain.market_status import MarketStatusChanged
from sinks.postgres import PgBatchWriter
from sinks.retry import RetryPolicy

MARKET_KEY = "market:status"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def status_key(scope: str) -> str:
    return MARKET_KEY if scope == "market" else f"symbol:status:{scope}"


def _at(ts_ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ts_ns // 1000)


def write_halts(conn: psycopg.Connection, changes: Sequence[MarketStatusChanged]) -> int:
    """Open and end the venue's `trading_halts` rows of `changes`, in order, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        for change in changes:
            if change.halt_started:
                cur.execute(
                    "INSERT INTO trading_halts (scope, reason, actor, source, started_at) "
                    "VALUES (%s, %s, 'venue', 'venue', %s) ON CONFLICT DO NOTHING",
                    (change.scope, change.reason or change.state, _at(change.since_ns)),
                )
            elif change.halt_ended:
                cur.execute(
                    "UPDATE trading_halts SET ended_at = %s WHERE source = 'venue' "
                    "AND scope = %s AND ended_at IS NULL AND started_at <= %s",
                    (_at(change.ts_event), change.scope, _at(change.ts_event)),
                )
    return len(changes)


class _StatusPartition(StatelessSinkPartition[tuple[str, list[MarketStatusChanged]]]):
    def __init__(self, pg: PgBatchWriter[MarketStatusChanged], client: redis.Redis) -> None:
        self._pg = pg
        self._redis = client

    def write_batch(self, items: list[tuple[str, list[MarketStatusChanged]]]) -> None:
        changes = [change for _, batch in items for change in batch]
        if not changes:
            return
        latest = {status_key(c.scope): json.dumps(c.to_json()) for c in changes}
        self._redis.mset(latest)
        if any(c.halt_started or c.halt_ended for c in changes):
            self._pg.write(changes)

    def close(self) -> None:
        self._pg.close()
        self._redis.close()


class MarketStatusSink(DynamicSink[tuple[str, list[MarketStatusChanged]]]):
    """Bytewax sink of the stop engine's status changes (rare: a direct write per batch)."""

    def __init__(self, dsn: str, redis_url: str, policy: RetryPolicy | None = None) -> None:
        self._dsn = dsn
        self._redis_url = redis_url
        self._policy = policy

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StatusPartition:
        pg: PgBatchWriter[MarketStatusChanged] = PgBatchWriter(
            self._dsn, write_halts, self._policy
        )
        return _StatusPartition(pg, redis.Redis.from_url(self._redis_url, socket_timeout=10))
