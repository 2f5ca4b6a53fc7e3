"""Domain layer: the market's status: market-wide and per symbol, halts and price bands (issue 19).

Pure state, stdlib only. `MarketStatusBook.apply(event)` takes a decoded `SecurityStatus`
(35=f, one symbol) or `TradingSessionStatus` (35=h, the whole market) and returns the
`MarketStatusChanged` to publish (None when nothing a reader sees changed: the same state
again with the same reason and band). Times are the events' (`ts_event`), never the clock.

- A symbol trades when the market is OPEN and the symbol is OPEN (`trading(symbol)`); a
  symbol never heard of is OPEN. The stop engine (`flows.stops`) holds its triggers while a
  symbol does not trade and evaluates them again at the first price after it does.
- A 35=f without a state (an indication, or a band alone) keeps the state and updates the band.
- `since_ns` is when the current state began (the event that set it); a band or reason update
  within the same state keeps it.
- `level` and `until` of the edge frame are the index circuit breaker's (not decoded from the
  venue yet): None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.events import MARKET, OPEN, SecurityStatus, TradingSessionStatus


@dataclass(slots=True)
class ScopeStatus:
    """The state of one scope ("market" or a symbol): OPEN, HALTED or CLOSED."""

    state: str = OPEN
    reason: str | None = None
    since_ns: int = 0
    low_limit_px: float | None = None
    high_limit_px: float | None = None


@dataclass(frozen=True, slots=True)
class MarketStatusChanged:
    """A scope's new status, as `market:status` / `symbol:status:{SYMBOL}` and the edge's
    `market_status` frame carry it.

    Attributes:
        scope: "market" or the symbol.
        state: OPEN, HALTED or CLOSED.
        previous: the state before.
        reason: the venue's reason (HaltReasonChar (327), Text (58)), or None.
        since_ns: when the state began (int UTC ns, event time).
        low_limit_px / high_limit_px: the price band (LowLimitPrice (1148) / HighLimitPrice
            (1149)), or None.
        ts_event: the event's time.
        level / until: the circuit breaker's level and end (None: not decoded).
    """

    scope: str
    state: str
    previous: str
    reason: str | None
    since_ns: int
    low_limit_px: float | None
    high_limit_px: float | None
    ts_event: int
    level: int | None = None
    until: int | None = None

    @property
    def halt_started(self) -> bool:
        return self.state != OPEN and self.previous == OPEN

    @property
    def halt_ended(self) -> bool:
        return self.state == OPEN and self.previous != OPEN

    def to_json(self) -> dict:
        """The contract's market_status fields (`ts` and `until` in epoch milliseconds)."""
        return {
            "type": "market_status",
            "scope": self.scope,
            "state": self.state,
            "reason": self.reason,
            "level": self.level,
            "until": None if self.until is None else self.until // 1_000_000,
            "ts": self.ts_event // 1_000_000,
            "since": self.since_ns // 1_000_000,
            "lower_band": self.low_limit_px,
            "upper_band": self.high_limit_px,
        }


@dataclass(slots=True)
class MarketStatusBook:
    """The market-wide status and each symbol's, as the venue last said."""

    market: ScopeStatus = field(default_factory=ScopeStatus)
    symbols: dict[str, ScopeStatus] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)  # symbols whose state is not OPEN

    @property
    def any_halt(self) -> bool:
        """Whether some symbol, or the market, does not trade (the hot path's one check)."""
        return self.market.state != OPEN or bool(self.stopped)

    def trading(self, symbol: str) -> bool:
        """Whether `symbol` trades: the market and the symbol are OPEN."""
        return self.market.state == OPEN and symbol not in self.stopped

    def state_of(self, symbol: str) -> str:
        """The symbol's effective state: the market's when the market is not OPEN."""
        if self.market.state != OPEN:
            return self.market.state
        status = self.symbols.get(symbol)
        return OPEN if status is None else status.state

    def apply(self, event: SecurityStatus | TradingSessionStatus) -> MarketStatusChanged | None:
        """Apply one decoded status; return what changed, or None."""
        if type(event) is TradingSessionStatus:
            return _update(self.market, MARKET, event.state, event.reason, None, None,
                           event.ts_event)  # fmt: skip
        status = self.symbols.get(event.symbol)
        if status is None:
            status = self.symbols[event.symbol] = ScopeStatus()
        change = _update(
            status, event.symbol, event.state, event.reason, event.low_limit_px,
            event.high_limit_px, event.ts_event,
        )  # fmt: skip
        if status.state == OPEN:
            self.stopped.discard(event.symbol)
        else:
            self.stopped.add(event.symbol)
        return change


def _update(
    status: ScopeStatus,
    scope: str,
    state: str | None,
    reason: str | None,
    low: float | None,
    high: float | None,
    ts_ns: int,
) -> MarketStatusChanged | None:
    previous = status.state
    new_state = previous if state is None else state
    new_low = status.low_limit_px if low is None else low
    new_high = status.high_limit_px if high is None else high
    new_reason = reason if (reason is not None or state is not None) else status.reason
    if (new_state, new_reason, new_low, new_high) == (
        previous, status.reason, status.low_limit_px, status.high_limit_px
    ):
        return None
    if new_state != previous:
        status.since_ns = ts_ns
    status.state, status.reason = new_state, new_reason
    status.low_limit_px, status.high_limit_px = new_low, new_high
    return MarketStatusChanged(
        scope, new_state, previous, new_reason, status.since_ns, new_low, new_high, ts_ns
    )
