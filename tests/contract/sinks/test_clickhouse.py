"""ClickHouse store contract on chdb (a fresh engine directory per test), the named reports
against hand-calculated figures, pseudonymisation, and the server backend's query and batching
through a hand-written fake of the clickhouse-connect client (no server can run here).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from brokerflow.commands.gdpr import load_or_create_key, pseudonym_of, pseudonymise_clickhouse
from brokerflow.commands.report import run_report
from domain.alerts import make_alert
from domain.audit import AuditRecord, audit_record
from domain.events import ExecutionReport, OrderRequest
from domain.quotes import Quote
from sinks.clickhouse import (
    ALERTS_PARTITION,
    AUDIT_COLUMNS,
    AUDIT_PARTITION,
    TICK_COLUMNS,
    TICKS_PARTITION,
    AlertsSink,
    AuditSink,
    ChdbStore,
    ClickHouseError,
    PipelinedAlertsSink,
    PipelinedAuditSink,
    PipelinedTicksSink,
    ReadOnlyError,
    ServerStore,
    TicksSink,
    _json_encoder,
    audit_columns,
    audit_rows,
    check_read_only,
    encode_json_columns,
    migrate_clickhouse,
    open_store,
    split_statements,
    tick_columns,
    tick_rows,
)
from sinks.postgres import MigrationError

UTC = dt.UTC


def ns(text: str) -> int:
    """UTC 'YYYY-MM-DD HH:MM:SS' → epoch nanoseconds."""
    when = dt.datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(when.timestamp()) * 1_000_000_000


def quote(
    symbol: str,
    bid: float | None,
    ask: float | None,
    when: str,
    ltp: float = 0.0,
    volume: float = 0.0,
    seq: int = 1,
) -> Quote:
    ts = ns(when) // 1_000_000
    return Quote(
        symbol,
        bid,
        100.0,
        ask,
        100.0,
        ltp or None,
        100.0 if ltp else None,
        volume,
        ts,
        seq,
        ts // 86_400_000,
        None,
        None,
        None,
        None,
    )


def request(
    msg_type: str,
    cl_ord_id: str,
    account: str,
    symbol: str,
    side: str,
    when: str,
    qty: str = "100",
    orig: str | None = None,
) -> OrderRequest:
    raw = f"8=FIX.4.4\x0135={msg_type}\x011={account}\x0111={cl_ord_id}\x01".encode()
    return OrderRequest(
        msg_type,
        cl_ord_id,
        orig,
        account,
        symbol,
        side,
        Decimal(qty),
        "2",
        Decimal("101"),
        None,
        "0",
        ns(when),
        raw=raw,
        source="file:t.fix:1",
    )


def execution(
    exec_type: str,
    exec_id: str,
    order_id: str,
    cl_ord_id: str,
    account: str,
    symbol: str,
    side: str,
    when: str,
    last_qty: str = "0",
    last_px: str = "0",
    ord_status: str = "0",
    exec_ref_id: str | None = None,
    source: str = "file:t.fix:2",
) -> ExecutionReport:
    raw = f"8=FIX.4.4\x0135=8\x011={account}\x0117={exec_id}\x01".encode()
    return ExecutionReport(
        exec_id,
        order_id,
        cl_ord_id,
        None,
        exec_type,
        ord_status,
        account,
        symbol,
        side,
        Decimal(100),
        "2",
        Decimal("101"),
        None,
        Decimal(last_qty),
        Decimal(last_px),
        Decimal(last_qty),
        Decimal(0),
        Decimal(last_px),
        ns(when),
        exec_ref_id=exec_ref_id,
        raw=raw,
        source=source,
    )


def scenario() -> tuple[list[AuditRecord], list[Quote]]:
    """The small book of the report tests; the expected figures are worked out in each test."""
    aapl_0 = quote("AAPL", 100.00, 100.20, "2024-03-04 10:00:00")  # arrival mid 100.10
    aapl_1 = quote("AAPL", 100.10, 100.30, "2024-03-04 10:00:01")  # mid 100.20 (later)
    msft = quote("MSFT", 400.0, 401.0, "2024-03-04 10:59:00")  # mid 400.5
    D, F, G = "D", "F", "G"
    records = [
        audit_record(request(D, "C1", "ACC1", "AAPL", "1", "2024-03-04 10:00:00"), aapl_0),
        audit_record(
            execution("0", "A0", "O1", "C1", "ACC1", "AAPL", "1", "2024-03-04 10:00:01"), aapl_1
        ),
        audit_record(
            request(G, "C1b", "ACC1", "AAPL", "1", "2024-03-04 10:00:03", orig="C1"), aapl_1
        ),
        audit_record(
            execution("5", "R1", "O1", "C1b", "ACC1", "AAPL", "1", "2024-03-04 10:00:04"), aapl_1
        ),
        audit_record(
            execution(
                "F",
                "F1",
                "O1",
                "C1b",
                "ACC1",
                "AAPL",
                "1",
                "2024-03-04 10:00:05",
                "60",
                "100.20",
                "1",
            ),
            aapl_1,
        ),
        audit_record(
            execution(
                "F",
                "F2",
                "O1",
                "C1b",
                "ACC1",
                "AAPL",
                "1",
                "2024-03-04 10:00:10",
                "40",
                "100.30",
                "2",
            ),
            aapl_1,
        ),
        audit_record(request(D, "C2", "ACC2", "MSFT", "2", "2024-03-04 10:59:00", "50"), msft),
        audit_record(
            execution(
                "F",
                "F3",
                "O2",
                "C2",
                "ACC2",
                "MSFT",
                "2",
                "2024-03-04 11:00:00",
                "50",
                "400.00",
                "2",
            ),
            msft,
        ),
        audit_record(request(D, "C3", "ACC1", "AAPL", "2", "2024-03-04 11:59:00", "10"), None),
        audit_record(
            execution(
                "F",
                "F4",
                "O3",
                "C3",
                "ACC1",
                "AAPL",
                "2",
                "2024-03-04 12:00:00",
                "10",
                "100.50",
                "2",
            ),
            None,
        ),
        audit_record(
            execution(
                "H",
                "F4X",
                "O3",
                "C3",
                "ACC1",
                "AAPL",
                "2",
                "2024-03-04 12:05:00",
                "10",
                "100.50",
                "2",
                exec_ref_id="F4",
            ),
            None,
        ),
        audit_record(request(D, "C7", "ACC1", "AAPL", "1", "2024-03-04 13:00:00"), None),
        audit_record(request(F, "C9", "ACC1", "AAPL", "1", "2024-03-04 13:01:00", orig="C7"), None),
        audit_record(
            execution(
                "F",
                "F5",
                "O5",
                "C5",
                "ACC1",
                "AAPL",
                "2",
                "2024-03-20 15:00:00",
                "30",
                "99.00",
                "2",
            ),
            None,
        ),
        audit_record(
            execution(
                "F",
                "F6",
                "O6",
                "C6",
                "ACC1",
                "AAPL",
                "1",
                "2024-04-25 15:00:00",
                "30",
                "98.00",
                "2",
            ),
            None,
        ),
        audit_record(
            execution(
                "F",
                "F7",
                "O7",
                "C7x",
                "ACC2",
                "AAPL",
                "1",
                "2024-03-21 15:00:00",
                "5",
                "99.50",
                "2",
            ),
            None,
        ),
    ]
    # AAPL tape of 2024-03-04, cumulative day volume.
    ticks = [
        quote("AAPL", 99.9, 100.1, "2024-03-04 09:59:00", 100.00, 1000, 1),  # before arrival
        quote("AAPL", 100.0, 100.2, "2024-03-04 10:00:02", 100.10, 1100, 2),  # +100 @ 100.10
        quote("AAPL", 100.1, 100.3, "2024-03-04 10:00:04", 100.10, 1100, 3),  # quote only
        quote("AAPL", 100.1, 100.3, "2024-03-04 10:00:05", 100.20, 1400, 4),  # +300 @ 100.20
        quote("AAPL", 100.2, 100.4, "2024-03-04 10:00:08", 100.40, 1500, 5),  # +100 @ 100.40
        quote("AAPL", 100.2, 100.4, "2024-03-04 10:00:10", 100.30, 1600, 6),  # +100 @ 100.30
        quote("AAPL", 100.4, 100.6, "2024-03-04 10:00:20", 100.50, 2000, 7),  # after the fills
    ]
    return records, ticks


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
    again = audit_record(
        execution(
            "F",
            "F1",
            "O1",
            "C1b",
            "ACC1",
            "AAPL",
            "1",
            "2024-03-04 10:00:05",
            "60",
            "100.20",
            "1",
            source="file:other.fix:9",
        ),
        None,
    )
    store.insert("audit_log", AUDIT_COLUMNS, audit_rows([again, records[0]]))
    store.insert("market_ticks", TICK_COLUMNS, tick_rows(ticks + ticks[:2]))
    return store


# -- DDL and inserts --------------------------------------------------------------------------


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


# -- sinks ----------------------------------------------------------------------------------


def test_audit_and_ticks_sinks_write_batches(store: ChdbStore, tmp_path: Path) -> None:
    records, ticks = scenario()
    audit = AuditSink(f"chdb://{tmp_path}/ch", tmp_path).build("audit", 0, 1)
    tick_part = TicksSink(f"chdb://{tmp_path}/ch", tmp_path).build("ticks", 0, 1)
    try:
        audit.write_batch([records[:5], records[5:]])
        audit.write_batch([records[:3]])  # a replayed batch
        tick_part.write_batch([ticks])
    finally:
        audit.close()
        tick_part.close()
    _, rows = store.query("SELECT count() FROM audit_log FINAL")
    assert rows == [(len(records),)]
    _, rows = store.query("SELECT count(), max(volume) FROM market_ticks FINAL")
    assert rows == [(len(ticks), 2000.0)]


def test_pipelined_audit_sink_holds_rows_until_the_epoch_snapshot(
    store: ChdbStore, tmp_path: Path
) -> None:
    records, _ = scenario()
    sink = PipelinedAuditSink(f"chdb://{tmp_path}/ch", tmp_path, min_rows=1_000)
    part = sink.build_part("audit", AUDIT_PARTITION, None)
    try:
        part.write_batch([records[:5]])
        part.write_batch([records[:3]])  # a replayed batch
        assert store.query("SELECT count() FROM audit_log")[1] == [(0,)]  # held
        part.snapshot()  # the epoch ends: everything held is inserted before it returns
        assert store.query("SELECT count() FROM audit_log FINAL")[1] == [(5,)]
        part.write_batch([records[5:]])
    finally:
        part.close()  # inserts what is still held
    assert store.query("SELECT count() FROM audit_log FINAL")[1] == [(len(records),)]


def test_pipelined_alerts_sink_stores_what_the_batch_sink_stores(
    store: ChdbStore, tmp_path: Path
) -> None:
    alerts = [
        make_alert("WASH_TRADE", f"k{i}", "HIGH", 1_795_617_000_000 + i, account=f"ACC{i % 3}",
                   owner=None if i % 2 else "OWN1", symbol="ÄCME" if i == 4 else "MSFT",
                   details={"exec_ids": [f"E{i}", f"E{i + 1}"], "qty": "100", "note": 'a "b"'})
        for i in range(9)
    ]  # fmt: skip
    url = f"chdb://{tmp_path}/ch"
    batch = AlertsSink(url, tmp_path).build("alerts", 0, 1)
    try:
        batch.write_batch([alerts[:4], alerts[4:]])
    finally:
        batch.close()
    query = "SELECT * FROM alerts FINAL ORDER BY alert_id"
    expected = store.query(query)
    assert len(expected[1]) == len(alerts)
    store.command("TRUNCATE TABLE alerts")
    part = PipelinedAlertsSink(url, tmp_path).build_part("alerts", ALERTS_PARTITION, None)
    try:
        part.write_batch([alerts[:4]])
        part.write_batch([alerts[4:]])
        assert store.query("SELECT count() FROM alerts")[1] == [(0,)]  # held
        part.snapshot()  # the epoch ends: inserted before it returns
        assert store.query(query) == expected
    finally:
        part.close()


def _ticks(n: int) -> list[Quote]:
    """`n` quotes of 7 symbols, some sides missing, awkward floats included."""
    rng = random.Random(5)
    out = []
    for i in range(n):
        bid = rng.choice([None, 0.1 + 0.2, 1e-7, 123456789.125, float(i)])
        ask = None if bid is None else bid + rng.choice([0.01, 1 / 3])
        ts = 1_709_546_400_000 + i * 7
        out.append(
            Quote(f"S{i % 7}", bid, rng.choice([None, 100.0]), ask, 5e5, rng.choice([None, 9.99]),
                  rng.choice([None, 10.0]), float(i), ts, i, ts // 86_400_000, None, 1.0, 2.0,
                  None)
        )  # fmt: skip
    return out


def _transposed(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)]


def _rows_of(data: list[list[Any]]) -> list[tuple[Any, ...]]:
    return list(zip(*data, strict=True))


def test_columns_are_the_rows_transposed() -> None:
    records, _ = scenario()
    ticks = _ticks(50)
    assert [list(c) for c in tick_columns(ticks)] == _transposed(tick_rows(ticks))
    assert [list(c) for c in audit_columns(records)] == _transposed(audit_rows(records))
    assert [len(c) for c in tick_columns([])] == [0] * len(TICK_COLUMNS)
    assert [len(c) for c in audit_columns([])] == [0] * len(AUDIT_COLUMNS)


def test_insert_columns_stores_what_insert_stores(tmp_path: Path) -> None:
    # Slices of one Arrow table (2,000 rows per insert), and the JSON path of a column type
    # Arrow is not used for.
    store = open_store(f"chdb://{tmp_path}/ch", tmp_path, max_insert_rows=2_000)
    try:
        migrate_clickhouse(store)
        rows = _generated_audit_rows(4_500)
        names = ", ".join(f"`{c}`" for c in AUDIT_COLUMNS)
        store.command("CREATE TABLE audit_log_rows AS audit_log")
        assert store.insert("audit_log_rows", AUDIT_COLUMNS, rows) == 4_500
        assert store.insert_columns("audit_log", AUDIT_COLUMNS, _transposed(rows)) == 4_500
        ticks = _ticks(5_001)
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


def test_pipelined_ticks_sink_holds_rows_until_the_epoch_snapshot(
    store: ChdbStore, tmp_path: Path
) -> None:
    ticks = _ticks(3_000)
    counts: dict[str, int] = {}

    def count(name: str, n: int) -> None:
        counts[name] = counts.get(name, 0) + n

    sink = PipelinedTicksSink(f"chdb://{tmp_path}/ch", tmp_path, count, min_rows=10_000)
    part = sink.build_part("ticks", TICKS_PARTITION, None)
    try:
        part.write_batch([ticks[:1_000], ticks[1_000:2_000]])
        part.write_batch([ticks[:500]])  # a replayed batch
        assert store.query("SELECT count() FROM market_ticks")[1] == [(0,)]  # held
        part.snapshot()  # the epoch ends: everything held is inserted before it returns
        assert store.query("SELECT count() FROM market_ticks FINAL")[1] == [(2_000,)]
        part.write_batch([ticks[2_000:]])
    finally:
        part.close()  # inserts what is still held
    assert store.query("SELECT count() FROM market_ticks FINAL")[1] == [(3_000,)]
    assert counts["ticks"] == 3_500
    assert counts["ticks_write_us"] > 0 and "ticks_write_cpu_us" in counts


def test_pipelined_sink_insert_that_fails_stops_the_epoch(store: ChdbStore, tmp_path: Path) -> None:
    # chdb errors are not worth a retry (a missing table does not heal by waiting): the error
    # comes out of the epoch's snapshot, before Bytewax commits it, and nothing after it is
    # written; the restart replays the epoch.
    ticks = _ticks(100)
    part = PipelinedTicksSink(f"chdb://{tmp_path}/ch", tmp_path, min_rows=1).build_part(
        "ticks", TICKS_PARTITION, None
    )
    try:
        part.write_batch([ticks[:50]])
        part.snapshot()
        store.command("RENAME TABLE market_ticks TO market_ticks_away")
        part.write_batch([ticks[50:]])
        with pytest.raises(ClickHouseError, match="market_ticks"):
            part.snapshot()
    finally:
        part.close()
    store.command("RENAME TABLE market_ticks_away TO market_ticks")
    assert store.query("SELECT count() FROM market_ticks")[1] == [(50,)]


def test_audit_row_of_a_fill_carries_its_quote(book: ChdbStore) -> None:
    _, rows = book.query("SELECT market_snapshot FROM audit_log FINAL WHERE exec_id = 'F3'")
    snapshot = json.loads(rows[0][0])
    assert (snapshot["bid"], snapshot["ask"], snapshot["symbol"]) == (400.0, 401.0, "MSFT")


# -- named reports (figures worked out by hand from `scenario()`) ---------------------------


def test_report_trading_history(book: ChdbStore) -> None:
    columns, rows = run_report(
        book, "trading_history", {"account": "ACC1", "from": "2024-03-04", "to": "2024-03-05"}
    )
    named = [dict(zip(columns, row, strict=True)) for row in rows]
    assert [r["event_type"] for r in named] == [
        "ORDER_PLACED",  # C1 10:00:00 (inserted twice, one row)
        "ORDER_ACCEPTED",  # A0
        "ORDER_MODIFIED",  # C1b request
        "ORDER_MODIFIED",  # R1 report
        "ORDER_FILLED",  # F1 (delivered twice, one row)
        "ORDER_FILLED",  # F2
        "ORDER_PLACED",  # C3
        "ORDER_FILLED",  # F4
        "TRADE_CANCELLED",  # F4X
        "ORDER_PLACED",  # C7
        "ORDER_CANCEL_REQUESTED",  # C9
    ]
    assert named[4]["exec_id"] == "F1" and named[4]["last_qty"] == Decimal(60)
    # the 35=G C1b replaces C1, and the 35=F C9 cancels C7: OrigClOrdID (41) beside ClOrdID
    assert columns[columns.index("cl_ord_id") + 1] == "orig_cl_ord_id"
    assert [(r["cl_ord_id"], r["orig_cl_ord_id"]) for r in named if r["orig_cl_ord_id"]] == [
        ("C1b", "C1"),
        ("C9", "C7"),
    ]
    assert (named[0]["bid"], named[0]["ask"]) == (100.0, 100.2)
    assert named[0]["timestamp"] == dt.datetime(2024, 3, 4, 10, tzinfo=UTC)


def test_report_wash_sales(book: ChdbStore) -> None:
    columns, rows = run_report(book, "wash_sales", {"from": "2024-03-01", "to": "2024-04-01"})
    named = [dict(zip(columns, row, strict=True)) for row in rows]
    # Sells in March: F4 (busted, out), F5 ACC1 AAPL 03-20 15:00, F3 ACC2 MSFT (no buy).
    # F5 pairs with ACC1's AAPL buys F1 and F2 of 03-04 (16 d 4 h 59 m before); F6 (36 days
    # after) and ACC2's F7 do not pair. (15:00:00 - 10:00:05) + 16 d = 1,400,395 s = 16.21 d.
    assert [(r["account"], r["symbol"], r["sell_exec_id"], r["buy_exec_id"]) for r in named] == [
        ("ACC1", "AAPL", "F5", "F1"),
        ("ACC1", "AAPL", "F5", "F2"),
    ]
    assert [r["days_apart"] for r in named] == [-16.21, -16.21]
    assert (named[0]["sell_qty"], named[0]["sell_px"]) == (Decimal(30), Decimal(99))
    assert (named[1]["buy_qty"], named[1]["buy_px"]) == (Decimal(40), Decimal("100.3"))
    _, none = run_report(book, "wash_sales", {"from": "2024-03-21", "to": "2024-04-01"})
    assert none == []


def test_report_best_execution(book: ChdbStore) -> None:
    columns, rows = run_report(book, "best_execution", {"from": "2024-03-04", "to": "2024-03-05"})
    named = {(r[0], r[1]): dict(zip(columns, r, strict=True)) for r in rows}
    assert set(named) == {("AAPL", "BUY"), ("MSFT", "SELL")}  # F4 busted: no AAPL SELL
    buy = named[("AAPL", "BUY")]
    # Arrival mid of O1: ORDER_PLACED C1 (10:00:00, mid 100.10; C1 → O1 through A0).
    # F1 60 @ 100.20: (100.20 - 100.10) / 100.10 = 9.99001 bps; F2 40 @ 100.30: 19.98002 bps.
    # Weighted: (60 * 9.99001 + 40 * 19.98002) / 100 = 13.986 → 13.99.
    # VWAP F1 over (10:00:00, 10:00:05]: (100 * 100.10 + 300 * 100.20) / 400 = 100.175
    #   → (100.20 - 100.175) / 100.175 = 2.49563 bps.
    # VWAP F2 over (10:00:00, 10:00:10]: (10010 + 30060 + 10040 + 10030) / 600 = 100.23333
    #   → (100.30 - 100.23333) / 100.23333 = 6.65115 bps.
    # Weighted: (60 * 2.49563 + 40 * 6.65115) / 100 = 4.15784 → 4.16.
    assert buy["fills"] == 2 and buy["quantity"] == Decimal(100)
    assert buy["avg_px"] == 100.24  # (60 * 100.20 + 40 * 100.30) / 100
    assert (buy["fills_with_arrival"], buy["arrival_slippage_bps"]) == (2, 13.99)
    assert (buy["fills_with_vwap"], buy["vwap_slippage_bps"]) == (2, 4.16)
    sell = named[("MSFT", "SELL")]
    # F3 sells 50 @ 400.00 against arrival mid 400.5: -(400 - 400.5) / 400.5 = 12.48439 bps.
    assert sell["fills"] == 1 and sell["avg_px"] == 400.0
    assert (sell["fills_with_arrival"], sell["arrival_slippage_bps"]) == (1, 12.48)
    assert (sell["fills_with_vwap"], sell["vwap_slippage_bps"]) == (0, None)  # no MSFT tape


def test_report_best_execution_clordid_reused_by_another_account_or_day(
    store: ChdbStore,
) -> None:
    """ClOrdIDs (11) are unique per account and day only (issue 18): X1 names three orders,
    ACC1's of 03-01 (O0) and of 03-04 (O1) and ACC2's of 03-04 (O2), each with its arrival.
    The acks carry no quote, so each order's arrival is its 35=D's, found through its ClOrdID."""
    aapl_early = quote("AAPL", 89.90, 90.10, "2024-03-01 10:00:00")  # mid 90.00
    aapl = quote("AAPL", 100.00, 100.20, "2024-03-04 10:00:00")  # mid 100.10
    msft = quote("MSFT", 400.0, 401.0, "2024-03-04 11:00:00")  # mid 400.50
    records = [
        audit_record(request("D", "X1", "ACC1", "AAPL", "1", "2024-03-01 10:00:00"), aapl_early),
        audit_record(
            execution("0", "A0", "O0", "X1", "ACC1", "AAPL", "1", "2024-03-01 10:00:01"), None
        ),
        audit_record(request("D", "X1", "ACC1", "AAPL", "1", "2024-03-04 10:00:00"), aapl),
        audit_record(
            execution("0", "A1", "O1", "X1", "ACC1", "AAPL", "1", "2024-03-04 10:00:01"), None
        ),
        audit_record(
            execution("F", "F1", "O1", "X1", "ACC1", "AAPL", "1", "2024-03-04 10:01:00",
                      "10", "100.20", "1"),
            None,
        ),  # fmt: skip
        # ACC2's ack is stamped by the venue's clock, a second before our 35=D's
        audit_record(request("D", "X1", "ACC2", "MSFT", "1", "2024-03-04 11:00:01"), msft),
        audit_record(
            execution("0", "A2", "O2", "X1", "ACC2", "MSFT", "1", "2024-03-04 11:00:00"), None
        ),
        audit_record(
            execution("F", "F2", "O2", "X1", "ACC2", "MSFT", "1", "2024-03-04 11:01:00",
                      "10", "401.00", "1"),
            None,
        ),  # fmt: skip
    ]
    store.insert("audit_log", AUDIT_COLUMNS, audit_rows(records))
    columns, rows = run_report(store, "best_execution", {"from": "2024-03-04", "to": "2024-03-05"})
    named = {(r[0], r[1]): dict(zip(columns, r, strict=True)) for r in rows}
    assert set(named) == {("AAPL", "BUY"), ("MSFT", "BUY")}
    # F1 10 @ 100.20 against O1's arrival mid 100.10 (not O0's 90.00): 9.99001 bps
    aapl_buy = named[("AAPL", "BUY")]
    assert (aapl_buy["fills_with_arrival"], aapl_buy["arrival_slippage_bps"]) == (1, 9.99)
    # F2 10 @ 401.00 against O2's arrival mid 400.50: 12.48439 bps
    msft_buy = named[("MSFT", "BUY")]
    assert (msft_buy["fills_with_arrival"], msft_buy["arrival_slippage_bps"]) == (1, 12.48)


def test_report_order_to_trade(book: ChdbStore) -> None:
    columns, rows = run_report(book, "order_to_trade", {"from": "2024-03-01", "to": "2024-05-01"})
    got = [
        (
            r["account"],
            str(r["day"]),
            r["placed"],
            r["modified"],
            r["cancelled"],
            r["fills"],
            r["ratio"],
        )
        for r in (dict(zip(columns, row, strict=True)) for row in rows)
    ]
    assert got == [
        # D: C1, C3, C7; G: C1b (R1, the venue's 150=5, is not a message); F: C9.
        # Fills F1 (twice delivered, once counted), F2; F4 busted. 5 / 2 = 2.5.
        ("ACC1", "2024-03-04", 3, 1, 1, 2, 2.5),
        ("ACC1", "2024-03-20", 0, 0, 0, 1, 0.0),
        ("ACC1", "2024-04-25", 0, 0, 0, 1, 0.0),
        ("ACC2", "2024-03-04", 1, 0, 0, 1, 1.0),
        ("ACC2", "2024-03-21", 0, 0, 0, 1, 0.0),
    ]


def test_run_report_missing_and_unknown_params(book: ChdbStore) -> None:
    from brokerflow.commands.report import ReportError

    with pytest.raises(ReportError, match="missing parameter 'account'"):
        run_report(book, "trading_history", {"from": "2024-03-04", "to": "2024-03-05"})
    with pytest.raises(ReportError, match="no parameter 'acount'"):
        run_report(book, "wash_sales", {"from": "a", "to": "b", "acount": "x"})
    with pytest.raises(ReportError, match="no report named 'nope'"):
        run_report(book, "nope", {})


# -- pseudonymisation -----------------------------------------------------------------------


def test_pseudonymise_clickhouse(book: ChdbStore, tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert load_or_create_key(tmp_path) == key  # kept in the data dir
    pseudonym = pseudonymise_clickhouse(book, "ACC1", key)
    assert pseudonym == pseudonym_of("ACC1", key) and "ACC1" not in pseudonym
    period = {"from": "2024-03-04", "to": "2024-03-05"}
    _, gone = run_report(book, "trading_history", {"account": "ACC1", **period})
    assert gone == []
    _, kept = run_report(book, "trading_history", {"account": pseudonym, **period})
    assert len(kept) == 11
    _, pairs = run_report(book, "wash_sales", {"from": "2024-03-01", "to": "2024-04-01"})
    assert {row[0] for row in pairs} == {pseudonym}
    _, left = book.query(
        "SELECT count() FROM audit_log WHERE account = 'ACC1' OR position(raw_fix, '1=ACC1') > 0"
    )
    assert left == [(0,)]
    _, mapped = book.query("SELECT account, pseudonym FROM pseudonym_map FINAL")
    assert mapped == [("ACC1", pseudonym)]
    # Again: nothing left to change, same pseudonym, one mapping row.
    assert pseudonymise_clickhouse(book, "ACC1", key) == pseudonym
    _, mapped = book.query("SELECT count() FROM pseudonym_map FINAL")
    assert mapped == [(1,)]
    # Other accounts are untouched.
    _, others = book.query("SELECT count() FROM audit_log FINAL WHERE account = 'ACC2'")
    assert others == [(3,)]


# -- shared SQL helpers ---------------------------------------------------------------------


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


# -- the server backend, through a fake clickhouse-connect client ----------------------------


class _Result:
    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.column_names = columns
        self.result_rows = rows


class FakeClient:
    """Records what `ServerStore` asks of clickhouse-connect's `Client`."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def command(self, sql: str, parameters: dict[str, Any]) -> None:
        self.calls.append(("command", sql, parameters))

    def query(self, sql: str, parameters: dict[str, Any], settings: Any) -> _Result:
        self.calls.append(("query", sql, parameters, settings))
        return _Result(["a"], [(1,)])

    def insert(
        self, table: str, data: Any, column_names: list[str], column_oriented: bool = False
    ) -> None:
        kind = "insert_columns" if column_oriented else "insert"
        self.calls.append((kind, table, list(data), column_names))

    def close(self) -> None:
        self.calls.append(("close",))


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
    ticks = _ticks(11_200)
    assert store.insert_columns("market_ticks", TICK_COLUMNS, tick_columns(ticks)) == 11_200
    inserts = [c for c in client.calls if c[0] == "insert_columns"]
    assert [len(c[2][0]) for c in inserts] == [5000, 5000, 1200]
    assert all(len(c[2]) == len(TICK_COLUMNS) and c[3] == list(TICK_COLUMNS) for c in inserts)
    # The same values as the row insert, column by column: ts as int microseconds.
    sent = [row for c in inserts for row in _rows_of(c[2])]
    assert sent == [tuple(row) for row in tick_rows(ticks)]


class _FlakyClient(FakeClient):
    """A server that refuses the first `failures` inserts with a connection error."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def insert(self, *args: Any, **kwargs: Any) -> None:
        from clickhouse_connect.driver.exceptions import OperationalError

        if self.failures:
            self.failures -= 1
            msg = "Error HTTPConnectionPool(host='ch', port=8123): connection refused"
            raise OperationalError(msg)
        super().insert(*args, **kwargs)


def test_pipelined_sink_retries_a_server_that_is_down_in_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sinks.clickhouse.sinks as clickhouse  # where the sinks' writer opens the store
    from sinks.retry import RetryPolicy

    client = _FlakyClient(failures=2)
    opened: list[str] = []

    def open_server(url: str | None, data_dir: Path, max_insert_rows: int) -> ServerStore:
        opened.append(str(url))  # the writer reconnects before each retry
        return ServerStore(str(url), max_insert_rows, client=client)

    monkeypatch.setattr(clickhouse, "open_store", open_server)
    ticks = _ticks(300)
    sink = PipelinedTicksSink(
        "http://ch:8123/db", tmp_path, policy=RetryPolicy(5, 0.01, 0.02), min_rows=100
    )
    part = sink.build_part("ticks", TICKS_PARTITION, None)
    try:
        for start in range(0, 300, 100):
            part.write_batch([ticks[start : start + 100]])
        part.snapshot()
    finally:
        part.close()
    inserts = [c for c in client.calls if c[0] == "insert_columns"]
    sent = [row for c in inserts for row in _rows_of(c[2])]
    assert sent == [tuple(row) for row in tick_rows(ticks)]  # all of it, once, in order
    assert len(opened) == 3  # connected, then reconnected after each refusal


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


def test_server_store_runs_the_same_migrations() -> None:
    client = FakeClient()

    def query(sql: str, parameters: dict[str, Any], settings: Any) -> _Result:
        client.calls.append(("query", sql, parameters, settings))
        return _Result(["version", "name", "checksum"], [])

    client.query = query  # type: ignore[method-assign]
    store = ServerStore("http://ch:8123/db", client=client)
    assert migrate_clickhouse(store) == ["0001_audit.sql", "0002_alerts.sql"]
    commands = [c[1] for c in client.calls if c[0] == "command"]
    # One statement per request: schema_migrations, the three tables of 0001, alerts of 0002.
    assert len(commands) == 5 and all("CREATE TABLE IF NOT EXISTS" in c for c in commands)
    assert [c.count("CREATE TABLE") for c in commands] == [1, 1, 1, 1, 1]
    inserts = [c for c in client.calls if c[0] == "insert"]
    assert inserts[0][1] == "schema_migrations" and inserts[0][2][0][:2] == (1, "0001_audit.sql")


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


_AWKWARD_STRINGS = (
    "",
    "8=FIX.4.4\x01 \"quoted\" 'single' tab\t nl\n cr\r backslash\\ \x00\x1f\x7f",
    "é ü 日本 😀 𝄞 \u2028\u2029 \ufeff",
    "{}",
    '{"a":"b\\"c"}',
)


def _generated_audit_rows(n: int) -> list[tuple[Any, ...]]:
    rng = random.Random(42)
    rows = []
    for i in range(n):
        text = rng.choice(_AWKWARD_STRINGS) + str(i)
        rows.append(
            (
                rng.choice([str(uuid.UUID(int=rng.getrandbits(128))), uuid.UUID(int=i)]),
                rng.choice(
                    [
                        rng.randrange(1_700_000_000_000_000, 1_705_000_000_000_000),
                        1_709_546_400_000_001,
                        dt.datetime(2024, 3, 4, 10, 0, 0, i % 1_000_000, tzinfo=UTC),
                    ]
                ),
                rng.choice(["ORDER_FILLED", "ORDER_ACCEPTED"]),
                text,
                rng.choice(_AWKWARD_STRINGS),
                f"C{i}",
                "",
                f"E{i}",
                "AAPL",
                "1",
                "2",
                "F",
                rng.choice([None, Decimal("0.0000000001"), Decimal(i)]),
                rng.choice([None, Decimal("123456.123456789"), Decimal("-1E+5")]),
                rng.choice([Decimal(0), Decimal("1.5"), Decimal("-0.0000000001")]),
                rng.choice([Decimal(0), Decimal("99999999999.9999999999")]),
                rng.choice(_AWKWARD_STRINGS),
                "{}",
                text,
                f"file:t.fix:{i}",
            )
        )
    return rows


def test_encode_json_columns_equals_the_reference(store: ChdbStore) -> None:
    types = [store.column_types("audit_log")[c] for c in AUDIT_COLUMNS]
    rows = _generated_audit_rows(3000)
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
    rows = _generated_audit_rows(2000)
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
