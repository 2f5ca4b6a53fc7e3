"""Data quality: stream items -> the columns the suites check (pure; no pandas, no GX).

A frame keeps the items its rows came from, so a failing row can become a dead letter with
the item's raw text and source.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import median_low
from typing import Any

from domain.events import ExecutionReport
from domain.execution_reports import TRADE, expected_leaves_qty
from domain.quotes import Quote

EXEC_TYPE_TRADE = TRADE  # ExecType (150); FIX 4.2 partial fill/fill are normalised to "F"
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


@dataclass(slots=True)
class Frame:
    """Columns (name -> values) of one micro-batch, and the item behind each row."""

    columns: dict[str, list[Any]]
    items: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)


class MarketReference:
    """The latest market price per symbol (last trade, else mid) from the quotes seen so far.

    The LastPx band check compares a fill with it; a symbol not seen yet has no reference and
    its fills are not checked for the band.
    """

    __slots__ = ("prices",)

    def __init__(self) -> None:
        self.prices: dict[str, float] = {}

    def update(self, quotes: Iterable[Quote]) -> None:
        prices = self.prices
        for q in quotes:
            if q.ltp is not None and q.ltp > 0:
                prices[q.symbol] = q.ltp
            elif q.bid is not None and q.ask is not None and 0 < q.bid <= q.ask:
                prices[q.symbol] = (q.bid + q.ask) / 2


def quote_frame(quotes: list[Quote], reference_ns: int | None = None) -> Frame:
    """Columns of published quotes; `age_s` is reference time minus event time.

    Args:
        quotes: the micro-batch.
        reference_ns: the reference time (the wall clock on a live stream); None takes the
            batch's median event time, so a replay of an old day is judged against itself and
            only a timestamp far from its neighbours fails.
    """
    ts_ms = [q.ts for q in quotes]
    if reference_ns is None:
        reference_ms = median_low(ts_ms) if ts_ms else 0
    else:
        reference_ms = reference_ns // NS_PER_MS
    return Frame(
        {
            "symbol": [q.symbol for q in quotes],
            "bid": [q.bid for q in quotes],
            "ask": [q.ask for q in quotes],
            "bid_size": [q.bid_size for q in quotes],
            "ask_size": [q.ask_size for q in quotes],
            "ltp": [q.ltp for q in quotes],
            "age_s": [(reference_ms - t) / 1000 for t in ts_ms],
        },
        list(quotes),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def fills_of(events: Iterable[object]) -> list[ExecutionReport]:
    """The execution reports of a decoded batch that report a fill (ExecType (150) trade)."""
    return [e for e in events if type(e) is ExecutionReport and e.exec_type == EXEC_TYPE_TRADE]


def fill_frame(fills: list[ExecutionReport], market: MarketReference) -> Frame:
    """Columns of fills; `open_qty` is what LeavesQty (151) should be by the rule the decoder
    and the ledger apply (`domain.execution_reports.expected_leaves_qty`: OrderQty - CumQty,
    exact, while working; 0 once closed; None where it is not judged); `px_dev_bps` the
    distance of LastPx from the market reference (None without one)."""
    prices = market.prices
    open_qty: list[float | None] = []
    deviation: list[float | None] = []
    for f in fills:
        expected = expected_leaves_qty(f.ord_status, f.order_qty, f.cum_qty)
        open_qty.append(None if expected is None else float(expected))
        ref = prices.get(f.symbol)
        deviation.append(None if ref is None else abs(float(f.last_px) - ref) / ref * 1e4)
    return Frame(
        {
            "exec_id": [f.exec_id for f in fills],
            "symbol": [f.symbol for f in fills],
            "last_qty": [float(f.last_qty) for f in fills],
            "order_qty": [_float(f.order_qty) for f in fills],
            "cum_qty": [float(f.cum_qty) for f in fills],
            "leaves_qty": [float(f.leaves_qty) for f in fills],
            "open_qty": open_qty,
            "last_px": [float(f.last_px) for f in fills],
            "px_dev_bps": deviation,
        },
        list(fills),
    )


def quote_raw(quote: Quote) -> bytes:
    """The quote as the contract's `quote:{SYMBOL}` JSON: a failing quote's dead-letter text."""
    doc = {
        "symbol": quote.symbol, "bid": quote.bid, "bid_size": quote.bid_size,
        "ask": quote.ask, "ask_size": quote.ask_size, "ltp": quote.ltp, "ltq": quote.ltq,
        "volume": quote.volume, "ts": quote.ts, "seq": quote.seq,
    }  # fmt: skip
    return json.dumps(doc, separators=(",", ":")).encode()


def quote_source(quote: Quote) -> str:
    """Where a quote came from, for its dead letter: the symbol and its update number."""
    return f"quote:{quote.symbol}#{quote.seq}"
