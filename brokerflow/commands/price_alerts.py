"""`brokerflow price-alerts …`: traders' price alerts from the command line (issue 19).

    brokerflow price-alerts list [--user U] [--all] [--format table|csv|json]
    brokerflow price-alerts add --user U [--account A] --symbol S --condition C --value V
    brokerflow price-alerts delete ID [--user U]

Conditions: ltp_above, ltp_below (a price > 0), change_pct_above, change_pct_below (a
percentage from the previous close, e.g. -2.5). The same store code as the WebSocket's
`alert.create` / `alert.list` / `alert.delete` (`sinks.price_alerts`): a symbol outside
`BROKERFLOW_INSTRUMENTS` (when set), an unknown condition or a bad value is refused in one
line naming the field, exit 2; so is a create beyond `BROKERFLOW_PRICE_ALERTS_MAX_PER_USER`.
"""

from __future__ import annotations

import argparse
import sys

from domain.price_alerts import CONDITIONS


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from console.tables import FORMATS

    p = sub.add_parser(
        "price-alerts",
        parents=[common],
        help="list, add and delete traders' price alerts",
        description="Traders' price alerts (kept in PostgreSQL price_alerts).",
    )
    actions = p.add_subparsers(dest="price_alerts_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common], help="alerts, ACTIVE and FIRED, by id")
    ls.add_argument("--user", help="one user's (default: every user's)")
    ls.add_argument("--all", action="store_true", help="deleted ones too")
    ls.add_argument("--format", choices=FORMATS, default="table")
    add = actions.add_parser("add", parents=[common], help="set a price alert")
    add.add_argument("--user", required=True)
    add.add_argument("--account")
    add.add_argument("--symbol", required=True)
    # No `choices`: a bad condition is refused by the same check as the WebSocket's.
    add.add_argument("--condition", required=True, help=" | ".join(CONDITIONS))
    add.add_argument("--value", required=True, help="a price, or a percentage for change_pct_*")
    rm = actions.add_parser("delete", parents=[common], help="delete a price alert (soft)")
    rm.add_argument("id", type=int)
    rm.add_argument("--user", help="only if it is this user's")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import psycopg

    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from console.tables import write_result
    from sinks import price_alerts as store
    from sinks.postgres import migrate

    settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    assert dsn is not None
    migrate(dsn)
    action = args.price_alerts_action
    with psycopg.connect(dsn, autocommit=True) as conn:
        if action == "list":
            rows = store.list_alerts(conn, args.user, include_deleted=args.all)
            columns = ["id", "user_id", "account", "symbol", "condition", "value", "status",
                       "created_at", "fired_at", "fired_ltp"]  # fmt: skip
            write_result(columns, [[getattr(r, c) for c in columns] for r in rows],
                         args.format, sys.stdout)  # fmt: skip
        elif action == "add":
            known = set(settings.instruments) if settings.instruments else None
            alert = store.create(
                conn, user=args.user, account=args.account, symbol=args.symbol,
                condition=args.condition, value=args.value,
                max_per_user=settings.price_alerts_max_per_user, known_symbols=known,
            )  # fmt: skip
            print(f"price alert {alert.id}: {alert.symbol} {alert.condition} {alert.value} "
                  f"(user {alert.user})")  # fmt: skip
        else:
            store.delete(conn, args.id, user=args.user)
            print(f"price alert {args.id} deleted")
    return 0
