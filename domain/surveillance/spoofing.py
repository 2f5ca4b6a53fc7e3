"""Domain layer, surveillance: spoofing and layering (`SpoofingModel`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from domain.ledger import is_buy
from domain.surveillance.findings import NS_PER_DAY, NS_PER_S, SPOOFING, Fill, Finding


@dataclass
class _Resting:
    side: str
    qty: Decimal
    px: Decimal | None
    ts_ns: int


@dataclass
class _Suspect:
    """A fill against which the account had a large opposite side resting: watched for T s."""

    fill: Fill
    orders: dict[str, _Resting]  # the opposite side resting at the fill
    volume: Decimal
    cancelled: Decimal = Decimal(0)
    cancelled_ids: list[str] = field(default_factory=list)


class SpoofingModel:
    """SPOOFING (and layering): a large one-sided book, a small fill on the other side, then
    most of the large side cancelled within `window_ns` of the fill.

    Fires when the resting volume on the side opposite a fill is at least `size_multiple` (K=5)
    times the fill and at least `cancel_fraction` (80 %) of that volume is cancelled within
    `window_ns` (T=15 s) after the fill; resting orders at two or more prices make it layering.
    A replace (150=5) that cuts an order's quantity cancels the cut (`on_replace`). Orders are
    keyed by the ClOrdID they were placed with, whatever the venue puts in 11 later.

    State is bounded in event time: an order resting longer than `max_resting_ns` (a day) is
    forgotten (spoofing is about orders that come and go within seconds; a GTC order resting for
    weeks, or one whose end was never reported, must not grow the state forever).
    """

    def __init__(
        self,
        size_multiple: Decimal = Decimal(5),
        cancel_fraction: Decimal = Decimal("0.80"),
        window_ns: int = 15 * NS_PER_S,
        max_resting_ns: int = NS_PER_DAY,
    ) -> None:
        self.size_multiple = size_multiple
        self.cancel_fraction = cancel_fraction
        self.window_ns = window_ns
        self.max_resting_ns = max_resting_ns
        self._resting: dict[tuple[str, str], dict[str, _Resting]] = {}
        # (placed at, key, ClOrdID) in arrival order: expiry touches only what expires.
        self._placed: deque[tuple[int, tuple[str, str], str]] = deque()
        self._suspects: dict[tuple[str, str], list[_Suspect]] = {}

    def on_order(self, account: str, symbol: str, cl_ord_id: str, side: str, qty: Decimal,
                 px: Decimal | None, ts_ns: int) -> list[Finding]:  # fmt: skip
        """A new order, resting under `cl_ord_id` (see `on_replace` for new terms)."""
        self._expire(ts_ns)
        key = (account, symbol)
        self._resting.setdefault(key, {})[cl_ord_id] = _Resting(side, qty, px, ts_ns)
        self._placed.append((ts_ns, key, cl_ord_id))
        return []

    def on_replace(self, account: str, symbol: str, cl_ord_id: str, side: str, qty: Decimal,
                   px: Decimal | None, ts_ns: int) -> list[Finding]:  # fmt: skip
        """The new terms of a resting order (ExecType 150=5), known by `cl_ord_id` as before.

        It rests on with `qty` at `px`. What the replace takes off the book counts as
        cancelled: FIX has no partial cancel, a client cancels part of an order by replacing
        it with a smaller OrderQty (38).
        """
        self._expire(ts_ns)
        key = (account, symbol)
        found = []
        for suspect in self._suspects.get(key, []):
            order = suspect.orders.get(cl_ord_id)
            if order is None or ts_ns - suspect.fill.ts_ns > self.window_ns or qty >= order.qty:
                continue
            suspect.cancelled += order.qty - qty
            order.qty = qty  # a later cancel takes what is left
            if cl_ord_id not in suspect.cancelled_ids:
                suspect.cancelled_ids.append(cl_ord_id)
            if suspect.cancelled >= self.cancel_fraction * suspect.volume:
                found.append(self._finding(account, suspect, ts_ns))
        self._forget(key, found)
        self.on_order(account, symbol, cl_ord_id, side, qty, px, ts_ns)
        return found

    def _forget(self, key: tuple[str, str], found: list[Finding]) -> None:
        """Stop watching the suspects that fired."""
        if found:
            fired = {f.key for f in found}
            self._suspects[key] = [
                s for s in self._suspects[key] if self._key(key[0], s) not in fired
            ]

    def on_done(self, account: str, symbol: str, cl_ord_id: str, ts_ns: int) -> None:
        """The order left the book without a client cancel (expired, rejected, done for the
        day): it stops resting, and its leaving is not counted as a cancel."""
        self._expire(ts_ns)
        self._take((account, symbol), cl_ord_id)

    def _take(self, key: tuple[str, str], cl_ord_id: str) -> _Resting | None:
        """Remove an order from the book (and the account's book when it empties)."""
        orders = self._resting.get(key)
        if orders is None:
            return None
        order = orders.pop(cl_ord_id, None)
        if not orders:
            del self._resting[key]
        return order

    def resting(self) -> int:
        return sum(len(orders) for orders in self._resting.values())

    def on_cancel(self, account: str, symbol: str, cl_ord_id: str, ts_ns: int) -> list[Finding]:
        self._expire(ts_ns)
        key = (account, symbol)
        resting = self._take(key, cl_ord_id)
        if resting is None:
            return []
        found = []
        for suspect in self._suspects.get(key, []):
            order = suspect.orders.get(cl_ord_id)
            if order is None or ts_ns - suspect.fill.ts_ns > self.window_ns:
                continue
            suspect.cancelled += order.qty
            if cl_ord_id not in suspect.cancelled_ids:  # not already cut by a replace
                suspect.cancelled_ids.append(cl_ord_id)
            if suspect.cancelled >= self.cancel_fraction * suspect.volume:
                found.append(self._finding(account, suspect, ts_ns))
        self._forget(key, found)
        return found

    def on_fill(self, fill: Fill) -> list[Finding]:
        self._expire(fill.ts_ns)
        key = (fill.account, fill.symbol)
        resting = self._resting.get(key, {})
        order = resting.get(fill.cl_ord_id)
        if order is not None:  # the filled order rests with less, or leaves
            order.qty -= fill.qty
            if order.qty <= 0:
                self._take(key, fill.cl_ord_id)
        opposite = {
            cl: _Resting(r.side, r.qty, r.px, r.ts_ns)
            for cl, r in resting.items()
            if is_buy(r.side) != fill.buy
        }
        volume = sum((r.qty for r in opposite.values()), Decimal(0))
        if opposite and volume >= self.size_multiple * fill.qty:
            self._suspects.setdefault(key, []).append(_Suspect(fill, opposite, volume))
        return []

    def _key(self, account: str, s: _Suspect) -> str:
        return f"spoof:{account}:{s.fill.symbol}:{s.fill.exec_id}"

    def _finding(self, account: str, s: _Suspect, ts_ns: int) -> Finding:
        prices = sorted({str(o.px) for o in s.orders.values() if o.px is not None})
        layering = len(prices) >= 2
        ratio = s.volume / s.fill.qty
        score = min(100, int(60 + 4 * (ratio - self.size_multiple)) + (10 if layering else 0))
        return Finding(
            SPOOFING, self._key(account, s), account, s.fill.symbol, ts_ns, max(60, score),
            {"pattern": "layering" if layering else "spoofing", "fill_exec_id": s.fill.exec_id,
             "fill_qty": s.fill.qty, "fill_side": s.fill.side,
             "opposite_volume": s.volume, "size_multiple": ratio.quantize(Decimal("0.01")),
             "cancelled_volume": s.cancelled,
             "cancelled_fraction": (s.cancelled / s.volume).quantize(Decimal("0.01")),
             "cancelled_cl_ord_ids": list(s.cancelled_ids), "price_levels": prices,
             "window_ns": self.window_ns,
             "thresholds": {"size_multiple": self.size_multiple,
                            "cancel_fraction": self.cancel_fraction}},
        )  # fmt: skip

    def _expire(self, now_ns: int) -> None:
        placed = self._placed
        too_old = now_ns - self.max_resting_ns
        while placed and placed[0][0] < too_old:
            ts_ns, key, cl_ord_id = placed.popleft()
            order = self._resting.get(key, {}).get(cl_ord_id)
            if order is not None and order.ts_ns == ts_ns:  # not re-placed (replaced) since
                self._take(key, cl_ord_id)
        horizon = now_ns - self.window_ns
        for key in list(self._suspects):
            kept = [s for s in self._suspects[key] if s.fill.ts_ns >= horizon]
            if kept:
                self._suspects[key] = kept
            else:
                del self._suspects[key]

    def __len__(self) -> int:
        return sum(len(s) for s in self._suspects.values())
