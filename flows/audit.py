"""Flows layer: the audit trail. Order events with their market snapshot -> ClickHouse.

The snapshot join happens upstream, inside the quote shards (`flows.quotes.attach` with
`make_audit=audit_record`): an order event goes through the shard of its symbol, after the
market data that preceded it, and leaves as an `AuditRecord` carrying the quote current at its
own event time (`QuoteCoalescer.quote_at`). No lookup round trip per event.

Steps (ids are recovery keys):
    key_audit_records  -> ("audit", [AuditRecord]) (`audit_partition_key`)
    write_audit  `PipelinedAuditSink`: audit_log, inserted by a background writer overlapping
                 the flow, batches joined up to 50,000 rows per insert; each epoch's snapshot
                 waits for its rows
    key_ticks    -> ("ticks", [Quote]) (`ticks_partition_key`)
    write_ticks  `PipelinedTicksSink`: market_ticks, every published quote, for best execution;
                 the same background writing, up to 200,000 rows per insert (until 2026-12 a
                 stateless sink inserting each batch on the worker thread: a recovery snapshot
                 of that time has no state for it, and the new partition starts empty)

The worker thread only hands each batch over; the writers build the columns and insert them
while the flow goes on. When rows are inserted: a live run (FIX sessions, Kafka, the
simulator) inserts what it holds at least every `LIVE_FLUSH_S`, so the audit trail and the
ticks trail the market by about a second; a replay holds rows until a sink has its minimum
insert (20,000 audit rows, 100,000 ticks) or the epoch ends (Bytewax's epoch, 10 s unless
`--snapshot-s`), since every insert is a ClickHouse part with a fixed cost (~25 ms on chdb).
"""

from __future__ import annotations

from collections.abc import Collection

import bytewax.operators as op

from domain.audit import audit_record
from flows.context import FlowContext
from flows.quotes import QuoteStreams
from sinks.clickhouse import (
    LIVE_MAX_DELAY_S,
    PipelinedAuditSink,
    PipelinedTicksSink,
    audit_partition_key,
    ticks_partition_key,
)

make_audit = audit_record  # what `flows.quotes.attach` calls per order event

TABLES = ("audit_log", "market_ticks")
"""The tables the audit flow writes."""

LIVE_FLUSH_S = LIVE_MAX_DELAY_S
"""A live run inserts held audit rows and ticks at least this often."""


def attach(streams: QuoteStreams, ctx: FlowContext, tables: Collection[str] = TABLES) -> None:
    """Write the audit records and the published quotes of `streams` to ClickHouse.

    `tables` leaves one of them out (`bench/audit.py` measures each table's cost that way).
    """
    url, data_dir, count = ctx.settings.clickhouse_url, ctx.settings.data_dir, ctx.stats.add
    delay = LIVE_FLUSH_S if ctx.live else None  # a replay: until the minimum or the epoch end
    if "audit_log" in tables:
        keyed = op.map("key_audit_records", streams.audit, audit_partition_key)
        sink = PipelinedAuditSink(
            url, data_dir, count, ctx.retry, max_delay_s=delay, recovery=ctx.recovery,
            local=ctx.clickhouse_here,
        )  # fmt: skip
        op.output("write_audit", keyed, sink)
    if "market_ticks" in tables:
        ticks = op.map("key_ticks", streams.quotes, ticks_partition_key)
        sink = PipelinedTicksSink(
            url, data_dir, count, ctx.retry, max_delay_s=delay, recovery=ctx.recovery,
            local=ctx.clickhouse_here,
        )  # fmt: skip
        op.output("write_ticks", ticks, sink)
