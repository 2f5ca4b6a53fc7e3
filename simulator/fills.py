"""Simulator layer: fills-heavy files of execution reports, for the ledger benchmarks."""

from __future__ import annotations

from pathlib import Path

from simulator.market import MarketSimulator
from simulator.orders import OrderFlowSimulator


def write_fills_file(
    path: str | Path,
    fills: int,
    accounts: int = 1000,
    symbols: int = 100,
    seed: int = 1,
    accounts_out: str | Path | None = None,
    positions_out: str | Path | None = None,
) -> OrderFlowSimulator:
    """Write a fills-heavy file of execution reports (35=8 only) for ledger benchmarks.

    Orders arrive at 120,000 a simulated minute (mostly market and marketable limit orders),
    so the market data that prices them is a small part of the work; it is not written. About
    half the messages are fills, most of the rest acks, a few rejects, broker cancels and busts
    (about 26,000 messages a second on one core).

    Args:
        path: the output file (overwritten), one message per line.
        fills: stop after this many fills (150=F).
        accounts: how many accounts trade.
        symbols: how many symbols.
        seed: random seed.
        accounts_out: the opening accounts CSV (default: ``path`` with ``.accounts.csv``).
        positions_out: the opening positions CSV (default: ``path`` with ``.positions.csv``).

    Returns:
        The simulator, whose ``expected_ledger()`` is the state after the file.
    """
    path = Path(path)
    sim = OrderFlowSimulator(
        MarketSimulator(symbols=symbols, seed=seed),
        accounts=accounts,
        orders_per_minute=120_000.0,
        fills_only=True,
    )
    sim.accounts_csv(accounts_out or path.with_suffix(".accounts.csv"))
    sim.positions_csv(positions_out or path.with_suffix(".positions.csv"))
    sim.write_file(path, max_fills=fills)
    return sim
