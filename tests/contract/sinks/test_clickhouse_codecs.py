"""ClickHouse SQL text and values: statement splitting, the read-only check, rows and columns
of the tables, and the JSON column encoder against its reference implementation.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from sinks.clickhouse import (
    AUDIT_COLUMNS,
    TICK_COLUMNS,
    ChdbStore,
    ReadOnlyError,
    _json_encoder,
    audit_columns,
    audit_rows,
    check_read_only,
    encode_json_columns,
    split_statements,
    tick_columns,
    tick_rows,
)
from tests.contract.sinks.clickhouse_cases import (
    generated_audit_rows,
    make_ticks,
    scenario,
    transposed,
)

UTC = dt.UTC


def test_split_statements_ignores_quoted_and_commented_semicolons() -> None:
    sql = "CREATE TABLE a (x String DEFAULT ';');\n-- c; d\n/* e; */ SELECT 'it''s;';\n\n"
    assert split_statements(sql) == [
        "CREATE TABLE a (x String DEFAULT ';')",
        "-- c; d\n/* e; */ SELECT 'it''s;'",
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  with x AS (SELECT 1) SELECT * FROM x",
        "-- note\nSHOW TABLES",
        "DESCRIBE TABLE audit_log",
        "EXPLAIN SELECT 1;",
        "(SELECT 1)",
        "SELECT 'INTO OUTFILE' AS words",
    ],
)
def test_check_read_only_allows(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO audit_log SELECT * FROM audit_log",
        "ALTER TABLE audit_log DELETE WHERE 1",
        "DROP TABLE audit_log",
        "SELECT 1; DROP TABLE audit_log",
        "/* SELECT */ TRUNCATE audit_log",
        "SELECT 1 INTO OUTFILE '/tmp/x'",
        "select 1 into\n outfile 'x' FORMAT CSV",
        "",
    ],
)
def test_check_read_only_refuses(sql: str) -> None:
    with pytest.raises(ReadOnlyError):
        check_read_only(sql)


def test_columns_are_the_rows_transposed() -> None:
    records, _ = scenario()
    ticks = make_ticks(50)
    assert [list(c) for c in tick_columns(ticks)] == transposed(tick_rows(ticks))
    assert [list(c) for c in audit_columns(records)] == transposed(audit_rows(records))
    assert [len(c) for c in tick_columns([])] == [0] * len(TICK_COLUMNS)
    assert [len(c) for c in audit_columns([])] == [0] * len(AUDIT_COLUMNS)


# -- the column encoder against the reference implementation -----------------------------------
#
# `encode_json_columns` skips per-row work for columns that need no conversion, inlines the
# common conversions and writes non-ASCII as escapes. Below is the implementation it replaced,
# kept as the reference: the documents must decode to the same values, and the rows stored
# through either must read back the same.


def _reference_json_columns(types: list[str], rows: list[tuple[Any, ...]]) -> str:
    columns = [list(column) for column in zip(*rows, strict=True)]
    for index, type_name in enumerate(types):
        encoder = _json_encoder(type_name)
        if encoder is not None:
            columns[index] = [encoder(v) for v in columns[index]]
    return json.dumps(columns, ensure_ascii=False)


def test_encode_json_columns_equals_the_reference(store: ChdbStore) -> None:
    types = [store.column_types("audit_log")[c] for c in AUDIT_COLUMNS]
    rows = generated_audit_rows(3000)
    for size in (1, 7, 3000):
        chunk = rows[:size]
        assert json.loads(encode_json_columns(types, chunk)) == json.loads(
            _reference_json_columns(types, chunk)
        )
    other = ["Nullable(DateTime64(3, 'UTC'))", "DateTime('UTC')", "Date", "UInt64", "String"]
    rows = [
        (None, None, None, 1, "a"),
        (1_709_546_400_123, 1_709_546_400, dt.date(2024, 3, 4), 2**64 - 1, "é"),
        (True, dt.datetime(2024, 3, 4, tzinfo=UTC), "2024-03-05", 0, ""),
    ]
    assert json.loads(encode_json_columns(other, rows)) == json.loads(
        _reference_json_columns(other, rows)
    )


def test_insert_stores_what_the_reference_encoder_stored(store: ChdbStore) -> None:
    types = [store.column_types("audit_log")[c] for c in AUDIT_COLUMNS]
    rows = generated_audit_rows(2000)
    names = ", ".join(f"`{c}`" for c in AUDIT_COLUMNS)
    store.command("CREATE TABLE audit_log_reference AS audit_log")
    store.command(
        f"INSERT INTO audit_log_reference ({names}) FORMAT JSONCompactColumns\n"
        + _reference_json_columns(types, rows)
    )
    assert store.insert("audit_log", AUDIT_COLUMNS, rows) == 2000
    select = f"SELECT {names} FROM {{table}} ORDER BY source, event_id, timestamp"
    _, got = store.query(select.format(table="audit_log"))
    _, want = store.query(select.format(table="audit_log_reference"))
    assert len(got) == 2000
    assert got == want
    by_source = {row[-1]: row for row in got}
    for row in rows[:50]:
        stored = by_source[row[-1]]
        assert stored[3] == row[3]
        assert stored[18] == row[18]
        assert stored[12] == row[12]
        assert str(stored[0]) == str(row[0])
