"""Domain layer, surveillance: a symbol's day volume as the venue reports it (`DayVolume`), for
the models that judge an account's trades against the market's."""

from __future__ import annotations

from decimal import Decimal

from domain.surveillance.findings import Finding


def _decimal(volume: float) -> Decimal:
    """A market-data volume (float, exact for whole shares) as the evidence's Decimal."""
    return Decimal(repr(volume))


TRADE_VOLUME = "TradeVolume (269=B)"
TRADES_SEEN = "trades seen (269=2)"


class DayVolume:
    """The market's volume of each symbol in the current UTC day: the venue's figure if it
    reports one, else the trades seen.

    FIX 4.4 MDEntryType (269) B, "Trade Volume", is the venue's cumulative volume of the
    symbol's trading session. A venue sends it in the full refresh (35=W) a feed starts with,
    and in incremental refreshes (35=X) as the session's volume grows. The day volume is the
    latest such figure plus the trades (269=2) printed after it; for a symbol the venue
    reports no figure for (a venue that only prints trades), it is the trades printed since
    the model's day began. A feed that joins mid-day, or a file that holds only the day's last
    minutes, is thus judged against the day's volume, not the minutes it saw.

    Volumes are floats, like the market data they come from (exact for whole shares); the
    owning model clears them when its day ends.

    Example:
        >>> v = DayVolume()
        >>> v.update("ACME", 300.0)
        >>> v.of("ACME"), v.source("ACME")
        (300.0, 'trades seen (269=2)')
        >>> v.update("ACME", 0.0, 2_000_000.0)  # a snapshot (35=W) of the day so far
        >>> v.update("ACME", 100.0)
        >>> v.of("ACME"), v.source("ACME")
        (2000100.0, 'TradeVolume (269=B)')
    """

    __slots__ = ("_reported", "_traded")

    def __init__(self) -> None:
        self._reported: dict[str, float] = {}  # the venue's latest TradeVolume (269=B)
        self._traded: dict[str, float] = {}  # trades printed since it (or since the day began)

    def clear(self) -> None:
        self._reported.clear()
        self._traded.clear()

    def update(self, symbol: str, traded: float, day_volume: float | None = None) -> None:
        """Trades of `traded` shares printed, then, if given, the venue's day volume (269=B),
        which counts every trade printed before it."""
        if traded:
            seen = self._traded
            seen[symbol] = seen.get(symbol, 0.0) + traded
        if day_volume is not None:
            self._reported[symbol] = day_volume
            self._traded[symbol] = 0.0

    def of(self, symbol: str) -> float:
        return self._reported.get(symbol, 0.0) + self._traded.get(symbol, 0.0)

    def source(self, symbol: str) -> str:
        return TRADE_VOLUME if symbol in self._reported else TRADES_SEEN

    def __len__(self) -> int:
        return len(self._traded)


class MarketVolumeInputs:
    """The market-data inputs of a model judged against the day volume, one field at a time:
    both go through the model's `on_market` (the marking-the-close and pump-and-dump models
    took them alike)."""

    def on_market(
        self, symbol: str, traded: float, ts_ns: int, day_volume: float | None = None
    ) -> list[Finding]:
        raise NotImplementedError

    def on_market_trade(self, symbol: str, qty: float, ts_ns: int) -> list[Finding]:
        """A trade of the symbol on the market (all participants), from market data."""
        return self.on_market(symbol, qty, ts_ns)

    def on_day_volume(self, symbol: str, volume: float, ts_ns: int) -> list[Finding]:
        """The venue's day volume of the symbol (TradeVolume, 269=B, in a 35=W or 35=X)."""
        return self.on_market(symbol, 0.0, ts_ns, volume)
