"""Flows layer: the ledger flow. Order events (35=8/D/F/G) -> the PostgreSQL ledger of record.

Steps (ids are recovery keys; renaming one orphans its state):
    collect_order_events  DecodedBatch -> [order events of the chunk], in input order
    write_ledger          `LedgerSink`: one transaction per Bytewax batch (orders, executions,
                          holdings, cash), idempotent by ExecID, dead letters in the same
                          transaction
Order events stay on the worker that decoded them, so one input partition (a file, a FIX
session, a Kafka partition) is booked in its own order. Partitions booked by different workers
may touch the same account: the writer locks accounts in a fixed order and retries deadlocks,
so balances stay right under concurrent writers.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.fix import DecodedBatch
from domain.events import OrderEvent, OrderList
from flows.context import FlowContext
from flows.operators import ORDER_TYPES
from sinks.ledger import LedgerSink


def order_events_of(batch: DecodedBatch) -> list[list[OrderEvent]]:
    """The chunk's order events as one list (none when it has none); a NewOrderList (35=E)
    books as the orders it places."""
    events: list[OrderEvent] = []
    for event in batch.events:
        kind = type(event)
        if kind in ORDER_TYPES:
            events.append(event)
        elif kind is OrderList:
            events.extend(event.orders)
    return [events] if events else []


def attach(decoded: Stream[DecodedBatch], ctx: FlowContext) -> Stream[list[OrderEvent]]:
    """Add the ledger steps to a dataflow whose decoded FIX stream is `decoded`."""
    orders = op.flat_map("collect_order_events", decoded, order_events_of)
    op.output("write_ledger", orders, LedgerSink(ctx.postgres_dsn, ctx.stats.add, ctx.retry))
    return orders
