"""domain.market_status: the venue's statuses as state and changes (issue 19)."""

from __future__ import annotations

import pickle

from domain.events import CLOSED, HALTED, OPEN, SecurityStatus, TradingSessionStatus
from domain.market_status import MarketStatusBook


def sec(state, ts, low=None, high=None, reason=None, symbol="ACME"):
    return SecurityStatus(symbol, state, None, reason, low, high, ts)


def ses(state, ts, reason=None):
    return TradingSessionStatus("1", state, "x", reason, ts)


def test_symbol_halt_and_resume():
    book = MarketStatusBook()
    assert book.trading("ACME") and not book.any_halt
    change = book.apply(sec(HALTED, 10, reason="news pending"))
    assert (change.scope, change.state, change.previous, change.since_ns) == (
        "ACME", HALTED, OPEN, 10
    )
    assert change.halt_started and not change.halt_ended
    assert not book.trading("ACME") and book.trading("OTHER") and book.any_halt
    assert book.apply(sec(HALTED, 11, reason="news pending")) is None  # nothing new
    change = book.apply(sec(OPEN, 20))
    assert change.halt_ended and change.reason is None and change.since_ns == 20
    assert book.trading("ACME") and not book.any_halt


def test_band_alone_keeps_state_and_since():
    book = MarketStatusBook()
    book.apply(sec(HALTED, 10, reason="LULD"))
    change = book.apply(sec(None, 15, low=90.0, high=110.0))
    assert (change.state, change.since_ns, change.reason) == (HALTED, 10, "LULD")
    assert (change.low_limit_px, change.high_limit_px) == (90.0, 110.0)
    assert not change.halt_started and not change.halt_ended
    frame = change.to_json()
    assert frame["type"] == "market_status" and frame["lower_band"] == 90.0


def test_market_wide_state_covers_every_symbol_and_pickles():
    book = MarketStatusBook()
    change = book.apply(ses(CLOSED, 5, "pre-open"))
    assert change.scope == "market" and change.halt_started
    assert not book.trading("ANY") and book.state_of("ANY") == CLOSED
    book = pickle.loads(pickle.dumps(book))
    assert book.apply(ses(OPEN, 9)).halt_ended and book.trading("ANY")
    assert change.to_json()["ts"] == 0 and change.to_json()["scope"] == "market"


def test_scope_status_pickled_before_the_breaker_loads_as_the_venues():
    """A recovery snapshot from before the breaker's fields existed."""
    from domain.market_status import ScopeStatus

    old = (None, {"state": "HALTED", "reason": "x", "since_ns": 5, "low_limit_px": None,
                  "high_limit_px": None})  # fmt: skip
    status = ScopeStatus.__new__(ScopeStatus)
    status.__setstate__(old)
    assert (status.state, status.source, status.level, status.until_ns) == (
        "HALTED", "venue", None, None
    )
