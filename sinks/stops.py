"""Sinks layer: the stop engine's durable effects: `stop_orders` rows, then the child orders.

One Bytewax partition ("stops") receives every `StopWrites` batch, so the order of writes is
the order of decisions, and for each batch the state goes to PostgreSQL (one transaction)
BEFORE the children go out (`OrderFileWriter`, fsynced): a crash between the two leaves a row
marked TRIGGERED whose child is re-sent on replay, never a child without its state. Both writes
are idempotent (rows by ClOrdID, a terminal status never reverts; children by ClOrdID), so the
input replayed after a crash from the last Bytewax snapshot changes nothing twice.

The kill switch (issue 19, `brokerflow halt` / `resume`): the partition reads the open
kill-switch rows of `trading_halts` (`KillSwitch`, at most every `HALT_POLL_S` seconds, on its
writer thread; a ticker submits an empty batch every `HALT_POLL_S` so a resume is seen without
input). While one covers a child's account (scope "all" or the account), a new child order
(35=D) is withheld: a `held_orders` row (the order pickled, the reason) and its stop's row
marked `child_status` HELD with `held_reason`, instead of the writers. Cancels of venue legs
(35=F) still go out (they reduce risk). When no halt covers it any more, each held order is
written to the writers, then marked RELEASED (`held_orders.released_at`): once, because a
child held or released before is never held again (`held_orders` is read at start) and the
writers skip ClOrdIDs they already sent, so a crash between the two writes re-sends nothing.

The traders' order-status push (issue 19): given a Redis URL, the partition writes an `order`
frame to `stream:orders` (`sinks.order_status`, once per event) for each stop that fired
(TRIGGERED, id `trig:{stop ClOrdID}`, after its row and before its child) and each child it holds
(HELD with the reason, id `held:{child ClOrdID}`).
"""

from __future__ import annotations

import datetime as dt
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import psycopg
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from domain.audit import ORDER_HELD, AuditRecord, order_triggered
from domain.order_status import HELD, open_order_keys, stop_frame
from domain.order_status import TRIGGERED as TRIGGERED_FRAME
from sinks.background import BackgroundWriter
from sinks.clickhouse import AUDIT_COLUMNS, ClickHouseStore, audit_columns
from sinks.order_file import OrderFileWriter
from sinks.order_status import OrderFrame, OrderStatusWriter
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


HALT_POLL_S = 1.0
ALL = "all"  # the kill switch's market-wide scope


class KillSwitch:
    """The open kill-switch halts (`trading_halts`), read at most every `poll_s` seconds, and
    the children held while they last (`held_orders`)."""

    def __init__(self, dsn: str, poll_s: float = HALT_POLL_S) -> None:
        self._dsn = dsn
        self._poll_s = poll_s
        self._conn: psycopg.Connection | None = None
        self._read_at = -1e18
        self.halts: dict[str, str] = {}  # scope -> reason
        self.held: set[str] = set()  # every child ever held (released or not)
        self.pending = False  # some held child is not released yet

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True)
        return self._conn

    def start(self) -> None:
        rows = self._connection().execute(
            "SELECT child_cl_ord_id, released_at IS NULL FROM held_orders"
        ).fetchall()
        self.held = {row[0] for row in rows}
        self.pending = any(row[1] for row in rows)
        self.poll(force=True)

    def poll(self, force: bool = False) -> bool:
        """Re-read the open halts if `poll_s` passed; return whether they changed."""
        now = time.monotonic()
        if not force and now - self._read_at < self._poll_s:
            return False
        self._read_at = now
        rows = self._connection().execute(
            "SELECT scope, reason FROM trading_halts "
            "WHERE source = 'kill_switch' AND ended_at IS NULL"
        ).fetchall()
        halts = dict(rows)
        changed = halts != self.halts
        self.halts = halts
        return changed

    def reason_for(self, account: str | None) -> str | None:
        """Why a child of `account` is withheld now, or None."""
        halts = self.halts
        if not halts:
            return None
        if ALL in halts:
            return f"kill switch (all): {halts[ALL]}"
        if account and account in halts:
            return f"kill switch ({account}): {halts[account]}"
        return None

    def hold(self, held: list[tuple[str, Any, str]]) -> None:
        """Record children withheld: `(cl_ord_id, order, reason)`."""
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO held_orders (child_cl_ord_id, account, symbol, reason, order_pickle)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (child_cl_ord_id) DO NOTHING",
                [
                    (cl_ord_id, getattr(order, "account", None) or "", order.symbol, reason,
                     pickle.dumps(order, protocol=pickle.HIGHEST_PROTOCOL))
                    for cl_ord_id, order, reason in held
                ],
            )  # fmt: skip
            cur.executemany(
                "UPDATE stop_orders SET child_status = 'HELD', held_reason = %s, "
                "updated_at = now() WHERE child_cl_ord_id = %s",
                [(reason, cl_ord_id) for cl_ord_id, _, reason in held],
            )
        self.held.update(cl_ord_id for cl_ord_id, _, _ in held)
        self.pending = True

    def releasable(self) -> list[tuple[str, Any]]:
        """The held children no open halt covers any more, in the order they were held."""
        rows = self._connection().execute(
            "SELECT child_cl_ord_id, account, order_pickle FROM held_orders "
            "WHERE released_at IS NULL ORDER BY held_at, child_cl_ord_id"
        ).fetchall()
        self.pending = bool(rows)
        return [
            (cl_ord_id, pickle.loads(blob))  # noqa: S301 - our own rows
            for cl_ord_id, account, blob in rows
            if self.reason_for(account) is None
        ]

    def released(self, cl_ord_ids: list[str]) -> None:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "UPDATE held_orders SET released_at = now() "
                "WHERE child_cl_ord_id = ANY(%s) AND released_at IS NULL",
                (cl_ord_ids,),
            )
            cur.execute(
                "UPDATE stop_orders SET child_status = 'RELEASED', updated_at = now() "
                "WHERE child_cl_ord_id = ANY(%s)",
                (cl_ord_ids,),
            )
        self.pending = False

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def held_records(held: Sequence[tuple[str, Any, str]]) -> list[AuditRecord]:
    """ORDER_HELD audit rows of `(cl_ord_id, order, reason)`: at the trigger's event time, the
    child's terms, the reason in the details; ids from the child's ClOrdID (a replay adds none)."""
    return [
        order_triggered(
            cl_ord_id=cl_ord_id, account=getattr(order, "account", None) or "",
            symbol=order.symbol, side=order.side, ts_event=order.ts_event, snapshot=None,
            quantity=order.quantity, price=getattr(order, "price", None),
            ord_type=getattr(order, "ord_type", ""), details={"reason": reason},
            source="kill_switch", event_type=ORDER_HELD,
        )
        for cl_ord_id, order, reason in held
    ]  # fmt: skip


def triggered_frames(rows: Sequence[StopRow]) -> list[OrderFrame]:
    """The traders' TRIGGERED `order` frames of the rows of stops that fired."""
    frames: list[OrderFrame] = []
    for r in rows:
        if r.status != TRIGGERED or r.triggered_ns is None or not r.account:
            continue
        data = stop_frame(
            status=TRIGGERED_FRAME, account=r.account, cl_ord_id=r.cl_ord_id, symbol=r.symbol,
            side=r.side, quantity=r.quantity, ts_ns=r.triggered_ns, exec_id=f"trig:{r.cl_ord_id}",
            price=r.trigger_px,
            extra={"child_cl_ord_id": r.child_cl_ord_id, "stop_px": r.stop_px,
                   "trigger_px": r.trigger_px},
        )  # fmt: skip
        keys = open_order_keys(TRIGGERED_FRAME, r.cl_ord_id, None)
        frames.append((f"trig:{r.cl_ord_id}", r.account, data, *keys))
    return frames


def held_frames(held: Sequence[tuple[str, Any, str]], stops: dict[str, str]) -> list[OrderFrame]:
    """The traders' HELD `order` frames of `(cl_ord_id, order, reason)`; `stops` maps a child's
    ClOrdID to its stop's."""
    frames: list[OrderFrame] = []
    for cl_ord_id, order, reason in held:
        account = getattr(order, "account", None)
        if not account:
            continue
        data = stop_frame(
            status=HELD, account=account, cl_ord_id=cl_ord_id, symbol=order.symbol,
            side=order.side, quantity=order.quantity, ts_ns=order.ts_event,
            exec_id=f"held:{cl_ord_id}", price=getattr(order, "price", None), reason=reason,
            extra={"stop_cl_ord_id": stops.get(cl_ord_id)},
        )  # fmt: skip
        frames.append((f"held:{cl_ord_id}", account, data, *open_order_keys(HELD, cl_ord_id, None)))
    return frames


def _is_new_order(order: Any) -> bool:
    return not hasattr(order, "orig_cl_ord_id")  # an OutboundCancel names the leg it cancels


class _StopPartition(StatefulSinkPartition[StopWrites, None]):
    """The stop engine's writes, in order, on a writer thread of its own (`sinks.background`):
    on the worker thread, the transactions' round trips were ~4 % of the all-flows replay's
    wall time. Drained at each epoch's snapshot, so a committed epoch has nothing in flight."""

    def __init__(
        self,
        pg: PgBatchWriter[StopRow],
        orders: list[OrderWriter],
        name: str,
        recovery: bool,
        kill_switch: KillSwitch | None = None,
        audit_store: Callable[[], ClickHouseStore] | None = None,
        order_status: OrderStatusWriter | None = None,
    ) -> None:
        self._recovery = recovery
        self._status = order_status
        self._open_audit = audit_store
        self._audit: ClickHouseStore | None = None
        self._pg = pg
        self._orders = orders
        self._kill = kill_switch
        self._background: BackgroundWriter[StopWrites] = BackgroundWriter(
            self._write, name, max_items=1_000
        )
        self._stop_ticker = threading.Event()
        self._ticker: threading.Thread | None = None
        if kill_switch is not None:
            self._background.submit([StopWrites()])  # held children a resume freed: now
            self._ticker = threading.Thread(target=self._tick, name=f"{name}.halts", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop_ticker.wait(HALT_POLL_S):
            try:
                self._background.submit([StopWrites()])
            except BaseException:  # noqa: BLE001 - raised again to the worker by its next call
                return

    def _write(self, values: list[StopWrites]) -> None:
        rows = [row for v in values for row in v.rows]
        status = self._status
        if rows:
            self._pg.write(rows)  # the state first ...
            if status is not None:
                status.write(triggered_frames(rows))  # ... what the trader sees ...
        children = [child for v in values for child in v.children]
        kill = self._kill
        if kill is not None:
            changed = kill.poll()
            if children and (kill.halts or kill.held):
                children = self._hold(children, rows)
            if kill.pending and (changed or not kill.halts):
                self._release()
        if children:
            for orders in self._orders:
                orders.write(children)  # ... then the orders it decided

    def _hold(
        self, children: list[tuple[str, Any]], rows: Sequence[StopRow] = ()
    ) -> list[tuple[str, Any]]:
        """The children to send now; the others recorded HELD (or already held: skipped)."""
        kill = self._kill
        assert kill is not None
        send: list[tuple[str, Any]] = []
        held: list[tuple[str, Any, str]] = []
        for cl_ord_id, order in children:
            if cl_ord_id in kill.held:
                continue  # held before (a replay): released by `_release` alone
            reason = kill.reason_for(getattr(order, "account", None))
            if reason is not None and _is_new_order(order):
                held.append((cl_ord_id, order, reason))
            else:
                send.append((cl_ord_id, order))
        if held:
            kill.hold(held)
            if self._status is not None:
                stops = {r.child_cl_ord_id: r.cl_ord_id for r in rows if r.child_cl_ord_id}
                self._status.write(held_frames(held, stops))
            if self._open_audit is not None:
                if self._audit is None:
                    self._audit = self._open_audit()
                self._audit.insert_columns(
                    "audit_log", AUDIT_COLUMNS, audit_columns(held_records(held))
                )
        return send

    def _release(self) -> None:
        kill = self._kill
        assert kill is not None
        free = kill.releasable()
        if not free:
            return
        for orders in self._orders:
            orders.write(free)  # first sent (each writer skips what it already sent) ...
        kill.released([cl_ord_id for cl_ord_id, _ in free])  # ... then marked

    def write_batch(self, values: list[StopWrites]) -> None:
        self._background.submit(values)

    def snapshot(self) -> None:
        if self._recovery:  # see sinks.background: nobody resumes from an epoch otherwise
            self._background.drain()  # the stores are the state; writes are idempotent
        return None

    def close(self) -> None:
        self._stop_ticker.set()
        if self._ticker is not None:
            self._ticker.join()
        try:
            self._background.close()
        finally:
            self._pg.close()
            if self._kill is not None:
                self._kill.close()
            if self._audit is not None:
                self._audit.close()
            if self._status is not None:
                self._status.close()
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
        audit_store: opens the audit store for the ORDER_HELD rows of children the kill
            switch holds (None: no audit rows).
        redis_url: where the traders' TRIGGERED/HELD `order` frames go (`stream:orders`);
            None: none.
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
        audit_store: Callable[[], ClickHouseStore] | None = None,
        redis_url: str | None = None,
    ) -> None:
        self._recovery = recovery
        self._redis_url = redis_url
        self._audit_store = audit_store
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
        kill = KillSwitch(self._dsn)
        kill.start()
        status = None
        if self._redis_url is not None:
            status = OrderStatusWriter(self._redis_url, policy=self._policy)
        return _StopPartition(
            pg, orders, f"{step_id}.{for_part}", self._recovery, kill, self._audit_store, status
        )
