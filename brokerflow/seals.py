"""Application layer: the audit trail's day seals, shared by `brokerflow audit` (seal, verify)
and `brokerflow gdpr pseudonymise` (which re-seals the days it rewrites).

A day's seal is the hash chain of its `audit_log` rows, kept in PostgreSQL (`sinks.audit_seals`).
`plan_reseal` and `reseal_after` re-seal a day only if it matched its seal before the rewrite
and only the account's rows changed; the seal log records who, why and the digest replaced.
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domain.audit_digest import RowSeal, chain, diff, seal_rows
from domain.errors import BrokerflowError

if TYPE_CHECKING:
    import psycopg

    from sinks.clickhouse import ClickHouseStore


class AuditError(BrokerflowError):
    """Bad arguments or a state the audit command will not act on; one line."""


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=1)


def current_seal(store: ClickHouseStore, day: dt.date) -> tuple[list[RowSeal], str]:
    """The day's rows as `audit_log` holds them now, sealed, and their chain's digest."""
    from sinks.audit_archive import read_rows

    rows = seal_rows(read_rows(store, *_day_bounds(day)))
    return rows, chain(day.isoformat(), (r.row_hash for r in rows))


def actor_name() -> str:
    """Who runs the command (the OS user), for the seal log."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@dataclass
class DayReport:
    """The outcome of verifying one day against its seal."""

    day: dt.date
    rows: int
    sealed_rows: int
    digest: str
    sealed_digest: str
    findings: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """The day matches its seal."""
        return not self.findings


def verify_day(store: ClickHouseStore, conn: psycopg.Connection, day: dt.date) -> DayReport:
    """Compare a day of `audit_log` with its seal; name every row that differs.

    Raises:
        AuditError: the day has no seal.
    """
    from sinks.audit_seals import load_seal

    seal = load_seal(conn, day)
    if seal is None:
        msg = f"{day} is not sealed (brokerflow audit seal --day {day})"
        raise AuditError(msg)
    rows, digest = current_seal(store, day)
    report = DayReport(day, len(rows), seal.rows, digest, seal.digest)
    # The seal's own rows must chain to its digest: an edited row hash is caught too.
    if (
        chain(day.isoformat(), (r.row_hash for r in seal.row_seals)) != seal.digest
        or len(seal.row_seals) != seal.rows
    ):
        report.findings.append(
            f"{day}: the seal's row hashes in PostgreSQL do not match its digest (edited seal)"
        )
    if digest != seal.digest:
        found = [f"{day}: {f.line()}" for f in diff(seal.row_seals, rows)]
        report.findings += found or [f"{day}: digest differs from the seal, rows in another order"]
    return report


def seal_day(
    store: ClickHouseStore,
    conn: psycopg.Connection,
    day: dt.date,
    actor: str,
    reason: str,
    *,
    reseal: bool = False,
) -> tuple[str, int, str]:
    """Seal a day; return (what happened: "sealed"|"unchanged"|"resealed", rows, digest).

    Raises:
        AuditError: the day is sealed with other rows and `reseal` was not asked.
    """
    from sinks.audit_seals import load_seal, write_seal

    rows, digest = current_seal(store, day)
    seal = load_seal(conn, day, with_rows=False)
    if seal is not None and seal.digest == digest:
        return "unchanged", len(rows), digest
    if seal is not None and not reseal:
        msg = (f"{day} is sealed and its rows differ from the seal: see brokerflow audit verify "
               f"--day {day}; --reseal --reason R accepts the change")  # fmt: skip
        raise AuditError(msg)
    write_seal(conn, day, rows, digest, actor, reason)
    return ("sealed" if seal is None else "resealed"), len(rows), digest


@dataclass
class ResealPlan:
    """What `brokerflow gdpr pseudonymise` may re-seal: the sealed days holding the account's
    rows that matched their seal before the rewrite, and those rows' event ids."""

    days: list[dt.date] = field(default_factory=list)
    not_clean: list[dt.date] = field(default_factory=list)
    event_ids: set[str] = field(default_factory=set)


def plan_reseal(store: ClickHouseStore, conn: psycopg.Connection, account: str) -> ResealPlan:
    """Before a pseudonymisation: the sealed days it will rewrite, checked clean."""
    from sinks.audit_seals import sealed_days

    _, rows = store.query(
        "SELECT DISTINCT toString(event_id), toString(toDate(timestamp)) FROM audit_log "
        "WHERE account = {account:String}",
        {"account": account},
    )
    sealed = sealed_days(conn)
    plan = ResealPlan()
    days = sorted({dt.date.fromisoformat(d) for _, d in rows} & set(sealed))
    for day in days:
        if current_seal(store, day)[1] == sealed[day]:
            plan.days.append(day)
        else:
            plan.not_clean.append(day)
    clean = {day.isoformat() for day in plan.days}
    plan.event_ids = {e for e, d in rows if d in clean}
    return plan


def reseal_after(
    store: ClickHouseStore,
    conn: psycopg.Connection,
    plan: ResealPlan,
    actor: str,
    reason: str,
) -> list[str]:
    """After a pseudonymisation: re-seal the planned days whose only differences are the
    account's rows changed; return one line per day (re-sealed or why not)."""
    from sinks.audit_seals import load_seal, write_seal

    lines = [f"{day}: not re-sealed, it differed from its seal before" for day in plan.not_clean]
    for day in plan.days:
        seal = load_seal(conn, day)
        assert seal is not None
        rows, digest = current_seal(store, day)
        findings = diff(seal.row_seals, rows)
        unexpected = [
            f for f in findings if f.kind != "changed" or f.event_id not in plan.event_ids
        ]
        if unexpected:
            lines.append(f"{day}: not re-sealed, {unexpected[0].line()}")
            continue
        write_seal(conn, day, rows, digest, actor, f"{reason} ({len(findings)} rows)")
        lines.append(f"{day}: re-sealed ({len(findings)} rows pseudonymised)")
    return lines
