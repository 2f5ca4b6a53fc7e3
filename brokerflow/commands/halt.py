"""`brokerflow halt [--account A] --reason R` and `brokerflow resume [--account A]`: the kill
switch (issue 19).

`halt` opens a row of `trading_halts` (source 'kill_switch', scope "all" or the account, the
reason, actor = `--as` or $USER, started_at now); `resume` sets its ended_at. The running stop
flow learns of both by reading the open rows at most every second on its order sink's writer
thread (`sinks.stops.KillSwitch`): while a halt covers an account, the children of its
triggered stops are withheld (recorded HELD in `held_orders` and `stop_orders.child_status`),
and on resume each is sent once. `halt` of a scope already halted, or `resume` of one that is
not, prints one line saying so, changes nothing and exits 0: the state asked for holds (a
script may repeat either safely). `resume` without `--account` ends the market-wide halt only;
halts of single accounts stay until resumed by name. Each change is also an audit row
(TRADING_HALTED / TRADING_RESUMED, `domain.audit.trading_halt_record`) when the audit store can
be opened (a warning otherwise: the embedded one is held by a running flow).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

ALL = "all"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `halt` and `resume` subcommands."""
    halt = sub.add_parser(
        "halt",
        parents=[common],
        help="kill switch: withhold child orders (all accounts, or one)",
        description="Withhold the stop engine's child orders until `brokerflow resume`.",
    )
    halt.add_argument("--account", help="halt this account only (default: every account)")
    halt.add_argument("--reason", required=True, help="why (kept with the halt and each order)")
    halt.add_argument("--as", dest="actor", help="who halts (default: $USER)")
    halt.set_defaults(func=run_halt)
    resume = sub.add_parser(
        "resume",
        parents=[common],
        help="end a kill-switch halt: release the withheld child orders once",
        description="End the halt of every account (or of --account) and send what it held.",
    )
    resume.add_argument("--account", help="resume this account's halt (default: the halt of all)")
    resume.set_defaults(func=run_resume)


def _dsn(args: argparse.Namespace) -> str:
    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from sinks.postgres import migrate

    settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    assert dsn is not None
    migrate(dsn)
    return dsn


Audit = Callable[[Any], None]


def _ns(at: Any) -> int:
    return int(at.timestamp()) * 1_000_000_000 + at.microsecond * 1000


def halt(
    dsn: str, scope: str, reason: str, actor: str, audit: Audit | None = None
) -> tuple[bool, str]:
    """Open the kill-switch halt of `scope`; return (changed, the line to print)."""
    import psycopg

    from domain.audit import TRADING_HALTED, trading_halt_record

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO trading_halts (scope, reason, actor, source, started_at) "
            "VALUES (%s, %s, %s, 'kill_switch', now()) ON CONFLICT DO NOTHING "
            "RETURNING started_at",
            (scope, reason, actor),
        ).fetchone()
        if row is not None:
            if audit is not None:
                at = _ns(row[0])
                audit(trading_halt_record(TRADING_HALTED, scope=scope, reason=reason,
                                          actor=actor, started_ns=at, ts_event=at))  # fmt: skip
            return True, f"halted {scope} at {row[0]:%Y-%m-%d %H:%M:%S%z}: {reason}"
        since, by, why = conn.execute(
            "SELECT started_at, actor, reason FROM trading_halts "
            "WHERE source = 'kill_switch' AND scope = %s AND ended_at IS NULL",
            (scope,),
        ).fetchone()
    return False, (
        f"already halted {scope} since {since:%Y-%m-%d %H:%M:%S%z} by {by} ({why}); "
        "nothing changed"
    )


def resume(
    dsn: str, scope: str, actor: str = "cli", audit: Audit | None = None
) -> tuple[bool, str]:
    """End the kill-switch halt of `scope`; return (changed, the line to print)."""
    import psycopg

    from domain.audit import TRADING_RESUMED, trading_halt_record

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE trading_halts SET ended_at = greatest(now(), started_at) "
            "WHERE source = 'kill_switch' AND scope = %s AND ended_at IS NULL "
            "RETURNING started_at, reason, ended_at",
            (scope,),
        ).fetchone()
        held = conn.execute(
            "SELECT count(*) FROM held_orders WHERE released_at IS NULL"
        ).fetchone()[0]
    if row is None:
        return False, f"not halted: {scope} is running; nothing changed"
    if audit is not None:
        audit(trading_halt_record(TRADING_RESUMED, scope=scope, reason=row[1], actor=actor,
                                  started_ns=_ns(row[0]), ts_event=_ns(row[2])))  # fmt: skip
    return True, (
        f"resumed {scope} (halted since {row[0]:%Y-%m-%d %H:%M:%S%z}: {row[1]}); "
        f"{held} held order(s) to release"
    )


def _audit_writer(args: argparse.Namespace) -> Audit:
    """Insert one audit row, or warn on stderr when the store cannot be opened."""

    def write(record: Any) -> None:
        from brokerflow.settings import load_settings
        from sinks.clickhouse import (
            AUDIT_COLUMNS,
            ClickHouseError,
            audit_columns,
            migrate_clickhouse,
            open_store,
        )

        settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
        try:
            store = open_store(settings.clickhouse_url, settings.data_dir)
            try:
                migrate_clickhouse(store)
                store.insert_columns("audit_log", AUDIT_COLUMNS, audit_columns([record]))
            finally:
                store.close()
        except ClickHouseError as exc:
            print(f"warning: the audit trail is not reachable ({exc}); the change is recorded "
                  "in PostgreSQL only", file=sys.stderr)  # fmt: skip

    return write


def _actor(args: argparse.Namespace) -> str:
    return getattr(args, "actor", None) or getpass.getuser() or "cli"


def run_halt(args: argparse.Namespace) -> int:
    scope = args.account or ALL
    _, line = halt(_dsn(args), scope, args.reason, _actor(args), _audit_writer(args))
    print(line)
    return 0


def run_resume(args: argparse.Namespace) -> int:
    _, line = resume(_dsn(args), args.account or ALL, _actor(args), _audit_writer(args))
    print(line)
    return 0
