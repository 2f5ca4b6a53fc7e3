"""Domain layer: the one exponential backoff rule (waits between tries), pure arithmetic.

Used by the sinks' bounded store retries (`sinks.retry`), the edge's Redis stream reader
(`edge.reader`) and the FIX initiator's reconnects (`connectors.fix.session.engine`); each keeps
its own bounds as a `Backoff`. No jitter: none of the three callers had any, and a fixed schedule
keeps their tests deterministic. Waiting, clocks and stop conditions stay with the callers
(sync or asyncio sleeps, attempt limits, `stop` flags); this module only says how long.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits that grow by `factor` from `initial_s` up to `max_s`.

    >>> Backoff(0.1, 0.3).delays(4)
    [0.1, 0.2, 0.3, 0.3]
    >>> Backoff(0.5, 30.0).delay(3)
    2.0

    Attributes:
        initial_s: the wait after the first failure.
        max_s: the longest wait.
        factor: how much longer each further wait is.
    """

    initial_s: float
    max_s: float
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """The wait after `failures` consecutive failures (1: the first), capped at `max_s`."""
        return min(self.max_s, self.initial_s * self.factor ** (failures - 1))

    def delays(self, count: int) -> list[float]:
        """The first `count` waits (none for a count below 1)."""
        return [self.delay(n) for n in range(1, count + 1)]

    def tries_lasting(self, total_s: float) -> int:
        """How many tries, the first included, make waits summing to at least `total_s`."""
        tries, waited = 1, 0.0
        while waited < total_s:
            waited += self.delay(tries)
            tries += 1
        return tries
