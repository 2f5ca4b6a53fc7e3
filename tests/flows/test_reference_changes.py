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


# -- margin ------------------------------------------------------------------------------------

MARGIN_FLOWS = ("quotes", "ledger", "margin")


def alerts(dsn: str) -> list[tuple]:
    return query(dsn, "SELECT kind, account, owner, to_char(event_time, 'HH24:MI:SS') "
                      "FROM alerts ORDER BY event_time, kind, account")  # fmt: skip


def test_deposits_and_withdrawals_judged_at_their_place(tmp_path, settings, monkeypatch):
    # Each holds 1,000 XYZ on -8,000 of cash: at 11, equity 3,000 < 3,300 (30 %): called.
    # CURE gets 2,000 at 14:30:03 (at 10.90: 4,900 >= 3,270 + the 2 % cure band: cured then);
    # STAY gets nothing and stays called. RICH holds 1,000 XYZ on -5,000 (5,900: fine) and
    # withdraws 3,000 at 14:30:04 (2,900 < 3,270: called then, by the withdrawal alone). NEW1
    # opens at 14:30:05 with 1,000 and buys 1,000 at 11: 900 < 3,270, called at once.
    setup(tmp_path, settings, monkeypatch, "CURE,cora,-8000\nSTAY,stan,-8000\nRICH,rita,-5000\n",
          "CURE,XYZ,1000,10\nSTAY,XYZ,1000,10\nRICH,XYZ,1000,10\n")  # fmt: skip
    deposit = moved("CURE", "2000", "D-1", 3_000)
    lines = [
        trade("XYZ", "12", 0, 1),
        trade("XYZ", "11", 1_000, 2),
        trade("XYZ", "10.90", 2_000, 3),  # a new mark: the window of 11 is judged
        deposit,
        deposit,  # delivered twice: counted once
        moved("RICH", "-3000", "W-1", 4_000),
        opened("NEW1", "nina", "1000", 5_000),
        fill("N1", "NEW1", "XYZ", 1, 1000, "11", 6_000),
        trade("XYZ", "10.90", 9_000, 4),
    ]
    run(tmp_path, settings, lines, MARGIN_FLOWS)
    dsn = settings.postgres_dsn
    assert alerts(dsn) == [
        ("MARGIN_CALL", "CURE", "cora", "14:30:01"),
        ("MARGIN_CALL", "STAY", "stan", "14:30:01"),
        ("MARGIN_CALL_CURED", "CURE", "cora", "14:30:03"),
        ("MARGIN_CALL", "RICH", "rita", "14:30:04"),
        ("MARGIN_CALL", "NEW1", "nina", "14:30:06"),
    ]
    states = dict(query(dsn, "SELECT account, state FROM account_margin"))
    assert states == {"CURE": "NORMAL", "STAY": "CALL", "RICH": "CALL", "NEW1": "CALL"}
    assert query(dsn, "SELECT account, cash FROM accounts ORDER BY 1") == [
        ("CURE", -6000), ("NEW1", -10000), ("RICH", -8000), ("STAY", -8000)
    ]  # fmt: skip

    # A restart on the same day: the movements are in the opening cash, not applied again.
    run(tmp_path, settings, [deposit, trade("XYZ", "11", 20_000, 5)], MARGIN_FLOWS, "next.fix")
    assert len(alerts(dsn)) == 5
    assert dict(query(dsn, "SELECT account, state FROM account_margin"))["CURE"] == "NORMAL"


# -- surveillance ------------------------------------------------------------------------------


def test_a_new_accounts_owner_is_known_to_surveillance(tmp_path, settings, monkeypatch):
    setup(tmp_path, settings, monkeypatch, "OLD1,olga,1000\n")
    lines = [
        opened("NEW1", "zoe", "100000", 0),
        opened("NEW2", "zoe", "100000", 500),
        # one trade, both sides zoe's: a wash trade by owner, matched by TrdMatchID (880)
        fill("B1", "NEW1", "XYZ", 1, 100, "10", 1_000, match="M1"),
        fill("S1", "NEW2", "XYZ", 2, 100, "10", 1_000, match="M1"),
    ]
    run(tmp_path, settings, lines, ("ledger", "surveillance"))
    got = query(settings.postgres_dsn, "SELECT kind, account, owner FROM alerts ORDER BY kind")
    assert got == [("WASH_TRADE", None, "zoe")]  # and no OWNERSHIP_MISSING for either


def test_a_late_copy_of_an_older_change_does_not_undo_a_newer_one(tmp_path, settings, monkeypatch):
    # On Kafka each partition carries a copy of every change; one may come late.
    setup(tmp_path, settings, monkeypatch, "ACC1,alice,1000\n")
    first = opened("ACC1", "bob", "0", 1_000)
    lines = [first, opened("ACC1", "carl", "0", 2_000, initial_margin="0.4",
                           maintenance_margin="0.2"), first]  # fmt: skip
    run(tmp_path, settings, lines, ("ledger",))
    assert query(settings.postgres_dsn, "SELECT owner, cash, initial_margin FROM accounts") == [
        ("carl", 1000, Decimal("0.4"))
    ]


# -- a simulated day with the back office's changes -------------------------------------------


def test_a_simulated_day_with_openings_and_movements_books_as_the_simulator_expects(
    tmp_path, settings, monkeypatch
):
    from simulator.market import MarketSimulator
    from simulator.orders import OrderFlowSimulator, round_avg

    sim = OrderFlowSimulator(MarketSimulator(symbols=4, seed=11), accounts=12,
                             orders_per_minute=900, reference_changes=True)  # fmt: skip
    path = tmp_path / "day.fix"
    sim.write_file(path, minutes=2)
    sim.accounts_csv(tmp_path / "accounts.csv")
    sim.positions_csv(tmp_path / "positions.csv")
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)
    load(settings, "positions", tmp_path / "positions.csv", monkeypatch)
    assert sim.by_type.get("UA") and sim.by_type.get("UC")
    opened = set(sim.accounts) - {f"ACC{n:05d}" for n in range(1, 13)}

    summary = replay([path], settings, progress=False).as_dict()

    dsn = settings.postgres_dsn
    expected = sim.expected_ledger()
    assert dict(query(dsn, "SELECT account, cash FROM accounts")) == {
        a: e.cash for a, e in expected.items()
    }
    holdings = query(dsn, "SELECT account, symbol, quantity, avg_price FROM holdings "
                          "WHERE quantity <> 0")  # fmt: skip
    assert {(a, s): (q, round_avg(p)) for a, s, q, p in holdings} == {
        (a, s): (q, avg) for a, e in expected.items() for s, (q, avg) in e.holdings.items()
    }
    assert summary["dead_letters"] == 0
    # the accounts opened during the day traded, and margin watches them
    traded = {a for (a,) in query(dsn, "SELECT DISTINCT account FROM executions")}
    assert opened & traded
    margin = {a for (a,) in query(dsn, "SELECT account FROM account_margin")}
    assert opened & traded <= margin
