"""Domain layer, surveillance: which order an execution report is about (`OrderChains`)."""

from __future__ import annotations

from collections import deque
from typing import Any

from domain.surveillance.findings import NS_PER_DAY


class OrderChains:
    """Which order an execution report is about, however the venue names it.

    An order keeps its OrderID (37) through replaces and cancels. Reported the standard FIX 4.4
    way, its ClOrdID (11) changes with each replace (the new id in 11, the one it replaces in
    OrigClOrdID (41)), and a cancel carries the cancel request's id in 11 and the order's
    current one in 41; some venues echo the order's own ClOrdID in 11 instead, without 41.
    The models know an order by the ClOrdID it was placed with, whichever way the venue
    reports: `known` finds it by OrderID when the order was seen, else by 41 on a cancel or
    replace, else by 11.

    Bounded in event time: an order not placed or replaced for `max_age_ns` (a day) is
    forgotten, as `SpoofingModel` forgets it (an order whose end was never reported must not
    grow the state forever).
    """

    __slots__ = ("_by_order_id", "_placed", "max_age_ns")

    def __init__(self, max_age_ns: int = NS_PER_DAY) -> None:
        self.max_age_ns = max_age_ns
        # OrderID -> (the ClOrdID the models know it by, when it was last placed or replaced)
        self._by_order_id: dict[str, tuple[str, int]] = {}
        self._placed: deque[tuple[int, str]] = deque()  # (ts, OrderID) in arrival order

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """A snapshot of an earlier release held OrderID -> ClOrdID only."""
        slots = state[1]
        self.max_age_ns = slots.get("max_age_ns", NS_PER_DAY)
        self._placed = slots.get("_placed", deque())
        self._by_order_id = {
            order_id: (value, 0) if type(value) is str else value
            for order_id, value in slots["_by_order_id"].items()
        }

    def known(self, order_id: str, cl_ord_id: str, orig_cl_ord_id: str | None,
              exec_type: str) -> str:  # fmt: skip
        seen = self._by_order_id.get(order_id) if order_id else None
        if seen is not None:
            return seen[0]
        if exec_type in ("4", "5") and orig_cl_ord_id:
            return orig_cl_ord_id
        return cl_ord_id

    def placed(self, order_id: str, key: str, ts_ns: int) -> None:
        """A new order (150=0) or a replace (150=5) of the order `known` as `key`: it is known
        by the ClOrdID it was first placed with from now on."""
        if not order_id:
            return
        seen = self._by_order_id.get(order_id)
        self._by_order_id[order_id] = (key if seen is None else seen[0], ts_ns)
        placed = self._placed
        placed.append((ts_ns, order_id))
        horizon = ts_ns - self.max_age_ns
        while placed and placed[0][0] < horizon:
            at, old = placed.popleft()
            seen = self._by_order_id.get(old)
            if seen is not None and seen[1] == at:  # not placed again since
                del self._by_order_id[old]

    def ended(self, order_id: str) -> None:
        """Cancelled, filled, rejected or expired: nothing more will come for it."""
        self._by_order_id.pop(order_id, None)

    def __len__(self) -> int:
        return len(self._by_order_id)
