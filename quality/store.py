"""Data quality: write a validation's `dq_results` row and its failing rows' dead letters.

One transaction per validation, through `sinks.postgres.PgBatchWriter` (reconnects and retries
with a bound). Dead letters are keyed like every other (source + raw), so a replay adds none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from domain.dead_letters import DeadLetter
from quality.validator import Validation
from sinks.postgres import PgBatchWriter, write_dead_letters

_INSERT_RESULT = (
    "INSERT INTO dq_results (suite, rows_seen, rows_validated, rows_failed, success, "
    "duration_ms, results) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


@dataclass(frozen=True, slots=True)
class DqRecord:
    """One validation to store: the result, the rows seen since the last one, dead letters."""

    validation: Validation
    rows_seen: int
    dead_letters: tuple[DeadLetter, ...]


def write_dq_records(conn: psycopg.Connection, records: Sequence[DqRecord]) -> int:
    """Insert the records' `dq_results` rows and dead letters in one transaction."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                _INSERT_RESULT,
                [
                    (
                        r.validation.suite,
                        r.rows_seen,
                        r.validation.rows,
                        r.validation.rows_failed,
                        r.validation.success,
                        r.validation.seconds * 1000,
                        Jsonb(r.validation.results),
                    )
                    for r in records
                ],
            )
        write_dead_letters(conn, [letter for r in records for letter in r.dead_letters])
    return len(records)


def dq_writer(dsn: str) -> PgBatchWriter[DqRecord]:
    """A retrying writer of `DqRecord`s to the database at `dsn` (migrated)."""
    return PgBatchWriter(dsn, write_dq_records)
