"""Sinks layer: traders' price alerts in PostgreSQL `price_alerts` (sql/postgres/0010).

The one module that writes the table: create (with the per-user limit), list, delete (soft),
load the ACTIVE alerts into the flow's book, and mark fired alerts FIRED.

Exactly once across restarts: a row leaves ACTIVE once. `mark_fired` updates only rows still
ACTIVE and returns the ids it changed, so the caller sends a `price_alert` frame for those only:
a batch replayed after a crash (the book restored from an older snapshot fires again) changes no
row and sends nothing; `load_active` never returns a FIRED or DELETED row.

The limit: `create` counts the user's ACTIVE alerts under a transaction-scoped advisory lock
on the user, so two concurrent creates cannot both take the last place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal

import psycopg

from domain.errors import BrokerflowError
from domain.price_alerts import PriceAlert, PriceAlertError, PriceAlertFired, check_price_alert

DEFAULT_MAX_PER_USER = 100
STATUSES = ("ACTIVE", "FIRED", "DELETED")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Advisory lock keys are bigints: one class id for this table, the user's hash as the object.
_LOCK_CLASS = 0x5041  # "PA"


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
        cur.execute(sql + " RETURNING id", params)
        if cur.fetchone() is None:
            msg = f"id: no price alert {alert_id}" + (f" of user {user}" if user else "")
            raise PriceAlertNotFoundError(msg)


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


def _ts(ts_ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ts_ms)


def mark_fired(conn: psycopg.Connection, fired: Sequence[PriceAlertFired]) -> list[int]:
    """Mark the alerts FIRED (fired_at from the event's `ts`, epoch ms; fired_ltp) in one
    statement and transaction; return the ids this call changed (rows still ACTIVE), by id.

    Idempotent: an alert already FIRED or DELETED is left alone and not returned.
    """
    if not fired:
        return []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE price_alerts AS p SET status = 'FIRED', fired_at = t.fired_at, "
            "fired_ltp = t.ltp "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::numeric[]) AS t(id, fired_at, ltp) "
            "WHERE p.id = t.id AND p.status = 'ACTIVE' RETURNING p.id",
            (
                [f.alert.id for f in fired],
                [_ts(f.ts) for f in fired],
                [Decimal(repr(f.ltp)) for f in fired],
            ),
        )
        return sorted(r[0] for r in cur.fetchall())
