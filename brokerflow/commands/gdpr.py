"""`brokerflow gdpr pseudonymise ACCOUNT`: the right to be forgotten, keeping the audit trail.

The account's identity is replaced by a keyed hash, `pseudonym_of(account, key)` =
"psn_" + the first 32 hex digits of HMAC-SHA256(key, account), with the key in
`<data_dir>/pseudonym.key` (32 random bytes, hex, created on first use, mode 0600). The same
account always gets the same pseudonym under one key, so running the command again is harmless
and reports keep grouping the account's events together.

ClickHouse (`pseudonymise_clickhouse`): the mapping goes to `pseudonym_map(account, pseudonym,
created_at)` first, then `ALTER TABLE audit_log UPDATE` rewrites `account` and the Account (1)
field inside `raw_fix`, and `ALTER TABLE alerts UPDATE` the alerts' `account` and the account
wherever their `details` name it (a JSON string equal to it: a wash trade's or a round trip's
counterparties). These mutations are the one sanctioned exception to "audit_log is
immutable"; they run with `mutations_sync = 2` so the command returns when they are done.
Dropping `pseudonym_map` (or deleting the account's row) later makes the pseudonym
irreversible.

Redis (`forget_stream_alerts`): `stream:alerts` is an append-only feed of the edge (capped at
`redis_stream_maxlen`); an entry cannot be rewritten in place, and re-adding one would change
its id and order, so the entries that name the account (its `account` field, or the account as a
JSON string in the alert) are deleted (XDEL). The alerts themselves live on, pseudonymised, in
PostgreSQL and ClickHouse.

PostgreSQL (`pseudonymise_postgres`), in one transaction: the mapping goes to `pseudonym_map`,
the account row is re-keyed (a new row under the pseudonym, children moved, the old row
deleted, since the key is referenced), `account` is rewritten in every ledger table (orders,
executions, holdings, stop_orders, alerts, account_margin) and the Account (1) field inside
`dead_letters.raw`. The owner becomes the owner's own pseudonym (same key), so accounts of one
owner that are all pseudonymised still group together for wash-trade detection.

The map kept apart (`BROKERFLOW_PSEUDONYM_DSN`): the mapping then goes only to `pseudonym_map`
in that PostgreSQL database (created there on first use), before any rewrite, and neither the
ledger database nor ClickHouse gets a copy: whoever holds the data cannot map a pseudonym
back without that database (and the key, `BROKERFLOW_PSEUDONYM_KEY_FILE`, which can be kept
off the data host too).

The audit trail's day seals (`brokerflow audit seal`): the sealed days holding the account's
rows are checked against their seals before the rewrite and re-sealed after it
(`brokerflow.seals.plan_reseal`, `reseal_after`), the seal log naming who, why (the
pseudonym, never the account) and the digest replaced; a day that did not match its seal before,
or in which anything but the account's rows changed, is left for `audit verify --day` to report.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from domain.errors import BrokerflowError

if TYPE_CHECKING:
    from sinks.clickhouse import ClickHouseStore

KEY_FILE = "pseudonym.key"
PSEUDONYM_PREFIX = "psn_"

# Account (1) inside the raw FIX text, with either field delimiter (SOH or '|').
_UPDATE_AUDIT_LOG = """
ALTER TABLE audit_log
UPDATE
    account = {pseudonym:String},
    raw_fix = replaceAll(
        replaceAll(raw_fix, concat('\\x011=', {account:String}, '\\x01'),
                   concat('\\x011=', {pseudonym:String}, '\\x01')),
        concat('|1=', {account:String}, '|'), concat('|1=', {pseudonym:String}, '|'))
WHERE account = {account:String}
SETTINGS mutations_sync = 2
"""

_UPDATE_ALERTS = """
ALTER TABLE alerts
UPDATE
    account = if(account = {account:String}, {pseudonym:String}, account),
    details = replaceAll(details, concat('"', {account:String}, '"'),
                         concat('"', {pseudonym:String}, '"'))
WHERE account = {account:String} OR position(details, concat('"', {account:String}, '"')) > 0
SETTINGS mutations_sync = 2
"""

_INSERT_MAPPING = """
INSERT INTO pseudonym_map (account, pseudonym, created_at)
SELECT {account:String}, {pseudonym:String}, now64(6)
WHERE NOT EXISTS (SELECT 1 FROM pseudonym_map WHERE account = {account:String})
"""


class PseudonymiseError(BrokerflowError):
    """The account cannot be pseudonymised (empty, or already a pseudonym)."""


_CREATE_SEPARATE_MAP = """
CREATE TABLE IF NOT EXISTS pseudonym_map (
    account     text        PRIMARY KEY,
    pseudonym   text        NOT NULL UNIQUE,
    owner       text,
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""


def load_or_create_key(data_dir: Path, key_file: Path | None = None) -> bytes:
    """Return the pseudonymisation key of `key_file` (default `<data_dir>/pseudonym.key`),
    creating it if missing."""
    path = Path(key_file) if key_file is not None else Path(data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        msg = f"{path}: not a pseudonymisation key (expected hex, at least 16 bytes)"
        raise PseudonymiseError(msg)
    return key


def pseudonym_of(account: str, key: bytes) -> str:
    """Return the pseudonym of an account under a key.

    >>> pseudonym_of("ACC1", b"k" * 32) == pseudonym_of("ACC1", b"k" * 32)
    True
    """
    digest = hmac.new(key, account.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


def pseudonymise_clickhouse(
    store: ClickHouseStore, account: str, key: bytes, *, record_map: bool = True
) -> str:
    """Replace an account by its pseudonym in ClickHouse; record the mapping first.

    Args:
        store: a migrated ClickHouse store.
        account: the Account (1) to forget.
        key: the pseudonymisation key (`load_or_create_key`).
        record_map: also keep the mapping in ClickHouse `pseudonym_map` (False when the map is
            kept apart: `record_map_apart`).

    Returns:
        The pseudonym. Idempotent: a second call changes nothing.

    Raises:
        PseudonymiseError: the account is empty or is itself a pseudonym.
        ClickHouseError: the store failed.
    """
    _check_account(account)
    pseudonym = pseudonym_of(account, key)
    params = {"account": account, "pseudonym": pseudonym}
    # The mapping before the rewrite: a crash between the two leaves a recoverable state.
    if record_map:
        store.command(_INSERT_MAPPING, params)
    rewrite_clickhouse(store, account, pseudonym)
    return pseudonym


def rewrite_clickhouse(store: ClickHouseStore, account: str, pseudonym: str) -> None:
    """The sanctioned mutations: `account` -> `pseudonym` in `audit_log` (and its raw FIX)
    and in `alerts` (and their details). Idempotent; also what a restore of an archive made
    before the pseudonymisation re-applies (`brokerflow audit restore`)."""
    params = {"account": account, "pseudonym": pseudonym}
    store.command(_UPDATE_AUDIT_LOG, params)
    store.command(_UPDATE_ALERTS, params)


def forgotten_accounts(store: ClickHouseStore, map_dsn: str | None) -> dict[str, str]:
    """`{account: pseudonym}` of the pseudonym map: the separate database's when the map is
    kept apart (`map_dsn`), else ClickHouse `pseudonym_map`. Empty when the map was dropped."""
    if map_dsn:
        import psycopg

        with psycopg.connect(map_dsn) as conn:
            exists = conn.execute("SELECT to_regclass('pseudonym_map')").fetchone()
            if not exists or exists[0] is None:
                return {}
            return dict(conn.execute("SELECT account, pseudonym FROM pseudonym_map").fetchall())
    _, rows = store.query("SELECT account, pseudonym FROM pseudonym_map FINAL")
    return dict(rows)


def forget_stream_alerts(redis_url: str, account: str, chunk: int = 1_000) -> int:
    """Delete the `stream:alerts` entries that name `account` (module docstring); return how
    many. Idempotent: a second call finds none."""
    import redis

    quoted = f'"{account}"'.encode()
    name = account.encode()
    deleted = 0
    with redis.Redis.from_url(redis_url) as client:
        start = "-"
        while True:
            entries = client.xrange("stream:alerts", start, "+", count=chunk)
            doomed = [
                entry_id
                for entry_id, fields in entries
                if fields.get(b"account") == name or quoted in fields.get(b"data", b"")
            ]
            if doomed:
                deleted += client.xdel("stream:alerts", *doomed)
            if len(entries) < chunk:
                return deleted
            start = "(" + entries[-1][0].decode()


# Tables whose `account` column is rewritten; accounts itself is re-keyed separately.
_ACCOUNT_TABLES = (
    "holdings", "account_margin", "orders", "executions", "stop_orders", "alerts", "suppressions",
)  # fmt: skip


def record_map_apart(map_dsn: str, ledger_dsn: str, account: str, key: bytes) -> str:
    """Keep the account's mapping in the separate database `map_dsn` only (the table is made
    there on first use); the owner is read from the ledger. Return the pseudonym; idempotent.
    Called before any rewrite, so a crash half-way leaves a map that can undo it."""
    import psycopg

    _check_account(account)
    pseudonym = pseudonym_of(account, key)
    with psycopg.connect(ledger_dsn) as conn:
        row = conn.execute("SELECT owner FROM accounts WHERE account = %s", (account,)).fetchone()
    with psycopg.connect(map_dsn) as conn, conn.transaction():
        conn.execute(_CREATE_SEPARATE_MAP)
        conn.execute(
            "INSERT INTO pseudonym_map (account, pseudonym, owner) VALUES (%s, %s, %s) "
            "ON CONFLICT (account) DO NOTHING",
            (account, pseudonym, row[0] if row else None),
        )
    return pseudonym


def pseudonymise_postgres(
    dsn: str, account: str, key: bytes, *, record_map: bool = True
) -> tuple[str, int]:
    """Replace an account by its pseudonym in the PostgreSQL ledger, in one transaction.

    Args:
        dsn: a migrated database.
        account: the Account (1) to forget.
        key: the pseudonymisation key (`load_or_create_key`).
        record_map: also keep the mapping in the ledger's `pseudonym_map` (False when the map
            is kept apart: `record_map_apart`).

    Returns:
        The pseudonym and the number of rows rewritten (0 when already done: idempotent).

    Raises:
        PseudonymiseError: the account is empty or is itself a pseudonym.
    """
    import psycopg
    from psycopg import sql

    _check_account(account)
    pseudonym = pseudonym_of(account, key)
    changed = 0
    with psycopg.connect(dsn) as conn, conn.transaction():
        row = conn.execute(
            "SELECT owner FROM accounts WHERE account = %s FOR UPDATE", (account,)
        ).fetchone()
        owner = row[0] if row else None
        if record_map:
            conn.execute(
                "INSERT INTO pseudonym_map (account, pseudonym, owner) VALUES (%s, %s, %s) "
                "ON CONFLICT (account) DO NOTHING",
                (account, pseudonym, owner),
            )
        if row is not None:
            owner_pseudonym = pseudonym_of(owner, key) if owner else owner
            changed += conn.execute(
                "INSERT INTO accounts (account, owner, cash, initial_margin, maintenance_margin,"
                " created_at, updated_at) SELECT %s, %s, cash, initial_margin,"
                " maintenance_margin, created_at, now() FROM accounts WHERE account = %s",
                (pseudonym, owner_pseudonym, account),
            ).rowcount
        for table in _ACCOUNT_TABLES:
            changed += conn.execute(
                sql.SQL("UPDATE {} SET account = %s WHERE account = %s").format(
                    sql.Identifier(table)
                ),
                (pseudonym, account),
            ).rowcount
        # The account named inside alert details (counterparties of a wash trade, a round trip):
        # as a JSON string, the only way an account appears there.
        changed += conn.execute(
            "UPDATE alerts SET details = replace(details::text, %(old)s, %(new)s)::jsonb "
            "WHERE position(%(old)s in details::text) > 0",
            {"old": json.dumps(account), "new": json.dumps(pseudonym)},
        ).rowcount
        if row is not None:
            conn.execute("DELETE FROM accounts WHERE account = %s", (account,))
        # Account (1) inside the raw FIX of dead letters (SOH or '|'), their readable copy and
        # reasons ("unknown account ACC1"). LATIN1 maps every byte to one character and back.
        soh_old, soh_new = f"\x011={account}\x01", f"\x011={pseudonym}\x01"
        bar_old, bar_new = f"|1={account}|", f"|1={pseudonym}|"
        changed += conn.execute(
            """
            UPDATE dead_letters SET
                raw = convert_to(replace(replace(convert_from(raw, 'LATIN1'), %(soh_old)s,
                      %(soh_new)s), %(bar_old)s, %(bar_new)s), 'LATIN1'),
                raw_text = replace(raw_text, %(bar_old)s, %(bar_new)s),
                reason = replace(reason, %(account)s, %(pseudonym)s)
            WHERE position(convert_to(%(soh_old)s, 'LATIN1') in raw) > 0
               OR position(convert_to(%(bar_old)s, 'LATIN1') in raw) > 0
            """,
            {"soh_old": soh_old, "soh_new": soh_new, "bar_old": bar_old, "bar_new": bar_new,
             "account": account, "pseudonym": pseudonym},
        ).rowcount  # fmt: skip
    return pseudonym, changed


def _check_account(account: str) -> None:
    if not account:
        msg = "the account to pseudonymise is empty"
        raise PseudonymiseError(msg)
    if account.startswith(PSEUDONYM_PREFIX):
        msg = f"{account} is already a pseudonym"
        raise PseudonymiseError(msg)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `gdpr` subcommand."""
    p = sub.add_parser(
        "gdpr",
        parents=[common],
        help="right to be forgotten: pseudonymise an account",
        description="Replace an account's identity by a keyed hash, keeping the audit trail.",
    )
    actions = p.add_subparsers(dest="gdpr_action", metavar="ACTION", required=True)
    pseudonymise = actions.add_parser(
        "pseudonymise",
        parents=[common],
        help="replace ACCOUNT by its pseudonym in the ledger (PostgreSQL) and the audit store",
    )
    pseudonymise.add_argument("account", help="the Account (1) to pseudonymise")
    pseudonymise.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Pseudonymise the account and print its pseudonym."""
    import psycopg

    from brokerflow.seals import actor_name, plan_reseal, reseal_after
    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from brokerflow.stores import open_clickhouse
    from sinks.postgres import migrate

    settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
    key = load_or_create_key(settings.data_dir, settings.pseudonym_key_file)
    _check_account(args.account)
    endpoints = ensure_services(settings, {"postgres", "redis"})
    dsn = endpoints.postgres_dsn
    assert dsn is not None and endpoints.redis_url is not None
    migrate(dsn)
    apart = settings.pseudonym_dsn
    if apart:
        record_map_apart(apart, dsn, args.account, key)
    pseudonym, rows = pseudonymise_postgres(dsn, args.account, key, record_map=not apart)
    store = open_clickhouse(args)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            plan = plan_reseal(store, conn, args.account)
            pseudonymise_clickhouse(store, args.account, key, record_map=not apart)
            reason = f"GDPR pseudonymisation to {pseudonym}"
            resealed = reseal_after(store, conn, plan, actor_name(), reason)
    finally:
        store.close()
    entries = forget_stream_alerts(endpoints.redis_url, args.account)
    where = "the separate pseudonym database" if apart else "pseudonym_map of both"
    print(f"{args.account} -> {pseudonym} (PostgreSQL: {rows:,} rows rewritten; ClickHouse "
          f"audit_log and alerts rewritten; stream:alerts: {entries:,} entries deleted; "
          f"mapping in {where})")  # fmt: skip
    for line in resealed:
        print(f"audit seal {line}")
    return 0
