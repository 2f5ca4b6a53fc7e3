"""Domain layer: the publishing rule of per-key changes in event time. Pure, stdlib only.

One rule, used by the quote coalescer (`domain.quotes.QuoteCoalescer`, quotes) and the margin
marks (`domain.margin_marks.MarkPublisher`): "first change now, latest at the interval's end".
"""

from __future__ import annotations

import heapq


class IntervalThrottle:
    """The publishing rule of per-key changes in event time, in one place: the first change of a
    key that has not published for an interval goes out at once (leading edge); later changes
    within the interval are held, and the latest goes out at the interval's end, when event
    time passes it. The quote coalescer publishes quotes by it, the margin flow's marks
    (`domain.margin_marks.MarkPublisher`) likewise.

    The throttle only keeps the times; the caller holds the values and decides whether a
    change is worth publishing at all (a move filter, an unchanged mark). It calls `offer` on a
    change, `sent` when it published one, and publishes the keys `pop_due` returns when its
    event time passes their interval's end (peeking `heap[0][0]` first is allowed: an entry
    `cancel` left there is skipped by `pop_due`).
    """

    __slots__ = ("interval_ns", "last_ns", "pending", "heap")

    def __init__(self, interval_ns: int) -> None:
        self.interval_ns = interval_ns
        self.last_ns: dict[str, int] = {}  # key -> event time of its last publish
        self.pending: dict[str, int] = {}  # key -> the end of its interval: a change is held
        self.heap: list[tuple[int, str]] = []  # (interval end, key); cancelled ones linger

    def offer(self, key: str, ts_ns: int) -> bool:
        """A change of `key` at event time `ts_ns`: True to publish it now (then call `sent`);
        False when it is held, until the end of the interval since the key's last publish."""
        if key in self.pending:
            return False  # already waiting for its interval's end; that publish carries this
        last = self.last_ns.get(key)
        if last is not None and ts_ns < last + self.interval_ns:
            deadline = last + self.interval_ns
            self.pending[key] = deadline
            heapq.heappush(self.heap, (deadline, key))
            return False
        return True

    def sent(self, key: str, ts_ns: int) -> None:
        """`key` published at event time `ts_ns`: its next interval starts then."""
        self.last_ns[key] = ts_ns

    def held(self, key: str) -> bool:
        """Whether a change of `key` waits for its interval's end."""
        return key in self.pending

    def cancel(self, key: str) -> None:
        """Hold `key` no longer (the caller published it out of turn)."""
        self.pending.pop(key, None)  # its heap entry, if any, is skipped from now on

    def pop_due(self, upto_ns: int | None) -> list[tuple[int, str]]:
        """(interval end, key) of the held keys whose interval ended by `upto_ns` (all when
        None), in that order, no longer held: the caller publishes each (as of its interval's
        end) if its change still stands."""
        heap, pending = self.heap, self.pending
        pop = heapq.heappop
        out = []
        while heap and (upto_ns is None or heap[0][0] <= upto_ns):
            deadline, key = pop(heap)
            if pending.get(key) != deadline:
                continue  # cancelled, or a later hold of the key
            del pending[key]
            out.append((deadline, key))
        return out

    def drain(self) -> list[tuple[int, str]]:
        """Every held (interval end, key), in that order, none held any more (the end)."""
        out = sorted((deadline, key) for key, deadline in self.pending.items())
        self.pending.clear()
        self.heap.clear()
        return out

    def next_deadline(self) -> int | None:
        """The earliest held interval end, or None."""
        heap, pending = self.heap, self.pending
        while heap and pending.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None
