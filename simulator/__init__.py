"""Simulator layer: deterministic simulated venues that speak FIX (market data, order flow).

Nothing here reads the wall clock; the same arguments give the same bytes. The live demo and
the benchmarks stream from `MarketSimulator.messages()`; `OrderFlowSimulator` merges client
orders and the broker's execution reports into that stream and keeps the expected ledger;
`write_fills_file` writes fills-heavy files for ledger benchmarks; `brokerflow simulate` writes
files.
"""

from simulator.fills import write_fills_file
from simulator.market import (
    DEFAULT_RATE_PER_SYMBOL,
    DEFAULT_START_NS,
    MarketSimulator,
    SimulationSummary,
    symbol_names,
)
from simulator.orders import (
    DEFAULT_ACCOUNTS,
    DEFAULT_ORDERS_PER_MINUTE,
    AccountLedger,
    OrderFlowSimulator,
)

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_ORDERS_PER_MINUTE",
    "DEFAULT_RATE_PER_SYMBOL",
    "DEFAULT_START_NS",
    "AccountLedger",
    "MarketSimulator",
    "OrderFlowSimulator",
    "SimulationSummary",
    "symbol_names",
    "write_fills_file",
]
