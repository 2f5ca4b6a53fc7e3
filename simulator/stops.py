"""Simulated resting stop orders merged into a market-data day (for stop-engine tests and demos).

`write_stops_day` interleaves a `MarketSimulator` stream with client 35=D stop orders: every
`every` market messages one GTC stop on a random symbol, a sell stop below or a buy stop above
the last trade by 0.05 to 0.60, so that a realistic share of them fires during the day.
Deterministic for a seed.
"""

from __future__ import annotations

import random
from pathlib import Path

import simplefix

from simulator.market import MarketSimulator, format_price


def _stamp(ts_ns: int) -> str:
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
    return moment.strftime("%Y%m%d-%H:%M:%S.") + f"{ts_ns // 1_000_000 % 1000:03d}"


def stop_order(cl_ord_id: str, account: str, symbol: str, side: str, stop_ticks: int,
               ts_ns: int, seq: int) -> bytes:  # fmt: skip
    """A GTC stop 35=D (simplefix-built)."""
    m = simplefix.FixMessage()
    stamp = _stamp(ts_ns)
    for tag, value in (
        (8, "FIX.4.4"), (35, "D"), (49, "WEB"), (56, "BROKER"), (34, seq), (52, stamp),
        (11, cl_ord_id), (1, account), (55, symbol), (54, side), (60, stamp), (38, 100),
        (40, "3"), (99, format_price(stop_ticks)), (59, "1"),
    ):  # fmt: skip
        m.append_pair(tag, value)
    return m.encode()


def write_stops_day(
    path: Path,
    messages: int,
    symbols: int = 20,
    every: int = 20,
    accounts: int = 10,
    seed: int = 1,
) -> int:
    """Write `messages` market-data messages with a stop order after every `every` of them.

    Returns:
        How many stop orders were written. Accounts are ACC1..ACC{accounts}.
    """
    rng = random.Random(f"stops:{seed}")
    market = MarketSimulator(symbols, seed=seed)
    written = 0
    with open(path, "wb") as out:
        for i, (ts_ns, message) in enumerate(market.messages(limit=messages)):
            out.write(message + b"\n")
            if i % every != every - 1:
                continue
            index = rng.randrange(symbols)
            top = market.top_of_book(index)
            if top is None or not top[4]:
                continue
            side = rng.choice("12")
            offset = rng.randint(5, 60)
            stop_ticks = top[4] + offset if side == "1" else top[4] - offset
            written += 1
            out.write(
                stop_order(f"STP{written:06d}", f"ACC{rng.randint(1, accounts)}",
                           market.symbols[index], side, stop_ticks, ts_ns, written)  # fmt: skip
                + b"\n"
            )
    return written
