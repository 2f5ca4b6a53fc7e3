"""Domain layer, stop engine: the ladders that hold trailing stops (package docstring, "Data
structures": groups of equal mark on a monotonic stack, each a pairing heap by offset).
"""

from __future__ import annotations

import heapq
from decimal import Decimal

from domain.stops.heaps import _COMPACT_SLACK, _key, _KeyHeap, _meld, _pop_root
from domain.stops.orders import _BPS

_ONE = Decimal(1)
_NO_ACTIVATION = Decimal("-Infinity")  # heap key of "activate at the first price"


class _Group:
    """Trailing stops sharing one mark `x`, in a pairing heap by offset."""

    __slots__ = ("x", "root", "version")

    def __init__(self, x: Decimal) -> None:
        self.x = x
        self.root: list | None = None
        self.version = 0

    def __getstate__(self) -> tuple:
        # Flatten: a pairing heap can be deep, and pickle recurses on nesting.
        entries = []
        stack = [self.root] if self.root is not None else []
        while stack:
            node = stack.pop()
            entries.append(node[0])
            stack.extend(node[1])
        entries.sort()
        return (self.x, self.version, entries)

    def __setstate__(self, state: tuple) -> None:
        self.x, self.version, entries = state
        root = None
        for entry in entries:
            root = _meld(root, [entry, []])
        self.root = root


class _TrailLadder:
    """Trailing stops of one symbol, reference, side and offset type (see the module docstring).

    `live` maps a ClOrdID to (offset, seq, gid, activation key): gid is the group it joined
    (follow `parent` to the group it was merged into), -1 while it waits for activation.
    """

    __slots__ = ("buy", "bps", "groups", "stack", "parent", "group_heap", "live", "dormant",
                 "next_gid", "entries", "min_offset")  # fmt: skip

    def __init__(self, buy: bool, bps: bool) -> None:
        self.buy = buy
        self.bps = bps
        self.groups: dict[int, _Group] = {}  # live root gid -> group
        self.stack: list[int] = []  # root gids, bottom (best mark) to top
        self.parent: dict[int, int] = {}  # merged gid -> gid it merged into
        self.group_heap: list[tuple[Decimal, int, int]] = []  # (stop key, gid, version)
        self.live: dict[str, tuple[Decimal, int, int, Decimal | None]] = {}
        self.dormant = _KeyHeap()  # keyed by -key(activation_px)
        self.next_gid = 0
        self.entries = 0  # pairing-heap entries, dead ones included
        # The smallest offset of any order added since the last rebuild (a bound for `_Band`).
        self.min_offset: Decimal | None = None

    def stop_px(self, x: Decimal, offset: Decimal) -> Decimal:
        if self.bps:
            ratio = offset / _BPS
            return x * (_ONE + ratio) if self.buy else x * (_ONE - ratio)
        return x + offset if self.buy else x - offset

    def _find(self, gid: int) -> int:
        parent = self.parent
        root = gid
        while root in parent:
            root = parent[root]
        while gid != root:
            parent[gid], gid = root, parent[gid]
        return root

    def mark(self, cl_ord_id: str) -> Decimal | None:
        """The order's high/low-water mark, or None while it waits for activation."""
        gid = self.live[cl_ord_id][2]
        return None if gid < 0 else self.groups[self._find(gid)].x

    def _push_group(self, gid: int, group: _Group) -> None:
        group.version += 1
        if group.root is not None:
            offset = group.root[0][0]  # may be a dead entry: a lower bound, checked on pop
            key = _key(self.buy, self.stop_px(group.x, offset))
            heapq.heappush(self.group_heap, (key, gid, group.version))

    def _join_top(self, cl_ord_id: str, seq: int, offset: Decimal, x: Decimal) -> None:
        # Precondition: every group's mark is at least as good as x (x is the current price).
        stack = self.stack
        if stack and self.groups[stack[-1]].x == x:
            gid = stack[-1]
            group = self.groups[gid]
        else:
            gid = self.next_gid
            self.next_gid += 1
            group = self.groups[gid] = _Group(x)
            stack.append(gid)
        self._enter(gid, group, cl_ord_id, seq, offset)

    def _enter(self, gid: int, group: _Group, cl_ord_id: str, seq: int, offset: Decimal) -> None:
        # An active order joins `group`: its heap, the entry count, the order's live record, the
        # group's key, and the smallest offset (the bound `_Band` reads).
        group.root = _meld(group.root, [(offset, seq, cl_ord_id), []])
        self.entries += 1
        self.live[cl_ord_id] = (offset, seq, gid, None)
        self._push_group(gid, group)
        if self.min_offset is None or offset < self.min_offset:
            self.min_offset = offset

    def add(
        self,
        cl_ord_id: str,
        seq: int,
        offset: Decimal,
        current: Decimal | None,
        activation_px: Decimal | None,
    ) -> None:
        """Add an order; it trails from `current` unless it waits for a price or activation."""
        buy = self.buy
        if current is not None and (
            activation_px is None or _key(buy, current) <= _key(buy, activation_px)
        ):
            self._join_top(cl_ord_id, seq, offset, current)
            return
        act_key = _NO_ACTIVATION if activation_px is None else -_key(buy, activation_px)
        self.dormant.push(act_key, seq, cl_ord_id)
        self.live[cl_ord_id] = (offset, seq, -1, act_key)

    def rekey(self, old_id: str, new_id: str, seq: int, offset: Decimal) -> None:
        """Carry a replaced order over to its new ClOrdID, seq and offset, keeping its mark."""
        _, _, gid, act_key = self.live.pop(old_id)
        if gid < 0:
            self.dormant.discard(old_id)
            self.dormant.push(act_key, seq, new_id)
            self.live[new_id] = (offset, seq, -1, act_key)
            return
        gid = self._find(gid)
        self._enter(gid, self.groups[gid], new_id, seq, offset)

    def discard(self, cl_ord_id: str) -> None:
        entry = self.live.pop(cl_ord_id, None)
        if entry is not None:
            if entry[2] < 0:
                self.dormant.discard(cl_ord_id)
            self._maybe_rebuild()

    def ratchet(self, px: Decimal) -> bool:
        """Pop the groups whose mark `px` improves on and meld them into one, marked `px`.

        Returns whether any mark moved.
        """
        buy = self.buy
        price_key = px if buy else -px  # _key, inlined
        groups = self.groups
        stack = self.stack
        if stack and (groups[stack[-1]].x if buy else -groups[stack[-1]].x) > price_key:
            base_gid = stack.pop()
            base = groups[base_gid]
            while stack and _key(buy, groups[stack[-1]].x) > price_key:
                # Keep the lower (older) group as the root: it absorbs the newer one.
                gid = stack.pop()
                group = groups.pop(gid)
                group.root = _meld(group.root, base.root)
                self.parent[base_gid] = gid
                del groups[base_gid]
                groups[gid] = group
                base_gid, base = gid, group
            base.x = px
            stack.append(base_gid)
            self._push_group(base_gid, base)
            return True
        return False

    def top_mark(self) -> Decimal | None:
        """The least favourable mark of the active orders (the newest group's), or None."""
        return self.groups[self.stack[-1]].x if self.stack else None

    def update(self, px: Decimal) -> list[tuple[int, str, Decimal]]:
        """Apply a new reference price; return (seq, cl_ord_id, stop) of the orders it fires."""
        buy = self.buy
        price_key = px if buy else -px
        groups = self.groups
        # 1. Ratchet.
        self.ratchet(px)
        # 2. Activation: the orders whose activation price (or first price) is reached.
        dormant = self.dormant
        if dormant.heap and dormant.heap[0][0] <= -price_key:
            live = self.live
            for seq, cl_ord_id in sorted(dormant.pop_upto(-price_key)):
                self._join_top(cl_ord_id, seq, live[cl_ord_id][0], px)
        # 3. Fire: the groups whose most exposed stop is reached, smallest offset first.
        fired: list[tuple[int, str, Decimal]] = []
        group_heap = self.group_heap
        live = self.live
        while group_heap:
            key, gid, version = group_heap[0]
            group = groups.get(gid)
            if group is None or group.version != version:
                heapq.heappop(group_heap)
                continue
            if key > price_key:
                break
            heapq.heappop(group_heap)
            x = group.x
            root = group.root
            while root is not None:
                offset, seq, cl_ord_id = root[0]
                entry = live.get(cl_ord_id)
                if entry is not None and entry[1] == seq:
                    stop = self.stop_px(x, offset)
                    if _key(buy, stop) > price_key:
                        break
                    del live[cl_ord_id]
                    fired.append((seq, cl_ord_id, stop))
                root = _pop_root(root)
                self.entries -= 1
            group.root = root
            self._push_group(gid, group)
        if fired:
            self._maybe_rebuild()
        return fired

    def _maybe_rebuild(self) -> None:
        size = self.entries + len(self.parent) + len(self.group_heap) + len(self.groups)
        if size > 4 * len(self.live) + _COMPACT_SLACK:
            self._rebuild()

    def _rebuild(self) -> None:
        # Drop dead entries, merged group ids, empty groups and stale group keys: O(n log n),
        # paid for by the >= 3n removals since the last rebuild.
        buy = self.buy
        active = []
        for cl_ord_id, (offset, seq, gid, _) in self.live.items():
            if gid >= 0:
                x = self.groups[self._find(gid)].x
                active.append((_key(buy, x), seq, x, offset, cl_ord_id))
        active.sort()
        self.groups = {}
        self.stack = []
        self.parent = {}
        self.group_heap = []
        self.entries = 0
        self.min_offset = min((entry[0] for entry in self.live.values()), default=None)
        for _, seq, x, offset, cl_ord_id in active:
            self._join_top(cl_ord_id, seq, offset, x)
