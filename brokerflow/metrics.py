"""Application layer: the Prometheus histograms of a run's sinks, on prometheus_client's types.

The run's counters are `flows.stats.FlowStats` (re-exported here), exposed at scrape time by
`brokerflow.observability.StatsCollector`. The sink histograms (`SINK_HISTOGRAMS`) are
prometheus_client `Histogram`s, one set per `FlowStats` (so a later run on the same port shows
its own), observed once per written batch.
"""

from __future__ import annotations

from prometheus_client import Histogram

from flows.stats import FlowStats

__all__ = ["ITEMS_BUCKETS", "SECONDS_BUCKETS", "SINK_HISTOGRAMS", "FlowStats", "sink_histogram"]

PREFIX = "brokerflow_"
SECONDS_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0, 86400.0,
)  # fmt: skip
"""Bounds of latency histograms: sub-millisecond sink writes up to a day-old event time."""
ITEMS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 50_000)
"""Bounds of batch-size histograms."""

# kind -> (family name without the prefix, help, bucket bounds); every one labelled by `step`.
SINK_HISTOGRAMS: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "batch_items": ("batch_items", "items per written batch", ITEMS_BUCKETS),
    "sink_seconds": ("sink_write_seconds", "time to write one batch", SECONDS_BUCKETS),
    "e2e_seconds": (
        "end_to_end_latency_seconds",
        "wall time of the write minus event time of the batch's last item",
        SECONDS_BUCKETS,
    ),
}


def sink_histogram(stats: FlowStats, kind: str) -> Histogram:
    """The `kind` histogram (a key of `SINK_HISTOGRAMS`) of the run counting into `stats`."""
    name, doc, bounds = SINK_HISTOGRAMS[kind]
    return stats.histogram(
        kind,
        # registry=None: exposed through the run's collector, which may change per run.
        lambda: Histogram(PREFIX + name, doc, ["step"], buckets=bounds, registry=None),
    )
