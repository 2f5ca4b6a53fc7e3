"""Simulator layer: deterministic simulated venues that speak FIX (market data first).

Nothing here reads the wall clock; the same arguments give the same bytes. The live demo and
the benchmarks stream from `MarketSimulator.messages()`; `brokerflow simulate` writes files.
"""

from simulator.market import (
    DEFAULT_RATE_PER_SYMBOL,
    DEFAULT_START_NS,
    MarketSimulator,
    SimulationSummary,
    symbol_names,
)

__all__ = [
    "DEFAULT_RATE_PER_SYMBOL",
    "DEFAULT_START_NS",
    "MarketSimulator",
    "SimulationSummary",
    "symbol_names",
]
