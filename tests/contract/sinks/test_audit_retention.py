"""The audit trail's retention: `audit_retention_years` becomes a TTL on `audit_log` when the
stores are prepared, and rows past it go at the next merge while rows within it stay."""

from __future__ import annotations

from pathlib import Path

from brokerflow.stores import migrate_clickhouse_store
from sinks.clickhouse import AUDIT_COLUMNS, ChdbStore, audit_rows, open_store, set_audit_retention
from tests.contract.sinks.clickhouse_cases import scenario


def audit_kept(tmp_path: Path, settings_factory, years: int) -> int:
    """Rows of March 2024 (2.7 years before this session) left after a merge, with the
    stores prepared for a retention of `years`."""
    records, _ticks = scenario()
    url = f"chdb://{tmp_path}/ch{years}"
    migrate_clickhouse_store(settings_factory(clickhouse_url=url, audit_retention_years=years))
    store = open_store(url, tmp_path)
    assert isinstance(store, ChdbStore)
    try:
        assert not set_audit_retention(store, years)  # in force already: nothing to do
        store.insert("audit_log", AUDIT_COLUMNS, audit_rows(records))
        # (rows already past the TTL may go at once, in a background merge: counted after)
        store.command("OPTIMIZE TABLE audit_log FINAL")
        return store.query("SELECT count() FROM audit_log")[1][0][0]
    finally:
        store.close()


def test_rows_older_than_the_retention_go_and_newer_ones_stay(tmp_path: Path, settings_factory):
    assert audit_kept(tmp_path, settings_factory, 5) == len(scenario()[0])  # the default
    assert audit_kept(tmp_path, settings_factory, 2) == 0  # a broker keeping two years
