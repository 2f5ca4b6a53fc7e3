"""Simulator layer: the simulated instruments: their tickers, lot and tick sizes, and price text.

Shared by the market, the order flow and the scenario writers, so each says "100 shares" and
"0.01" the same way.
"""

from __future__ import annotations

LOT = 100
TICKS_PER_UNIT = 100  # tick size 0.01

#: Real-looking US tickers used first; symbol 61 onwards is SYM0060, SYM0061, ...
TICKERS = (
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK.B", "JPM", "V",
    "UNH", "XOM", "JNJ", "WMT", "MA", "PG", "HD", "CVX", "MRK", "ABBV",
    "KO", "PEP", "AVGO", "COST", "LLY", "BAC", "ADBE", "CRM", "MCD", "CSCO",
    "ACN", "TMO", "ABT", "NFLX", "AMD", "DIS", "WFC", "INTC", "CMCSA", "VZ",
    "TXN", "PFE", "NKE", "ORCL", "QCOM", "T", "UPS", "IBM", "CAT", "GS",
    "SBUX", "BA", "GE", "F", "GM", "PYPL", "UBER", "SNAP", "PLTR", "SOFI",
)  # fmt: skip


def symbol_names(count: int) -> list[str]:
    """Return the first ``count`` simulated symbols: the fixed tickers, then ``SYM0060``...

    Args:
        count: how many symbols.

    Returns:
        The symbols, always the same for the same count.
    """
    head = list(TICKERS[:count])
    return head + [f"SYM{i:04d}" for i in range(len(head), count)]


def format_price(ticks: int) -> str:
    """Format a price in 0.01 ticks as FIX decimal text (``12345`` -> ``"123.45"``).

    Args:
        ticks: the price in cents, positive.

    Returns:
        The decimal string, always two places.
    """
    return f"{ticks // TICKS_PER_UNIT}.{ticks % TICKS_PER_UNIT:02d}"
