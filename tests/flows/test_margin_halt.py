"""Margin grace periods do not run while the market, or a held symbol, is halted (issue 19).

A call at 14:30:00 with a 60 s grace would liquidate at 14:31:00. A halt from 14:30:30 to
14:31:40 (70 s) holds the deadline: the liquidation comes at 14:32:10, the halt's end plus the
30 s of grace left. A halt of a symbol the account does not hold changes nothing. FIX files
replayed into real PostgreSQL and Redis."""

from __future__ import annotations

import pytest

from tests.flows.test_margin_flow import alerts, run, setup, trade
from tests.flows.test_quotes_flow import fix, ts


@pytest.fixture
def settings(settings_factory):
    return settings_factory(margin_grace_s=60)


def symbol_status(symbol: str, code: str, at_ms: int, seq: int) -> bytes:
    return fix("f", [(55, symbol), (326, code), (60, ts(at_ms))], seq, ts(at_ms))


def session_status(code: str, at_ms: int, seq: int) -> bytes:
    return fix("h", [(336, "1"), (340, code), (60, ts(at_ms))], seq, ts(at_ms))


def day(halt: bytes, resume: bytes) -> list[bytes]:
    return [
        trade("XYZ", "10", 0, 1),  # equity 2,000 < 3,000 maintenance: call at 14:30:00
        trade("ABC", "5", 10_000, 2),
        halt,  # 14:30:30
        trade("ABC", "5.10", 70_000, 4),  # past 14:31:00: no liquidation, the grace is held
        resume,  # 14:31:40: 30 s of grace left
        trade("ABC", "5.20", 125_000, 6),  # 14:32:05: still inside
        trade("XYZ", "10.20", 140_000, 7),  # 14:32:20: event time passed 14:32:10
    ]


@pytest.mark.parametrize(
    ("halt", "resume"),
    [
        (symbol_status("XYZ", "2", 30_000, 3), symbol_status("XYZ", "17", 100_000, 5)),
        (session_status("1", 30_000, 3), session_status("2", 100_000, 5)),
    ],
    ids=["held_symbol_halted", "market_halted"],
)
def test_grace_period_is_held_while_halted(tmp_path, settings, monkeypatch, halt, resume):
    setup(tmp_path, settings, monkeypatch, "ACC3,carol,-8000\n", "ACC3,XYZ,1000,10\n")
    summary = run(tmp_path, settings, day(halt, resume))
    assert summary["dead_letters"] == 0
    got = alerts(settings.postgres_dsn)
    assert [k for k, *_ in got] == ["MARGIN_CALL", "LIQUIDATION"]
    assert [at.strftime("%H:%M:%S") for _, _, at, _ in got] == ["14:30:00", "14:32:10"]


def test_halt_of_a_symbol_not_held_does_not_hold_the_grace(tmp_path, settings, monkeypatch):
    setup(tmp_path, settings, monkeypatch, "ACC3,carol,-8000\n", "ACC3,XYZ,1000,10\n")
    lines = day(symbol_status("ABC", "2", 30_000, 3), symbol_status("ABC", "17", 100_000, 5))
    run(tmp_path, settings, lines)
    got = alerts(settings.postgres_dsn)
    assert [(k, at.strftime("%H:%M:%S")) for k, _, at, _ in got] == [
        ("MARGIN_CALL", "14:30:00"), ("LIQUIDATION", "14:31:00")
    ]  # fmt: skip
