"""ClickHouse migrations (`migrate_clickhouse`, through the runner both databases share) on
chdb and, through a fake client, on a server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sinks.clickhouse import ChdbStore, ServerStore, migrate_clickhouse
from sinks.migrations import MigrationError
from tests.contract.sinks.clickhouse_cases import FakeClient, Result


def test_migrate_clickhouse_is_idempotent(store: ChdbStore) -> None:
    assert migrate_clickhouse(store) == []
    _, rows = store.query("SELECT name FROM schema_migrations FINAL ORDER BY version")
    assert rows == [("0001_audit.sql",), ("0002_alerts.sql",)]
    _, tables = store.query("SHOW TABLES")
    assert {"audit_log", "market_ticks", "pseudonym_map", "schema_migrations"} <= {
        t[0] for t in tables
    }


def test_migrate_clickhouse_refuses_an_edited_file(store: ChdbStore, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "0001_audit.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrate_clickhouse(store, sql_dir)


def test_server_store_runs_the_same_migrations() -> None:
    client = FakeClient()

    def query(sql: str, parameters: dict[str, Any], settings: Any) -> Result:
        client.calls.append(("query", sql, parameters, settings))
        return Result(["version", "name", "checksum"], [])

    client.query = query  # type: ignore[method-assign]
    store = ServerStore("http://ch:8123/db", client=client)
    assert migrate_clickhouse(store) == ["0001_audit.sql", "0002_alerts.sql"]
    commands = [c[1] for c in client.calls if c[0] == "command"]
    # One statement per request: schema_migrations, the three tables of 0001, alerts of 0002.
    assert len(commands) == 5 and all("CREATE TABLE IF NOT EXISTS" in c for c in commands)
    assert [c.count("CREATE TABLE") for c in commands] == [1, 1, 1, 1, 1]
    inserts = [c for c in client.calls if c[0] == "insert"]
    assert inserts[0][1] == "schema_migrations" and inserts[0][2][0][:2] == (1, "0001_audit.sql")
