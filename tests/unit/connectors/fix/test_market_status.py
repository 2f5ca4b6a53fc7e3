"""35=f SecurityStatus and 35=h TradingSessionStatus: decode, map, and dead-letter bad codes."""

from __future__ import annotations

import pytest

from connectors.fix.parse import decode_lines
from domain.events import CLOSED, HALTED, OPEN, SecurityStatus, TradingSessionStatus
from tests.flows.test_quotes_flow import fix, ts

DAY_NS = 1_795_617_000_000_000_000  # 2026-11-25 14:30:00 UTC


def decode(*lines: bytes):
    return decode_lines([line + b"\n" for line in lines], "file:t.fix", 1)


@pytest.mark.parametrize(
    ("code", "state"), [("2", HALTED), ("17", OPEN), ("3", OPEN), ("18", CLOSED), ("23", None)]
)
def test_security_status_maps_326(code, state):
    line = fix("f", [(55, "ACME"), (326, code), (327, "D"), (60, ts(1_500))], 1, ts(2_000))
    batch = decode(line)
    assert batch.dead_letters == []
    [event] = batch.events
    assert type(event) is SecurityStatus
    assert (event.symbol, event.state, event.trading_status) == ("ACME", state, code)
    assert event.reason == "news dissemination"
    assert event.ts_event == DAY_NS + 1_500_000_000  # TransactTime (60), not SendingTime
    assert event.raw == line and event.source == "file:t.fix:1"


def test_security_status_band_and_event_time_from_sending_time():
    line = fix("f", [(55, "ACME"), (1148, "90.5"), (1149, "110.5"), (58, "LULD")], 1, ts(3_000))
    [event] = decode(line).events
    assert (event.state, event.low_limit_px, event.high_limit_px) == (None, 90.5, 110.5)
    assert event.reason == "LULD"
    assert event.ts_event == DAY_NS + 3_000_000_000


@pytest.mark.parametrize(
    ("pairs", "tag", "words"),
    [
        ([(55, "ACME"), (326, "20")], 326, "SecurityTradingStatus(326) was '20'"),
        ([(55, "ACME"), (326, "99")], 326, "not a status we map"),
        ([(55, "ACME")], 326, "without SecurityTradingStatus(326)"),
        ([(326, "2")], 55, "Symbol(55)"),
        ([(55, "ACME"), (1148, "110"), (1149, "90")], 1148, "above HighLimitPrice"),
        ([(55, "ACME"), (1148, "-1")], 1148, "not a positive price"),
    ],
)
def test_security_status_bad_codes_are_dead_letters(pairs, tag, words):
    line = fix("f", pairs, 7, ts(0))
    batch = decode(line)
    assert batch.events == []
    [letter] = batch.dead_letters
    assert (letter.tag, letter.error, letter.raw, letter.source) == (
        tag, "FieldError", line, "file:t.fix:1"
    )
    assert words in letter.reason


@pytest.mark.parametrize(
    ("code", "state"), [("1", HALTED), ("2", OPEN), ("3", CLOSED), ("4", CLOSED), ("5", OPEN)]
)
def test_trading_session_status_maps_340(code, state):
    line = fix("h", [(336, "1"), (340, code), (58, "MWCB level 1")], 1, ts(500))
    [event] = decode(line).events
    assert type(event) is TradingSessionStatus
    assert (event.state, event.trad_ses_status, event.reason) == (state, code, "MWCB level 1")
    assert event.symbol == "market" and event.ts_event == DAY_NS + 500_000_000


@pytest.mark.parametrize("code", ["0", "7", "X"])
def test_trading_session_status_bad_codes_are_dead_letters(code):
    batch = decode(fix("h", [(336, "1"), (340, code)], 1, ts(0)))
    assert batch.events == []
    [letter] = batch.dead_letters
    assert letter.tag == 340 and f"TradSesStatus(340) was '{code}'" in letter.reason


def test_request_rejected_changes_nothing_and_missing_status_is_a_dead_letter():
    rejected = decode(fix("h", [(336, "1"), (340, "6")], 1, ts(0)))
    assert (rejected.events, rejected.dead_letters, rejected.messages) == ([], [], 1)
    [letter] = decode(fix("h", [(336, "1")], 1, ts(0))).dead_letters
    assert letter.tag == 340 and "missing" in letter.reason


def test_statuses_keep_their_place_among_market_data_and_the_instrument_list():
    lines = [
        fix("W", [(55, "ACME"), (268, 1), (269, 2), (270, "100"), (271, 5)], 1, ts(0)),
        fix("f", [(55, "ACME"), (326, "2")], 2, ts(1)),
        fix("h", [(336, "1"), (340, "1")], 3, ts(2)),
        fix("f", [(55, "OTHER"), (326, "2")], 4, ts(3)),
    ]
    batch = decode_lines(
        [line + b"\n" for line in lines], "file:t.fix", 1, instruments=frozenset({"ACME"})
    )
    assert [type(e).__name__ for e in batch.events] == [
        "MarketDataSnapshot", "SecurityStatus", "TradingSessionStatus"
    ]
    [letter] = batch.dead_letters
    assert letter.tag == 55 and "'OTHER'" in letter.reason
