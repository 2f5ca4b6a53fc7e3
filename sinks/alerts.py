"""Sinks layer: alerts into PostgreSQL `alerts` (the record) and Redis `stream:alerts` (the feed).

Both writes are idempotent on `alert_id`, each on its own, so a batch retried after a crash
between the two (or replayed from a Bytewax snapshot) reaches each store exactly once:

- PostgreSQL: one `INSERT … SELECT FROM unnest(…) ON CONFLICT (alert_id) DO NOTHING` per batch,
  in one transaction, written first (the system of record);
- Redis: one Lua script per batch that XADDs an alert only if `SET alert:seen:{id} NX` succeeds
  (the marker expires after `SEEN_TTL_S`, longer than any replay window). The script touches
  keys it is not given in KEYS, which a single Redis (or a Redis with one slot per script) allows;
  a Redis Cluster would need hash tags.

Alerts that are never merged (notices such as PRICE_ALERT, written by `sinks.fired_price_alerts`)
take a cheaper path: `insert_notices`, a plain insert from their `to_json` texts, and
`write_alert_entries_redis` with those same texts.

`AlertSink` is the one sink of every flow's alerts (the pipeline merges them) and writes on a
background thread (`sinks.background`): the worker does not wait for the commit and the Redis
round trip of each batch, and batches that queue up meanwhile go out together. One partition
(`ALERTS_PARTITION`; items keyed with `alert_partition_key`) and one thread keep the order the
alerts were made in; the partition's snapshot at each epoch end waits until the epoch's alerts
are in both stores, so a committed epoch never has an alert in flight.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import psycopg
import redis
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from domain.alerts import Alert
from domain.triage import merge_batch
from sinks.background import BackgroundPartition
from sinks.postgres import PgBatchWriter
from sinks.retry import RetryPolicy, retry_with_backoff

SEEN_TTL_S = 30 * 24 * 3600
STREAM = "stream:alerts"

# One statement per batch. A new alert is inserted. An alert whose id exists continues an
# episode (domain.triage.Episodes): its occurrences are added to the stored ones, its score
# raises the alert's if higher, a CLOSED alert is reopened, and each of these writes one
# `alert_actions` row by 'pipeline'. An occurrence already stored changes nothing (`@>`), so a
# replayed batch adds no row anywhere. `before` reads the rows as they were (one snapshot).
_INSERT_ALERTS = """
WITH incoming AS (
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                         %s::text[], %s::timestamptz[], %s::jsonb[])
        AS t(alert_id, kind, severity, account, owner, symbol, event_time, details)
), before AS (
    SELECT a.alert_id, a.status FROM alerts AS a JOIN incoming USING (alert_id)
), written AS (
    INSERT INTO alerts AS a (alert_id, kind, severity, account, owner, symbol, event_time,
                             details)
    SELECT * FROM incoming
    ON CONFLICT (alert_id) DO UPDATE SET
        details = a.details || jsonb_build_object('occurrences',
            coalesce(a.details -> 'occurrences', '{}'::jsonb)
            || coalesce(EXCLUDED.details -> 'occurrences', '{}'::jsonb)),
        severity = CASE WHEN EXCLUDED.score > a.score THEN EXCLUDED.severity
                        ELSE a.severity END,
        status = CASE WHEN a.status = 'CLOSED' THEN 'OPEN' ELSE a.status END,
        updated_at = now()
    WHERE NOT coalesce(a.details -> 'occurrences', '{}'::jsonb)
              @> coalesce(EXCLUDED.details -> 'occurrences', '{}'::jsonb)
    RETURNING a.alert_id, a.details -> 'occurrences' AS occurrences
), history AS (
    INSERT INTO alert_actions (alert_id, actor, action, note, from_status, to_status)
    SELECT w.alert_id, 'pipeline',
           CASE WHEN b.status = 'CLOSED' THEN 'reopen' ELSE 'evidence' END,
           'the pattern continued: ' || (
               SELECT count(*) FROM jsonb_object_keys(w.occurrences)) || ' occurrences',
           b.status, CASE WHEN b.status = 'CLOSED' THEN 'OPEN' ELSE b.status END
    FROM written AS w JOIN before AS b USING (alert_id)
)
SELECT w.alert_id FROM written AS w
WHERE NOT EXISTS (SELECT 1 FROM before AS b WHERE b.alert_id = w.alert_id)
"""

# KEYS[1] stream; ARGV[1] maxlen, ARGV[2] seen-marker TTL, then (id, kind, account, data) * n.
_XADD_NEW = """
local added = 0
for i = 3, #ARGV, 4 do
  if redis.call('SET', 'alert:seen:' .. ARGV[i], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
               'kind', ARGV[i + 1], 'account', ARGV[i + 2], 'data', ARGV[i + 3])
    added = added + 1
  end
end
return added
"""

# Alerts that never merge: a plain insert, from the documents `Alert.to_json` writes (one text
# parameter parsed by the server, rather than eight arrays each formatted in Python).
_INSERT_NOTICES = """
WITH written AS (
    INSERT INTO alerts (alert_id, kind, severity, account, owner, symbol, event_time, details)
    SELECT d ->> 'alert_id', d ->> 'kind', d ->> 'severity', d ->> 'account', d ->> 'owner',
           d ->> 'symbol',
           'epoch'::timestamptz + (d ->> 'event_time')::bigint * interval '1 millisecond',
           d -> 'details'
    FROM jsonb_array_elements(%s::jsonb) AS d
    ON CONFLICT (alert_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM written
"""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Counter = Callable[[str, int], None]


def _event_time(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def write_alerts_postgres(conn: psycopg.Connection, alerts: Sequence[Alert]) -> list[str]:
    """Insert the alerts (or add them to their episode's alert) in one transaction; return the
    ids that were new."""
    alerts = merge_batch(alerts)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            _INSERT_ALERTS,
            (
                [a.alert_id for a in alerts],
                [a.kind for a in alerts],
                [a.severity for a in alerts],
                [a.account for a in alerts],
                [a.owner for a in alerts],
                [a.symbol for a in alerts],
                [_event_time(a.event_time) for a in alerts],
                [a.details_json() for a in alerts],
            ),
        )
        return [row[0] for row in cur.fetchall()]


def write_alerts_redis(client: redis.Redis, alerts: Sequence[Alert], maxlen: int) -> int:
    """XADD the alerts not yet on `stream:alerts`, in input order; return how many were added."""
    args: list[str | int] = []
    for a in alerts:
        args += [a.alert_id, a.kind, a.account or "", a.to_json()]
    return write_alert_entries_redis(client, args, maxlen)


def write_alert_entries_redis(client: redis.Redis, entries: list[str | int], maxlen: int) -> int:
    """`write_alerts_redis` of alerts already formatted: `entries` is (alert_id, kind, account
    or "", `Alert.to_json()`) per alert, flat; return how many were added."""
    return int(client.eval(_XADD_NEW, 1, STREAM, maxlen, SEEN_TTL_S, *entries))


def insert_notices(conn: psycopg.Connection, docs: Sequence[str]) -> int:
    """Insert alerts that are never merged into an episode (notices such as PRICE_ALERT: no
    `occurrences`), from their `Alert.to_json()` texts, in one statement (`ON CONFLICT
    (alert_id) DO NOTHING`: once); return how many were new. The documents' event_time is in
    milliseconds, as `to_json` writes it, so the row's is too."""
    if not docs:
        return 0
    row = conn.execute(_INSERT_NOTICES, ("[" + ",".join(docs) + "]",)).fetchone()
    return int(row[0]) if row else 0


class AlertWriter:
    """Writes batches of alerts to both stores, retrying each with bounded backoff."""

    def __init__(
        self,
        dsn: str,
        redis_url: str,
        maxlen: int = 100_000,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._policy = policy or RetryPolicy()
        self._pg: PgBatchWriter[Alert] = PgBatchWriter(dsn, self._write_pg, self._policy)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=10)
        self._maxlen = maxlen
        self._count = count

    def _write_pg(self, conn: psycopg.Connection, alerts: Sequence[Alert]) -> int:
        new = set(write_alerts_postgres(conn, alerts))
        if self._count is not None:
            kinds = {a.alert_id: a.kind for a in alerts}
            for new_id in new:
                self._count(f"alerts.{kinds[new_id]}", 1)
        return len(new)

    def connect(self) -> None:
        self._pg.connect()

    def write(self, alerts: Sequence[Alert]) -> int:
        """Write a batch: PostgreSQL first, then the stream; return alerts new to PostgreSQL."""
        if not alerts:
            return 0
        new = self._pg.write(alerts)
        policy = self._policy
        retry_with_backoff(
            lambda: write_alerts_redis(self._redis, alerts, self._maxlen),
            attempts=policy.attempts,
            base_s=policy.base_s,
            max_s=policy.max_s,
            retry_on=(redis.ConnectionError, redis.TimeoutError),
        )
        return new

    def close(self) -> None:
        self._pg.close()
        self._redis.close()


ALERTS_PARTITION = "alerts"


def alert_partition_key(alerts: list[Alert]) -> tuple[str, list[Alert]]:
    """Key a list of alerts for `AlertSink` (one partition)."""
    return ALERTS_PARTITION, alerts


class AlertSink(FixedPartitionedSink[list[Alert], None]):
    """Bytewax sink of `(ALERTS_PARTITION, [alerts])` items; counts new alerts as
    `alerts.{KIND}`. Written in order on a background thread, drained at each epoch end.
    A subclass names another writer (`writer`: built from the same arguments) and partition."""

    writer: type = AlertWriter
    partition = ALERTS_PARTITION

    def __init__(
        self,
        dsn: str,
        redis_url: str,
        maxlen: int = 100_000,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
        recovery: bool = True,
    ) -> None:
        self._args = (dsn, redis_url, maxlen, count, policy)
        self._recovery = recovery

    def list_parts(self) -> list[str]:
        """The one partition."""
        return [self.partition]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[list[Alert], None]:
        """Connect the stores and start the writer thread."""
        writer = self.writer(*self._args)
        writer.connect()
        name = f"{step_id}.{for_part}"
        return BackgroundPartition.threaded(
            writer.write, writer.close, name, 10_000, self._recovery
        )
