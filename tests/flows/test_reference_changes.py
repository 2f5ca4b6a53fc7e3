"""Reference changes during the day (issue 20, part 1): 35=UA / 35=UC lines among the fills.

Replays of FIX files against real PostgreSQL and Redis (tests/conftest.py): an account opened
mid-day trades and is booked, a deposit cures a margin call at its place, a withdrawal counts
once however often it is delivered, bad movements are dead letters with their reason, and
surveillance knows the new account's owner from its opening on.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from brokerflow.commands.replay import replay
from connectors.fix.reference import account_changed_message, cash_moved_message
from connectors.fix.timefmt import parse_utc_timestamp
from tests.flows.test_executions_flow import load
from tests.flows.test_quotes_flow import fix, incremental, ts, write_file


def at(ms: int) -> int:
    """Event time (int UTC ns) `ms` milliseconds after 14:30:00 of the tests' day."""
    return parse_utc_timestamp(ts(ms).encode())


def opened(account: str, owner: str, cash: str, ms: int, **rates: str) -> bytes:
    return account_changed_message(account, owner, at(ms), opening_cash=cash, **rates)


def moved(account: str, amount: str, movement_id: str, ms: int) -> bytes:
    return cash_moved_message(account, amount, movement_id, at(ms))


def trade(symbol: str, px: str, at_ms: int, seq: int) -> bytes:
    return incremental([[(279, 0), (269, 2), (55, symbol), (270, px), (271, 1)]], at_ms, seq)


def fill(exec_id: str, account: str, symbol: str, side: int, qty: int, px: str, ms: int,
         match: str | None = None) -> bytes:  # fmt: skip
    pairs = [(37, "O-" + exec_id), (11, "C-" + exec_id), (17, exec_id), (150, "F"), (39, "2"),
             (1, account), (55, symbol), (54, side), (38, qty), (32, qty), (31, px),
             (14, qty), (151, 0), (6, px), (60, ts(ms))]  # fmt: skip
    if match is not None:
        pairs.append((880, match))
    return fix("8", pairs, 1, ts(ms))


def setup(tmp_path, settings, monkeypatch, accounts: str, positions: str = "") -> None:
    (tmp_path / "accounts.csv").write_text("account,owner,cash\n" + accounts)
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)
    if positions:
        (tmp_path / "positions.csv").write_text("account,symbol,quantity,avg_price\n" + positions)
        load(settings, "positions", tmp_path / "positions.csv", monkeypatch)


def run(tmp_path, settings, lines: list[bytes], flows: tuple[str, ...], name: str = "day.fix"):
    path = write_file(tmp_path / name, lines)
    return replay([path], settings, progress=False, flows=flows).as_dict()


def query(dsn: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def settings(settings_factory):
    return settings_factory(margin_grace_s=60)


# -- the ledger ------------------------------------------------------------------------------


def test_an_account_opened_mid_day_trades_and_is_booked(tmp_path, settings, monkeypatch):
    setup(tmp_path, settings, monkeypatch, "OLD1,olga,1000\n")
    dsn = settings.postgres_dsn
    lines = [
        fill("E0", "NEW1", "ACME", 1, 10, "20", 0),  # before its opening: not a known account
        opened("NEW1", "nina", "5000", 1_000, initial_margin="0.6", maintenance_margin="0.4"),
        fill("E1", "NEW1", "ACME", 1, 100, "20", 2_000),  # the same batch: booked
        fill("E2", "NEW1", "ACME", 2, 40, "21", 3_000),
    ]
    summary = run(tmp_path, settings, lines, ("ledger",))
    assert query(dsn, "SELECT owner, cash, initial_margin, maintenance_margin FROM accounts "
                      "WHERE account = 'NEW1'") == [
        ("nina", Decimal(5000) - 2000 + 840, Decimal("0.6"), Decimal("0.4"))
    ]  # fmt: skip
    assert query(dsn, "SELECT exec_id FROM executions WHERE account = 'NEW1' ORDER BY 1") == [
        ("E1",),
        ("E2",),
    ]
    assert query(dsn, "SELECT status FROM orders WHERE account = 'NEW1' ORDER BY 1") == [
        ("FILLED",),
        ("FILLED",),
    ]
    assert query(dsn, "SELECT quantity FROM holdings WHERE account = 'NEW1'") == [(60,)]
    [(source, reason)] = query(dsn, "SELECT source, reason FROM dead_letters")
    assert source.endswith(":1") and "'NEW1' is not a known account" in reason
    assert summary["dead_letters"] == 1

    # The same messages again (after a restart): the opening changes nothing, no fill is
    # booked twice. (A fill refused before the opening would be booked now: the account exists.)
    again = run(tmp_path, settings, lines[1:], ("ledger",), "again.fix")
    assert again["executions"] == again["dead_letters"] == 0
    assert query(dsn, "SELECT cash FROM accounts WHERE account = 'NEW1'") == [(Decimal(3840),)]


def test_a_withdrawal_counts_once_however_often_delivered(tmp_path, settings, monkeypatch):
    setup(tmp_path, settings, monkeypatch, "ACC1,alice,1000\n")
    dsn = settings.postgres_dsn
    withdrawal = moved("ACC1", "-250.50", "W-1", 1_000)
    summary = run(tmp_path, settings, [withdrawal, moved("ACC1", "100", "D-1", 2_000),
                                       withdrawal], ("ledger",))  # fmt: skip
    assert query(dsn, "SELECT cash FROM accounts WHERE account = 'ACC1'") == [(Decimal("849.50"),)]
    assert summary["dead_letters"] == 0
    # After a restart the same file again: no second booking, no dead letter.
    run(tmp_path, settings, [withdrawal], ("ledger",), "again.fix")
    assert query(dsn, "SELECT cash FROM accounts WHERE account = 'ACC1'") == [(Decimal("849.50"),)]
    assert query(dsn, "SELECT movement_id, account, amount FROM cash_movements ORDER BY 1") == [
        ("D-1", "ACC1", Decimal(100)), ("W-1", "ACC1", Decimal("-250.50"))
    ]  # fmt: skip
    assert query(dsn, "SELECT count(*) FROM dead_letters") == [(0,)]


def test_bad_cash_movements_are_dead_letters_with_their_reason(tmp_path, settings, monkeypatch):
    setup(tmp_path, settings, monkeypatch, "ACC1,alice,1000\n")
    dsn = settings.postgres_dsn
    lines = [
        moved("GHOST", "100", "M-1", 0),  # no such account
        moved("ACC1", "lots", "M-2", 1_000),  # not a number
        moved("ACC1", "100", "M-3", 2_000),
        moved("ACC1", "999", "M-3", 3_000),  # the id again, another amount
        opened("ACC2", "bob", "0", 4_000, initial_margin="0.2", maintenance_margin="0.5"),
    ]
    summary = run(tmp_path, settings, lines, ("ledger",))
    reasons = dict(query(dsn, "SELECT source, reason FROM dead_letters"))
    by_line = {source.rsplit(":", 1)[1]: reason for source, reason in reasons.items()}
    assert by_line == {
        "1": "Account(1) 'GHOST' is not a known account",
        "2": "CashAmount(5010) was 'lots', not a number",
        "4": "CashMovementID(5011) 'M-3' was already used for account 'ACC1', amount 100: "
        "not booked again",
        "5": "MaintenanceMarginRate(5003) was 0.5, not a fraction in (0, 0.2] (at most the "
        "initial rate)",
    }
    assert summary["dead_letters"] == 4
    assert query(dsn, "SELECT account, cash FROM accounts ORDER BY 1") == [("ACC1", 1100)]
