"""Sinks layer: fired price alerts -> the trader's feed and the records, each exactly once.

`FiredPriceAlertSink` takes `(FIRED_PARTITION, [PriceAlertHit])` items from the quotes flow's
price-alert step (`flows.price_alerts`) and writes each batch in a process of its own
(`sinks.writer_process`: started with the first fired alert, drained at each epoch's end when
the run snapshots), in three steps:

1. the rows of those not deleted (ACTIVE, or FIRED by an earlier try of this very batch): the
   book keeps only ids and levels, so what the trader sees (user, account, the value as
   typed) comes from here, joined with the hit into a `PriceAlertFired`;
2. their PRICE_ALERT alerts (`PriceAlertFired.to_alert`, its JSON made once by hand:
   `alert_doc`) onto Redis `stream:alerts` (`sinks.alerts.write_alert_entries_redis`: an XADD
   only if `SET alert:seen:{id} NX` succeeds, so a retried alert goes out once); the edge turns
   those entries into `price_alert` frames;
3. one PostgreSQL transaction: the `alerts` rows from the same JSON (`sinks.alerts.
   insert_notices`, a plain `ON CONFLICT (alert_id) DO NOTHING`: once; a PRICE_ALERT is never
   merged into an episode, so it skips the surveillance alerts' merging statement) and the
   `price_alerts` rows FIRED (`sinks.price_alerts.mark_fired`, only rows still ACTIVE; it draws
   their change_seq itself under the change lock).

Why this order, and not the alerts through the pipeline's `write_alerts` with a separate
mark_fired: the book is not snapshotted but rebuilt from the ACTIVE rows on resume, so a row
that leaves ACTIVE is never loaded, and never fired, again. Every write a fired alert needs
therefore happens before, or in the same transaction as, its row leaving ACTIVE. A crash
before step 3 leaves the row ACTIVE: the replayed input fires it again (the same alert_id), and
steps 2 and 3 keep one of each. A crash after step 3 leaves nothing to do.

A trader who deletes an alert in the instant between steps 1 and 3 still gets its frame (and
its `alerts` row); the `price_alerts` row stays DELETED.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import psycopg
import redis

from domain.price_alerts import ALERT_KIND, PriceAlertHit
from sinks.alerts import AlertSink, insert_notices, write_alert_entries_redis
from sinks.background import BackgroundPartition
from sinks.postgres import PgBatchWriter
from sinks.price_alerts import mark_fired, not_deleted
from sinks.retry import RetryPolicy, retry_policy_call
from sinks.writer_process import ProcessWriter

FIRED_PARTITION = "price_alerts"
Counter = Callable[[str, int], None]


def fired_partition_key(fired: list[PriceAlertHit]) -> tuple[str, list[PriceAlertHit]]:
    """Key a list of fired alerts for `FiredPriceAlertSink` (one partition)."""
    return FIRED_PARTITION, fired


class FiredPriceAlertWriter:
    """Writes batches of fired price alerts (module docstring), with bounded retries."""

    def __init__(
        self,
        dsn: str,
        redis_url: str,
        maxlen: int = 100_000,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._policy = policy or RetryPolicy()
        self._pg: PgBatchWriter[PriceAlertHit] = PgBatchWriter(dsn, self._write, self._policy)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=10)
        self._maxlen = maxlen
        self._count = count

    def _write(self, conn: psycopg.Connection, hits: Sequence[PriceAlertHit]) -> int:
        rows = not_deleted(conn, {h.id for h in hits})
        fired = [h.with_alert(rows[h.id]) for h in hits if h.id in rows]
        if not fired:
            return 0
        # Each alert's JSON is made once (by hand: `PriceAlertFired.alert_doc`), for the
        # stream entry and the row alike.
        docs: list[str] = []
        entries: list[str | int] = []
        for f in fired:
            ident, doc = f.alert_doc()
            docs.append(doc)
            entries += (ident, ALERT_KIND, f.alert.account or "", doc)
        retry_policy_call(
            lambda: write_alert_entries_redis(self._redis, entries, self._maxlen),
            self._policy,
            (redis.ConnectionError, redis.TimeoutError),
        )
        with conn.transaction():
            new = insert_notices(conn, docs)
            changed = mark_fired(conn, fired)
        if self._count is not None and new:
            self._count(f"alerts.{ALERT_KIND}", new)
        return len(changed)

    def connect(self) -> None:
        self._pg.connect()

    def write(self, fired: Sequence[PriceAlertHit]) -> int:
        """Write a batch; return how many rows it marked FIRED."""
        return self._pg.write(fired)

    def close(self) -> None:
        self._pg.close()
        self._redis.close()


class FiredPriceAlertSink(AlertSink):
    """Bytewax sink of `(FIRED_PARTITION, [PriceAlertHit])` items; counts the new alerts as
    `alerts.PRICE_ALERT`. One partition (the alerts sink's), written in order by a
    `FiredPriceAlertWriter` in a process of its own: its rows read, JSON made and round trips
    then never hold the worker's GIL (`sinks.writer_process`)."""

    partition = FIRED_PARTITION

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> BackgroundPartition[PriceAlertHit]:
        """The partition; its writer process starts with the first fired alert."""
        dsn, redis_url, maxlen, count, policy = self._args
        make = functools.partial(FiredPriceAlertWriter, dsn, redis_url, maxlen, policy=policy)
        writer: ProcessWriter[PriceAlertHit] = ProcessWriter(
            make, f"{step_id}.{for_part}", count, max_items=10_000
        )
        return BackgroundPartition(writer, recovery=self._recovery)
