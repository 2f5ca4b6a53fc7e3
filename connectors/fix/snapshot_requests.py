"""Connectors layer: asking a venue for snapshots of the books that turned stale (issue 21).

When the quotes flow finds a symbol's book stale (an RptSeq gap, a lost update, a crossed top:
`domain.book_integrity`), a live run asks the market-data session that carries the symbol for a
MarketDataRequest (35=V) with SubscriptionRequestType (263)=0: a snapshot only, the venue's 35=W
makes the book sound again. `SnapshotLimiter` decides what may go now, so a flapping feed cannot
flood the venue: a symbol at most once per `min_interval_s`, at most `max_symbols` symbols a
message; what has to wait goes out when it may. Time is an argument: tests drive it.
"""

from __future__ import annotations

import math

DEFAULT_MIN_INTERVAL_S = 2.0
DEFAULT_MAX_SYMBOLS = 50


class SnapshotLimiter:
    """Which of the symbols asked for may be requested now.

    Args:
        min_interval_s: a symbol is requested at most once in this many seconds.
        max_symbols: symbols per 35=V at most.
    """

    def __init__(
        self, min_interval_s: float = DEFAULT_MIN_INTERVAL_S, max_symbols: int = DEFAULT_MAX_SYMBOLS
    ) -> None:
        if min_interval_s < 0 or max_symbols < 1:
            msg = f"need min_interval_s >= 0 and max_symbols >= 1: {min_interval_s}, {max_symbols}"
            raise ValueError(msg)
        self.min_interval_s = min_interval_s
        self.max_symbols = max_symbols
        self._last: dict[str, float] = {}  # symbol -> when it was last requested
        self.waiting: set[str] = set()  # asked for, not sent yet
        self.requested = 0  # symbols sent
        self.deferred = 0  # times a symbol had to wait for its interval

    def ask(self, symbols: list[str]) -> None:
        """Symbols whose books turned stale (any thread: the caller serialises)."""
        self.waiting.update(symbols)

    def take(self, now: float) -> list[list[str]]:
        """The requests to send now: lists of at most `max_symbols` symbols, sorted."""
        ready = sorted(
            s for s in self.waiting if now - self._last.get(s, -math.inf) >= self.min_interval_s
        )
        self.deferred += len(self.waiting) - len(ready)
        for symbol in ready:
            self._last[symbol] = now
            self.waiting.discard(symbol)
        self.requested += len(ready)
        size = self.max_symbols
        return [ready[i : i + size] for i in range(0, len(ready), size)]

    def next_due(self) -> float | None:
        """When the earliest waiting symbol may go (None: nothing waits)."""
        if not self.waiting:
            return None
        return min(self._last.get(s, -math.inf) for s in self.waiting) + self.min_interval_s


def snapshot_request(req_id: str, symbols: list[str]) -> tuple[bytes, list]:
    """A MarketDataRequest (35=V) for a snapshot only (263=0) of top of book and trades."""
    fields: list[tuple[int, bytes | str]] = [
        (262, req_id), (263, b"0"), (264, b"1"),
        (267, b"3"), (269, b"0"), (269, b"1"), (269, b"2"),
        (146, str(len(symbols))),
    ]  # fmt: skip
    fields += [(55, symbol) for symbol in symbols]
    return b"V", fields
