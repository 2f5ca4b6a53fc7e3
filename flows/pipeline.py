"""Flows layer: one dataflow with every flow attached to a shared input and decode step.

    read_fix (source: files, FIX sessions, Kafka; emits RawChunk)
      -> decode_fix (DecodedBatch: events + dead letters)
           -> collect_dead_letters -> write_dead_letters (PostgreSQL dead_letters)
           -> flows.quotes.attach (market data -> Redis)
           -> (later issues: ledger, audit, stops, margin, surveillance)
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from connectors.raw import RawChunk
from flows import quotes
from flows.context import FlowContext
from flows.operators import dead_letters_of, make_decoder
from sinks.postgres import DeadLetterSink


def build_pipeline(source: Source[RawChunk], ctx: FlowContext) -> Dataflow:
    """Return the dataflow of all flows reading `source`."""
    flow = Dataflow("brokerflow")
    chunks = op.input("read_fix", flow, source)
    decoded = op.map("decode_fix", chunks, make_decoder(ctx))
    letters = op.flat_map("collect_dead_letters", decoded, dead_letters_of)
    op.output("write_dead_letters", letters, DeadLetterSink(ctx.postgres_dsn))
    quotes.attach(decoded, ctx)
    return flow
