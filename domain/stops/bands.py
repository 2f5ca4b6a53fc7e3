"""Domain layer, stop engine: the bands, the values at which a symbol's orders may act.

A quote whose values fall inside every band of its symbol changes the stored values and the
bands' runs, nothing else (package docstring, "Per quote"). `_Symbol` is a symbol's state: its
reference values as quoted, its structures and their bands.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from decimal import Decimal

from domain.stops.heaps import _KeyHeap
from domain.stops.ladders import _ONE, _TrailLadder
from domain.stops.orders import _BPS, REFERENCES

_INF = Decimal("Infinity")
_NEG_INF = Decimal("-Infinity")
_BAND_ATTR = {ref: f"band_{ref}" for ref in REFERENCES}
_SELLS, _BUYS, _BOTH = 1, 2, 3  # sides of a band
# The float shadow of a band: slots of `_Symbol.lim` from the band's `base`.
_HIGH, _LOW = 0, 1  # the run's extremes
_SELL_AT, _WAKE_HIGH, _SELL_MARK, _SELL_OFF, _SELL_FACTOR = 2, 3, 4, 5, 6
_BUY_AT, _WAKE_LOW, _BUY_MARK, _BUY_OFF, _BUY_FACTOR = 7, 8, 9, 10, 11
_LIM_WIDTH = 12
_REF_BASE = {ref: i * _LIM_WIDTH for i, ref in enumerate(REFERENCES)}
_NAN = float("nan")  # "no such order": every comparison with it is false
# Relative slack of the float bounds that are computed per quote (a few ulps suffice).
_EPS = 2.0**-40


def _to_decimal(value: float | Decimal | None) -> Decimal | None:
    if value is None or type(value) is Decimal:
        return value
    # repr of a float is the shortest string that round-trips: the wire decimal (events.py).
    return Decimal(repr(value)) if type(value) is float else Decimal(value)


def _up(value: Decimal) -> float:
    """A float at or above `value` (float() rounds to nearest: one step up is always enough)."""
    return math.nextafter(float(value), math.inf)


def _down(value: Decimal) -> float:
    return math.nextafter(float(value), -math.inf)


@dataclass(slots=True)
class _Band:
    """One reference price of one symbol: its structures, and the values at which they may act.

    A value strictly inside the band can neither fire nor activate an order on that reference:
    the quote only widens `high`/`low`, the extremes of the reference since the sell and the buy
    trailing ladders were last brought up to date. Trailing stops ratchet lazily to them: a
    sell's mark is max(its group's mark, high), a buy's min(..., low); the ladders apply that
    before anything reads or changes them, and before a value that may fire on their side.

    Each side (sells fire at or below, buys at or above) is judged and evaluated on its own.
    Bounds come from the structures' tops in Decimal and are kept as floats rounded outwards,
    next to each other in the symbol's `lim` array, so that a quote is judged from one block of
    memory (the resting orders of a million stops do not fit in a cache; every object a quote
    touches costs a trip to memory). A bound only ever lets more through: lazy-deletion tops may
    be dead entries, `min_offset` a departed order's, and the per-quote float sums carry a
    slack of a few ulps. The worst it costs is a look at the structures that finds nothing.
    `high`/`low` are the values as quoted (float or Decimal), read as Decimals when used.
    """

    lim: array  # the symbol's float shadows (`_Symbol.lim`)
    base: int  # this reference's first slot in it
    high: float | Decimal | None = None
    low: float | Decimal | None = None
    sell_heap: _KeyHeap | None = None  # the reference's fixed sell stops
    buy_heap: _KeyHeap | None = None
    sell_ladders: list[_TrailLadder] = field(default_factory=list)  # by price, by bps
    buy_ladders: list[_TrailLadder] = field(default_factory=list)

    def restart(self, sides: int, value: float | Decimal | None) -> None:
        """Start the run of `sides` at `value` (the reference now; None: not quoted yet)."""
        lim, i = self.lim, self.base
        if sides & _SELLS:
            self.high = value
            lim[i + _HIGH] = -math.inf if value is None else float(value)
        if sides & _BUYS:
            self.low = value
            lim[i + _LOW] = math.inf if value is None else float(value)

    def rebound(self, sides: int = _BOTH) -> None:
        """Recompute the bounds of `sides` from the structures (after they changed)."""
        lim, i = self.lim, self.base
        if sides & _SELLS:
            heap = self.sell_heap
            at = -heap.heap[0][0] if heap is not None and heap.heap else _NEG_INF
            mark = wake = _INF
            off = factor = None
            for ladder in self.sell_ladders:
                if ladder.group_heap:
                    at = max(at, -ladder.group_heap[0][0])  # stale or dead entries: higher
                top = ladder.top_mark()
                if top is not None and ladder.min_offset is not None:
                    mark = min(mark, top)
                    if ladder.bps:
                        factor = _ONE - ladder.min_offset / _BPS  # as `stop_px` computes it
                    else:
                        off = ladder.min_offset
                if ladder.dormant.heap:
                    wake = min(wake, ladder.dormant.heap[0][0])  # -key(activation) = price
            lim[i + _SELL_AT] = _up(at)
            lim[i + _WAKE_HIGH] = _down(wake)
            lim[i + _SELL_MARK] = _down(mark)
            lim[i + _SELL_OFF] = _NAN if off is None else float(off)
            lim[i + _SELL_FACTOR] = _NAN if factor is None else float(factor)
        if sides & _BUYS:
            heap = self.buy_heap
            at = heap.heap[0][0] if heap is not None and heap.heap else _INF
            mark = wake = _NEG_INF
            off = factor = None
            for ladder in self.buy_ladders:
                if ladder.group_heap:
                    at = min(at, ladder.group_heap[0][0])
                top = ladder.top_mark()
                if top is not None and ladder.min_offset is not None:
                    mark = max(mark, top)
                    if ladder.bps:
                        factor = _ONE + ladder.min_offset / _BPS
                    else:
                        off = ladder.min_offset
                if ladder.dormant.heap:
                    wake = max(wake, -ladder.dormant.heap[0][0])
            lim[i + _BUY_AT] = _down(at)
            lim[i + _WAKE_LOW] = _up(wake)
            lim[i + _BUY_MARK] = _up(mark)
            lim[i + _BUY_OFF] = _NAN if off is None else float(off)
            lim[i + _BUY_FACTOR] = _NAN if factor is None else float(factor)


def _stirs(band: _Band, lim: array, i: int, px: float | Decimal) -> int:
    """Record `px` in the band's run; return the sides (`_SELLS`, `_BUYS`) it may act on.

    `lim`/`i` are the band's (passed in so that a quiet quote never touches the band itself).
    """
    f = px if type(px) is float else float(px)
    sides = 0
    high = lim[i]
    if f >= high and (f > high or (type(px) is not float and px > _to_decimal(band.high))):
        lim[i] = high = f
        band.high = px
    if f <= lim[i + _SELL_AT] or f >= lim[i + _WAKE_HIGH]:
        sides = _SELLS
    elif high > lim[i + _SELL_MARK]:
        slack = high * _EPS
        if f <= high - lim[i + _SELL_OFF] + slack or f <= high * lim[i + _SELL_FACTOR] + slack:
            sides = _SELLS
    low = lim[i + _LOW]
    if f <= low and (f < low or (type(px) is not float and px < _to_decimal(band.low))):
        lim[i + _LOW] = low = f
        band.low = px
    if f >= lim[i + _BUY_AT] or f <= lim[i + _WAKE_LOW]:
        return sides | _BUYS
    if low < lim[i + _BUY_MARK]:
        slack = low * _EPS
        if f >= low + lim[i + _BUY_OFF] - slack or f >= low * lim[i + _BUY_FACTOR] - slack:
            return sides | _BUYS
    return sides


def _evaluate(
    band: _Band,
    ref: str,
    quoted: float | Decimal,
    sides: int,
    fired: list[tuple[int, str, Decimal | None, Decimal, str]],
) -> None:
    """Fire what a new value of `ref` reaches on `sides`; append (seq, id, stop, px, ref)."""
    px = _to_decimal(quoted)
    if sides & _SELLS:
        _fire_side(band.sell_heap, band.sell_ladders, _to_decimal(band.high), -px, px, ref, fired)
    if sides & _BUYS:
        _fire_side(band.buy_heap, band.buy_ladders, _to_decimal(band.low), px, px, ref, fired)
    band.restart(sides, quoted)
    band.rebound(sides)


def _fire_side(
    heap: _KeyHeap | None,
    ladders: list[_TrailLadder],
    extreme: Decimal,
    key: Decimal,
    px: Decimal,
    ref: str,
    fired: list[tuple[int, str, Decimal | None, Decimal, str]],
) -> None:
    # One side of `_evaluate`: `key` is px's heap key, `extreme` the side's run extreme.
    if heap is not None and heap.heap and heap.heap[0][0] <= key:
        for seq, cl_ord_id in heap.pop_upto(key):
            fired.append((seq, cl_ord_id, None, px, ref))
    for ladder in ladders:
        # The ratchet the quotes since the last look would have made (none fired), then this
        # price: the same groups, marks and fires as looking at every quote.
        if extreme != px:
            ladder.ratchet(extreme)
        for seq, cl_ord_id, stop in ladder.update(px):
            fired.append((seq, cl_ord_id, stop, px, ref))


@dataclass(slots=True)
class _Symbol:
    # The reference values as quoted (float or Decimal: read as Decimals by `current`).
    last: float | Decimal | None = None
    bid: float | Decimal | None = None
    ask: float | Decimal | None = None
    mid: Decimal | None = None  # kept only while orders reference the mid (`band_mid`)
    stops: dict[tuple[str, bool], _KeyHeap] = field(default_factory=dict)
    ladders: dict[tuple[str, bool, bool], _TrailLadder] = field(default_factory=dict)
    # One band per reference that has orders (None: no structure on it).
    band_last: _Band | None = None
    band_bid: _Band | None = None
    band_ask: _Band | None = None
    band_mid: _Band | None = None
    lim: array | None = None  # the bands' float shadows, `_LIM_WIDTH` slots per reference

    def quoted(self, reference: str) -> float | Decimal | None:
        """The reference's value as quoted (the mid: as a Decimal), or None."""
        if reference == "mid":
            bid, ask = self.bid, self.ask
            return None if bid is None or ask is None else self.mid_of(bid, ask)
        return getattr(self, reference)

    def current(self, reference: str) -> Decimal | None:
        """The reference's value as a Decimal, or None."""
        return _to_decimal(self.quoted(reference))

    @staticmethod
    def mid_of(bid: float | Decimal, ask: float | Decimal) -> Decimal:
        return (_to_decimal(bid) + _to_decimal(ask)) / 2

    def band(self, ref: str) -> _Band:
        """The band of `ref`, created (its run starting at the current value) on first use."""
        attr = _BAND_ATTR[ref]
        band = getattr(self, attr)
        if band is None:
            if self.lim is None:
                self.lim = array("d", [_NAN]) * (len(REFERENCES) * _LIM_WIDTH)
            band = _Band(self.lim, _REF_BASE[ref])
            band.restart(_BOTH, self.quoted(ref))
            band.rebound()
            setattr(self, attr, band)
            if ref == "mid":
                self.mid = band.high  # kept from now on, to tell a changed mid
        return band

    def settle(self, ref: str) -> None:
        """Ratchet the ladders on `ref` to the extremes of its run, and start a new run.

        Nothing fires: every value of the run was inside the band, which bounds what the
        ratcheted stops could reach.
        """
        band = getattr(self, _BAND_ATTR[ref])
        if band is None:
            return
        current = self.current(ref)
        if current is None:
            return
        # Ratcheting to a mark the ladder already has changes nothing: no need to know which
        # side has a run.
        high, low = _to_decimal(band.high), _to_decimal(band.low)
        moved = 0
        for ladder in band.sell_ladders:
            if ladder.ratchet(high):
                moved |= _SELLS
        for ladder in band.buy_ladders:
            if ladder.ratchet(low):
                moved |= _BUYS
        band.restart(_BOTH, self.quoted(ref))
        if moved:
            band.rebound(moved)  # the marks moved: so did the stops the band stands for

    def add_bands(self) -> None:
        """Give a symbol of a book pickled before the bands (an earlier release's recovery
        snapshot) its bands: the structures are the same, the bands are derived from them."""
        for name in ("band_last", "band_bid", "band_ask", "band_mid", "lim"):
            setattr(self, name, None)
        for ladder in self.ladders.values():
            if not hasattr(ladder, "min_offset"):
                ladder.min_offset = min((e[0] for e in ladder.live.values()), default=None)
        for (ref, buy), heap in self.stops.items():
            band = self.band(ref)
            if buy:
                band.buy_heap = heap
            else:
                band.sell_heap = heap
        for (ref, buy, _bps), ladder in self.ladders.items():
            band = self.band(ref)
            (band.buy_ladders if buy else band.sell_ladders).append(ladder)
        for ref in REFERENCES:
            band = getattr(self, _BAND_ATTR[ref])
            if band is not None:
                band.rebound()
