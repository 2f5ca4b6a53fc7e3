"""ClickHouse stores: chdb (a fresh engine directory per test) and the server backend through
a fake clickhouse-connect client: DDL, inserts of rows and of columns, opening, queries.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from domain.audit import audit_record
from sinks.clickhouse import (
    AUDIT_COLUMNS,
    TICK_COLUMNS,
    ChdbStore,
    ClickHouseError,
    ServerStore,
    audit_rows,
    migrate_clickhouse,
    open_store,
    tick_columns,
    tick_rows,
)
from tests.contract.sinks.clickhouse_cases import (
    FakeClient,
    execution,
    generated_audit_rows,
    make_ticks,
    rows_of,
    scenario,
    transposed,
)

UTC = dt.UTC


def test_audit_log_ddl_shape(store: ChdbStore) -> None:
    types = store.column_types("audit_log")
    assert types["timestamp"] == "DateTime64(6, 'UTC')"
    assert types["event_id"] == "UUID"
    assert types["event_type"] == "LowCardinality(String)"
    _, rows = store.query(
        "SELECT engine, partition_key, sorting_key FROM system.tables WHERE name = 'audit_log'"
    )
    assert rows == [("ReplacingMergeTree", "toYYYYMM(timestamp)", "timestamp, event_id")]


def test_insert_thousands_of_rows_in_chunks_and_dedupe(tmp_path: Path) -> None:
    store = open_store(f"chdb://{tmp_path}/ch", tmp_path, max_insert_rows=5000)
    try:
        migrate_clickhouse(store)
        records = [
            audit_record(
                execution(
                    "F",
                    f"E{i}",
                    f"O{i}",
                    f"C{i}",
                    f"ACC{i % 7}",
                    "AAPL",
                    "1",
                    "2024-03-04 10:00:00",
                    "1",
                    "10.5",
                    "2",
                ),
                None,
            )
            for i in range(20_000)
        ]
        assert store.insert("audit_log", AUDIT_COLUMNS, audit_rows(records)) == 20_000
        store.insert("audit_log", AUDIT_COLUMNS, audit_rows(records[:7_000]))  # re-delivered
        _, rows = store.query(
            "SELECT count(), uniqExact(event_id), sum(last_qty * last_px) FROM audit_log FINAL"
        )
        assert rows == [(20_000, 20_000, Decimal("210000"))]
    finally:
        store.close()


def test_insert_round_trips_awkward_values(store: ChdbStore) -> None:
    record = audit_record(
        execution(
            "F",
            "E'1",
            "O\t1",
            "C\n1",
            "ACC\\1",
            "AAPL",
            "1",
            "2024-03-04 10:00:00",
            "0.0000000001",
            "123456.123456789",
            "1",
        ),
        None,
    )
    awkward = "8=FIX.4.4\x01 \"quoted\" 'single' tab\t nl\n backslash\\ é ü 日本 \x00"
    row = list(audit_rows([record])[0])
    row[AUDIT_COLUMNS.index("raw_fix")] = awkward
    store.insert("audit_log", AUDIT_COLUMNS, [tuple(row)])
    _, rows = store.query(
        "SELECT event_id, timestamp, account, order_id, cl_ord_id, exec_id, last_qty, last_px,"
        " quantity, price, raw_fix FROM audit_log"
    )
    (got,) = rows
    assert str(got[0]) == record.event_id
    assert got[1] == dt.datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
    assert got[2:6] == ("ACC\\1", "O\t1", "C\n1", "E'1")
    assert got[6:10] == (Decimal("1E-10"), Decimal("123456.123456789"), 100, 101)
    assert got[10] == awkward


def test_insert_microsecond_timestamps(store: ChdbStore) -> None:
    record = audit_record(
        execution("0", "A", "O", "C", "ACC", "AAPL", "1", "2024-03-04 10:00:00"), None
    )
    row = list(audit_rows([record])[0])
    row[1] = record.ts_event_us + 123_456
    store.insert("audit_log", AUDIT_COLUMNS, [tuple(row)])
    _, rows = store.query("SELECT toUnixTimestamp64Micro(timestamp) FROM audit_log")
    assert rows == [(record.ts_event_us + 123_456,)]


def test_insert_columns_stores_what_insert_stores(tmp_path: Path) -> None:
    # Slices of one Arrow table (2,000 rows per insert), and the JSON path of a column type
    # Arrow is not used for.
    store = open_store(f"chdb://{tmp_path}/ch", tmp_path, max_insert_rows=2_000)
    try:
        migrate_clickhouse(store)
        rows = generated_audit_rows(4_500)
        names = ", ".join(f"`{c}`" for c in AUDIT_COLUMNS)
        store.command("CREATE TABLE audit_log_rows AS audit_log")
        assert store.insert("audit_log_rows", AUDIT_COLUMNS, rows) == 4_500
        assert store.insert_columns("audit_log", AUDIT_COLUMNS, transposed(rows)) == 4_500
        ticks = make_ticks(5_001)
        store.command("CREATE TABLE market_ticks_rows AS market_ticks")
        store.insert("market_ticks_rows", TICK_COLUMNS, tick_rows(ticks))
        assert store.insert_columns("market_ticks", TICK_COLUMNS, tick_columns(ticks)) == 5_001
        for table, select in (
            ("audit_log", f"SELECT {names} FROM {{t}} ORDER BY source, event_id, timestamp"),
            ("market_ticks", "SELECT * FROM {t} ORDER BY symbol, ts, seq"),
        ):
            _, got = store.query(select.format(t=table))
            _, want = store.query(select.format(t=f"{table}_rows"))
            assert got == want and len(got) in (4_500, 5_001)
        store.command("CREATE TABLE tagged (id UInt32, tags Array(String)) ENGINE = Memory")
        data = [list(range(3)), [["a"], [], ["b", "é"]]]
        assert store.insert_columns("tagged", ("id", "tags"), data) == 3
        assert store.query("SELECT id, tags FROM tagged ORDER BY id")[1] == [
            (0, ["a"]), (1, []), (2, ["b", "é"]),
        ]  # fmt: skip
        with pytest.raises(ClickHouseError, match="no column nope"):
            store.insert_columns("tagged", ("id", "nope"), data)
    finally:
        store.close()


def test_open_store_default_is_chdb_under_the_data_dir(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    try:
        assert isinstance(store, ChdbStore)
        assert store.path == str((tmp_path / "clickhouse").resolve())
        assert store.query("SELECT 1 AS one") == (["one"], [(1,)])
    finally:
        store.close()


def test_open_store_second_chdb_path_in_one_process_is_refused(
    store: ChdbStore, tmp_path: Path
) -> None:
    with pytest.raises(ClickHouseError, match="one embedded ClickHouse path per process"):
        open_store(f"chdb://{tmp_path}/elsewhere", tmp_path)
    same = open_store(f"chdb://{tmp_path}/ch", tmp_path)  # the same path is shared
    same.close()
    assert store.query("SELECT 2 AS two") == (["two"], [(2,)])


def test_open_store_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(ClickHouseError, match="scheme 'ftp'"):
        open_store("ftp://x", tmp_path)


def test_query_readonly_refuses_writes(store: ChdbStore) -> None:
    with pytest.raises(ClickHouseError, match="readonly"):
        store.query("INSERT INTO pseudonym_map (account) VALUES ('x')", readonly=True)
    assert store.query("SELECT count() AS n FROM pseudonym_map", readonly=True) == (["n"], [(0,)])


def test_query_with_own_format_clause_is_one_line_error(store: ChdbStore) -> None:
    with pytest.raises(ClickHouseError, match="leave out FORMAT"):
        store.query("SELECT 1 FORMAT CSV", readonly=True)


def test_query_params_are_bound_not_formatted(store: ChdbStore) -> None:
    evil = "x' OR 1=1 --"
    assert store.query("SELECT {a:String} AS a", {"a": evil}) == (["a"], [(evil,)])


# -- the server backend, through a fake clickhouse-connect client ----------------------------


def test_server_store_batches_inserts() -> None:
    client = FakeClient()
    store = ServerStore("http://u:secret@ch:8123/db", max_insert_rows=5000, client=client)
    records, _ = scenario()
    rows = audit_rows(records * 700)  # 11,200 rows
    assert store.insert("audit_log", AUDIT_COLUMNS, rows) == len(rows)
    inserts = [c for c in client.calls if c[0] == "insert"]
    assert [len(c[2]) for c in inserts] == [5000, 5000, 1200]
    assert all(c[1] == "audit_log" and c[3] == list(AUDIT_COLUMNS) for c in inserts)
    # DateTime64(6) goes as int microseconds, which clickhouse-connect writes as ticks.
    assert inserts[0][2][0][1] == records[0].ts_event_us
    assert store.url == "http://u:***@ch:8123/db"


def test_server_store_inserts_columns_in_batches() -> None:
    client = FakeClient()
    store = ServerStore("http://ch:8123/db", max_insert_rows=5000, client=client)
    ticks = make_ticks(11_200)
    assert store.insert_columns("market_ticks", TICK_COLUMNS, tick_columns(ticks)) == 11_200
    inserts = [c for c in client.calls if c[0] == "insert_columns"]
    assert [len(c[2][0]) for c in inserts] == [5000, 5000, 1200]
    assert all(len(c[2]) == len(TICK_COLUMNS) and c[3] == list(TICK_COLUMNS) for c in inserts)
    # The same values as the row insert, column by column: ts as int microseconds.
    sent = [row for c in inserts for row in rows_of(c[2])]
    assert sent == [tuple(row) for row in tick_rows(ticks)]


def test_server_store_query_binds_params_and_readonly_setting() -> None:
    client = FakeClient()
    store = ServerStore("http://ch:8123/db", client=client)
    assert store.query("SELECT {a:String}", {"a": "x'y"}, readonly=True) == (["a"], [(1,)])
    assert client.calls[-1] == ("query", "SELECT {a:String}", {"a": "x'y"}, {"readonly": 1})
    store.query("SELECT 1")
    assert client.calls[-1][3] is None
    store.command("ALTER TABLE t UPDATE a = {p:String} WHERE 1", {"p": "z"})
    assert client.calls[-1] == (
        "command",
        "ALTER TABLE t UPDATE a = {p:String} WHERE 1",
        {"p": "z"},
    )
