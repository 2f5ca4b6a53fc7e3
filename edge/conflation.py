"""Edge layer (pure): what is pending for one client, bounded.

Quotes are conflated: a newer update of a symbol replaces the pending one, so a client that is
behind gets the latest quote of each symbol, never a backlog, and the buffer holds at most one
frame per subscribed symbol. Alerts are never dropped: they queue in order, and when more than
`max_alerts` are pending the client is too slow to be served and must be disconnected.
"""

from __future__ import annotations

from collections import deque


class AlertBacklogError(Exception):
    """A client has more undelivered alerts than the bound allows."""


class PendingFrames:
    """The frames waiting for one client.

    >>> p = PendingFrames(max_alerts=10)
    >>> p.add_quote("AAPL", b"q1"); p.add_quote("AAPL", b"q2"); p.add_quote("MSFT", b"m1")
    >>> p.take_quotes()
    [b'q2', b'm1']
    """

    __slots__ = ("quotes", "alerts", "max_alerts", "conflated")

    def __init__(self, max_alerts: int) -> None:
        self.quotes: dict[str, bytes] = {}
        self.alerts: deque[bytes] = deque()
        self.max_alerts = max_alerts
        self.conflated = 0  # updates replaced before they were sent

    def add_quote(self, symbol: str, frame: bytes) -> None:
        quotes = self.quotes
        if symbol in quotes:
            self.conflated += 1
            del quotes[symbol]  # re-insert: keep arrival order of the latest updates
        quotes[symbol] = frame

    def drop_symbol(self, symbol: str) -> None:
        self.quotes.pop(symbol, None)

    def add_alert(self, frame: bytes) -> None:
        """Queue an alert.

        Raises:
            AlertBacklogError: more than `max_alerts` would be pending.
        """
        if len(self.alerts) >= self.max_alerts:
            msg = f"{len(self.alerts)} alerts undelivered (limit {self.max_alerts})"
            raise AlertBacklogError(msg)
        self.alerts.append(frame)

    def take_quotes(self) -> list[bytes]:
        frames = list(self.quotes.values())
        self.quotes.clear()
        return frames

    def take_alerts(self) -> list[bytes]:
        frames = list(self.alerts)
        self.alerts.clear()
        return frames

    def __bool__(self) -> bool:
        return bool(self.quotes) or bool(self.alerts)
