"""Counters a run keeps about itself: what the summary prints and what Prometheus scrapes.

Updated once per batch, never per message, so the lock costs nothing measurable. Histograms
(`observe`) keep cumulative-ready bucket counts with fixed bounds, read at scrape time by
`brokerflow.observability`.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

SECONDS_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0, 3600.0, 86400.0,
)  # fmt: skip
"""Bounds of latency histograms: sub-millisecond sink writes up to a day-old event time."""
ITEMS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 50_000)
"""Bounds of batch-size histograms."""


@dataclass(slots=True)
class Histogram:
    """Observations counted per bucket: `counts[i]` holds values <= `bounds[i]` (and above the
    previous bound); the last count holds values above every bound."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total)


class FlowStats:
    """Thread-safe named counters for one process (all its workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._histograms: dict[str, Histogram] = {}

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

    def observe(self, name: str, value: float, bounds: tuple[float, ...]) -> None:
        """Count `value` in the histogram `name` (created with `bounds` on first use)."""
        with self._lock:
            histogram = self._histograms.get(name)
            if histogram is None:
                histogram = self._histograms[name] = Histogram(bounds)
            histogram.counts[bisect_left(histogram.bounds, value)] += 1
            histogram.total += value

    def histograms(self) -> dict[str, Histogram]:
        """A copy of every histogram, by name."""
        with self._lock:
            return {name: h.copy() for name, h in self._histograms.items()}
