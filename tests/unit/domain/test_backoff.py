"""The one backoff rule (domain.backoff) and its three users' schedules."""

from __future__ import annotations

import pytest

from domain.backoff import Backoff


def test_backoff_delays_double_then_cap() -> None:
    assert Backoff(0.1, 0.5).delays(5) == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert Backoff(0.1, 0.5).delays(0) == []
    assert Backoff(0.1, 0.5).delays(-1) == []


def test_backoff_delay_counts_failures_from_one() -> None:
    backoff = Backoff(0.5, 30.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 7, 8)] == [0.5, 1.0, 2.0, 30.0, 30.0]


def test_backoff_factor() -> None:
    assert Backoff(1.0, 100.0, factor=3.0).delays(4) == [1.0, 3.0, 9.0, 27.0]


@pytest.mark.parametrize(
    ("total_s", "tries"), [(0.0, 1), (0.2, 2), (0.3, 3), (0.6, 3), (0.61, 4), (30.0, 11)]
)
def test_backoff_tries_lasting_sums_waits_to_the_budget(total_s: float, tries: int) -> None:
    backoff = Backoff(0.2, 5.0)
    assert backoff.tries_lasting(total_s) == tries
    assert sum(backoff.delays(tries - 1)) >= total_s


def test_backoff_matches_the_callers_former_loops() -> None:
    # sinks.retry: min(max, base * 2**n); the FIX initiator: min(max, min * 2**(failures-1));
    # edge.reader: start at 0.1, double, cap at 5.0. The same floats, not just close ones.
    assert Backoff(0.2, 5.0).delays(8) == [min(5.0, 0.2 * 2**n) for n in range(8)]
    assert [Backoff(0.5, 30.0).delay(f) for f in range(1, 10)] == [
        min(30.0, 0.5 * 2 ** (f - 1)) for f in range(1, 10)
    ]
    doubled, wait = [], 0.1
    for _ in range(10):
        doubled.append(wait)
        wait = min(wait * 2, 5.0)
    assert Backoff(0.1, 5.0).delays(10) == doubled
