"""`brokerflow gdpr pseudonymise ACCOUNT`: the right to be forgotten, keeping the audit trail.

The account's identity is replaced by a keyed hash, `pseudonym_of(account, key)` =
"psn_" + the first 32 hex digits of HMAC-SHA256(key, account), with the key in
`<data_dir>/pseudonym.key` (32 random bytes, hex, created on first use, mode 0600). The same
account always gets the same pseudonym under one key, so running the command again is harmless
and reports keep grouping the account's events together.

ClickHouse (`pseudonymise_clickhouse`): the mapping goes to `pseudonym_map(account, pseudonym,
created_at)` first, then `ALTER TABLE audit_log UPDATE` rewrites `account` and the Account (1)
field inside `raw_fix`. This mutation is the one sanctioned exception to "audit_log is
immutable"; it runs with `mutations_sync = 2` so the command returns when it is done. Dropping
`pseudonym_map` (or deleting the account's row) later makes the pseudonym irreversible.

PostgreSQL is the next step (`pseudonymise_postgres`, not written yet: issue 3).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
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

_INSERT_MAPPING = """
INSERT INTO pseudonym_map (account, pseudonym, created_at)
SELECT {account:String}, {pseudonym:String}, now64(6)
WHERE NOT EXISTS (SELECT 1 FROM pseudonym_map WHERE account = {account:String})
"""


class PseudonymiseError(BrokerflowError):
    """The account cannot be pseudonymised (empty, or already a pseudonym)."""


def load_or_create_key(data_dir: Path) -> bytes:
    """Return the pseudonymisation key of `<data_dir>/pseudonym.key`, creating it if missing."""
    path = Path(data_dir) / KEY_FILE
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


def pseudonymise_clickhouse(store: ClickHouseStore, account: str, key: bytes) -> str:
    """Replace an account by its pseudonym in ClickHouse; record the mapping first.

    Args:
        store: a migrated ClickHouse store.
        account: the Account (1) to forget.
        key: the pseudonymisation key (`load_or_create_key`).

    Returns:
        The pseudonym. Idempotent: a second call changes nothing.

    Raises:
        PseudonymiseError: the account is empty or is itself a pseudonym.
        ClickHouseError: the store failed.
    """
    if not account:
        msg = "the account to pseudonymise is empty"
        raise PseudonymiseError(msg)
    if account.startswith(PSEUDONYM_PREFIX):
        msg = f"{account} is already a pseudonym"
        raise PseudonymiseError(msg)
    pseudonym = pseudonym_of(account, key)
    params = {"account": account, "pseudonym": pseudonym}
    # The mapping before the rewrite: a crash between the two leaves a recoverable state.
    store.command(_INSERT_MAPPING, params)
    store.command(_UPDATE_AUDIT_LOG, params)
    return pseudonym


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
        help="replace ACCOUNT by its pseudonym in the audit store",
    )
    pseudonymise.add_argument("account", help="the Account (1) to pseudonymise")
    pseudonymise.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Pseudonymise the account and print its pseudonym."""
    from brokerflow.commands.report import open_clickhouse
    from brokerflow.settings import load_settings

    settings = load_settings(getattr(args, "config", None), getattr(args, "data_dir", None))
    key = load_or_create_key(settings.data_dir)
    store = open_clickhouse(args)
    try:
        pseudonym = pseudonymise_clickhouse(store, args.account, key)
    finally:
        store.close()
    print(f"{args.account} -> {pseudonym} (ClickHouse audit_log; PostgreSQL: not yet)")
    return 0
