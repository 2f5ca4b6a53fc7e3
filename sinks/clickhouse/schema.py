"""The ClickHouse schema: migrations from `sql/clickhouse/` (`migrate_clickhouse`) and the audit
trail's retention (`set_audit_retention`)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from sinks.clickhouse.errors import ClickHouseError
from sinks.clickhouse.sql_text import split_statements
from sinks.clickhouse.store import ClickHouseStore
from sinks.migrations import Migration, failed, load_migrations, repository_sql_dir, run_migrations

_CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


def default_sql_dir() -> Path:
    """Return the repository's `sql/clickhouse` directory."""
    return repository_sql_dir("clickhouse")


def set_audit_retention(store: ClickHouseStore, years: int) -> bool:
    """Keep `audit_log` rows `years` years after their event time (a table TTL); return
    whether it changed. Rows past it go at the parts' next merges. A changed retention is not
    written into the existing parts at once (`materialize_ttl_after_modify = 0`: a large table
    would be rewritten whole at start-up): it holds for the parts written after it, and
    `ALTER TABLE audit_log MATERIALIZE TTL` applies it to the older ones when an operator
    chooses. Idempotent: the TTL in force is read first."""
    ttl = f"toDateTime(timestamp) + toIntervalYear({int(years)})"
    _, rows = store.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'audit_log'"
    )
    if rows and f"TTL {ttl}" in str(rows[0][0]):
        return False
    store.command(f"ALTER TABLE audit_log MODIFY TTL {ttl} "
                  "SETTINGS materialize_ttl_after_modify = 0")  # fmt: skip
    return True


class _ChMigrationTarget:
    """ClickHouse for `run_migrations`: no transactions and no advisory locks, so nothing is
    locked and each file must be idempotent (`CREATE … IF NOT EXISTS`): a file interrupted
    half-way, or applied by two processes at once, is simply run again, and `schema_migrations`
    (a ReplacingMergeTree on `version`) keeps one row per file. Statements are sent one at a
    time (a server takes one per request)."""

    def __init__(self, store: ClickHouseStore) -> None:
        self._store = store

    def locked(self) -> AbstractContextManager[object]:
        return nullcontext()

    def applied(self) -> dict[int, tuple[str, str]]:
        self._store.command(_CREATE_SCHEMA_MIGRATIONS)
        _, rows = self._store.query("SELECT version, name, checksum FROM schema_migrations FINAL")
        return {int(version): (name, checksum) for version, name, checksum in rows}

    def apply(self, migration: Migration) -> None:
        for statement in split_statements(migration.sql):
            try:
                self._store.command(statement)
            except ClickHouseError as exc:
                raise failed(migration, exc) from exc
        self._store.insert(
            "schema_migrations",
            ("version", "name", "checksum"),
            [(migration.version, migration.name, migration.checksum)],
        )


def migrate_clickhouse(store: ClickHouseStore, sql_dir: Path | None = None) -> list[str]:
    """Apply the numbered files of `sql/clickhouse/` that this store has not seen yet
    (`sinks.migrations.run_migrations`; each file idempotent, see `_ChMigrationTarget`).

    Returns:
        The names of the files applied by this call (empty when up to date).

    Raises:
        MigrationError: a file failed, or was edited after it was applied.
    """
    migrations = load_migrations(sql_dir if sql_dir is not None else default_sql_dir())
    return run_migrations(_ChMigrationTarget(store), migrations)
