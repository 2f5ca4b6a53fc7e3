"""Flows layer: the data-quality step (issue 9). Decoded events and published quotes -> sampled
micro-batches validated by Great Expectations off the hot path (`quality.runner`).

Steps (no state; ids are still kept stable):
    dq_events          DecodedBatch -> ("events", its events)
    dq_quotes          published quote batches -> ("quotes", quotes)
    dq_inputs          merge of the two
    check_data_quality `DataQualitySink`: dq_results rows, dead letters naming the expectation
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.fix import DecodedBatch
from domain.quotes import Quote
from flows.context import FlowContext
from quality.runner import DqPolicy
from quality.sink import EVENTS_ITEM, QUOTES_ITEM, DataQualitySink


def policy_of(ctx: FlowContext) -> DqPolicy:
    """The data-quality policy from the run's settings."""
    s = ctx.settings
    return DqPolicy(
        batch_rows=s.dq_batch_rows,
        interval_s=s.dq_interval_s,
        sample_share=s.dq_sample_share,
        budget_share=s.dq_budget_share,
        max_age_s=s.dq_max_event_age_s,
        max_ahead_s=s.dq_max_event_ahead_s,
        px_band_bps=s.dq_px_band_bps,
        symbols=frozenset(s.instruments) if s.instruments else None,
        live=ctx.live,
    )


def _events(batch: DecodedBatch) -> tuple[str, list]:
    return EVENTS_ITEM, batch.events


def _quotes(quotes: list[Quote]) -> tuple[str, list]:
    return QUOTES_ITEM, quotes


def attach(
    decoded: Stream[DecodedBatch], quotes: Stream[list[Quote]] | None, ctx: FlowContext
) -> None:
    """Add the data-quality step; without a quote stream only fills are checked."""
    items = op.map("dq_events", decoded, _events)
    if quotes is not None:
        items = op.merge("dq_inputs", items, op.map("dq_quotes", quotes, _quotes))
    sink = DataQualitySink(ctx.postgres_dsn, policy_of(ctx), ctx.stats.add)
    op.output("check_data_quality", items, sink)
