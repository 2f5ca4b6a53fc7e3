"""The migration runner both databases share (`sinks.migrations`), against an in-memory target;
the stores' own behaviour is in tests/contract/sinks/test_postgres.py and test_clickhouse_*.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sinks.migrations import (
    Migration,
    MigrationError,
    failed,
    load_migrations,
    repository_sql_dir,
    run_migrations,
)


class MemoryTarget:
    """Records what the runner does, in order; `refuse` names a file whose apply fails."""

    def __init__(
        self, recorded: dict[int, tuple[str, str]] | None = None, refuse: str = ""
    ) -> None:
        self.recorded = dict(recorded or {})
        self.refuse = refuse
        self.events: list[str] = []

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.events.append("lock")
        try:
            yield
        finally:
            self.events.append("unlock")

    def applied(self) -> dict[int, tuple[str, str]]:
        self.events.append("read")
        return dict(self.recorded)

    def apply(self, migration: Migration) -> None:
        if migration.name == self.refuse:
            raise failed(migration, RuntimeError("syntax error at SELEC\nLINE 1: SELEC 1"))
        self.events.append(f"apply {migration.name}")
        self.recorded[migration.version] = (migration.name, migration.checksum)


def _files(tmp_path: Path) -> list[Migration]:
    (tmp_path / "0002_b.sql").write_text("SELECT 2;")
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0010_c.sql").write_text("SELECT 10;")
    (tmp_path / "notes.sql").write_text("not numbered")
    return load_migrations(tmp_path)


def test_files_apply_in_version_order_once_under_the_lock(tmp_path: Path) -> None:
    migrations = _files(tmp_path)
    target = MemoryTarget()
    assert run_migrations(target, migrations) == ["0001_a.sql", "0002_b.sql", "0010_c.sql"]
    assert target.events == [
        "lock", "read", "apply 0001_a.sql", "apply 0002_b.sql", "apply 0010_c.sql", "unlock",
    ]  # fmt: skip
    target.events.clear()
    assert run_migrations(target, migrations) == []
    assert target.events == ["lock", "read", "unlock"]


def test_recorded_files_are_skipped_and_an_edited_one_refused(tmp_path: Path) -> None:
    first, *rest = _files(tmp_path)
    target = MemoryTarget({first.version: (first.name, first.checksum)})
    assert run_migrations(target, [first, *rest]) == ["0002_b.sql", "0010_c.sql"]
    edited = MemoryTarget({first.version: (first.name, "sha of another text")})
    with pytest.raises(MigrationError, match=r"0001_a.sql was edited .* \(as 0001_a.sql\)"):
        run_migrations(edited, [first, *rest])
    assert edited.events == ["lock", "read", "unlock"]  # nothing applied, the lock given back


def test_a_refused_file_stops_the_run_with_the_first_line(tmp_path: Path) -> None:
    target = MemoryTarget(refuse="0002_b.sql")
    with pytest.raises(MigrationError) as raised:
        run_migrations(target, _files(tmp_path))
    assert str(raised.value) == "migration 0002_b.sql failed: syntax error at SELEC"
    assert target.events == ["lock", "read", "apply 0001_a.sql", "unlock"]


def test_load_migrations_refuses_a_missing_folder_and_a_shared_version(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations(tmp_path / "missing")
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "01_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share version 1"):
        load_migrations(tmp_path)


def test_repository_sql_dirs() -> None:
    root = Path(__file__).resolve().parents[3]
    assert repository_sql_dir("postgres") == root / "sql" / "postgres"
    assert [m.name for m in load_migrations(repository_sql_dir("clickhouse"))] == [
        "0001_audit.sql",
        "0002_alerts.sql",
    ]
