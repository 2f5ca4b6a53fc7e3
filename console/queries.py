"""Console layer: what the workbench reads from PostgreSQL — the alert queue and its counts, one
alert, an account's view — within the reader's scope (`console.access`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from console.access import AlertScope
from console.filters import AlertFilter, encode_cursor
from console.tables import records
from console.workflow import AlertNotFound, NotFound, iso

# The first suppression rule (if any) that covers an alert: same account, same kind or every
# kind, the alert's event time within the rule's period, not revoked.
_SUPPRESSION = """
LEFT JOIN LATERAL (
    SELECT s.id, s.reason FROM suppressions AS s
    WHERE s.account = a.account AND (s.kind IS NULL OR s.kind = a.kind)
      AND a.event_time >= s.starts_at AND a.event_time < s.ends_at AND s.revoked_at IS NULL
    ORDER BY s.id LIMIT 1
) AS sup ON TRUE
"""
_OCCURRENCES = (
    "coalesce((SELECT count(*) FROM jsonb_object_keys(a.details -> 'occurrences')), 1)"
)
_EPOCH_US = "(extract(epoch FROM a.event_time) * 1000000)::bigint"
# Each sort as ascending key columns: a page continues after the last row's key (keyset
# paging: alerts arriving meanwhile neither repeat nor skip rows).
_SORT_KEYS = {
    "priority": ("(a.status = 'CLOSED')::int", "-a.score", f"-{_EPOCH_US}", "a.alert_id"),
    "time": (f"-{_EPOCH_US}", "a.alert_id"),
}
_ORDER = {
    "priority": "(a.status = 'CLOSED'), a.score DESC, a.event_time DESC, a.alert_id",
    "time": "a.event_time DESC, a.alert_id",
}


def _scope_where(scope: AlertScope, f: AlertFilter) -> tuple[list[str], list[Any]]:
    """Conditions every view of the queue shares: the reader's scope, and the filters on
    who, what and when (not kind or status, which the counts break down)."""
    where: list[str] = []
    params: list[Any] = []
    if scope.kinds is not None:
        where.append("a.kind = ANY(%s)")
        params.append(sorted(scope.kinds))
    if scope.hidden:
        where.append("a.kind <> ALL(%s)")
        params.append(sorted(scope.hidden))
    if scope.accounts is not None:
        where.append("a.account = ANY(%s)")
        params.append(sorted(scope.accounts))
    for column, value in (("account", f.account), ("owner", f.owner), ("symbol", f.symbol),
                          ("assignee", f.assignee)):  # fmt: skip
        if value is not None:
            where.append(f"a.{column} = %s")
            params.append(value)
    if f.severity_min is not None:
        where.append("a.score >= %s")
        params.append(f.severity_min)
    if f.since is not None:
        where.append("a.event_time >= %s")
        params.append(f.since)
    if f.until is not None:
        where.append("a.event_time < %s")
        params.append(f.until)
    return where, params


def list_alerts(conn: psycopg.Connection, scope: AlertScope, f: AlertFilter) -> dict[str, Any]:
    """One page of the queue, open alerts first by score (or newest first), with the counts of
    open alerts by kind and by status, and how many the suppression rules hide."""
    where, params = _scope_where(scope, f)
    counts_where = list(where)
    counts_params = list(params)
    if f.kinds:
        where.append("a.kind = ANY(%s)")
        params.append(list(f.kinds))
    if f.statuses:
        where.append("a.status = ANY(%s)")
        params.append(list(f.statuses))
    if f.suppressed == "exclude":
        where.append("sup.id IS NULL")
    elif f.suppressed == "only":
        where.append("sup.id IS NOT NULL")
    keys = _SORT_KEYS[f.sort]
    if f.cursor is not None:
        where.append(f"({', '.join(keys)}) > ({', '.join(['%s'] * len(keys))})")
        params.extend(f.cursor)
    sql = (
        "SELECT a.alert_id, a.kind, a.severity, a.score, a.status, a.account, a.owner, "
        "a.symbol, a.event_time, a.assignee, a.disposition, a.updated_at, "
        f"{_OCCURRENCES} AS occurrences, sup.id AS suppressed_by, sup.reason, "
        f"{', '.join(keys)} "
        f"FROM alerts AS a {_SUPPRESSION} WHERE {' AND '.join(where) or 'TRUE'} "
        f"ORDER BY {_ORDER[f.sort]} LIMIT %s"
    )
    rows = conn.execute(sql, (*params, f.limit + 1)).fetchall()
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    alerts = [_queue_item(r) for r in rows]
    next_cursor = encode_cursor(tuple(rows[-1][-len(keys):])) if more and rows else None
    return {"alerts": alerts, "next_cursor": next_cursor,
            "counts": _counts(conn, counts_where, counts_params)}  # fmt: skip


def _queue_item(r: tuple) -> dict[str, Any]:
    return {
        "alert_id": r[0], "kind": r[1], "severity": r[2], "score": r[3], "status": r[4],
        "account": r[5], "owner": r[6], "symbol": r[7], "event_time": iso(r[8]),
        "assignee": r[9], "disposition": r[10], "updated_at": iso(r[11]),
        "occurrences": int(r[12]), "suppressed_by": r[13], "suppression_reason": r[14],
    }  # fmt: skip


def _counts(conn: psycopg.Connection, where: list[str], params: list[Any]) -> dict[str, Any]:
    sql = (
        "SELECT a.kind, a.status, sup.id IS NOT NULL AS suppressed, count(*) "
        f"FROM alerts AS a {_SUPPRESSION} WHERE {' AND '.join(where) or 'TRUE'} "
        "GROUP BY 1, 2, 3"
    )
    open_by_kind: dict[str, int] = {}
    by_status: dict[str, int] = {}
    suppressed = 0
    for kind, status, is_suppressed, n in conn.execute(sql, params).fetchall():
        if is_suppressed:
            suppressed += n
            continue
        by_status[status] = by_status.get(status, 0) + n
        if status != "CLOSED":
            open_by_kind[kind] = open_by_kind.get(kind, 0) + n
    return {"open_by_kind": dict(sorted(open_by_kind.items())), "by_status": by_status,
            "suppressed": suppressed}  # fmt: skip


_ALERT = """
SELECT a.alert_id, a.kind, a.severity, a.score, a.status, a.account, a.owner, a.symbol,
       a.event_time, a.details, a.assignee, a.disposition, a.note, a.closed_by, a.closed_at,
       a.acked_at, a.created_at, a.updated_at, sup.id, sup.reason
FROM alerts AS a
""" + _SUPPRESSION + "WHERE a.alert_id = %s"


def get_alert(conn: psycopg.Connection, alert_id: str) -> dict[str, Any]:
    """One alert's row with its evidence (`details`). Raises `AlertNotFound`."""
    row = conn.execute(_ALERT, (alert_id,)).fetchone()
    if row is None:
        msg = f"no alert with id {alert_id!r}"
        raise AlertNotFound(msg)
    names = ("alert_id", "kind", "severity", "score", "status", "account", "owner", "symbol",
             "event_time", "details", "assignee", "disposition", "note", "closed_by",
             "closed_at", "acked_at", "created_at", "updated_at", "suppressed_by",
             "suppression_reason")  # fmt: skip
    alert = dict(zip(names, row, strict=True))
    for key in ("event_time", "closed_at", "acked_at", "created_at", "updated_at"):
        alert[key] = iso(alert[key])
    return alert


def _period(
    since: dt.datetime | None, until: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    """The period asked for; by default the 31 days to now (a day ahead: clocks differ)."""
    end = until or dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    start = since or end - dt.timedelta(days=31)
    return start, end


def account_view(conn: psycopg.Connection, scope: AlertScope, account: str,
                 since: dt.datetime | None, until: dt.datetime | None,
                 limit: int = 500) -> dict[str, Any]:  # fmt: skip
    """An account over a period: who holds it, cash and margin state now, holdings now, and
    the orders, fills and alerts of the period (newest first, at most `limit` of each).

    Raises:
        NotFound: the account is not on record.
    """
    start, end = _period(since, until)
    row = conn.execute(
        "SELECT a.account, a.owner, a.cash, a.initial_margin, a.maintenance_margin, "
        "m.equity, m.gross_value, m.ratio, m.state, m.event_time, m.call_since "
        "FROM accounts AS a LEFT JOIN account_margin AS m USING (account) "
        "WHERE a.account = %s",
        (account,),
    ).fetchone()
    if row is None:
        msg = f"no account {account!r} on record"
        raise NotFound(msg)
    summary = records(
        ["account", "owner", "cash", "initial_margin", "maintenance_margin", "equity",
         "gross_value", "margin_ratio", "margin_state", "margin_at", "call_since"], [row],
    )[0]  # fmt: skip
    for key in ("margin_at", "call_since"):
        summary[key] = iso(row[9 if key == "margin_at" else 10])

    def table(sql: str, params: tuple) -> dict[str, Any]:
        cur = conn.execute(sql, params)
        columns = [c.name for c in cur.description or []]
        rows = [tuple(iso(v) if isinstance(v, dt.datetime) else v for v in r)
                for r in cur.fetchall()]  # fmt: skip
        return {"columns": columns, "rows": records(columns, rows)}

    holdings = table(
        "SELECT symbol, quantity, avg_price, realised_pnl, updated_at FROM holdings "
        "WHERE account = %s AND (quantity <> 0 OR realised_pnl <> 0) ORDER BY symbol",
        (account,),
    )
    orders = table(
        "SELECT created_at, cl_ord_id, order_id, symbol, side, ord_type, quantity, price, "
        "stop_px, status, cum_qty, leaves_qty, avg_px, updated_at FROM orders "
        "WHERE account = %s AND created_at < %s AND updated_at >= %s "
        "ORDER BY created_at DESC, cl_ord_id LIMIT %s",
        (account, end, start, limit),
    )
    fills = table(
        "SELECT transact_time, exec_id, order_id, cl_ord_id, symbol, side, last_qty, last_px, "
        "cum_qty, leaves_qty, exec_type, trd_match_id, reversed_by FROM executions "
        "WHERE account = %s AND transact_time >= %s AND transact_time < %s "
        "AND last_qty <> 0 ORDER BY transact_time DESC, exec_id LIMIT %s",
        (account, start, end, limit),
    )
    where = ["a.account = %s", "a.event_time >= %s", "a.event_time < %s"]
    params: list[Any] = [account, start, end]
    if scope.kinds is not None:
        where.append("a.kind = ANY(%s)")
        params.append(sorted(scope.kinds))
    if scope.hidden:
        where.append("a.kind <> ALL(%s)")
        params.append(sorted(scope.hidden))
    alerts = conn.execute(
        "SELECT a.alert_id, a.kind, a.severity, a.score, a.status, a.account, a.owner, "
        "a.symbol, a.event_time, a.assignee, a.disposition, a.updated_at, "
        f"{_OCCURRENCES}, sup.id, sup.reason, NULL FROM alerts AS a {_SUPPRESSION} "
        f"WHERE {' AND '.join(where)} ORDER BY a.event_time DESC, a.alert_id LIMIT %s",
        (*params, limit),
    ).fetchall()
    return {
        "account": summary, "from": iso(start), "to": iso(end), "holdings": holdings,
        "orders": orders, "fills": fills, "alerts": [_queue_item(r) for r in alerts],
    }  # fmt: skip
