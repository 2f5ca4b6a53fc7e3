"""Flows layer: `FlowStats`, the counters a run keeps about itself (what the summary prints and
what Prometheus scrapes, `brokerflow.observability`).

Updated once per batch, never per message, so the lock costs nothing measurable. The sink timing
histograms are prometheus_client `Histogram`s kept here per run (`histogram`), built by
`brokerflow.metrics`, which owns their names and buckets.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any


class FlowStats:
    """Thread-safe named counters for one process (all its workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._histograms: dict[str, Any] = {}

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

    def histogram(self, name: str, make: Callable[[], Any]) -> Any:
        """The histogram `name` of this run, made by `make()` on first use (from any worker)."""
        with self._lock:
            found = self._histograms.get(name)
            if found is None:
                found = self._histograms[name] = make()
            return found
