"""Sinks layer: the audit trail's day seals in PostgreSQL (`audit_digests`, `audit_row_hashes`,
`audit_seal_log`; sql/postgres/0016_audit_digests.sql).

A seal is written in one transaction: the day's digest (replaced on a re-seal), its rows'
hashes (replaced whole) and a line of the seal log with who, why and the digest it replaced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from domain.audit_digest import RowSeal


@dataclass(frozen=True, slots=True)
class DaySeal:
    """A sealed day as PostgreSQL keeps it."""

    day: dt.date
    rows: int
    digest: str
    computed_at: dt.datetime
    sealed_by: str
    reason: str
    row_seals: tuple[RowSeal, ...] = ()


def sealed_days(conn: psycopg.Connection) -> dict[dt.date, str]:
    """`{day: digest}` of every sealed day."""
    return dict(conn.execute("SELECT day, digest FROM audit_digests").fetchall())


def load_seal(conn: psycopg.Connection, day: dt.date, *, with_rows: bool = True) -> DaySeal | None:
    """The seal of a day (with its rows' hashes in (ts, event_id) order), or None."""
    row = conn.execute(
        "SELECT rows, digest, computed_at, sealed_by, reason FROM audit_digests WHERE day = %s",
        (day,),
    ).fetchone()
    if row is None:
        return None
    seals: tuple[RowSeal, ...] = ()
    if with_rows:
        seals = tuple(
            RowSeal(str(event_id), ts, bytes(rh), bytes(ch), event_type)
            for event_id, ts, event_type, rh, ch in conn.execute(
                "SELECT event_id, ts, event_type, row_hash, column_hashes FROM audit_row_hashes "
                "WHERE day = %s ORDER BY ts, event_id",  # uuid order = its text order
                (day,),
            )
        )
    return DaySeal(day, int(row[0]), row[1], row[2], row[3], row[4], seals)


def write_seal(
    conn: psycopg.Connection,
    day: dt.date,
    rows: Sequence[RowSeal],
    digest: str,
    actor: str,
    reason: str,
) -> str | None:
    """Seal (or re-seal) a day in one transaction; return the digest it replaced (None: a first
    seal). Idempotent for the same rows: the seal log still records the call."""
    with conn.transaction():
        previous = conn.execute(
            "SELECT digest FROM audit_digests WHERE day = %s FOR UPDATE", (day,)
        ).fetchone()
        conn.execute(
            "INSERT INTO audit_digests (day, rows, digest, computed_at, sealed_by, reason) "
            "VALUES (%s, %s, %s, now(), %s, %s) ON CONFLICT (day) DO UPDATE SET "
            "rows = EXCLUDED.rows, digest = EXCLUDED.digest, computed_at = now(), "
            "sealed_by = EXCLUDED.sealed_by, reason = EXCLUDED.reason",
            (day, len(rows), digest, actor, reason),
        )
        conn.execute("DELETE FROM audit_row_hashes WHERE day = %s", (day,))
        with conn.cursor().copy(
            "COPY audit_row_hashes (day, event_id, ts, event_type, row_hash, column_hashes) "
            "FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row((day, r.event_id, r.ts, r.event_type, r.row_hash, r.column_hashes))
        conn.execute(
            "INSERT INTO audit_seal_log (day, action, rows, digest, previous_digest, actor, "
            "reason) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (day, "SEAL" if previous is None else "RESEAL", len(rows), digest,
             None if previous is None else previous[0], actor, reason),
        )  # fmt: skip
    return None if previous is None else previous[0]


def seal_log(conn: psycopg.Connection, day: dt.date) -> list[tuple]:
    """The seal log of a day: (action, rows, digest, previous_digest, actor, reason, at)."""
    return conn.execute(
        "SELECT action, rows, digest, previous_digest, actor, reason, at FROM audit_seal_log "
        "WHERE day = %s ORDER BY id",
        (day,),
    ).fetchall()
