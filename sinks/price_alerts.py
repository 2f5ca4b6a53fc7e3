"""Sinks layer: traders' price alerts in PostgreSQL `price_alerts` (sql/postgres/0010, 0012).

The one module that holds the table's SQL: create (with the per-user limit), list, delete
(soft), load the ACTIVE alerts into the flow's book (`PriceAlertReader`, which also follows the
changes), and mark fired alerts FIRED. The Bytewax sink of fired alerts is
`sinks.fired_price_alerts`.

Shared with the WebSocket edge (`edge.price_alerts` runs create, list and delete): this module
imports psycopg and the domain only, never bytewax or redis, so that the edge (which may not
import sinks, bytewax or the CLI) can use it through the one `ignore_imports` line of
pyproject.toml; a separate import-linter contract keeps it that way.

Changes reach the running flow through `change_seq` (migration 0012): every insert and status
change draws the next number, in commit order (a trigger under an advisory lock, or
`mark_fired`'s own statement under it: migration 0014); the writers here take that lock first,
before any row lock, so they never deadlock with each other.

Exactly once across restarts: a row leaves ACTIVE once (`mark_fired` updates only rows still
ACTIVE and returns the ids it changed), and `load_active` never returns a FIRED or DELETED row,
so an alert that fired is never loaded into a book again; the sink writes its alert before the
row leaves ACTIVE (`sinks.fired_price_alerts`).

The limit: `create` counts the user's ACTIVE alerts under a transaction-scoped advisory lock
on the user, so two concurrent creates cannot both take the last place.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

import psycopg

from domain.errors import BrokerflowError
from domain.price_alerts import (
    PriceAlert,
    PriceAlertError,
    PriceAlertFired,
    RestingAlert,
    check_price_alert,
)
from sinks.retry import RetryPolicy, retry_with_backoff

T = TypeVar("T")

DEFAULT_MAX_PER_USER = 100
ACTIVE = "ACTIVE"
STATUSES = (ACTIVE, "FIRED", "DELETED")
# Advisory lock keys are bigints: one class id for this table, the user's hash as the object.
_LOCK_CLASS = 0x5041  # "PA"
# The change counter's lock (the trigger of migration 0012 takes the same).
_TAKE_CHANGE_LOCK = "SELECT pg_advisory_xact_lock(20547, 0)"  # 0x5043 "PC"


class PriceAlertLimitError(BrokerflowError):
    """The user already holds `limit` ACTIVE price alerts."""

    def __init__(self, user: str, limit: int) -> None:
        super().__init__(
            f"limit: user {user} already holds {limit} active price alerts, the most allowed "
            f"(BROKERFLOW_PRICE_ALERTS_MAX_PER_USER={limit}); delete one first"
        )
        self.user = user
        self.limit = limit


class PriceAlertNotFoundError(BrokerflowError):
    """No price alert with that id (of that user) is ACTIVE or FIRED."""


@dataclass(frozen=True, slots=True)
class PriceAlertRow:
    """A `price_alerts` row as `list_alerts` returns it."""

    id: int
    user_id: str
    account: str | None
    symbol: str
    condition: str
    value: Decimal
    status: str
    created_at: dt.datetime
    fired_at: dt.datetime | None
    fired_ltp: Decimal | None

    def as_dict(self) -> dict:
        """The row as JSON-ready values (the `alert.list` frame's items)."""
        return {
            "id": self.id, "user_id": self.user_id, "account": self.account,
            "symbol": self.symbol, "condition": self.condition, "value": float(self.value),
            "status": self.status, "created_at": self.created_at.isoformat(),
            "fired_at": self.fired_at.isoformat() if self.fired_at else None,
            "fired_ltp": float(self.fired_ltp) if self.fired_ltp is not None else None,
        }  # fmt: skip


_COLUMNS = "id, user_id, account, symbol, condition, value, status, created_at, fired_at, fired_ltp"


def create(
    conn: psycopg.Connection,
    *,
    user: str,
    symbol: object,
    condition: object,
    value: object,
    account: str | None = None,
    max_per_user: int = DEFAULT_MAX_PER_USER,
    known_symbols: Collection[str] | None = None,
) -> PriceAlert:
    """Check and store a new ACTIVE alert; return it with its id.

    Raises:
        PriceAlertError: a field is unusable (`field` names it; "user" for an empty user).
        PriceAlertLimitError: the user holds `max_per_user` ACTIVE alerts already.
    """
    if not user or not user.strip():
        field, msg = "user", "missing or empty"
        raise PriceAlertError(field, msg)
    sym, cond, number = check_price_alert(symbol, condition, value, known_symbols)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_TAKE_CHANGE_LOCK)
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, user))
        cur.execute(
            "SELECT count(*) FROM price_alerts WHERE user_id = %s AND status = 'ACTIVE'", (user,)
        )
        row = cur.fetchone()
        if row is not None and row[0] >= max_per_user:
            raise PriceAlertLimitError(user, max_per_user)
        cur.execute(
            "INSERT INTO price_alerts (user_id, account, symbol, condition, value) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (user, account, sym, cond, number),
        )
        row = cur.fetchone()
        assert row is not None
    return PriceAlert(row[0], user, account, sym, cond, number)


def list_alerts(
    conn: psycopg.Connection, user: str | None = None, include_deleted: bool = False
) -> list[PriceAlertRow]:
    """A user's alerts (every user's when None), ACTIVE and FIRED (and DELETED if asked), by id."""
    where, params = [], []
    if user is not None:
        where.append("user_id = %s")
        params.append(user)
    if not include_deleted:
        where.append("status <> 'DELETED'")
    sql = f"SELECT {_COLUMNS} FROM price_alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    with conn.cursor() as cur:
        cur.execute(sql + " ORDER BY id", params)
        return [PriceAlertRow(*r) for r in cur.fetchall()]


def delete(conn: psycopg.Connection, alert_id: int, user: str | None = None) -> None:
    """Soft-delete an ACTIVE or FIRED alert (of `user`, when given): status DELETED.

    Raises:
        PriceAlertNotFoundError: no such alert (of that user) that is not deleted already.
    """
    sql = "UPDATE price_alerts SET status = 'DELETED' WHERE id = %s AND status <> 'DELETED'"
    params: list = [alert_id]
    if user is not None:
        sql += " AND user_id = %s"
        params.append(user)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_TAKE_CHANGE_LOCK)
        cur.execute(sql + " RETURNING id", params)
        if cur.fetchone() is None:
            msg = f"id: no price alert {alert_id}" + (f" of user {user}" if user else "")
            raise PriceAlertNotFoundError(msg)


def load_resting(conn: psycopg.Connection, symbols: Collection[str]) -> list[RestingAlert]:
    """The ACTIVE alerts of `symbols` as the flow's book rests them: `(id, symbol, condition,
    value)`, the value a float (the level it fires at), by id. Only what the book keeps: a
    million rows come as plain tuples, without an object each."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, symbol, condition, value::float8 FROM price_alerts "
            "WHERE status = 'ACTIVE' AND symbol = ANY(%s) ORDER BY id",
            (list(symbols),),
        )
        return cur.fetchall()


def load_active(
    conn: psycopg.Connection, symbols: Collection[str] | None = None
) -> list[PriceAlert]:
    """The ACTIVE alerts (of `symbols`, when given), by id: what the flow's book rests."""
    sql = "SELECT id, user_id, account, symbol, condition, value FROM price_alerts " \
          "WHERE status = 'ACTIVE'"  # fmt: skip
    params: list = []
    if symbols is not None:
        sql += " AND symbol = ANY(%s)"
        params.append(list(symbols))
    with conn.cursor() as cur:
        cur.execute(sql + " ORDER BY id", params)
        return [PriceAlert(*r) for r in cur.fetchall()]


def not_deleted(conn: psycopg.Connection, ids: Collection[int]) -> dict[int, PriceAlert]:
    """The alerts among `ids` whose row is ACTIVE or FIRED (not deleted, not unknown), by id:
    what a fired one shows its trader (the flow's book keeps only ids and levels)."""
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT id, user_id, account, symbol, condition, value FROM price_alerts "
        "WHERE id = ANY(%s) AND status <> 'DELETED'",
        (list(ids),),
    ).fetchall()
    return {r[0]: PriceAlert(*r) for r in rows}


@dataclass(frozen=True, slots=True)
class PriceAlertChange:
    """A row that changed since the reader's cursor, as it is now: ACTIVE (rest it) or DELETED
    (take it out). FIRED rows are left out: only the flow fires, and its book has let them go."""

    alert: PriceAlert
    status: str
    seq: int


class PriceAlertReader:
    """The flow's reads of the table: where the changes are now (`head`), the ACTIVE alerts of
    some symbols (`load`), and the changes past a cursor (`changes`).

    One reader serves every shard of a process: one connection (made on first use; used under
    a lock, reconnected on a lost connection with the policy's backoff), and one poll of the
    table per `max_age_s` however many shards ask: the changes it read are kept (up to
    `keep` of them) and each shard takes those past its own cursor.
    """

    def __init__(
        self,
        dsn: str,
        policy: RetryPolicy | None = None,
        max_age_s: float = 1.0,
        keep: int = 100_000,
    ) -> None:
        self._dsn = dsn
        self._policy = policy or RetryPolicy()
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self.max_age_s = max_age_s
        self._keep = keep
        self._log: list[PriceAlertChange] = []  # changes past `_base`, in change order
        self._base: int | None = None
        self._head = 0
        self._read_at = -math.inf

    def _call(self, fn: Callable[[psycopg.Connection], T]) -> T:
        def attempt() -> T:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._dsn, autocommit=True)
            return fn(self._conn)

        def reconnect(_attempt: int, _error: Exception, _delay: float) -> None:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

        policy = self._policy
        return retry_with_backoff(
            attempt, attempts=policy.attempts, base_s=policy.base_s, max_s=policy.max_s,
            retry_on=(psycopg.OperationalError,), on_retry=reconnect,
        )  # fmt: skip

    def head(self) -> int:
        """A change_seq every change past which is still to come: read it before `load`, and
        every change the load may have missed is past it (the last poll's head, when fresh:
        an older head only means a change is seen twice, which the book shrugs off)."""
        with self._lock:
            self._refresh()
            return self._head

    def load(self, symbols: Collection[str]) -> list[RestingAlert]:
        """The ACTIVE alerts of `symbols`, as the book rests them, by id (`load_resting`)."""
        if not symbols:
            return []
        with self._lock:
            return self._call(lambda c: load_resting(c, symbols))

    def changes(self, cursor: int) -> tuple[list[PriceAlertChange], int]:
        """The rows changed past `cursor` (FIRED ones left out), in change order, and the new
        cursor; from the table at most once per `max_age_s`."""
        with self._lock:
            self._refresh()
            if self._base is not None and cursor >= self._base:
                log = self._log
                start = bisect.bisect_right(log, cursor, key=lambda c: c.seq)
                return log[start:], max(cursor, self._head)
            # Older than what is kept (a shard quiet for long): read its own.
            return self._call(lambda c: _changes(c, cursor))

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at < self.max_age_s:
            return
        if self._base is None:
            self._head = self._base = self._call(_head)
        else:
            new, self._head = self._call(lambda c: _changes(c, self._head))
            self._log += new
            if len(self._log) > self._keep:  # forget the oldest; later cursors are past them
                self._log = []
                self._base = self._head
        self._read_at = now

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _head(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(change_seq), 0) FROM price_alerts").fetchone()
    return int(row[0]) if row else 0


def _changes(conn: psycopg.Connection, cursor: int) -> tuple[list[PriceAlertChange], int]:
    """The changes past `cursor` up to the head, read first: every number up to the head
    belongs to a committed change (they are drawn in commit order)."""
    head = _head(conn)
    if head <= cursor:
        return [], cursor
    rows = conn.execute(
        "SELECT id, user_id, account, symbol, condition, value, status, change_seq "
        "FROM price_alerts WHERE change_seq > %s AND change_seq <= %s AND status <> 'FIRED' "
        "ORDER BY change_seq",
        (cursor, head),
    ).fetchall()
    return [PriceAlertChange(PriceAlert(*r[:6]), r[6], r[7]) for r in rows], head


def mark_fired(conn: psycopg.Connection, fired: Sequence[PriceAlertFired]) -> list[int]:
    """Mark the alerts FIRED (fired_at from the event's `ts`, epoch ms; fired_ltp) in one
    statement and transaction; return the ids this call changed (rows still ACTIVE), by id.

    Idempotent: an alert already FIRED or DELETED is left alone and not returned.

    The statement draws the rows' change_seq itself, under the change lock taken first (the
    trigger leaves such rows alone: migration 0014). fired_ltp goes as float8 and becomes
    numeric through its text, which PostgreSQL writes as the shortest exact decimal, as
    Python's repr does (a direct float8 -> numeric cast keeps only 15 digits).
    """
    if not fired:
        return []
    ids = [f.alert.id for f in fired]
    # Inside the caller's transaction (the fired-alerts sink), no savepoint of its own.
    outer = conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    with nullcontext() if outer else conn.transaction(), conn.cursor() as cur:
        cur.execute(_TAKE_CHANGE_LOCK)
        # `p.id = ANY(ids)` as well as the join: the planner then finds the rows by the primary
        # key (the join alone, for a large batch, hashes the whole table).
        cur.execute(
            "UPDATE price_alerts AS p SET status = 'FIRED', "
            "fired_at = 'epoch'::timestamptz + t.ts_ms * interval '1 millisecond', "
            "fired_ltp = t.ltp::text::numeric, change_seq = nextval('price_alerts_change_seq') "
            "FROM unnest(%b::bigint[], %b::bigint[], %b::float8[]) AS t(id, ts_ms, ltp) "
            "WHERE p.id = t.id AND p.id = ANY(%b::bigint[]) AND p.status = 'ACTIVE' "
            "RETURNING p.id",
            (ids, [f.ts for f in fired], [float(f.ltp) for f in fired], ids),
        )
        return sorted(r[0] for r in cur.fetchall())
