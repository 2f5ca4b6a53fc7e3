"""Domain layer: traders' price alerts (issue 19), their checks and the book that fires them.

Pure logic, stdlib only: no clock, no I/O, no logging. The store (`sinks.price_alerts`) keeps
the alerts; the quotes flow feeds each symbol's last traded price into a `PriceAlertBook` and
gets `PriceAlertFired` events back. The book is plain picklable state (Bytewax recovery snapshots
it): `pickle.loads(pickle.dumps(book))` behaves exactly like `book`.

Conditions (CONTRACT.md): `ltp_above` / `ltp_below` a price; `change_pct_above` /
`change_pct_below` a percentage change of the last traded price (LTP) from the previous close.

Decisions:

- "Above" fires when the LTP is at or above the threshold, "below" at or below it (a price that
  reaches the level counts, as a stop does). An alert whose condition already holds when it is
  added fires on the symbol's next price.
- A change_pct alert is a price threshold once the symbol's previous close is known:
  `prev_close * (1 + pct / 100)`. Until then it is held aside and cannot fire; when a price
  brings a new previous close (the next day), the symbol's change_pct alerts are re-priced.
  A previous close that is not positive is treated as unknown.
- Exactly once: a fired alert leaves the book, and an id that left the book (fired or removed)
  within the last `forget_after` ids that left is refused by `add`, so a replayed create cannot
  rest again. Across restarts, the store loads only ACTIVE rows and marks a row FIRED only
  while it is ACTIVE (`sinks.price_alerts.mark_fired` returns the ids it changed), so a replay
  of the stream after a crash sends no second frame.

Data structures (n = resting alerts of one symbol, k = alerts a price fires):

- Per symbol two binary heaps of (threshold, seq, id): "above" keyed by threshold (fires while
  top <= LTP), "below" keyed by -threshold (fires while -top >= LTP). Deletion is lazy: an entry
  counts only while its id maps to the same seq; a heap is rebuilt when dead entries outnumber
  live ones (amortised O(1)). Add and remove: O(log n). A price: O(1) when it crosses nothing
  (two float comparisons against the cached heap tops, the band), else O((k + dead) log n).
  Never a scan of the resting alerts.
- A previous close that changes re-prices that symbol's change_pct alerts: O(m log n) once a
  day for m such alerts.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections import deque
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from domain.alerts import PRICE_ALERT, Alert, make_alert
from domain.alerts import alert_id as _alert_id
from domain.errors import BrokerflowError
from domain.order_status import _string as _json_string

LTP_ABOVE = "ltp_above"
LTP_BELOW = "ltp_below"
CHANGE_PCT_ABOVE = "change_pct_above"
CHANGE_PCT_BELOW = "change_pct_below"
CONDITIONS = (LTP_ABOVE, LTP_BELOW, CHANGE_PCT_ABOVE, CHANGE_PCT_BELOW)
_ABOVE = frozenset({LTP_ABOVE, CHANGE_PCT_ABOVE})
_CHANGE_PCT = frozenset({CHANGE_PCT_ABOVE, CHANGE_PCT_BELOW})
ALERT_KIND = PRICE_ALERT  # the alert kind of a fired price alert (CONTRACT.md)

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._/-]{0,31}$")
_INF = math.inf
_dumps = json.dumps
_FIELD_SYMBOL, _FIELD_CONDITION, _FIELD_VALUE = "symbol", "condition", "value"
# Dead heap entries a symbol may hold beyond its live ones before its heaps are rebuilt.
_COMPACT_SLACK = 64
_FORGET_AFTER = 100_000


class PriceAlertError(BrokerflowError):
    """A price alert's input is unusable; `field` names the field ("symbol", "value", ...)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PriceAlert:
    """A trader's price alert.

    Attributes:
        id: the store's id (`price_alerts.id`).
        user: who set it (`user_id`).
        account: Account (1) it was set for, or None.
        symbol: Symbol (55).
        condition: one of `CONDITIONS`.
        value: a price (ltp_*) or a percentage (change_pct_*; 2.5 means +2.5 %).
    """

    id: int
    user: str
    account: str | None
    symbol: str
    condition: str
    value: Decimal


@dataclass(frozen=True, slots=True)
class PriceAlertFired:
    """The alert's condition held at `ltp`; it left the book.

    Attributes:
        threshold: the price it fired at or past (a change_pct alert's, from the close).
        ts: event time of the price, as the caller gave it (epoch ms for `Quote.ts`).
    """

    alert: PriceAlert
    ltp: float
    threshold: float
    ts: int

    def frame(self) -> dict:
        """The contract's `price_alert` WebSocket frame."""
        a = self.alert
        return {"type": "price_alert", "id": a.id, "symbol": a.symbol, "condition": a.condition,
                "value": float(a.value), "ltp": self.ltp, "ts": self.ts}  # fmt: skip

    def to_alert(self) -> Alert:
        """The PRICE_ALERT alert that carries it to `alerts` and `stream:alerts`.

        Its id depends on the price alert's id alone, so a replay that fires it again (after a
        crash, before the row was marked FIRED) is the same alert, which the alert stores keep
        once. Its details have no `occurrences`: the alerts sink never merges it into another.

        >>> fired = PriceAlertFired(PriceAlert(7, "u", "A1", "X", LTP_ABOVE, Decimal("10")),
        ...                         10.5, 10.0, 1_000)
        >>> a = fired.to_alert()
        >>> a.kind, a.account, a.symbol, a.event_time
        ('PRICE_ALERT', 'A1', 'X', 1000000000)
        >>> a.details_json()
        '{"condition":"ltp_above","id":7,"ltp":10.5,"user":"u","value":"10"}'
        """
        a = self.alert
        details = {"id": a.id, "condition": a.condition, "value": a.value, "ltp": self.ltp,
                   "user": a.user}  # fmt: skip
        return make_alert(ALERT_KIND, f"price_alert:{a.id}", "INFO", self.ts * 1_000_000,
                          account=a.account, symbol=a.symbol, details=details)  # fmt: skip

    def alert_doc(self) -> tuple[str, str]:
        """`(alert_id, to_json())` of `to_alert()`, formatted by hand: the sink writes one per
        fired alert (the `stream:alerts` entry, and the `alerts` row from the same text), and
        this is ~5x cheaper than building the `Alert` and dumping it.

        >>> fired = PriceAlertFired(PriceAlert(7, 'u "q"', None, "X", LTP_ABOVE,
        ...                                    Decimal("1E+1")), 10.5, 10.0, 1_000)
        >>> fired.alert_doc() == (fired.to_alert().alert_id, fired.to_alert().to_json())
        True
        """
        a = self.alert
        ident = _alert_id(ALERT_KIND, f"price_alert:{a.id}")
        ltp = self.ltp
        ltp_json = repr(ltp) if math.isfinite(ltp) else _dumps(ltp)
        # Alert.to_json's keys, sorted; details as `_plain` writes them (the value a string).
        return ident, (
            f'{{"account":{_json_string(a.account)},"alert_id":"{ident}","details":'
            f'{{"condition":{_json_string(a.condition)},"id":{a.id},"ltp":{ltp_json},'
            f'"user":{_json_string(a.user)},"value":"{a.value}"}},"event_time":{self.ts},'
            f'"kind":"{ALERT_KIND}","owner":null,"severity":"INFO","status":"OPEN",'
            f'"symbol":{_json_string(a.symbol)}}}'
        )


def check_price_alert(
    symbol: object,
    condition: object,
    value: object,
    known_symbols: Collection[str] | None = None,
) -> tuple[str, str, Decimal]:
    """Return `(symbol, condition, value)` checked and normalised, or raise naming the field.

    Args:
        symbol: a symbol; upper-cased.
        condition: one of `CONDITIONS`.
        value: a number or its string: > 0 for ltp_* (a price), any finite for change_pct_*.
        known_symbols: the symbols that exist; None accepts any well-formed symbol.

    Raises:
        PriceAlertError: with `field` "symbol", "condition" or "value".

    >>> check_price_alert("aapl", "ltp_above", "190.5")
    ('AAPL', 'ltp_above', Decimal('190.5'))
    """
    if not isinstance(symbol, str) or not symbol.strip():
        msg = "missing or empty"
        raise PriceAlertError(_FIELD_SYMBOL, msg)
    sym = symbol.strip().upper()
    if not _SYMBOL.match(sym):
        msg = f"{symbol!r} is not a symbol"
        raise PriceAlertError(_FIELD_SYMBOL, msg)
    if known_symbols is not None and sym not in known_symbols:
        msg = f"unknown symbol {sym}"
        raise PriceAlertError(_FIELD_SYMBOL, msg)
    if condition not in CONDITIONS:
        msg = f"{condition!r} is not one of {', '.join(CONDITIONS)}"
        raise PriceAlertError(_FIELD_CONDITION, msg)
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        msg = f"{value!r} is not a number"
        raise PriceAlertError(_FIELD_VALUE, msg)
    try:
        if isinstance(value, str):
            number = Decimal(value.strip())
        else:  # repr of a float is the decimal it prints as
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        msg = f"{value!r} is not a number"
        raise PriceAlertError(_FIELD_VALUE, msg) from None
    if not number.is_finite():
        msg = f"{value!r} is not a finite number"
        raise PriceAlertError(_FIELD_VALUE, msg)
    if condition not in _CHANGE_PCT and not number > 0:
        msg = f"a price must be positive, was {number}"
        raise PriceAlertError(_FIELD_VALUE, msg)
    return sym, condition, number


def _threshold(alert: PriceAlert, prev_close: float | None) -> float | None:
    if alert.condition in _CHANGE_PCT:
        if prev_close is None:
            return None
        return prev_close * (1.0 + float(alert.value) / 100.0)
    return float(alert.value)


class _Symbol:
    """One symbol's resting alerts: two lazy heaps, their live counts and the change_pct ids."""

    __slots__ = ("above", "below", "live_above", "live_below", "pct", "prev_close", "lo", "hi")

    def __init__(self) -> None:
        self.above: list[tuple[float, int, int]] = []  # (threshold, seq, id): min on top
        self.below: list[tuple[float, int, int]] = []  # (-threshold, seq, id): max on top
        self.live_above = 0
        self.live_below = 0
        self.pct: set[int] = set()  # ids of change_pct alerts (held aside or resting)
        self.prev_close: float | None = None
        # The band: a price strictly inside (lo, hi) fires nothing.
        self.lo = -_INF
        self.hi = _INF

    def rebound(self) -> None:
        self.hi = self.above[0][0] if self.above else _INF
        self.lo = -self.below[0][0] if self.below else -_INF


class PriceAlertBook:
    """The resting price alerts of a set of symbols (one shard); see the module docstring.

    Args:
        forget_after: how many ids that left the book (fired or removed) are remembered, so
            a replayed add of one is refused. Bounds the state beyond the resting alerts.
    """

    __slots__ = ("_alerts", "_symbols", "_seq", "_gone", "_gone_order", "_forget_after")

    def __init__(self, forget_after: int = _FORGET_AFTER) -> None:
        self._alerts: dict[int, tuple[PriceAlert, int]] = {}  # id -> (alert, seq of its entry)
        self._symbols: dict[str, _Symbol] = {}
        self._seq = 0
        self._gone: set[int] = set()
        self._gone_order: deque[int] = deque()
        self._forget_after = forget_after

    def __len__(self) -> int:
        return len(self._alerts)

    def __contains__(self, alert_id: int) -> bool:
        return alert_id in self._alerts

    def alerts(self) -> Iterator[PriceAlert]:
        """Yield the resting alerts (held-aside change_pct ones included), in id order."""
        for alert_id in sorted(self._alerts):
            yield self._alerts[alert_id][0]

    def add(self, alert: PriceAlert) -> bool:
        """Rest `alert`; False (and nothing changes) if its id rests or recently left the book.

        The alert is taken as checked (`check_price_alert`): the store checked it on create.
        """
        if alert.id in self._alerts or alert.id in self._gone:
            return False
        state = self._symbols.get(alert.symbol)
        if state is None:
            state = self._symbols[alert.symbol] = _Symbol()
        if alert.condition in _CHANGE_PCT:
            state.pct.add(alert.id)
        self._push(state, alert)
        return True

    def remove(self, alert_id: int) -> PriceAlert | None:
        """Take an alert out unfired (deleted by its trader); None if it is not resting."""
        entry = self._alerts.get(alert_id)
        if entry is None:
            return None
        alert = entry[0]
        state = self._symbols[alert.symbol]
        self._leave(state, alert)
        self._compact(state)
        if not self._alerts_of(state):
            del self._symbols[alert.symbol]
        return alert

    def on_price(
        self, symbol: str, ltp: float | None, prev_close: float | None, ts: int
    ) -> list[PriceAlertFired]:
        """Fire the alerts of `symbol` whose condition the price meets; they leave the book.

        Args:
            symbol: Symbol (55).
            ltp: the last traded price; None (no trade yet) fires nothing.
            prev_close: the previous session's close, or None while unknown.
            ts: event time, carried into the events (epoch ms for a `Quote`).

        Returns:
            The fired alerts: those above first (lowest threshold first), then those below
            (highest first); ties by the order they were added.
        """
        state = self._symbols.get(symbol)
        if state is None or ltp is None:
            return []
        if prev_close != state.prev_close:
            if prev_close is not None and not prev_close > 0:
                prev_close = None
            if prev_close != state.prev_close:
                if state.pct:
                    self._reprice(state, prev_close)
                else:
                    state.prev_close = prev_close
        if state.lo < ltp < state.hi:
            return []
        fired: list[PriceAlertFired] = []
        alerts = self._alerts
        heappop = heapq.heappop
        above = state.above
        while above and above[0][0] <= ltp:
            threshold, seq, alert_id = heappop(above)
            entry = alerts.get(alert_id)
            if entry is None or entry[1] != seq:
                continue
            del alerts[alert_id]
            state.live_above -= 1
            fired.append(PriceAlertFired(entry[0], ltp, threshold, ts))
        below = state.below
        while below and -below[0][0] >= ltp:
            key, seq, alert_id = heappop(below)
            entry = alerts.get(alert_id)
            if entry is None or entry[1] != seq:
                continue
            del alerts[alert_id]
            state.live_below -= 1
            fired.append(PriceAlertFired(entry[0], ltp, -key, ts))
        for event in fired:
            alert = event.alert
            if alert.condition in _CHANGE_PCT:
                state.pct.discard(alert.id)
            self._forget(alert.id)
        if not self._alerts_of(state):
            del self._symbols[symbol]
            return fired
        self._compact(state)
        state.rebound()
        return fired

    # -- internals ------------------------------------------------------------------------------

    def _alerts_of(self, state: _Symbol) -> int:
        return state.live_above + state.live_below + len(state.pct)

    def _push(self, state: _Symbol, alert: PriceAlert) -> None:
        self._seq += 1
        seq = self._seq
        self._alerts[alert.id] = (alert, seq)
        threshold = _threshold(alert, state.prev_close)
        if threshold is None:
            return  # a change_pct alert held aside until the previous close is known
        if alert.condition in _ABOVE:
            heapq.heappush(state.above, (threshold, seq, alert.id))
            state.live_above += 1
            if threshold < state.hi:
                state.hi = threshold
        else:
            heapq.heappush(state.below, (-threshold, seq, alert.id))
            state.live_below += 1
            if threshold > state.lo:
                state.lo = threshold

    def _resting(self, state: _Symbol, alert: PriceAlert) -> bool:
        return alert.condition not in _CHANGE_PCT or state.prev_close is not None

    def _leave(self, state: _Symbol, alert: PriceAlert) -> None:
        # The heap entry goes dead (lazy deletion): its id no longer maps to a seq.
        if self._resting(state, alert):
            if alert.condition in _ABOVE:
                state.live_above -= 1
            else:
                state.live_below -= 1
        state.pct.discard(alert.id)
        del self._alerts[alert.id]
        self._forget(alert.id)

    def _forget(self, alert_id: int) -> None:
        self._gone.add(alert_id)
        self._gone_order.append(alert_id)
        if len(self._gone_order) > self._forget_after:
            self._gone.discard(self._gone_order.popleft())

    def _reprice(self, state: _Symbol, prev_close: float | None) -> None:
        # The close changed (a new day, or first known): every change_pct alert of the symbol
        # gets a new seq and threshold; its old entry goes dead.
        alerts = self._alerts
        pct = [alerts[i][0] for i in sorted(state.pct, key=lambda i: alerts[i][1])]
        for alert in pct:
            if self._resting(state, alert):
                if alert.condition in _ABOVE:
                    state.live_above -= 1
                else:
                    state.live_below -= 1
        state.prev_close = prev_close
        for alert in pct:
            self._push(state, alert)
        self._compact(state)
        state.rebound()

    def _compact(self, state: _Symbol) -> None:
        alerts = self._alerts
        if len(state.above) > 2 * state.live_above + _COMPACT_SLACK:
            state.above = [e for e in state.above if alerts.get(e[2], (None, -1))[1] == e[1]]
            heapq.heapify(state.above)
        if len(state.below) > 2 * state.live_below + _COMPACT_SLACK:
            state.below = [e for e in state.below if alerts.get(e[2], (None, -1))[1] == e[1]]
            heapq.heapify(state.below)
        state.rebound()
