"""Domain layer: traders' price alerts (issue 19), their checks and the book that fires them.

Pure logic, stdlib only: no clock, no I/O, no logging. The store (`sinks.price_alerts`) keeps
the alerts; the quotes flow feeds each symbol's last traded price into a `PriceAlertBook` and
gets `PriceAlertHit` events back; the sink joins each with the alert's row into a
`PriceAlertFired`, the trader's frame and the `alerts` row. The book is plain picklable state:
`pickle.loads(pickle.dumps(book))` behaves exactly like `book`.

Conditions (CONTRACT.md): `ltp_above` / `ltp_below` a price; `change_pct_above` /
`change_pct_below` a percentage change of the last traded price (LTP) from the previous close.

Decisions:

- "Above" fires when the LTP is at or above the threshold, "below" at or below it (a price that
  reaches the level counts, as a stop does). An alert whose condition already holds when it is
  added fires on the symbol's next price.
- A change_pct alert is a price threshold once the symbol's previous close is known:
  `prev_close * (1 + pct / 100)`. Until then it is held aside and cannot fire; when a price
  brings a new previous close (the next day), the symbol's change_pct levels move with it.
  A previous close that is not positive is treated as unknown.
- Exactly once: a fired alert leaves the book, and an id that left the book (fired or removed)
  within the last `forget_after` ids that left is refused by `add`, so a replayed create cannot
  rest again. Across restarts, the store loads only ACTIVE rows and marks a row FIRED only
  while it is ACTIVE (`sinks.price_alerts.mark_fired` returns the ids it changed), so a replay
  of the stream after a crash sends no second frame.

Data structures (n = resting alerts of one symbol, k = alerts a price fires):

- Per symbol four lanes, one per condition: a flat `array` of keys kept ascending (the price,
  minus the price for "below", the percentage for change_pct) beside one of ids, and the index
  of the first unfired entry. A price fires from the lanes' heads while the level holds, so
  nothing is freed or moved when alerts fire (the index moves; the fired front is cut off
  once it is half the lane). A change_pct lane sorted by percentage is sorted by level too,
  whatever the close (a level is `close * (1 + pct / 100)`, increasing in pct), so a new
  previous close moves the band and nothing else.
- Why flat arrays and not objects: with 1,000,000 resting alerts, an object or two per alert
  (a heap entry, a dict entry) made the flow's own unrelated steps ~20 % slower while alerts
  fired (`bench price-alerts`), and the load and the memory were several times as large: the
  book now holds 16 bytes per resting alert, and what a trader sees of a fired one (user,
  account, the value as typed) is read from the store by the sink (`PriceAlertHit`).
- A price: O(1) when it crosses nothing (two float comparisons against the cached levels of
  the heads, the band), else O(k + removed passed over). Add and remove: a search and an
  insert in the symbol's arrays, O(n) but in C; a load rests many at once (`add_many`, one
  sort per lane). Removal is lazy: the id is marked dead and skipped when reached; the lanes
  are rebuilt when the dead outnumber the live. Never a scan of the resting alerts in Python.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from array import array
from collections import deque
from collections.abc import Collection, Iterable
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
# The book's lanes, one per condition (`_Symbol`), and a load's row: (id, symbol, condition, value).
_LTP_ABOVE, _LTP_BELOW, _PCT_ABOVE, _PCT_BELOW = range(4)
_LANE = {LTP_ABOVE: _LTP_ABOVE, LTP_BELOW: _LTP_BELOW, CHANGE_PCT_ABOVE: _PCT_ABOVE,
         CHANGE_PCT_BELOW: _PCT_BELOW}  # fmt: skip
RestingAlert = tuple[int, str, str, float]


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


@dataclass(frozen=True, slots=True)
class PriceAlertHit:
    """What the book fires: alert `id`'s condition held at `ltp`, and it left the book. The
    book keeps no more of an alert than its id and level; the sink reads the rest from the
    store's row and makes a `PriceAlertFired` of the two.

    Attributes:
        threshold: the price it fired at or past (a change_pct alert's, from the close).
        ts: event time of the price, as the caller gave it (epoch ms for `Quote.ts`).
    """

    id: int
    symbol: str
    ltp: float
    threshold: float
    ts: int

    def with_alert(self, alert: PriceAlert) -> PriceAlertFired:
        """The fired alert as the trader sees it: this hit and the alert's row."""
        return PriceAlertFired(alert, self.ltp, self.threshold, self.ts)


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


class _Symbol:
    """One symbol's resting alerts: four lanes, one per condition, each a pair of flat arrays
    (keys ascending, ids) and the index of its first unfired entry (the fired ones before it
    are cut off now and then). Keys: ltp_above the price, ltp_below minus the price,
    change_pct_above the percentage, change_pct_below minus it; so every lane fires from its
    head. `dead` holds the ids removed unfired that still sit in a lane."""

    __slots__ = ("keys", "ids", "heads", "dead", "live", "prev_close", "lo", "hi")

    def __init__(self) -> None:
        self.keys = [array("d") for _ in CONDITIONS]
        self.ids = [array("q") for _ in CONDITIONS]
        self.heads = [0, 0, 0, 0]
        self.dead: set[int] = set()
        self.live = 0
        self.prev_close: float | None = None
        # The band: a price strictly inside (lo, hi) fires nothing.
        self.lo = -_INF
        self.hi = _INF

    def find(self, alert_id: int) -> int | None:
        """The lane where `alert_id` rests (unfired, not removed), or None."""
        if alert_id in self.dead:
            return None
        for lane, ids in enumerate(self.ids):
            try:
                ids.index(alert_id, self.heads[lane])
            except ValueError:
                continue
            return lane
        return None

    def insert(self, lane: int, key: float, alert_id: int) -> None:
        keys, head = self.keys[lane], self.heads[lane]
        at = bisect.bisect_right(keys, key, head)  # after equal keys: ties in the order added
        keys.insert(at, key)
        self.ids[lane].insert(at, alert_id)
        self.live += 1

    def extend(self, lane: int, entries: list[tuple[float, int]]) -> None:
        """Rest many alerts in one lane: one sort, not an insert each."""
        head = self.heads[lane]
        merged = sorted(zip(self.keys[lane][head:], self.ids[lane][head:], strict=True))
        merged += entries
        merged.sort()
        self.keys[lane] = array("d", [k for k, _ in merged])
        self.ids[lane] = array("q", [i for _, i in merged])
        self.heads[lane] = 0
        self.live += len(entries)

    def compact(self) -> None:
        """Cut the fired entries off each lane's front, and drop removed ones, when they
        outnumber the live ones (amortised O(1) per alert)."""
        for lane, head in enumerate(self.heads):
            if head > _COMPACT_SLACK and head * 2 > len(self.keys[lane]):
                self.keys[lane] = self.keys[lane][head:]
                self.ids[lane] = self.ids[lane][head:]
                self.heads[lane] = 0
        if len(self.dead) > _COMPACT_SLACK and len(self.dead) > self.live:
            dead = self.dead
            for lane, head in enumerate(self.heads):
                kept = [(k, i) for k, i in zip(self.keys[lane][head:], self.ids[lane][head:],
                                               strict=True) if i not in dead]  # fmt: skip
                self.keys[lane] = array("d", [k for k, _ in kept])
                self.ids[lane] = array("q", [i for _, i in kept])
                self.heads[lane] = 0
            dead.clear()

    def rebound(self) -> None:
        """The band from the lanes' heads (dead heads skipped: they are gone anyway)."""
        keys, ids, heads, dead = self.keys, self.ids, self.heads, self.dead
        for lane in range(4):
            h, lane_ids = heads[lane], ids[lane]
            while dead and h < len(lane_ids) and lane_ids[h] in dead:
                dead.discard(lane_ids[h])
                h += 1
            heads[lane] = h
        hi = keys[_LTP_ABOVE][heads[_LTP_ABOVE]] if heads[_LTP_ABOVE] < len(keys[_LTP_ABOVE]) \
            else _INF  # fmt: skip
        lo = -keys[_LTP_BELOW][heads[_LTP_BELOW]] if heads[_LTP_BELOW] < len(keys[_LTP_BELOW]) \
            else -_INF  # fmt: skip
        close = self.prev_close
        if close is not None:
            if heads[_PCT_ABOVE] < len(keys[_PCT_ABOVE]):
                hi = min(hi, close * (1.0 + keys[_PCT_ABOVE][heads[_PCT_ABOVE]] / 100.0))
            if heads[_PCT_BELOW] < len(keys[_PCT_BELOW]):
                lo = max(lo, close * (1.0 + -keys[_PCT_BELOW][heads[_PCT_BELOW]] / 100.0))
        self.lo, self.hi = lo, hi


class PriceAlertBook:
    """The resting price alerts of a set of symbols (one shard); see the module docstring.

    It keeps each alert's id and level only; what a trader sees of a fired one (user, account,
    the value as typed) is the store's row, which the sink reads (`PriceAlertHit`).

    Args:
        forget_after: how many ids that left the book (fired or removed) are remembered, so
            a replayed add of one is refused. Bounds the state beyond the resting alerts.
    """

    __slots__ = ("_symbols", "_count", "_gone", "_gone_order", "_forget_after")

    def __init__(self, forget_after: int = _FORGET_AFTER) -> None:
        self._symbols: dict[str, _Symbol] = {}
        self._count = 0
        self._gone: set[int] = set()
        self._gone_order: deque[int] = deque()
        self._forget_after = forget_after

    def __len__(self) -> int:
        return self._count

    def ids(self) -> list[int]:
        """The ids of the resting alerts (held-aside change_pct ones included), ascending."""
        out: list[int] = []
        for state in self._symbols.values():
            for lane, ids in enumerate(state.ids):
                out += [i for i in ids[state.heads[lane] :] if i not in state.dead]
        return sorted(out)

    def add(self, alert: PriceAlert) -> bool:
        """Rest `alert`; False (and nothing changes) if its id rests or recently left the book.

        The alert is taken as checked (`check_price_alert`): the store checked it on create.
        An id is taken to belong to one symbol (the store's row never changes its symbol).
        O(n) in the symbol's alerts, in C (a search and an insert in flat arrays); a load of
        many goes through `add_many`.
        """
        if alert.id in self._gone:
            return False
        state = self._symbols.get(alert.symbol)
        if state is None:
            state = self._symbols[alert.symbol] = _Symbol()
        elif state.find(alert.id) is not None:
            return False
        lane = _LANE[alert.condition]
        state.insert(lane, _key(lane, float(alert.value)), alert.id)
        self._count += 1
        state.rebound()
        return True

    def add_many(self, alerts: Iterable[RestingAlert]) -> int:
        """Rest many `(id, symbol, condition, value)` at once (the flow's load of a symbol's
        ACTIVE rows): one sort per lane. Ids that recently left are skipped, and so is every
        id of a symbol that already had alerts (a second load of it: `add` checks each).
        Return how many now rest."""
        gone, symbols = self._gone, self._symbols
        fresh: dict[str, list[list[tuple[float, int]]]] = {}
        again: list[RestingAlert] = []
        for entry in alerts:
            alert_id, symbol, condition, value = entry
            if alert_id in gone:
                continue
            if symbol in symbols:
                again.append(entry)
                continue
            lanes = fresh.get(symbol)
            if lanes is None:
                lanes = fresh[symbol] = [[], [], [], []]
            lane = _LANE[condition]
            lanes[lane].append((_key(lane, value), alert_id))
        rested = 0
        for symbol, lanes in fresh.items():
            state = symbols[symbol] = _Symbol()
            for lane, entries in enumerate(lanes):
                if entries:
                    state.extend(lane, entries)
            state.rebound()
            rested += state.live
        self._count += rested
        for alert_id, symbol, condition, value in again:
            rested += self.add(PriceAlert(alert_id, "", None, symbol, condition, Decimal(value)))
        return rested

    def remove(self, alert: PriceAlert) -> bool:
        """Take an alert out unfired (deleted by its trader); False if it is not resting."""
        state = self._symbols.get(alert.symbol)
        if state is None or state.find(alert.id) is None:
            return False
        state.dead.add(alert.id)
        state.live -= 1
        self._count -= 1
        self._forget(alert.id)
        if not state.live:
            del self._symbols[alert.symbol]
            return True
        state.compact()
        state.rebound()
        return True

    def on_price(
        self, symbol: str, ltp: float | None, prev_close: float | None, ts: int
    ) -> list[PriceAlertHit]:
        """Fire the alerts of `symbol` whose condition the price meets; they leave the book.

        Args:
            symbol: Symbol (55).
            ltp: the last traded price; None (no trade yet) fires nothing.
            prev_close: the previous session's close, or None while unknown.
            ts: event time, carried into the events (epoch ms for a `Quote`).

        Returns:
            The fired alerts: those above first (lowest threshold first), then those below
            (highest first); ties by id.
        """
        state = self._symbols.get(symbol)
        if state is None or ltp is None:
            return []
        if prev_close != state.prev_close:
            if prev_close is not None and not prev_close > 0:
                prev_close = None
            if prev_close != state.prev_close:
                state.prev_close = prev_close  # change_pct levels move with it: a new band
                state.rebound()
        if state.lo < ltp < state.hi:
            return []
        dead, keys, ids, heads = state.dead, state.keys, state.ids, state.heads
        above: list[tuple[float, int]] = []
        below: list[tuple[float, int]] = []
        # ltp_above: the price is the key
        k, i, h = keys[_LTP_ABOVE], ids[_LTP_ABOVE], heads[_LTP_ABOVE]
        while h < len(k) and k[h] <= ltp:
            above.append((k[h], i[h]))
            h += 1
        heads[_LTP_ABOVE] = h
        k, i, h = keys[_LTP_BELOW], ids[_LTP_BELOW], heads[_LTP_BELOW]
        while h < len(k) and -k[h] >= ltp:
            below.append((k[h], i[h]))  # minus the level: sorts highest first
            h += 1
        heads[_LTP_BELOW] = h
        close = state.prev_close
        if close is not None:
            k, i, h = keys[_PCT_ABOVE], ids[_PCT_ABOVE], heads[_PCT_ABOVE]
            while h < len(k) and (level := close * (1.0 + k[h] / 100.0)) <= ltp:
                above.append((level, i[h]))
                h += 1
            heads[_PCT_ABOVE] = h
            k, i, h = keys[_PCT_BELOW], ids[_PCT_BELOW], heads[_PCT_BELOW]
            while h < len(k) and (level := close * (1.0 + -k[h] / 100.0)) >= ltp:
                below.append((-level, i[h]))
                h += 1
            heads[_PCT_BELOW] = h
        if len(above) > 1:
            above.sort()
        if len(below) > 1:
            below.sort()
        fired = [PriceAlertHit(alert_id, symbol, ltp, level, ts)
                 for level, alert_id in above if alert_id not in dead]  # fmt: skip
        fired += [PriceAlertHit(alert_id, symbol, ltp, -key, ts)
                  for key, alert_id in below if alert_id not in dead]  # fmt: skip
        if dead:  # removed ones passed over: no longer in a lane
            for _, alert_id in above + below:
                dead.discard(alert_id)
        for hit in fired:
            self._forget(hit.id)
        state.live -= len(fired)
        self._count -= len(fired)
        if not state.live:
            del self._symbols[symbol]
            return fired
        state.compact()
        state.rebound()
        return fired

    # -- internals ------------------------------------------------------------------------------

    def _forget(self, alert_id: int) -> None:
        self._gone.add(alert_id)
        self._gone_order.append(alert_id)
        if len(self._gone_order) > self._forget_after:
            self._gone.discard(self._gone_order.popleft())


def _key(lane: int, value: float) -> float:
    return -value if lane in (_LTP_BELOW, _PCT_BELOW) else value
