"""Simulator layer: `MarketSimulator`'s state per symbol (its book) and per message not yet sent.

Kept apart from the generator so the price model and the wire form read on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Book:
    """One symbol's simulated top of book and session statistics (prices in ticks)."""

    symbol: bytes
    fair: float  # fair value in ticks; the quotes follow it
    sigma: float  # volatility per sqrt(second), relative
    max_spread: int  # ticks
    depth_lots: int  # typical top-of-book size in lots
    bid: int = 0
    bid_size: int = 0
    bid_id: bytes = b""
    ask: int = 0
    ask_size: int = 0
    ask_id: bytes = b""
    ltp: int = 0
    ltq: int = 0
    volume: int = 0
    volume_reported: int = 0
    open: int = 0
    high: int = 0
    low: int = 0
    trades_to_volume: int = 5  # trades left until the next 269=B entry
    last_event_ns: int = 0
    busy_until_ns: int = 0  # event time of this symbol's last queued message

    def state(self, ts_ms: int) -> tuple:
        return (
            self.bid, self.bid_size, self.ask, self.ask_size, self.ltp, self.ltq, self.volume,
            self.volume_reported, self.open, self.high, self.low, ts_ms, self.bid_id, self.ask_id,
        )  # fmt: skip


@dataclass(slots=True)
class Pending:
    """A message generated but not yet emitted (kept in event-time order in a heap)."""

    msg_type: bytes
    ts_ms: int
    body: list[tuple[bytes, bytes]]
    states: list[tuple[int, tuple]] = field(default_factory=list)  # (symbol idx, state)
    trades: int = 0
    rpts: list[tuple[int, int]] = field(default_factory=list)  # (symbol idx, its last RptSeq)
    snapshot_of: int = -1  # a periodic 35=W of this symbol: its body is made when emitted
