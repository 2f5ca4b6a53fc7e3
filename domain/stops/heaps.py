"""Domain layer, stop engine: the heaps the book's structures are made of.

`_KeyHeap` is a binary min-heap with lazy deletion (the fixed stops of one reference and side,
the expiries, the trailing stops awaiting activation); `_meld` and `_pop_root` make a pairing
heap of lists (a trailing-stop group's orders by offset). Keys come from `_key`, so that buys
and sells fire alike while `key(stop) <= key(reference)`.
"""

from __future__ import annotations

import heapq
from decimal import Decimal

# Dead entries a structure may hold beyond its live ones before it compacts (amortised O(1)).
_COMPACT_SLACK = 64


def _key(buy: bool, px: Decimal) -> Decimal:
    # Heap key: both sides fire while key(stop) <= key(reference) and improve (trailing) when
    # key(price) < key(mark).
    return px if buy else -px


class _KeyHeap:
    """A min-heap of (key, seq, cl_ord_id) with lazy deletion through `live`."""

    __slots__ = ("heap", "live")

    def __init__(self) -> None:
        self.heap: list[tuple[Decimal, int, str]] = []
        self.live: dict[str, int] = {}  # cl_ord_id -> seq of its one valid entry

    def push(self, key: Decimal, seq: int, cl_ord_id: str) -> None:
        self.live[cl_ord_id] = seq
        heapq.heappush(self.heap, (key, seq, cl_ord_id))

    def discard(self, cl_ord_id: str) -> None:
        if (
            self.live.pop(cl_ord_id, None) is not None
            and len(self.heap) > 2 * len(self.live) + _COMPACT_SLACK
        ):
            live = self.live
            self.heap = [e for e in self.heap if live.get(e[2]) == e[1]]
            heapq.heapify(self.heap)

    def pop_upto(self, limit: Decimal) -> list[tuple[int, str]]:
        """Remove and return (seq, cl_ord_id) of the live entries with key <= limit."""
        out: list[tuple[int, str]] = []
        heap = self.heap
        live = self.live
        while heap and heap[0][0] <= limit:
            _, seq, cl_ord_id = heapq.heappop(heap)
            if live.get(cl_ord_id) == seq:
                del live[cl_ord_id]
                out.append((seq, cl_ord_id))
        return out


# A pairing-heap node: [entry, children]; entry = (offset, seq, cl_ord_id).
def _meld(a: list | None, b: list | None) -> list | None:
    if a is None:
        return b
    if b is None:
        return a
    if b[0] < a[0]:
        a, b = b, a
    a[1].append(b)
    return a


def _pop_root(node: list) -> list | None:
    kids = node[1]
    if not kids:
        return None
    # Two-pass pairing: pair left to right, then meld the pairs right to left.
    paired = [_meld(kids[i], kids[i + 1]) for i in range(0, len(kids) - 1, 2)]
    if len(kids) % 2:
        paired.append(kids[-1])
    root = paired.pop()
    while paired:
        root = _meld(paired.pop(), root)
    return root
