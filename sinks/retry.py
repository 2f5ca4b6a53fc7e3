"""Sinks layer: bounded retries with exponential backoff for store writes.

Use only around idempotent writes (every sink write is keyed on the input, STYLE.md §4), so a retry
after an ambiguous failure cannot add a second row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from domain.backoff import Backoff

log = logging.getLogger("brokerflow.sinks")

T = TypeVar("T")

# The store a retried error came from, by the top module of its class (what the metrics call a
# sink retrying: `sink_retries_total{store}`, `sink_gave_up_total{store}`).
STORES = {"psycopg": "postgres", "redis": "redis", "clickhouse_connect": "clickhouse",
          "chdb": "clickhouse", "confluent_kafka": "kafka"}  # fmt: skip
_retries: Counter[str] = Counter()
_gave_up: Counter[str] = Counter()
_counts_lock = threading.Lock()


def store_of(error: BaseException) -> str:
    """The store an error came from ("postgres", "redis", ...; else its top module)."""
    module = type(error).__module__.split(".")[0]
    return STORES.get(module, module)


def retry_counts() -> tuple[dict[str, int], dict[str, int]]:
    """(retries, give-ups) of this process by store, since it started: every known store,
    zero included, so a rate is defined before the first failure."""
    with _counts_lock:
        known = dict.fromkeys(sorted(set(STORES.values())), 0)
        return {**known, **_retries}, {**known, **_gave_up}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard a sink tries before it raises.

    Attributes:
        attempts: tries per batch, the first included.
        base_s: the wait after the first failure, doubled after each further one.
        max_s: the longest wait.
    """

    attempts: int = 5
    base_s: float = 0.2
    max_s: float = 5.0

    @classmethod
    def lasting(cls, total_s: float, base_s: float = 0.2, max_s: float = 5.0) -> RetryPolicy:
        """The policy that keeps trying for at least `total_s` (waits summed) before it raises:
        how long a flow rides out a store that is down (a restart, a failover)."""
        return cls(Backoff(base_s, max_s).tries_lasting(total_s), base_s, max_s)

    @property
    def budget_s(self) -> float:
        """The waits between the first and the last try, summed."""
        return sum(backoff_delays(self.attempts, self.base_s, self.max_s))


def backoff_delays(attempts: int, base_s: float, max_s: float) -> list[float]:
    """Return the waits between `attempts` tries: base, 2*base, 4*base, ... capped at `max_s`.

    >>> backoff_delays(5, 0.1, 0.3)
    [0.1, 0.2, 0.3, 0.3]
    """
    return Backoff(base_s, max_s).delays(attempts - 1)


def retry_with_backoff(
    fn: Callable[[], T],
    *,
    attempts: int,
    base_s: float,
    max_s: float,
    retry_on: tuple[type[Exception], ...],
    on_retry: Callable[[int, Exception, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` until it succeeds, waiting longer after each failure, then give up and re-raise.

    Args:
        fn: the work; called with no arguments.
        attempts: how many calls at most (1 means no retry).
        base_s: the wait after the first failure; doubled after each further one.
        max_s: the longest wait.
        retry_on: the exception types that are worth another try; any other propagates at once.
        on_retry: called as `on_retry(attempt, error, delay_s)` before each wait, e.g. to log or to
            reconnect; `attempt` counts from 1.
        sleep: how to wait (tests pass a fake).

    Returns:
        What `fn` returned.

    Raises:
        ValueError: `attempts` is below 1.
        Exception: the last error of `fn` once the attempts are used up, with a note saying so.
    """
    if attempts < 1:
        msg = f"attempts must be at least 1, was {attempts}"
        raise ValueError(msg)
    delays = backoff_delays(attempts, base_s, max_s)
    attempt = 1
    while True:
        try:
            return fn()
        except retry_on as exc:
            if attempt >= attempts:
                if attempts > 1:
                    with _counts_lock:
                        _gave_up[store_of(exc)] += 1
                exc.add_note(f"gave up after {attempts} attempts")
                raise
            with _counts_lock:
                _retries[store_of(exc)] += 1
            delay = delays[attempt - 1]
            log.warning(
                "sink_retry",
                extra={"fields": {"attempt": attempt, "of": attempts, "delay_s": delay,
                                  "error": type(exc).__name__, "detail": str(exc)[:200]}},
            )  # fmt: skip
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1


def retry_policy_call(
    fn: Callable[[], T], policy: RetryPolicy, retry_on: tuple[type[Exception], ...]
) -> T:
    """`retry_with_backoff` with the attempts and waits of `policy`."""
    return retry_with_backoff(
        fn, attempts=policy.attempts, base_s=policy.base_s, max_s=policy.max_s, retry_on=retry_on
    )
