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
    write_ticks  `TicksSink`: market_ticks, every published quote, for best execution
"""

from __future__ import annotations

import bytewax.operators as op

from domain.audit import audit_record
from flows.context import FlowContext
from flows.quotes import QuoteStreams
from sinks.clickhouse import PipelinedAuditSink, TicksSink, audit_partition_key

make_audit = audit_record  # what `flows.quotes.attach` calls per order event


def attach(streams: QuoteStreams, ctx: FlowContext) -> None:
    """Write the audit records and the published quotes of `streams` to ClickHouse."""
    url, data_dir, count = ctx.settings.clickhouse_url, ctx.settings.data_dir, ctx.stats.add
    keyed = op.map("key_audit_records", streams.audit, audit_partition_key)
    op.output("write_audit", keyed, PipelinedAuditSink(url, data_dir, count, ctx.retry))
    op.output("write_ticks", streams.quotes, TicksSink(url, data_dir, count, ctx.retry))
