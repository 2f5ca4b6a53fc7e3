"""Sinks layer: least privilege on a ClickHouse server, as DDL text (`brokerflow audit grants`).

Three roles, so that the audit trail is immutable by privilege and not only by convention:

- `brokerflow_flows` (the flows, `brokerflow halt`, the console's ANALYST_ACTION rows): INSERT
  and SELECT on the tables they write, CREATE TABLE for the idempotent migrations at start-up
  (`CREATE TABLE IF NOT EXISTS`). No ALTER (so no UPDATE, DELETE or TTL change), no DROP, no
  TRUNCATE, no OPTIMIZE.
- `brokerflow_analyst`: SELECT on the audit and analytics tables (not `pseudonym_map`), with a
  `readonly = 1` settings profile: reports and `brokerflow sql clickhouse`.
- `brokerflow_compliance`: the sanctioned exceptions. `brokerflow gdpr pseudonymise` (ALTER
  UPDATE of `audit_log.account`/`raw_fix` and `alerts.account`/`details` only, the mapping in
  `pseudonym_map`), `brokerflow audit archive/restore/seal/verify` (SELECT, INSERT on
  `audit_log`). Still no DELETE and no DROP: rows leave `audit_log` by its TTL alone.

The schema's owner (the default/admin user) applies retention changes
(`BROKERFLOW_AUDIT_RETENTION_YEARS`: `ALTER TABLE audit_log MODIFY TTL`) and these grants.
A user is created only when its password is given (only its salted sha256 is printed);
otherwise a comment says how, and the role is granted to the user name, which must exist.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping

FLOWS_ROLE = "brokerflow_flows"
ANALYST_ROLE = "brokerflow_analyst"
COMPLIANCE_ROLE = "brokerflow_compliance"
READONLY_PROFILE = "brokerflow_readonly"

FLOWS_INSERT_TABLES = ("audit_log", "market_ticks", "alerts", "schema_migrations")
"""Tables the flows (and the other writing commands but gdpr) insert into."""
ANALYST_TABLES = ("audit_log", "market_ticks", "alerts")
COMPLIANCE_UPDATES = {"audit_log": ("account", "raw_fix"), "alerts": ("account", "details")}
"""Columns `brokerflow gdpr pseudonymise` rewrites, per table: all it may ALTER UPDATE."""

PASSWORD_ENV = {
    "flows": "BROKERFLOW_CLICKHOUSE_FLOWS_PASSWORD",
    "analyst": "BROKERFLOW_CLICKHOUSE_ANALYST_PASSWORD",
    "compliance": "BROKERFLOW_CLICKHOUSE_COMPLIANCE_PASSWORD",
}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GrantError(ValueError):
    """A user or database name that is not a plain identifier."""


def _ident(name: str) -> str:
    if not _NAME.match(name):
        msg = f"not a plain ClickHouse name: {name!r}"
        raise GrantError(msg)
    return f"`{name}`"


def _user(name: str, role: str, password: str | None, settings: str, salt: str) -> list[str]:
    user = _ident(name)
    if password is None:
        return [f"-- CREATE USER {name}: give its password in the environment to generate it, "
                "or create it yourself",
                f"GRANT {role} TO {user}"]  # fmt: skip
    digest = hashlib.sha256((password + salt).encode()).hexdigest()
    return [
        f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_hash BY '{digest}' "
        f"SALT '{salt}'{settings}",
        f"GRANT {role} TO {user}",
        f"SET DEFAULT ROLE {role} TO {user}",
    ]


def grant_statements(
    database: str = "default",
    users: Mapping[str, str] | None = None,
    passwords: Mapping[str, str | None] | None = None,
) -> list[str]:
    """The DDL, one statement per item (no trailing ';').

    Args:
        database: the database the tables live in.
        users: `{"flows": name, "analyst": name, "compliance": name}`; a kind left out gets no
            user (the roles are still made).
        passwords: the same kinds -> password (None or missing: the user is not created).

    Raises:
        GrantError: a name is not a plain identifier.
    """
    db = _ident(database)
    users = dict(users or {})
    passwords = dict(passwords or {})
    out = [
        f"CREATE ROLE IF NOT EXISTS {FLOWS_ROLE}",
        f"CREATE ROLE IF NOT EXISTS {ANALYST_ROLE}",
        f"CREATE ROLE IF NOT EXISTS {COMPLIANCE_ROLE}",
        f"CREATE SETTINGS PROFILE IF NOT EXISTS {READONLY_PROFILE} SETTINGS readonly = 1",
        # Migrations at start-up are CREATE TABLE IF NOT EXISTS: creating is additive.
        f"GRANT CREATE TABLE ON {db}.* TO {FLOWS_ROLE}",
    ]
    out += [
        f"GRANT SELECT, INSERT ON {db}.{_ident(t)} TO {FLOWS_ROLE}" for t in FLOWS_INSERT_TABLES
    ]
    out += [f"GRANT SELECT ON {db}.{_ident(t)} TO {ANALYST_ROLE}" for t in ANALYST_TABLES]
    out += [
        f"GRANT SELECT, INSERT ON {db}.`audit_log` TO {COMPLIANCE_ROLE}",
        f"GRANT SELECT, INSERT ON {db}.`pseudonym_map` TO {COMPLIANCE_ROLE}",
        f"GRANT SELECT ON {db}.`alerts` TO {COMPLIANCE_ROLE}",
    ]
    for table, columns in COMPLIANCE_UPDATES.items():
        out.append(
            f"GRANT ALTER UPDATE({', '.join(columns)}) ON {db}.{_ident(table)} TO {COMPLIANCE_ROLE}"
        )
    settings = {"analyst": f" SETTINGS PROFILE '{READONLY_PROFILE}'"}
    roles = {"flows": FLOWS_ROLE, "analyst": ANALYST_ROLE, "compliance": COMPLIANCE_ROLE}
    for kind, role in roles.items():
        name = users.get(kind)
        if name:
            out += _user(name, role, passwords.get(kind), settings.get(kind, ""),
                         secrets.token_hex(16))  # fmt: skip
    return out


def render(statements: list[str]) -> str:
    """The statements as a script: one per line, `;`-terminated (comments as they are)."""
    return "\n".join(s if s.startswith("--") else s + ";" for s in statements) + "\n"
