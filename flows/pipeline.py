"""Flows layer: one dataflow with every flow attached to a shared input and decode step.

    read_fix (source: files, FIX sessions, Kafka partitions; emits RawChunk / SequencedChunk)
      -> decode_fix (on the worker that read the chunk: FlowBatch = events + dead letters +
                     each event's sequence number + its partition's progress)
           -> collect_dead_letters -> write_dead_letters (PostgreSQL dead_letters)
           -> shard_market_data (by symbol shard, `domain.sharding`: each shard's messages come
                             from one partition, in order)
                -> flows.quotes  (L1 books -> coalesced quotes -> Redis; order events -> audit
                                  records with the quote of their time)
                -> flows.audit   (audit records -> ClickHouse audit_log; quotes -> market_ticks)
                -> flows.stops   (stop orders + every price -> triggers: stop_orders, children to
                                  --orders-out, STOP_TRIGGERED alerts, ORDER_TRIGGERED audit rows)
                -> flows.margin  (marks per symbol shard -> merged with the fills by sequence
                                  number per account shard -> account figures, MARGIN_CALL /
                                  CURED / LIQUIDATION / CONCENTRATION alerts, account_margin)
           -> flows.ledger  (order events -> PostgreSQL orders, executions, holdings, cash)
           -> flows.surveillance (execution reports + market trades -> symbol shards, and by
                             sequence number to account shards -> wash trades, spoofing,
                             pump and dump, marking the close, order-to-trade, ownership)
           -> flows.quality (sampled fills + published quotes -> Great Expectations suites off
                             the hot path -> dq_results, dead letters naming the expectation)
      the alerts of stops, margin and surveillance -> merge_alerts -> write_alerts
                             (PostgreSQL alerts + stream:alerts, one background writer)
No step takes every message on one worker: the combining steps (margin and surveillance
account shards) get the marks, fills and orders merged by sequence number up to every input
partition's watermark (`domain.watermarks`).
"""

from __future__ import annotations

from collections.abc import Iterable

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from connectors.kafka import SequencedChunk
from connectors.raw import RawChunk
from domain.errors import ConfigError
from flows import audit, ledger, margin, quality, quotes, stops, surveillance
from flows.context import FlowContext
from flows.operators import alert_sink, dead_letters_of, make_decoder
from sinks.alerts import alert_partition_key
from sinks.postgres import DeadLetterSink

ALL_FLOWS = ("quotes", "ledger", "audit", "stops", "margin", "surveillance")
"""The flows `build_pipeline` can attach; all of them by default. Dead letters always go out."""


def check_flows(names: Iterable[str]) -> frozenset[str]:
    """Validate a selection of flows; raise ConfigError naming an unknown one."""
    chosen = frozenset(names)
    unknown = sorted(chosen - set(ALL_FLOWS))
    if unknown:
        msg = f"unknown flow {', '.join(unknown)}; choose from {', '.join(ALL_FLOWS)}"
        raise ConfigError(msg)
    return chosen  # empty: decode and dead letters only (a benchmark's baseline)


def build_pipeline(
    source: Source[RawChunk] | Source[SequencedChunk],
    ctx: FlowContext,
    flows: Iterable[str] = ALL_FLOWS,
) -> Dataflow:
    """Return the dataflow of the chosen flows reading `source`.

    The market-data steps always run when the audit flow does (it takes its snapshots there).
    """
    chosen = check_flows(flows)
    flow = Dataflow("brokerflow")
    chunks = op.input("read_fix", flow, source)
    decoded = op.map("decode_fix", chunks, make_decoder(ctx))
    letters = op.flat_map("collect_dead_letters", decoded, dead_letters_of)
    op.output("write_dead_letters", letters, DeadLetterSink(ctx.postgres_dsn, ctx.retry))
    with_audit = "audit" in chosen
    published = None  # the quote batches, for data quality
    alerts = []  # each flow's alert stream
    if chosen & {"quotes", "audit", "stops", "margin"}:
        with_orders = bool(chosen & {"audit", "stops", "margin"})
        # the venue's statuses (35=f/h) and the index breaker's ride along (issue 19): for the
        # stop engine and margin (halts) and the quotes (price bands)
        shards = stops.shard(decoded, ctx, with_orders=with_orders)
        if chosen & {"quotes", "audit"}:
            make_audit = audit.make_audit if with_audit else None
            streams = quotes.attach(shards, ctx, make_audit=make_audit)
            published = streams.quotes
            if with_audit:
                audit.attach(streams, ctx)
        if "stops" in chosen:
            alerts.append(stops.attach(shards, ctx, with_audit))
        if "margin" in chosen:
            alerts.append(margin.attach(shards, ctx))
    if "ledger" in chosen:
        ledger.attach(decoded, ctx)
    if "surveillance" in chosen:
        alerts.append(surveillance.attach(decoded, ctx))
    if alerts:
        # One sink for every flow's alerts: one writer thread, in the order they were made.
        merged = op.merge("merge_alerts", *alerts)
        keyed = op.map("key_alerts", merged, alert_partition_key)
        op.output("write_alerts", keyed, alert_sink(ctx))
    if ctx.data_quality:
        quality.attach(decoded, published, ctx)
    return flow
