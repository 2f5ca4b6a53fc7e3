"""Sinks layer: the market's status (issue 19) to Redis and PostgreSQL.

Items are `("status", [MarketStatusChanged…])` from the stop engine's shards (each symbol's
changes from its shard, a market-wide change from one shard), in the order decided:

- Redis, in one script per batch: `market:status` (scope "market") and
  `symbol:status:{SYMBOL}`, JSON with the contract's `market_status` fields
  (`MarketStatusChanged.to_json`): the latest value per key; the set `market:halted_symbols`
  of the symbols whose own state is not OPEN (the edge's snapshot on connect); and every
  change XADDed to `stream:market_status` (fields `scope`, `data` = that JSON), once: a
  `SET market_status:seen:{sha1 of the JSON} NX` marker per change, so a replay adds nothing.
- PostgreSQL `trading_halts`, source 'venue' (35=h/35=f) or 'circuit_breaker' (the index
  breaker), actor the same: a row when a scope stops trading (OPEN -> HALTED/CLOSED, or one
  source's halt taken over by the other's), `started_at` its event time; `ended_at` set when
  it opens again (or the other source takes over). Idempotent: a replay adds no second row
  (unique on source, scope, started_at) and ends none twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence

import psycopg
import redis
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from domain.alerts import CIRCUIT_BREAKER
from domain.circuit_breaker import BreakerOpening, StoredQuote, StoredTrip
from domain.market_status import MarketStatusChanged
from sinks.alerts import SEEN_TTL_S
from sinks.postgres import PgBatchWriter
from sinks.retry import RetryPolicy

MARKET_KEY = "market:status"
STREAM = "stream:market_status"
HALTED_SYMBOLS = "market:halted_symbols"

# KEYS[1] stream, KEYS[2] halted set; ARGV[1] maxlen, ARGV[2] marker TTL, then
# (marker, key, scope, "1" when the scope is OPEN, data) per change, in order.
_WRITE = """
local added = 0
for i = 3, #ARGV, 5 do
  local scope, data = ARGV[i + 2], ARGV[i + 4]
  redis.call('SET', ARGV[i + 1], data)
  if scope ~= 'market' then
    if ARGV[i + 3] == '1' then
      redis.call('SREM', KEYS[2], scope)
    else
      redis.call('SADD', KEYS[2], scope)
    end
  end
  if redis.call('SET', 'market_status:seen:' .. ARGV[i], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'scope', scope, 'data', data)
    added = added + 1
  end
end
return added
"""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def status_key(scope: str) -> str:
    return MARKET_KEY if scope == "market" else f"symbol:status:{scope}"


def _at(ts_ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ts_ns // 1000)


def write_halts(conn: psycopg.Connection, changes: Sequence[MarketStatusChanged]) -> int:
    """Open and end the `trading_halts` rows of `changes` (venue and circuit breaker), in
    order, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        for change in changes:
            if change.halt_ended:  # first: a halt taken over ends before the other starts
                at = _at(change.ts_event)
                cur.execute(
                    "UPDATE trading_halts SET ended_at = %s WHERE source = %s "
                    "AND scope = %s AND ended_at IS NULL AND started_at <= %s",
                    (at, change.previous_source, change.scope, at),
                )
            if change.halt_started:
                cur.execute(
                    "INSERT INTO trading_halts (scope, reason, actor, source, started_at) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (change.scope, change.reason or change.state, change.source,
                     change.source, _at(change.since_ns)),
                )  # fmt: skip
    return len(changes)


def write_statuses(client: redis.Redis, changes: Sequence[MarketStatusChanged], maxlen: int) -> int:
    """The status keys, the halted set and `stream:market_status` (module docstring), in one
    script; return how many changes were new to the stream."""
    args: list[str | int] = [maxlen, SEEN_TTL_S]
    for change in changes:
        data = json.dumps(change.to_json(), separators=(",", ":"))
        marker = hashlib.sha1(data.encode(), usedforsecurity=False).hexdigest()
        args += [marker, status_key(change.scope), change.scope,
                 "1" if change.state == "OPEN" else "0", data]  # fmt: skip
    return int(client.eval(_WRITE, 2, STREAM, HALTED_SYMBOLS, *args))


class _StatusPartition(StatelessSinkPartition[tuple[str, list[MarketStatusChanged]]]):
    def __init__(
        self, pg: PgBatchWriter[MarketStatusChanged], client: redis.Redis, maxlen: int
    ) -> None:
        self._pg = pg
        self._redis = client
        self._maxlen = maxlen

    def write_batch(self, items: list[tuple[str, list[MarketStatusChanged]]]) -> None:
        changes = [change for _, batch in items for change in batch]
        if not changes:
            return
        write_statuses(self._redis, changes, self._maxlen)
        if any(c.halt_started or c.halt_ended for c in changes):
            self._pg.write(changes)

    def close(self) -> None:
        self._pg.close()
        self._redis.close()


class MarketStatusSink(DynamicSink[tuple[str, list[MarketStatusChanged]]]):
    """Bytewax sink of the stop engine's status changes (rare: a direct write per batch)."""

    def __init__(
        self, dsn: str, redis_url: str, policy: RetryPolicy | None = None, maxlen: int = 100_000
    ) -> None:
        self._dsn = dsn
        self._redis_url = redis_url
        self._policy = policy
        self._maxlen = maxlen

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StatusPartition:
        pg: PgBatchWriter[MarketStatusChanged] = PgBatchWriter(self._dsn, write_halts, self._policy)
        client = redis.Redis.from_url(self._redis_url, socket_timeout=10)
        return _StatusPartition(pg, client, self._maxlen)


def load_breaker_opening(dsn: str, redis_url: str, symbols: Sequence[str]) -> BreakerOpening:
    """What the stores hold for the index circuit breaker when a run starts
    (`domain.circuit_breaker.BreakerOpening`): the followed `symbols`' `quote:{SYMBOL}` (one
    MGET) and every CIRCUIT_BREAKER alert (one per level and day: a few rows). The alerts, not
    `trading_halts`: a trip adds a halt row only when it halts an OPEN market (a deeper level
    during the breaker's own halt, or a trip while the venue has the market halted, adds none),
    and a row names its level only in its text."""
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    try:
        raws = client.mget([f"quote:{s}" for s in symbols]) if symbols else []
    finally:
        client.close()
    quotes = tuple(q for s, raw in zip(symbols, raws, strict=True) if (q := _stored_quote(s, raw)))
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event_time, details FROM alerts WHERE kind = %s", (CIRCUIT_BREAKER,)
        ).fetchall()
    trips = []
    for at, details in rows:
        level, until = details.get("level"), details.get("until_ns")
        if isinstance(level, int):
            ts_ns = (at - _EPOCH) // dt.timedelta(microseconds=1) * 1000
            trips.append(StoredTrip(level, ts_ns, until if isinstance(until, int) else None))
    return BreakerOpening(quotes, tuple(trips))


def _number(value: object) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _stored_quote(symbol: str, raw: bytes | None) -> StoredQuote | None:
    """A `quote:` JSON as the breaker reads it; None when absent or not a quote."""
    if raw is None:
        return None
    try:
        quote = json.loads(raw)
    except ValueError:
        return None
    ts = quote.get("ts") if isinstance(quote, dict) else None
    if not isinstance(ts, int):
        return None
    return StoredQuote(symbol, ts * 1_000_000, _number(quote.get("prev_close")),
                       _number(quote.get("ltp")), quote.get("open") is not None)  # fmt: skip
