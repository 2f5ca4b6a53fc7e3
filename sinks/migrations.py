"""Sinks layer: the one migration runner of both databases.

Numbered files `NNNN_name.sql` of a folder (`sql/postgres/`, `sql/clickhouse/`) are applied in
version order, each once, and recorded in the store's `schema_migrations` table (version, name,
sha256 of the text); a file edited after it was applied is refused. What differs per store is
given by a small adapter (`MigrationTarget`): how concurrent starters are kept apart, how the
bookkeeping table is created and read, and how one file is applied and recorded (PostgreSQL: the
whole text and its row in one transaction; ClickHouse: one statement per request, then the row).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from domain.errors import BrokerflowError

_MIGRATION_NAME = re.compile(r"^(?P<version>\d+)_[A-Za-z0-9_]+\.sql$")


class MigrationError(BrokerflowError):
    """A migration file is malformed, failed to apply, or changed after it was applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file.

    Attributes:
        version: the number the file name starts with.
        name: the file name, e.g. "0001_dead_letters.sql".
        sql: the file's text.
        checksum: sha256 of the text, to detect a file edited after it was applied.
    """

    version: int
    name: str
    sql: str
    checksum: str


class MigrationTarget(Protocol):
    """What the runner needs of one store."""

    def locked(self) -> AbstractContextManager[object]:
        """Hold other starters off while the files are checked and applied (or nothing, where
        every file is idempotent and re-running one is harmless)."""
        ...

    def applied(self) -> dict[int, tuple[str, str]]:
        """Create `schema_migrations` if missing; return `{version: (name, checksum)}`."""
        ...

    def apply(self, migration: Migration) -> None:
        """Run the file and record it; raise `failed(migration, exc)` when the store refuses it."""
        ...


def repository_sql_dir(store: str) -> Path:
    """Return the repository's `sql/<store>` directory ("postgres", "clickhouse")."""
    return Path(__file__).resolve().parents[1] / "sql" / store


def load_migrations(sql_dir: Path) -> list[Migration]:
    """Read the `NNNN_name.sql` files of `sql_dir` in version order; other files are ignored.

    Raises:
        MigrationError: the directory is missing or two files share a version number.
    """
    if not sql_dir.is_dir():
        msg = f"migration directory {sql_dir} does not exist"
        raise MigrationError(msg)
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.iterdir()):
        match = _MIGRATION_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        version = int(match["version"])
        if version in found:
            msg = f"migrations {found[version].name} and {path.name} share version {version}"
            raise MigrationError(msg)
        text = path.read_text(encoding="utf-8")
        checksum = hashlib.sha256(text.encode()).hexdigest()
        found[version] = Migration(version, path.name, text, checksum)
    return [found[v] for v in sorted(found)]


def failed(migration: Migration, exc: BaseException) -> MigrationError:
    """The error of a file the store refused, with the first line of the store's message."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc)
    return MigrationError(f"migration {migration.name} failed: {first}")


def run_migrations(target: MigrationTarget, migrations: Sequence[Migration]) -> list[str]:
    """Apply the `migrations` the target has not recorded yet, in order.

    Returns:
        The names of the files applied by this call (empty when up to date).

    Raises:
        MigrationError: a file failed, or was edited after it was applied.
    """
    applied_now: list[str] = []
    with target.locked():
        applied = target.applied()
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
            target.apply(migration)
            applied_now.append(migration.name)
    return applied_now
