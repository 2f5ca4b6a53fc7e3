"""Flows layer: the audit trail. Order events with their market snapshot -> ClickHouse.

The snapshot join happens upstream, inside the quote shards (`flows.quotes.attach` with
`make_audit=audit_record`): an order event goes through the shard of its symbol, after the
market data that preceded it, and leaves as an `AuditRecord` carrying the quote current at its
own event time (`QuoteCoalescer.quote_at`). No lookup round trip per event.

Steps (ids are recovery keys):
    write_audit  `AuditSink`: audit_log, one insert per Bytewax batch
    write_ticks  `TicksSink`: market_ticks, every published quote, for best execution
"""

from __future__ import annotations

import bytewax.operators as op

from domain.audit import audit_record
from flows.context import FlowContext
from flows.quotes import QuoteStreams
from sinks.clickhouse import AuditSink, TicksSink

make_audit = audit_record  # what `flows.quotes.attach` calls per order event


def attach(streams: QuoteStreams, ctx: FlowContext) -> None:
    """Write the audit records and the published quotes of `streams` to ClickHouse."""
    url, data_dir, count = ctx.settings.clickhouse_url, ctx.settings.data_dir, ctx.stats.add
    op.output("write_audit", streams.audit, AuditSink(url, data_dir, count, ctx.retry))
    op.output("write_ticks", streams.quotes, TicksSink(url, data_dir, count, ctx.retry))
