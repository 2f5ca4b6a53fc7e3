"""Sinks layer: PostgreSQL, the system of record.

Owns the migrations of `sql/postgres/` (`migrate`: each file applied once, under an advisory
lock, by the runner both databases share, `sinks.migrations`), the dead-letter writer
(`write_dead_letters`, idempotent on a key derived from the input) and its Bytewax sink
(`DeadLetterSink`), and `PgBatchWriter`, the retrying batch writer the other PostgreSQL sinks can
reuse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from domain.dead_letters import DeadLetter
from sinks.migrations import (
    Migration,
    failed,
    load_migrations,
    repository_sql_dir,
    run_migrations,
)
from sinks.migrations import MigrationError as MigrationError  # where callers have imported it
from sinks.retry import RetryPolicy, retry_with_backoff

T = TypeVar("T")

# pg_advisory_lock key of the migration runner: b"bfmigrat" as a signed 64-bit int.
MIGRATION_LOCK_KEY = int.from_bytes(b"bfmigrat", "big", signed=True)

_CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

_INSERT_DEAD_LETTER = """
INSERT INTO dead_letters
    (source, reason, raw, raw_text, step_id, error, tag, ts_init, dedup_key)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (dedup_key) DO NOTHING
"""


def default_sql_dir() -> Path:
    """Return the repository's `sql/postgres` directory."""
    return repository_sql_dir("postgres")


class _PgMigrationTarget:
    """PostgreSQL for `run_migrations`: a session advisory lock keeps concurrent starters apart,
    and each file runs in one transaction together with its `schema_migrations` row."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    @contextmanager
    def locked(self) -> Iterator[None]:
        conn = self._conn
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))

    def applied(self) -> dict[int, tuple[str, str]]:
        self._conn.execute(_CREATE_SCHEMA_MIGRATIONS)
        rows = self._conn.execute("SELECT version, name, checksum FROM schema_migrations")
        return {version: (name, checksum) for version, name, checksum in rows.fetchall()}

    def apply(self, migration: Migration) -> None:
        conn = self._conn
        try:
            with conn.transaction():
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            raise failed(migration, exc) from exc


def migrate(dsn: str, sql_dir: Path | None = None) -> list[str]:
    """Apply the migrations of `sql_dir` that this database has not seen yet
    (`sinks.migrations.run_migrations`).

    Each file runs in its own transaction together with its `schema_migrations` row, under a
    session advisory lock, so concurrent processes apply each file exactly once. Idempotent.

    Args:
        dsn: the database to migrate.
        sql_dir: the migration files; defaults to the repository's `sql/postgres`.

    Returns:
        The names of the files applied by this call, in order (empty when up to date).

    Raises:
        MigrationError: a file failed to apply or was edited after it was applied.
        psycopg.OperationalError: the database could not be reached.
    """
    migrations = load_migrations(sql_dir if sql_dir is not None else default_sql_dir())
    with psycopg.connect(dsn, autocommit=True) as conn:
        return run_migrations(_PgMigrationTarget(conn), migrations)


# -- dead letters ------------------------------------------------------------------------------


def dead_letter_key(letter: DeadLetter) -> str:
    """Return the dedup key of a dead letter: sha256 of its source, a NUL, and its raw bytes."""
    return hashlib.sha256(letter.source.encode() + b"\0" + bytes(letter.raw)).hexdigest()


def readable_raw(raw: bytes) -> str:
    """Return raw FIX bytes as text: UTF-8 (bad bytes replaced), SOH shown as '|', NUL escaped.

    >>> readable_raw(b"8=FIX.4.4\\x019=5\\x01")
    '8=FIX.4.4|9=5|'
    """
    return _text(bytes(raw).decode("utf-8", "replace").replace("\x01", "|"))


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; keep it visible rather than fail the batch.
    return value.replace("\x00", "\\x00")


def _dead_letter_row(letter: DeadLetter) -> tuple[object, ...]:
    raw = letter.raw.encode() if isinstance(letter.raw, str) else bytes(letter.raw)
    return (
        _text(letter.source),
        _text(letter.reason),
        raw,
        readable_raw(raw),
        _text(letter.step_id) if letter.step_id is not None else None,
        _text(letter.error) if letter.error is not None else None,
        letter.tag,
        letter.ts_init or None,
        dead_letter_key(letter),
    )


def write_dead_letters(conn: psycopg.Connection, letters: Sequence[DeadLetter]) -> int:
    """Insert dead letters with one `executemany` in one transaction; replays add nothing.

    Args:
        conn: an open connection to a migrated database.
        letters: the batch.

    Returns:
        How many rows were inserted (letters already stored are not counted).
    """
    if not letters:
        return 0
    rows = [_dead_letter_row(letter) for letter in letters]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_INSERT_DEAD_LETTER, rows)
        return max(cur.rowcount, 0)


# -- retrying batch writer and the Bytewax sink ------------------------------------------------




class PgBatchWriter(Generic[T]):
    """Write batches with `write(conn, items)`, reconnecting and retrying on connection errors.

    The write must be idempotent (keyed on the input), because a batch whose commit was lost in a
    dropped connection is written again. After the last attempt the error is raised, never hidden.
    """

    def __init__(
        self,
        dsn: str,
        write: Callable[[psycopg.Connection, Sequence[T]], int],
        policy: RetryPolicy | None = None,
    ) -> None:
        self._dsn = dsn
        self._write = write
        self._policy = policy or RetryPolicy()
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._dsn, autocommit=True)
        return self._conn

    def _drop_connection(self, attempt: int, error: Exception, delay_s: float) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def connect(self) -> None:
        """Open the connection now (with retries) rather than on the first batch."""
        self._retry(self._connection)

    def write(self, items: Sequence[T]) -> int:
        """Write one batch; return what the write function returned (rows inserted)."""
        if not items:
            return 0
        return self._retry(lambda: self._write(self._connection(), items))

    def _retry(self, fn: Callable[[], T]) -> T:
        policy = self._policy
        return retry_with_backoff(
            fn,
            attempts=policy.attempts,
            base_s=policy.base_s,
            max_s=policy.max_s,
            retry_on=(psycopg.OperationalError,),
            on_retry=self._drop_connection,
        )

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _DeadLetterPartition(StatelessSinkPartition[DeadLetter]):
    def __init__(self, writer: PgBatchWriter[DeadLetter]) -> None:
        self._writer = writer

    def write_batch(self, items: list[DeadLetter]) -> None:
        self._writer.write(items)

    def close(self) -> None:
        self._writer.close()


class DeadLetterSink(DynamicSink[DeadLetter]):
    """Bytewax sink writing `DeadLetter`s to the `dead_letters` table, idempotently.

    Each worker connects in `build`; each batch is one executemany in one transaction, retried
    with bounded backoff on connection errors, then raised. The schema must exist (`migrate`).
    """

    def __init__(self, dsn: str, policy: RetryPolicy | None = None) -> None:
        self._dsn = dsn
        self._policy = policy

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[DeadLetter]:
        """Connect this worker's partition."""
        writer: PgBatchWriter[DeadLetter] = PgBatchWriter(
            self._dsn, write_dead_letters, self._policy
        )
        writer.connect()
        return _DeadLetterPartition(writer)
