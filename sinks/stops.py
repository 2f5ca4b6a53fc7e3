"""Sinks layer: the stop engine's durable effects: `stop_orders` rows, then the child orders.

One Bytewax partition ("stops") receives every `StopWrites` batch, so the order of writes is
the order of decisions, and for each batch the state goes to PostgreSQL (one transaction)
BEFORE the children go out (`OrderFileWriter`, fsynced): a crash between the two leaves a row
marked TRIGGERED whose child is re-sent on replay, never a child without its state. Both writes
are idempotent (rows by ClOrdID, a terminal status never reverts; children by ClOrdID), so the
input replayed after a crash from the last Bytewax snapshot changes nothing twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import psycopg
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from sinks.background import BackgroundWriter
from sinks.order_file import OrderFileWriter
from sinks.postgres import PgBatchWriter
from sinks.retry import RetryPolicy

PARTITION = "stops"
ACTIVE, TRIGGERED, CANCELLED, EXPIRED = "ACTIVE", "TRIGGERED", "CANCELLED", "EXPIRED"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
Counter = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class StopRow:
    """The state of one stop order as `stop_orders` keeps it.

    `stop_px` is the current stop (a trailing stop's ratcheted stop, 0 before its first price);
    `trigger_px`, `triggered_ns` and `child_cl_ord_id` are set once it fired.
    """

    cl_ord_id: str
    account: str
    symbol: str
    side: str
    ord_type: str
    stop_px: Decimal
    limit_px: Decimal | None
    quantity: Decimal
    peg_offset: Decimal | None
    status: str
    trigger_px: Decimal | None = None
    triggered_ns: int | None = None
    child_cl_ord_id: str | None = None


@dataclass(frozen=True, slots=True)
class StopWrites:
    """What one batch of stop decisions must make durable, in order."""

    rows: tuple[StopRow, ...] = ()
    children: tuple[tuple[str, Any], ...] = field(default=())  # (ClOrdID, order to encode)


_UPSERT = """
INSERT INTO stop_orders AS s (cl_ord_id, account, symbol, side, ord_type, stop_px, limit_px,
    quantity, peg_offset, trail_px, status, trigger_px, triggered_at, child_cl_ord_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (cl_ord_id) DO UPDATE SET
    stop_px = EXCLUDED.stop_px, trail_px = EXCLUDED.trail_px, status = EXCLUDED.status,
    trigger_px = EXCLUDED.trigger_px, triggered_at = EXCLUDED.triggered_at,
    child_cl_ord_id = EXCLUDED.child_cl_ord_id, updated_at = now()
WHERE s.status = 'ACTIVE'
"""


def _latest(rows: Sequence[StopRow]) -> list[StopRow]:
    """The last state of each ClOrdID in the batch, in first-seen order."""
    last: dict[str, StopRow] = {}
    for row in rows:
        last[row.cl_ord_id] = row
    return list(last.values())


def write_stop_rows(conn: psycopg.Connection, rows: Sequence[StopRow]) -> int:
    """Upsert the rows in one transaction; a row already terminal is left as it is."""
    params = [
        (
            r.cl_ord_id, r.account, r.symbol, r.side, r.ord_type, r.stop_px, r.limit_px,
            r.quantity, r.peg_offset, r.stop_px if r.ord_type == "P" else None, r.status,
            r.trigger_px,
            None if r.triggered_ns is None
            else _EPOCH + dt.timedelta(microseconds=r.triggered_ns // 1000),
            r.child_cl_ord_id,
        )
        for r in _latest(rows)
    ]  # fmt: skip
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_UPSERT, params)
    return len(params)


class OrderWriter(Protocol):
    """Where children go: `OrderFileWriter`, `sinks.fix_orders.FixOrderWriter`..."""

    def write(self, items: Sequence[tuple[str, Any]]) -> int: ...

    def close(self) -> None: ...


class _StopPartition(StatefulSinkPartition[StopWrites, None]):
    """The stop engine's writes, in order, on a writer thread of its own (`sinks.background`):
    on the worker thread, the transactions' round trips were ~4 % of the all-flows replay's
    wall time. Drained at each epoch's snapshot, so a committed epoch has nothing in flight."""

    def __init__(
        self, pg: PgBatchWriter[StopRow], orders: list[OrderWriter], name: str, recovery: bool
    ) -> None:
        self._recovery = recovery
        self._pg = pg
        self._orders = orders
        self._background: BackgroundWriter[StopWrites] = BackgroundWriter(
            self._write, name, max_items=1_000
        )

    def _write(self, values: list[StopWrites]) -> None:
        rows = [row for v in values for row in v.rows]
        if rows:
            self._pg.write(rows)  # the state first ...
        children = [child for v in values for child in v.children]
        if children:
            for orders in self._orders:
                orders.write(children)  # ... then the orders it decided

    def write_batch(self, values: list[StopWrites]) -> None:
        self._background.submit(values)

    def snapshot(self) -> None:
        if self._recovery:  # see sinks.background: nobody resumes from an epoch otherwise
            self._background.drain()  # the stores are the state; writes are idempotent
        return None

    def close(self) -> None:
        try:
            self._background.close()
        finally:
            self._pg.close()
            for orders in self._orders:
                orders.close()


class StopOutputSink(FixedPartitionedSink[StopWrites, None]):
    """Bytewax sink of `("stops", StopWrites)` items (one partition: one writer, in order).

    Args:
        dsn: a migrated database.
        orders_out: the outbound order file, or None to send no children (they are still
            recorded in `stop_orders.child_cl_ord_id`, the alerts and the audit trail).
        encode: `encode(order, seq) -> bytes` for the file.
        count: counter callback (`orders_out`).
        outbound: more places for the children, each built in the partition as
            `factory(encode, count)` (an order-entry FIX session, a Kafka topic), in order.
    """

    def __init__(
        self,
        dsn: str,
        orders_out: Path | None,
        encode: Callable[[Any, int], bytes],
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
        outbound: Sequence[Callable[[Callable[[Any, int], bytes], Counter | None], OrderWriter]]
        = (),
        recovery: bool = True,
    ) -> None:
        self._recovery = recovery
        self._outbound = tuple(outbound)
        self._dsn = dsn
        self._orders_out = orders_out
        self._encode = encode
        self._count = count
        self._policy = policy

    def list_parts(self) -> list[str]:
        return [PARTITION]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[StopWrites, None]:
        pg: PgBatchWriter[StopRow] = PgBatchWriter(self._dsn, write_stop_rows, self._policy)
        pg.connect()
        orders: list[OrderWriter] = []
        if self._orders_out is not None:
            orders.append(OrderFileWriter(self._orders_out, self._encode, self._count))
        orders += [factory(self._encode, self._count) for factory in self._outbound]
        return _StopPartition(pg, orders, f"{step_id}.{for_part}", self._recovery)
