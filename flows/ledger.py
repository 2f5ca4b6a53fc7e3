"""Flows layer: the ledger flow. Order events (35=8/D/F/G) -> the PostgreSQL ledger of record.

Steps (ids are recovery keys; renaming one orphans its state):
    collect_order_events  DecodedBatch -> [order events of the chunk], in input order, with the
                          reference changes (35=UA/UC, `sinks.reference`) in their places
    key_order_events      -> ("ledger", [order events]) (`ledger_partition_key`)
    write_ledger          `PipelinedLedgerSink`: transactions (orders, executions, holdings,
                          cash, dead letters) on one background writer that overlaps the flow;
                          idempotent by ExecID; each epoch's snapshot waits for its
                          transactions to commit; after each commit, the holdings documents
                          of the accounts it changed: Redis `positions:{account}` and
                          `stream:positions` (`sinks.positions`)
    collect_order_frames  the execution reports of accounts as the traders' `order` frames
    write_order_status    Redis `stream:orders` (the edge's order-status push), in booking
                          order, once per ExecID, and the open-order snapshot
                          `orders:open:{account}` (`sinks.order_status`)
The sink has one partition, so order events are booked in the order each worker sends them: one
input partition (a file, a FIX session, Kafka partitions aligned by `flows.align`) in its own
order. Other processes may touch the same accounts: the writer locks accounts in a fixed order
and retries deadlocks, so balances stay right under concurrent writers.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.fix import DecodedBatch
from domain.events import REFERENCE_TYPES, ExecutionReport, OrderEvent, OrderList
from domain.order_status import open_order_keys, order_frame, order_status
from flows.context import FlowContext
from flows.operators import ORDER_TYPES, OnLastProcess
from sinks.ledger import PipelinedLedgerSink, ledger_partition_key
from sinks.order_status import OrderFrame, OrderStatusSink, order_partition_key


def order_events_of(batch: DecodedBatch) -> list[list[OrderEvent]]:
    """The chunk's order events and reference changes as one list (none when it has none); a
    NewOrderList (35=E) books as the orders it places."""
    events: list[OrderEvent] = []
    for event in batch.events:
        kind = type(event)
        if kind in ORDER_TYPES or kind in REFERENCE_TYPES:
            events.append(event)  # a reference change in its place among them (issue 20)
        elif kind is OrderList:
            events.extend(event.orders)
    return [events] if events else []


def order_frames_of(events: list[OrderEvent]) -> list[list[OrderFrame]]:
    """The traders' `order` frames of a chunk's execution reports (none without an account)."""
    frames: list[OrderFrame] = []
    for event in events:
        if type(event) is ExecutionReport:
            frame = order_frame(event)
            if frame is not None:
                keys = open_order_keys(order_status(event), event.cl_ord_id, event.orig_cl_ord_id)
                frames.append((event.exec_id, event.account or "", frame, *keys))
    return [frames] if frames else []


def attach(decoded: Stream[DecodedBatch], ctx: FlowContext) -> Stream[list[OrderEvent]]:
    """Add the ledger steps to a dataflow whose decoded FIX stream is `decoded`."""
    orders = op.flat_map("collect_order_events", decoded, order_events_of)
    keyed = op.map("key_order_events", orders, ledger_partition_key)
    op.output(
        "write_ledger",
        keyed,
        OnLastProcess(
            PipelinedLedgerSink(
                ctx.postgres_dsn,
                ctx.stats.add,
                ctx.retry,
                recovery=ctx.recovery,
                redis_url=ctx.redis_url,
            ),
            ctx,
        ),
    )
    frames = op.flat_map("collect_order_frames", orders, order_frames_of)
    op.output(
        "write_order_status",
        op.map("key_order_frames", frames, order_partition_key),
        OnLastProcess(OrderStatusSink(ctx.redis_url, ctx.retry, recovery=ctx.recovery), ctx),
    )
    return orders
