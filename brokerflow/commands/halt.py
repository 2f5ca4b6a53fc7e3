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
halts of single accounts stay until resumed by name.
"""

from __future__ import annotations

import argparse
import getpass

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


def halt(dsn: str, scope: str, reason: str, actor: str) -> tuple[bool, str]:
    """Open the kill-switch halt of `scope`; return (changed, the line to print)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO trading_halts (scope, reason, actor, source, started_at) "
            "VALUES (%s, %s, %s, 'kill_switch', now()) ON CONFLICT DO NOTHING "
            "RETURNING started_at",
            (scope, reason, actor),
        ).fetchone()
        if row is not None:
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


def resume(dsn: str, scope: str) -> tuple[bool, str]:
    """End the kill-switch halt of `scope`; return (changed, the line to print)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE trading_halts SET ended_at = greatest(now(), started_at) "
            "WHERE source = 'kill_switch' AND scope = %s AND ended_at IS NULL "
            "RETURNING started_at, reason",
            (scope,),
        ).fetchone()
        held = conn.execute(
            "SELECT count(*) FROM held_orders WHERE released_at IS NULL"
        ).fetchone()[0]
    if row is None:
        return False, f"not halted: {scope} is running; nothing changed"
    return True, (
        f"resumed {scope} (halted since {row[0]:%Y-%m-%d %H:%M:%S%z}: {row[1]}); "
        f"{held} held order(s) to release"
    )


def run_halt(args: argparse.Namespace) -> int:
    actor = args.actor or getpass.getuser() or "cli"
    _, line = halt(_dsn(args), args.account or ALL, args.reason, actor)
    print(line)
    return 0


def run_resume(args: argparse.Namespace) -> int:
    _, line = resume(_dsn(args), args.account or ALL)
    print(line)
    return 0
