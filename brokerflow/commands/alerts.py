"""`brokerflow alerts list|show|ack|close`: the analysts' alert workflow on PostgreSQL `alerts`.

    brokerflow alerts list [--kind K] [--status S] [--since 2026-11-25] [--limit N] [--format …]
    brokerflow alerts show ALERT_ID        the alert and its evidence, laid out to read
    brokerflow alerts ack ALERT_ID         OPEN -> ACKED
    brokerflow alerts close ALERT_ID --note "why"   -> CLOSED, with the note

An id may be given by a unique prefix (as `git` does). A closed alert stays closed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from brokerflow.commands.sql import FORMATS, write_result
from domain.errors import BrokerflowError

STATUSES = ("OPEN", "ACKED", "CLOSED")


class AlertNotFound(BrokerflowError):
    """No alert, or more than one, has that id (prefix)."""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "alerts",
        parents=[common],
        help="list, show, ack and close alerts",
        description="The analysts' alert workflow.",
    )
    actions = p.add_subparsers(dest="alerts_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common], help="list alerts, newest first")
    ls.add_argument("--kind", help="e.g. WASH_TRADE")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--since", type=dt.date.fromisoformat, help="event date, YYYY-MM-DD")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--format", choices=FORMATS, default="table")
    show = actions.add_parser("show", parents=[common], help="one alert and its evidence")
    show.add_argument("alert_id")
    ack = actions.add_parser("ack", parents=[common], help="mark an alert seen")
    ack.add_argument("alert_id")
    close = actions.add_parser("close", parents=[common], help="close an alert with a note")
    close.add_argument("alert_id")
    close.add_argument("--note", required=True)
    p.set_defaults(func=run)


def _connect(args: argparse.Namespace) -> Any:
    import psycopg

    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from sinks.postgres import migrate

    settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    assert dsn is not None
    migrate(dsn)
    return psycopg.connect(dsn)


def _resolve(conn: Any, prefix: str) -> str:
    ids = [r[0] for r in conn.execute(
        "SELECT alert_id FROM alerts WHERE alert_id LIKE %s LIMIT 2", (prefix + "%",)
    )]  # fmt: skip
    if len(ids) != 1:
        why = "no alert" if not ids else "more than one alert"
        msg = f"{why} with id {prefix!r}"
        raise AlertNotFound(msg)
    return ids[0]


def run(args: argparse.Namespace) -> int:
    with _connect(args) as conn:
        action = args.alerts_action
        if action == "list":
            where, params = ["TRUE"], []
            if args.kind:
                where.append("kind = %s")
                params.append(args.kind)
            if args.status:
                where.append("status = %s")
                params.append(args.status)
            if args.since:
                where.append("event_time >= %s")
                params.append(dt.datetime.combine(args.since, dt.time(), dt.UTC))
            cur = conn.execute(
                "SELECT alert_id, kind, severity, status, account, owner, symbol, event_time "
                f"FROM alerts WHERE {' AND '.join(where)} "
                "ORDER BY event_time DESC, alert_id LIMIT %s",
                (*params, args.limit),
            )
            columns = [c.name for c in cur.description]
            write_result(columns, cur.fetchall(), args.format, sys.stdout)
            return 0
        alert_id = _resolve(conn, args.alert_id)
        if action == "show":
            row = conn.execute(
                "SELECT alert_id, kind, severity, status, account, owner, symbol, event_time, "
                "details, note FROM alerts WHERE alert_id = %s",
                (alert_id,),
            ).fetchone()
            names = ("alert", "kind", "severity", "status", "account", "owner", "symbol",
                     "event time", "evidence", "note")  # fmt: skip
            for name, value in zip(names, row, strict=True):
                if name == "evidence":
                    print("evidence:")
                    for key, item in sorted(value.items()):
                        text = json.dumps(item) if isinstance(item, list | dict) else item
                        print(f"  {key:<24} {text}")
                elif value is not None:
                    print(f"{name + ':':<12} {value}")
            return 0
        if action == "ack":
            conn.execute(
                "UPDATE alerts SET status = 'ACKED', acked_at = now(), updated_at = now() "
                "WHERE alert_id = %s AND status = 'OPEN'",
                (alert_id,),
            )
        else:
            conn.execute(
                "UPDATE alerts SET status = 'CLOSED', closed_at = now(), note = %s, "
                "updated_at = now() WHERE alert_id = %s AND status <> 'CLOSED'",
                (args.note, alert_id),
            )
        status = conn.execute("SELECT status FROM alerts WHERE alert_id = %s", (alert_id,))
        print(f"{alert_id} {status.fetchone()[0]}")
    return 0
