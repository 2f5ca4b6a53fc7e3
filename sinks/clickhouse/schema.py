"""The ClickHouse schema: migrations from `sql/clickhouse/` (`migrate_clickhouse`) and the audit
trail's retention (`set_audit_retention`)."""

from __future__ import annotations

from pathlib import Path

from sinks.clickhouse.errors import ClickHouseError
from sinks.clickhouse.sql_text import split_statements
from sinks.clickhouse.store import ClickHouseStore
from sinks.postgres import MigrationError, load_migrations

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
    return Path(__file__).resolve().parents[2] / "sql" / "clickhouse"


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


def migrate_clickhouse(store: ClickHouseStore, sql_dir: Path | None = None) -> list[str]:
    """Apply the numbered files of `sql/clickhouse/` that this store has not seen yet.

    ClickHouse has no transactions and no advisory locks, so each file must be idempotent
    (`CREATE … IF NOT EXISTS`): a file interrupted half-way, or applied by two processes at once,
    is simply run again, and `schema_migrations` (a ReplacingMergeTree on `version`) keeps one
    row per file. Statements are sent one at a time (a server takes one per request).

    Returns:
        The names of the files applied by this call (empty when up to date).

    Raises:
        MigrationError: a file failed, or was edited after it was applied.
    """
    migrations = load_migrations(sql_dir if sql_dir is not None else default_sql_dir())
    store.command(_CREATE_SCHEMA_MIGRATIONS)
    _, rows = store.query("SELECT version, name, checksum FROM schema_migrations FINAL")
    applied = {int(version): (name, checksum) for version, name, checksum in rows}
    applied_now: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            name, checksum = applied[migration.version]
            if checksum != migration.checksum:
                msg = (
                    f"migration {migration.name} was edited after it was applied "
                    f"(as {name}); add a new numbered file instead"
                )
                raise MigrationError(msg)
            continue
        for statement in split_statements(migration.sql):
            try:
                store.command(statement)
            except ClickHouseError as exc:
                msg = f"migration {migration.name} failed: {exc}"
                raise MigrationError(msg) from exc
        store.insert(
            "schema_migrations",
            ("version", "name", "checksum"),
            [(migration.version, migration.name, migration.checksum)],
        )
        applied_now.append(migration.name)
    return applied_now
