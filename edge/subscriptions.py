"""Edge layer (pure): which connections want which symbols.

One map per edge process, symbol -> set of connection ids, and its inverse, so that an update
finds its subscribers in one dict lookup and a disconnect removes a client in O(its symbols).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)


class SubscriptionLimitError(ValueError):
    """A connection asked for more symbols than it may hold."""


class SubscriptionMap(Generic[C]):
    """Symbol <-> connection subscriptions with a per-connection limit.

    >>> subs = SubscriptionMap(max_per_connection=2)
    >>> subs.subscribe("c1", ["AAPL", "MSFT"])
    ['AAPL', 'MSFT']
    >>> sorted(subs.subscribers("AAPL"))
    ['c1']
    """

    def __init__(self, max_per_connection: int) -> None:
        self.max_per_connection = max_per_connection
        self._by_symbol: dict[str, set[C]] = {}
        self._by_connection: dict[C, set[str]] = {}

    def subscribe(self, connection: C, symbols: Iterable[str]) -> list[str]:
        """Add the symbols; return those that are new for the connection.

        Raises:
            SubscriptionLimitError: the connection would hold more than the limit; nothing is
                added then.
        """
        held = self._by_connection.setdefault(connection, set())
        new = [s for s in dict.fromkeys(symbols) if s not in held]
        if len(held) + len(new) > self.max_per_connection:
            msg = (
                f"subscribing to {len(new)} more symbols would make {len(held) + len(new)}, "
                f"the limit is {self.max_per_connection} per connection"
            )
            raise SubscriptionLimitError(msg)
        for symbol in new:
            held.add(symbol)
            self._by_symbol.setdefault(symbol, set()).add(connection)
        return new

    def unsubscribe(self, connection: C, symbols: Iterable[str]) -> list[str]:
        """Remove the symbols; return those the connection held."""
        held = self._by_connection.get(connection)
        if not held:
            return []
        removed = []
        for symbol in dict.fromkeys(symbols):
            if symbol in held:
                held.discard(symbol)
                removed.append(symbol)
                self._drop(symbol, connection)
        return removed

    def remove_connection(self, connection: C) -> None:
        for symbol in self._by_connection.pop(connection, ()):
            self._drop(symbol, connection)

    def _drop(self, symbol: str, connection: C) -> None:
        conns = self._by_symbol.get(symbol)
        if conns is not None:
            conns.discard(connection)
            if not conns:
                del self._by_symbol[symbol]

    def subscribers(self, symbol: str) -> set[C]:
        """The connections subscribed to `symbol` (do not mutate)."""
        return self._by_symbol.get(symbol, _EMPTY)

    def symbols_of(self, connection: C) -> set[str]:
        return self._by_connection.get(connection, set())

    def __len__(self) -> int:
        return len(self._by_symbol)


_EMPTY: set = set()
