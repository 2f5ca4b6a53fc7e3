"""Fixtures of the ClickHouse contract tests: a migrated chdb store per test, and the same
holding `scenario()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from domain.audit import audit_record
from sinks.clickhouse import (
    AUDIT_COLUMNS,
    TICK_COLUMNS,
    ChdbStore,
    audit_rows,
    migrate_clickhouse,
    open_store,
    tick_rows,
)
from tests.contract.sinks.clickhouse_cases import fill_f1, scenario


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbStore]:
    """A migrated chdb store in this test's own directory."""
    opened = open_store(f"chdb://{tmp_path}/ch", tmp_path)
    assert isinstance(opened, ChdbStore)
    migrate_clickhouse(opened)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def book(store: ChdbStore) -> ChdbStore:
    """The store holding `scenario()`, fill F1 delivered twice (from another file)."""
    records, ticks = scenario()
    store.insert("audit_log", AUDIT_COLUMNS, audit_rows(records))
    again = audit_record(fill_f1(source="file:other.fix:9"), None)
    store.insert("audit_log", AUDIT_COLUMNS, audit_rows([again, records[0]]))
    store.insert("market_ticks", TICK_COLUMNS, tick_rows(ticks + ticks[:2]))
    return store
