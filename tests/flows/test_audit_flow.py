"""The audit flow end to end: a simulated day -> replay -> ClickHouse `audit_log` and
`market_ticks`, compared with what the row-by-row path stores for the same records and quotes.

The flow's sinks hold the rows, build their columns on a background thread and insert them in
large inserts (`PipelinedAuditSink`, `PipelinedTicksSink`). The reference is the path they
replaced: one tuple per row (`audit_rows`, `tick_rows`) inserted by `ChdbStore.insert`, fed by
a `TestingSink` on the same streams of the same run. Real Redis and PostgreSQL
(tests/conftest.py), chdb under the test's data dir.
"""

from __future__ import annotations

from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.testing import TestingSink

import flows.audit
from brokerflow.cli import main
from brokerflow.commands.replay import replay
from flows.context import FlowContext
from flows.quotes import QuoteStreams
from sinks.clickhouse import (
    AUDIT_COLUMNS,
    TICK_COLUMNS,
    audit_rows,
    open_store,
    tick_rows,
)

# Every stored column, in a total order (the sorting keys, then the rest).
TICKS_SELECT = f"SELECT {', '.join(TICK_COLUMNS)} FROM {{table}} FINAL ORDER BY symbol, ts, seq"
AUDIT_SELECT = (
    f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {{table}} FINAL ORDER BY timestamp, event_id"
)


@pytest.fixture
def day(tmp_path: Path) -> Path:
    path = tmp_path / "day.fix"
    options = ["--symbols", "6", "--minutes", "3", "--orders", "--accounts", "30", "--seed", "7"]
    assert main(["simulate", *options, "--out", str(path)]) == 0
    return path


def test_audit_flow_stores_what_the_row_by_row_path_stores(
    day: Path, settings_factory, monkeypatch
) -> None:
    settings = settings_factory()
    published: list = []  # quote batches, as the ticks sink receives them
    records: list = []  # audit record batches, as the audit sink receives them
    attach = flows.audit.attach

    def attach_with_reference(
        streams: QuoteStreams, ctx: FlowContext, tables=flows.audit.TABLES
    ) -> None:
        attach(streams, ctx, tables)
        op.output("capture_quotes", streams.quotes, TestingSink(published))
        op.output("capture_audit", streams.audit, TestingSink(records))

    monkeypatch.setattr(flows.audit, "attach", attach_with_reference)
    summary = replay([day], settings, progress=False, flows=("quotes", "audit")).as_dict()
    assert summary["dead_letters"] == 0

    quotes = [q for batch in published for q in batch]
    audit = [r for batch in records for r in batch]
    assert len(quotes) == summary["quotes"] > 1_000
    assert len(audit) > 500  # every order event of the day
    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        store.command("CREATE TABLE market_ticks_reference AS market_ticks")
        store.command("CREATE TABLE audit_log_reference AS audit_log")
        for batch in published:  # one insert per batch, as the worker-thread sink did
            store.insert("market_ticks_reference", TICK_COLUMNS, tick_rows(batch))
        store.insert("audit_log_reference", AUDIT_COLUMNS, audit_rows(audit))

        for table, select in (("market_ticks", TICKS_SELECT), ("audit_log", AUDIT_SELECT)):
            _, got = store.query(select.format(table=table))
            _, want = store.query(select.format(table=f"{table}_reference"))
            assert got == want, table
        _, [(ticks_stored,)] = store.query("SELECT count() FROM market_ticks")
        _, [(audit_stored,)] = store.query("SELECT count() FROM audit_log")
    finally:
        store.close()
    assert (ticks_stored, audit_stored) == (len(quotes), len(audit))


def test_audit_flow_writes_only_the_tables_asked_for(
    day: Path, settings_factory, monkeypatch
) -> None:
    settings = settings_factory()
    attach = flows.audit.attach
    monkeypatch.setattr(
        flows.audit, "attach", lambda streams, ctx: attach(streams, ctx, ("market_ticks",))
    )
    replay([day], settings, progress=False, flows=("quotes", "audit"))
    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        _, [(ticks,)] = store.query("SELECT count() FROM market_ticks")
        _, [(audit,)] = store.query("SELECT count() FROM audit_log")
    finally:
        store.close()
    assert ticks > 1_000 and audit == 0
