"""Margin on a stale book (issue 21): loaded accounts + FIX files -> account_margin, alerts and
the trader's `margin:{account}` document. A stale book's prices (here: a book crossed by
increments) move no mark: no call is raised on them, the last sound mark stands and the
document names it (`stale_marks`); the first sound 35=W is judged as any mark.

Real PostgreSQL and Redis (tests/conftest.py).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import redis

from brokerflow.commands.replay import replay
from tests.flows.test_margin_flow import alerts, margin_row, setup, trade
from tests.flows.test_quotes_flow import fix, incremental, ts, write_file


@pytest.fixture
def settings(settings_factory):
    # every move writes a row (and its document): the stale flag shows on the ABC move
    return settings_factory(margin_grace_s=60, margin_row_change=0)


def book(symbol: str, at_ms: int, seq: int, bid: str, ask: str, last: str) -> bytes:
    """A sound 35=W with its last trade."""
    pairs = [(55, symbol), (268, 3), (269, 0), (270, bid), (271, 100),
             (269, 1), (270, ask), (271, 100), (269, 2), (270, last), (271, 100)]  # fmt: skip
    return fix("W", pairs, seq, ts(at_ms))


def cross(symbol: str, bid: str, at_ms: int, seq: int) -> bytes:
    """An increment that adds a bid above the best ask: the increments crossed the book."""
    return incremental([[(279, 0), (269, 0), (55, symbol), (270, bid), (271, 100)]], at_ms, seq)


# 1,000 XYZ and 100 ABC, cash -13,000; maintenance 30 %. XYZ at 14, ABC at 50: equity
# 14,000 + 5,000 - 13,000 = 6,000 >= 0.3 x 19,000 = 5,700: NORMAL. XYZ at 11 would make
# 3,000 < 0.3 x 16,000 = 4,800: a call, if the price were trusted.
ACCOUNTS = "ACC7,gina,-13000\n"
POSITIONS = "ACC7,XYZ,1000,10\nACC7,ABC,100,50\n"
STALE_PART = [
    book("XYZ", 0, 1, "13.90", "14.10", "14"),
    book("ABC", 0, 2, "49.90", "50.10", "50"),
    cross("XYZ", "14.20", 1_000, 3),  # bid 14.20 >= ask 14.10: XYZ's book is stale (crossed)
    trade("XYZ", "11", 2_000, 4),  # a stale book's print: would call the account
    trade("XYZ", "10.50", 3_000, 5),
    trade("ABC", "50.50", 4_000, 6),  # ABC is sound: its mark moves, the account is judged
]


def run(tmp_path, settings, lines: list[bytes], name: str) -> dict:
    path = write_file(tmp_path / name, lines)
    return replay([path], settings, progress=False, flows=("ledger", "margin")).as_dict()


def margin_alerts(dsn: str) -> list[tuple]:
    return [a for a in alerts(dsn) if a[0].startswith("MARGIN")]


def test_no_call_on_a_stale_mark_and_a_call_once_a_sound_price_confirms_it(
    tmp_path, settings, monkeypatch
):
    setup(tmp_path, settings, monkeypatch, ACCOUNTS, POSITIONS)
    run(tmp_path, settings, STALE_PART, "stale.fix")
    assert margin_alerts(settings.postgres_dsn) == []
    equity, gross, _, state = margin_row(settings.postgres_dsn, "ACC7")
    # XYZ valued at its last sound mark 14: 14,000 + 5,050 - 13,000 = 6,050.
    assert (equity, gross, state) == (Decimal(6050), Decimal(19050), "NORMAL")
    r = redis.Redis.from_url(settings.redis_url)
    doc = json.loads(r.get("margin:ACC7"))
    assert (doc["state"], doc["stale_marks"]) == ("NORMAL", ["XYZ"])

    # The same day on: XYZ's next 35=W (sound) at 11 confirms the fall: called at its time.
    lines = STALE_PART + [book("XYZ", 5_000, 7, "10.90", "11.10", "11"),
                          trade("ABC", "50.60", 6_000, 8)]  # fmt: skip
    run(tmp_path, settings, lines, "day.fix")
    got = margin_alerts(settings.postgres_dsn)
    assert [k for k, *_ in got] == ["MARGIN_CALL"]
    _, account, at, details = got[0]
    assert account == "ACC7" and at.strftime("%H:%M:%S") == "14:30:05"
    assert Decimal(details["marks"]["XYZ"]) == Decimal(11)
    assert margin_row(settings.postgres_dsn, "ACC7")[3] == "CALL"
    doc = json.loads(r.get("margin:ACC7"))
    assert doc["state"] == "CALL" and "stale_marks" not in doc
    r.close()


def test_no_call_on_prices_after_an_rptseq_gap(tmp_path, settings, monkeypatch):
    from tests.flows.test_stops_stale_book import sequenced, sequenced_book

    setup(tmp_path, settings, monkeypatch, ACCOUNTS, POSITIONS)
    lines = [
        sequenced_book("XYZ", 0, 1, 10, "13.90", "14.10", "14"),
        sequenced_book("ABC", 0, 2, 10, "49.90", "50.10", "50"),
        sequenced("XYZ", "13.90", 1_000, 3, 11),
        sequenced("XYZ", "11", 2_000, 4, 13),  # RptSeq 13 after 11: stale; would call
        sequenced("XYZ", "10.50", 3_000, 5, 14),
        sequenced("ABC", "50.50", 4_000, 6, 11),
    ]
    run(tmp_path, settings, lines, "gap.fix")
    assert margin_alerts(settings.postgres_dsn) == []
    # XYZ at its last sound mark 13.90: 13,900 + 5,050 - 13,000 = 5,950.
    assert margin_row(settings.postgres_dsn, "ACC7")[0] == Decimal(5950)
    r = redis.Redis.from_url(settings.redis_url)
    assert json.loads(r.get("margin:ACC7"))["stale_marks"] == ["XYZ"]
    r.close()
