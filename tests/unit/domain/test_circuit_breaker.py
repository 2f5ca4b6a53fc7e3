"""domain.circuit_breaker: the index circuit breaker's levels, ends and sources (issue 19)."""

from __future__ import annotations

import pytest

from domain.circuit_breaker import (
    NS_PER_DAY,
    NS_PER_S,
    BreakerPolicy,
    CircuitBreaker,
    CircuitBreakerStatus,
)
from domain.events import HALTED, OPEN, TradingSessionStatus
from domain.market_status import MarketStatusBook

MIN = 60 * NS_PER_S
DAY0 = 20_000 * NS_PER_DAY  # midnight UTC of some day
NOON = DAY0 + 12 * 3600 * NS_PER_S


def index_breaker(prev_close: float = 1000.0) -> CircuitBreaker:
    cb = CircuitBreaker(BreakerPolicy(index_symbol="IDX"))
    cb.on_price("IDX", prev_close, DAY0, close=True)
    return cb


@pytest.mark.parametrize(
    ("price", "level", "halt_ns"),
    [("899.99", 1, 45 * MIN), ("850", 2, 105 * MIN), ("799", 3, 9 * 3600 * NS_PER_S)],
)
def test_breaker_trips_the_design_level_with_its_duration(price, level, halt_ns):
    cb = index_breaker()
    assert cb.on_price("IDX", 900.01, NOON - 1) is None  # 9.999 %: nothing
    status = cb.on_price("IDX", float(price), NOON)
    assert (status.state, status.level, status.until_ns) == (HALTED, level, NOON + halt_ns)


def test_breaker_reopens_at_the_end_and_each_level_trips_once_a_day():
    cb = index_breaker()
    trip = cb.on_price("IDX", 890.0, NOON)
    assert cb.on_time(trip.until_ns - 1) is None
    reopen = cb.on_time(trip.until_ns + 5)
    assert (reopen.state, reopen.level, reopen.ts_event) == (OPEN, 1, trip.until_ns)
    assert cb.on_price("IDX", 880.0, trip.until_ns + 10) is None  # level 1 again: not today
    assert cb.on_price("IDX", 849.0, trip.until_ns + 20).level == 2  # deeper: trips
    # the next day re-arms every level; yesterday's last trade is the previous close
    cb = index_breaker()
    cb.on_price("IDX", 890.0, NOON)
    cb.on_time(NOON + 2 * 3600 * NS_PER_S)
    cb.on_price("IDX", 900.0, NOON + 3 * 3600 * NS_PER_S)
    tomorrow = NOON + NS_PER_DAY
    assert cb.on_price("IDX", 820.0, tomorrow) is None  # 8.9 % below 900
    assert cb.on_price("IDX", 809.0, tomorrow + 1).level == 1  # 10.1 %: level 1 re-armed


def test_deeper_level_during_a_halt_raises_the_level_and_keeps_the_later_end():
    cb = index_breaker()
    first = cb.on_price("IDX", 899.0, NOON)
    second = cb.on_price("IDX", 849.0, NOON + MIN)
    assert second.level == 2 and second.until_ns == NOON + MIN + 105 * MIN > first.until_ns


def test_basket_is_the_weighted_mean_of_each_symbols_move():
    cb = CircuitBreaker(BreakerPolicy(basket=(("A", 3.0), ("B", 1.0))))
    cb.on_price("A", 100.0, DAY0, close=True)
    cb.on_price("B", 50.0, DAY0, close=True)
    assert cb.on_price("B", 31.0, NOON) is None  # B -38 % weighs a quarter
    assert cb.decline() == pytest.approx(0.095)
    assert cb.on_price("A", 99.0, NOON + 1).level == 1  # (3 x 0.99 + 0.62) / 4: -10.25 %
    assert cb.on_price("C", 1.0, NOON + 2) is None  # not in the basket


def test_no_previous_close_trips_nothing():
    cb = CircuitBreaker(BreakerPolicy(index_symbol="IDX"))
    assert cb.on_price("IDX", 1.0, NOON) is None and cb.decline() is None


def session(state: str, ts: int) -> TradingSessionStatus:
    return TradingSessionStatus("1", state, {OPEN: "2", HALTED: "1"}[state], None, ts)


def trip(ts: int, until: int, level: int = 1) -> CircuitBreakerStatus:
    return CircuitBreakerStatus(HALTED, level, until, f"level {level}", ts)


def test_venue_status_wins_over_the_breaker():
    book = MarketStatusBook()
    change = book.apply(trip(10, 100))
    assert (change.state, change.source, change.level, change.until) == (
        HALTED,
        "circuit_breaker",
        1,
        100,
    )
    assert change.halt_started and not book.trading("X")
    # the venue resumes early: the breaker's halt ends, its own reopening then changes nothing
    change = book.apply(session(OPEN, 50))
    assert change.halt_ended and change.previous_source == "circuit_breaker"
    assert (change.state, change.level, change.until) == (OPEN, None, None)
    assert book.apply(CircuitBreakerStatus(OPEN, 1, None, "end", 100)) is None
    # the venue halted first: a trip leaves its halt as it is
    book.apply(session(HALTED, 200))
    assert book.apply(trip(210, 300)) is None and book.market.source == "venue"
    # a venue halt during the breaker's takes it over: one halt ends, the other starts
    book.apply(session(OPEN, 400))
    book.apply(trip(410, 500))
    change = book.apply(session(HALTED, 420))
    assert change.halt_ended and change.halt_started
    assert (change.previous_source, change.source) == ("circuit_breaker", "venue")
    assert book.apply(CircuitBreakerStatus(OPEN, 1, None, "end", 500)) is None
    assert not book.trading("X")


def test_breaker_halt_expires_by_itself_when_its_reopening_never_came():
    book = MarketStatusBook()
    book.apply(trip(10, 100))
    assert book.expire(99) is None and not book.trading("X")
    change = book.expire(150)
    assert (change.state, change.ts_event, change.previous_source) == (OPEN, 100, "circuit_breaker")
    assert change.halt_ended and book.trading("X")
    book.apply(session(HALTED, 200))  # a venue halt never expires
    assert book.expire(10**12) is None


def test_restore_from_the_stores_counts_only_what_came_before_the_first_event():
    """A resumed run: the index's close and the trip of level 1 stored before the first
    event; a level-2 trip stored after it is the killed run's, replayed: it trips again."""
    from domain.circuit_breaker import BreakerOpening, StoredQuote, StoredTrip

    trip, first = NOON, NOON + 10 * MIN
    opening = BreakerOpening(
        (StoredQuote("IDX", NOON + 20 * MIN, 1000.0, 850.0, True),),  # later than the first event
        (
            StoredTrip(1, trip, trip + 45 * MIN),
            StoredTrip(2, NOON + 20 * MIN, None),  # after the first event: replayed
            StoredTrip(3, trip - NS_PER_DAY, None),  # yesterday's
        ),
    )
    cb = CircuitBreaker(BreakerPolicy(index_symbol="IDX"), opening=opening)
    cb.restore(first)
    assert cb.decline() == 0.0  # today's close known; the stored last trade is later: not used
    assert cb.on_price("IDX", 880.0, first) is None  # level 1 tripped today already
    status = cb.on_price("IDX", 849.0, first + MIN)
    assert (status.level, status.until_ns) == (2, first + MIN + 105 * MIN)


def test_restore_resumes_the_running_halt_and_its_reopening():
    from domain.circuit_breaker import BreakerOpening, StoredQuote, StoredTrip

    quote = StoredQuote("IDX", NOON - MIN, 1000.0, 899.0, True)
    cb = CircuitBreaker(
        BreakerPolicy(index_symbol="IDX"),
        opening=BreakerOpening((quote,), (StoredTrip(1, NOON - MIN, NOON + 44 * MIN),)),
    )
    cb.restore(NOON)
    assert round(cb.decline(), 4) == 0.101  # the last trade before the first event counts
    assert cb.on_time(NOON + 43 * MIN) is None
    reopened = cb.on_time(NOON + 44 * MIN)
    assert (reopened.state, reopened.level, reopened.ts_event) == (OPEN, 1, NOON + 44 * MIN)
