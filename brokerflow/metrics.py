"""Counters a run keeps about itself: what the summary prints and, later, what Prometheus scrapes.

Updated once per batch, never per message, so the lock costs nothing measurable.
"""

from __future__ import annotations

import threading
from collections import Counter


class FlowStats:
    """Thread-safe named counters for one process (all its workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[name] += n

    def add_many(self, counts: dict[str, int]) -> None:
        with self._lock:
            for name, n in counts.items():
                if n:
                    self._counts[name] += n

    def get(self, name: str) -> int:
        return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
