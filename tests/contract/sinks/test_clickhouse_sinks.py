"""ClickHouse Bytewax sinks on chdb: the batch sinks, the pipelined ones (held until the
epoch's snapshot), a failing insert, and retries against a server that is down.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from domain.alerts import make_alert
from sinks.clickhouse import (
    ALERTS_PARTITION,
    AUDIT_PARTITION,
    TICKS_PARTITION,
    AlertsSink,
    AuditSink,
    ChdbStore,
    ClickHouseError,
    PipelinedAlertsSink,
    PipelinedAuditSink,
    PipelinedTicksSink,
    ServerStore,
    TicksSink,
    tick_rows,
)
from tests.contract.sinks.clickhouse_cases import FakeClient, make_ticks, rows_of, scenario


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


def test_pipelined_ticks_sink_holds_rows_until_the_epoch_snapshot(
    store: ChdbStore, tmp_path: Path
) -> None:
    ticks = make_ticks(3_000)
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
    ticks = make_ticks(100)
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
    ticks = make_ticks(300)
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
    sent = [row for c in inserts for row in rows_of(c[2])]
    assert sent == [tuple(row) for row in tick_rows(ticks)]  # all of it, once, in order
    assert len(opened) == 3  # connected, then reconnected after each refusal
