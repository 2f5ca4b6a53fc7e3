"""`brokerflow alerts …`: the analysts' alert workflow from the command line — the same code
path as the console's HTTP API (`console.workflow`, `console.queries`).

    brokerflow alerts list [--kind K] [--status S] [--severity-min N] [--account A]
                           [--symbol S] [--since 2026-11-25] [--limit N] [--format …]
    brokerflow alerts show ALERT_ID          the alert, its evidence in words, its history
    brokerflow alerts ack ALERT_ID [--note …]
    brokerflow alerts assign ALERT_ID --to USER [--note …]
    brokerflow alerts escalate ALERT_ID [--to USER] [--note …]
    brokerflow alerts close ALERT_ID --disposition false_positive|true_positive|reported --note …
    brokerflow alerts suppress --account A [--kind K] --until T [--from T] --reason …
    brokerflow alerts suppressions           the rules, revoked ones included

An id may be given by a unique prefix (as `git` does). Actions are taken as `--as USER`
(default: $USER) and go to the alert's history and the audit trail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from typing import Any

from console.tables import FORMATS, write_result
from domain.triage import ACTIONS, DISPOSITIONS, STATUSES


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "alerts",
        parents=[common],
        help="list, show, ack, assign, escalate, close and suppress alerts",
        description="The analysts' alert workflow.",
    )
    actions = p.add_subparsers(dest="alerts_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common], help="the queue: open first by score")
    ls.add_argument("--kind", help="e.g. WASH_TRADE (comma-separated for several)")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--severity-min", type=int, help="lowest score, 0-100")
    ls.add_argument("--account")
    ls.add_argument("--symbol")
    ls.add_argument("--since", help="event time from, ISO 8601 (YYYY-MM-DD)")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--format", choices=FORMATS, default="table")
    show = actions.add_parser("show", parents=[common], help="one alert, explained")
    show.add_argument("alert_id")
    for name in ACTIONS:
        act = actions.add_parser(name, parents=[common], help=f"{name} an alert")
        act.add_argument("alert_id")
        act.add_argument("--note", help="why (kept in the alert's history)")
        act.add_argument("--as", dest="actor", help="who takes the action (default: $USER)")
        if name in ("assign", "escalate"):
            act.add_argument("--to", dest="assignee", required=name == "assign")
        if name == "close":
            act.add_argument("--disposition", choices=DISPOSITIONS, help="required to close")
    sup = actions.add_parser("suppress", parents=[common], help="suppress an account's alerts")
    sup.add_argument("--account", required=True)
    sup.add_argument("--kind", help="one kind (default: every kind)")
    sup.add_argument("--from", dest="starts", help="ISO 8601 (default: now)")
    sup.add_argument("--until", required=True, help="ISO 8601, at most 90 days on")
    sup.add_argument("--reason", required=True)
    sup.add_argument("--as", dest="actor", help="who sets the rule (default: $USER)")
    rules = actions.add_parser("suppressions", parents=[common], help="the suppression rules")
    rules.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(func=run)


def _stores(args: argparse.Namespace) -> tuple[str, Any]:
    """The PostgreSQL DSN (migrated) and, when it can be opened, the ClickHouse store for the
    audit copy of actions (None when another process holds the embedded one)."""
    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from sinks.clickhouse import ClickHouseError, migrate_clickhouse, open_store
    from sinks.postgres import migrate

    settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    assert dsn is not None
    migrate(dsn)
    if args.alerts_action in ("list", "show", "suppressions"):
        return dsn, None
    try:
        store = open_store(settings.clickhouse_url, settings.data_dir)
        migrate_clickhouse(store)
    except ClickHouseError as exc:
        print(f"warning: the audit trail is not reachable ({exc}); the action is recorded "
              "in PostgreSQL only", file=sys.stderr)  # fmt: skip
        return dsn, None
    return dsn, store


def _actor(args: argparse.Namespace) -> str:
    return args.actor or getpass.getuser() or "cli"


def run(args: argparse.Namespace) -> int:
    import psycopg

    from console import queries, workflow
    from console.access import ANALYST_SCOPE
    from console.filters import parse_alert_filter, parse_time
    from domain.triage import ActionRequest

    dsn, store = _stores(args)
    audit = workflow.clickhouse_audit(store) if store is not None else None
    action = args.alerts_action
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if action == "list":
                given = {"kind": args.kind, "status": args.status, "account": args.account,
                         "symbol": args.symbol, "from": args.since, "limit": str(args.limit),
                         "severity_min": None if args.severity_min is None
                         else str(args.severity_min),
                         "suppressed": "include"}  # fmt: skip
                f = parse_alert_filter({k: v for k, v in given.items() if v is not None})
                page = queries.list_alerts(conn, ANALYST_SCOPE, f)
                columns = ["alert_id", "kind", "score", "status", "account", "owner", "symbol",
                           "event_time", "occurrences", "assignee"]  # fmt: skip
                rows = [[a[c] for c in columns] for a in page["alerts"]]
                write_result(columns, rows, args.format, sys.stdout)
                return 0
            if action == "suppressions":
                rules = workflow.list_suppressions(conn)
                columns = ["id", "account", "kind", "reason", "actor", "starts_at", "ends_at",
                           "revoked_at", "revoked_by"]  # fmt: skip
                write_result(columns, [[r[c] for c in columns] for r in rules], args.format,
                             sys.stdout)  # fmt: skip
                return 0
            if action == "suppress":
                starts = parse_time("--from", args.starts) if args.starts else dt.datetime.now(
                    dt.UTC)
                rule = workflow.add_suppression(
                    conn, _actor(args), args.account, args.kind, args.reason, starts,
                    parse_time("--until", args.until), audit,
                )  # fmt: skip
                print(f"suppression {rule['id']}: {rule['account']} {rule['kind'] or 'all kinds'}"
                      f" {rule['starts_at']} -> {rule['ends_at']}")  # fmt: skip
                return 0
            alert_id = workflow.resolve_alert_id(conn, args.alert_id)
            if action == "show":
                _show(queries.get_alert(conn, alert_id), workflow.history(conn, alert_id))
                return 0
            result = workflow.apply_action(
                conn, alert_id,
                ActionRequest(action, _actor(args), getattr(args, "assignee", None),
                              getattr(args, "disposition", None), args.note),
                audit,
            )  # fmt: skip
    finally:
        if store is not None:
            store.close()
    extra = f" ({result.disposition})" if result.disposition else ""
    print(f"{result.alert_id} {result.from_status} -> {result.status}{extra} by {result.actor}")
    return 0


def _show(alert: dict[str, Any], history: list[dict[str, Any]]) -> None:
    """The alert laid out to read: what happened in words, then the evidence, then history."""
    from domain.explain import explain

    text = explain(alert["kind"], alert["details"] or {}, account=alert["account"],
                   symbol=alert["symbol"], owner=alert["owner"])  # fmt: skip
    print(f"{alert['kind']}  score {alert['score']}  {alert['status']}  {alert['alert_id']}")
    print(text.headline)
    for line in text.findings:
        print(f"  - {line}")
    print()
    for label, value in (("account", alert["account"]), ("owner", alert["owner"]),
                         ("symbol", alert["symbol"]), ("event time", alert["event_time"]),
                         ("assignee", alert["assignee"]),
                         ("disposition", alert["disposition"]),
                         ("suppressed by", alert["suppression_reason"])):  # fmt: skip
        if value is not None:
            print(f"{label + ':':<15} {value}")
    if text.fields:
        print("evidence:")
        for label, value in text.fields:
            print(f"  {label:<26} {value}")
    if history:
        print("history:")
        for h in history:
            what = h["action"] + (f" ({h['disposition']})" if h["disposition"] else "")
            to = f" -> {h['assignee']}" if h["assignee"] else ""
            note = f": {h['note']}" if h["note"] else ""
            print(f"  {h['at']}  {h['actor']:<10} {what}{to}  "
                  f"[{h['from_status']} -> {h['to_status']}]{note}")  # fmt: skip
