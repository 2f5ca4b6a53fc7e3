"""The benchmarks' names, in the order `brokerflow bench` without NAME runs them.

A module of its own so that the command (`bench.command`) and `bench compare` share the list
without importing each other.
"""

from __future__ import annotations

BENCHMARKS = (
    "ingest", "ingest-kafka", "executions", "stops", "margin", "surveillance", "edge",
    "fix-session", "pipeline", "scale-out", "audit", "price-alerts", "run-cpu",
)  # fmt: skip
