"""Order events end to end: FIX file -> replay -> PostgreSQL ledger and ClickHouse audit trail.

Runs against real PostgreSQL and Redis (tests/conftest.py) and chdb under the test's data dir.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from brokerflow.cli import main
from brokerflow.commands.replay import replay
from simulator.market import MarketSimulator
from simulator.orders import OrderFlowSimulator, round_avg
from sinks.clickhouse import open_store
from tests.flows.test_quotes_flow import fix, snapshot, ts, write_file

ORDER_TYPES = (b"35=8", b"35=D", b"35=F", b"35=G")


@pytest.fixture
def settings(settings_factory):
    return settings_factory()


def load(settings, kind: str, path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    assert main(["load", kind, str(path), "--data-dir", str(settings.data_dir)]) == 0


def ledger_state(dsn: str) -> tuple[dict, dict, int]:
    with psycopg.connect(dsn) as conn:
        cash = dict(conn.execute("SELECT account, cash FROM accounts").fetchall())
        holdings = {
            (a, s): (q, p)
            for a, s, q, p in conn.execute(
                "SELECT account, symbol, quantity, avg_price FROM holdings WHERE quantity <> 0"
            )
        }
        executions = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
    return cash, holdings, executions


def audit_rows(settings, sql: str) -> list[tuple]:
    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        return store.query(sql)[1]
    finally:
        store.close()


def order_event_lines(path: Path) -> int:
    return sum(
        1 for line in path.read_bytes().splitlines() if line.split(b"\x01")[2] in ORDER_TYPES
    )


def test_replay_books_the_simulated_order_flow_and_audits_every_order_event(
    tmp_path, settings, monkeypatch
):
    sim = OrderFlowSimulator(MarketSimulator(symbols=4, seed=11), accounts=12,
                             orders_per_minute=900)  # fmt: skip
    path = tmp_path / "day.fix"
    sim.write_file(path, minutes=2)
    sim.accounts_csv(tmp_path / "accounts.csv")
    sim.positions_csv(tmp_path / "positions.csv")
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)
    load(settings, "positions", tmp_path / "positions.csv", monkeypatch)
    assert sim.fills_emitted > 50, "the simulated day should trade"

    summary = replay([path], settings, progress=False).as_dict()

    expected = sim.expected_ledger()
    cash, holdings, executions = ledger_state(settings.postgres_dsn)
    assert cash == {a: e.cash for a, e in expected.items()}
    # The ledger keeps the exact average; the simulator states it to 6 places.
    assert {key: (q, round_avg(avg)) for key, (q, avg) in holdings.items()} == {
        (a, s): (Decimal(q), avg)
        for a, e in expected.items()
        for s, (q, avg) in e.holdings.items()
    }
    assert summary["dead_letters"] == 0
    assert summary["executions"] == executions > 0
    events = order_event_lines(path)
    [(rows, distinct)] = audit_rows(
        settings, "SELECT count(), uniqExact(event_id) FROM audit_log"
    )
    assert rows == distinct == events

    # A second replay of the same file changes no balance and adds no audit event.
    again = replay([path], settings, progress=False).as_dict()
    assert ledger_state(settings.postgres_dsn) == (cash, holdings, executions)
    assert again["executions"] == 0
    [(distinct_after,)] = audit_rows(settings, "SELECT uniqExact(event_id) FROM audit_log")
    assert distinct_after == events


def new_order(cl_ord_id: str, account: str, at_ms: int, seq: int) -> bytes:
    return fix(
        "D",
        [(11, cl_ord_id), (1, account), (55, "ACME"), (54, 1), (60, ts(at_ms)),
         (38, 100), (40, 2), (44, "10.10")],
        seq,
        ts(at_ms),
    )  # fmt: skip


def fill(exec_id: str, cl_ord_id: str, account: str, qty: int, cum: int, px: str, at_ms: int,
         seq: int) -> bytes:  # fmt: skip
    return fix(
        "8",
        [(37, "O-" + cl_ord_id), (11, cl_ord_id), (17, exec_id), (150, "F"),
         (39, "2" if cum == 100 else "1"), (1, account), (55, "ACME"), (54, 1), (38, 100),
         (32, qty), (31, px), (14, cum), (151, 100 - cum), (6, px), (60, ts(at_ms))],
        seq,
        ts(at_ms + 5),  # sent a little after the trade: the snapshot is taken at TransactTime
    )  # fmt: skip


def test_audit_row_of_a_fill_carries_the_quote_current_at_its_transact_time(
    tmp_path, settings, monkeypatch
):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,100000\n")
    load(settings, "accounts", accounts, monkeypatch)
    lines = [
        snapshot("ACME", 0, "10.00", 100, "10.10", 200, seq=1),
        new_order("C1", "ACC1", 1_000, 2),
        snapshot("ACME", 1_500, "10.02", 300, "10.12", 400, seq=3),
        fill("E1", "C1", "ACC1", 40, 40, "10.10", 2_000, 4),
        # The market moves after the fill; the fill's audit row must not see it.
        snapshot("ACME", 2_001, "11.00", 1, "11.50", 1, seq=5),
        fill("E2", "C1", "ACC1", 60, 100, "10.12", 3_000, 6),
    ]
    summary = replay([write_file(tmp_path / "fills.fix", lines)], settings, progress=False)
    assert summary.as_dict()["dead_letters"] == 0
    rows = audit_rows(
        settings,
        "SELECT event_type, exec_id, market_snapshot, account, raw_fix FROM audit_log "
        "ORDER BY timestamp",
    )
    by_exec = {exec_id: (kind, json.loads(snap), acct, raw) for kind, exec_id, snap, acct, raw
               in rows}  # fmt: skip
    kind, snap, account, raw = by_exec["E1"]
    assert (kind, account) == ("ORDER_FILLED", "ACC1")
    assert (snap["bid"], snap["ask"]) == (10.02, 10.12)
    assert "17=E1" in raw
    _, snap2, _, _ = by_exec["E2"]
    assert (snap2["bid"], snap2["ask"]) == (11.0, 11.5)
    placed = [r for r in rows if r[0] == "ORDER_PLACED"]
    assert len(placed) == 1 and json.loads(placed[0][2])["bid"] == 10.0

    cash, holdings, executions = ledger_state(settings.postgres_dsn)
    assert executions == 2
    assert cash["ACC1"] == Decimal("100000") - Decimal("40") * Decimal("10.10") - Decimal(
        "60"
    ) * Decimal("10.12")
    assert holdings[("ACC1", "ACME")][0] == 100


def test_bad_execution_reports_become_dead_letters_and_change_nothing(
    tmp_path, settings, monkeypatch
):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,1000\n")
    load(settings, "accounts", accounts, monkeypatch)

    def report(extra: list[tuple[int, object]], seq: int, drop: int | None = None) -> bytes:
        pairs = [(37, "O1"), (11, "C1"), (17, f"E{seq}"), (150, "F"), (39, "1"), (1, "ACC1"),
                 (55, "ACME"), (54, 1), (38, 100), (32, 10), (31, "10.00"), (14, 10),
                 (151, 90), (6, "10.00"), (60, ts(seq))]  # fmt: skip
        by_tag = dict(pairs)
        by_tag.update(dict(extra))
        if drop is not None:
            del by_tag[drop]
        return fix("8", list(by_tag.items()), seq, ts(seq))

    lines = [
        report([], 1, drop=17),  # no ExecID
        report([(14, 150), (151, 0)], 2),  # CumQty > OrderQty
        report([(151, 50)], 3),  # LeavesQty != OrderQty - CumQty
        report([(1, "NOBODY")], 4),  # unknown account
        report([(31, "-10.00")], 5),  # negative price
    ]
    summary = replay([write_file(tmp_path / "bad.fix", lines)], settings, progress=False)
    with psycopg.connect(settings.postgres_dsn) as conn:
        letters = conn.execute("SELECT source, reason FROM dead_letters ORDER BY source").fetchall()
    reasons = {src.rsplit(":", 1)[1]: reason for src, reason in letters}
    assert set(reasons) == {"1", "2", "3", "4", "5"}, letters
    assert "ExecID(17)" in reasons["1"]
    assert "CumQty(14)" in reasons["2"]
    assert "LeavesQty(151)" in reasons["3"]
    assert "NOBODY" in reasons["4"]
    assert "LastPx(31)" in reasons["5"]
    assert summary.as_dict()["dead_letters"] == 5
    cash, holdings, executions = ledger_state(settings.postgres_dsn)
    assert (cash, holdings, executions) == ({"ACC1": Decimal("1000")}, {}, 0)


def test_gdpr_pseudonymise_rewrites_ledger_audit_and_dead_letters(
    tmp_path, settings, monkeypatch, capsys
):
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,100000\nACC2,bob,5000\n")
    load(settings, "accounts", accounts, monkeypatch)
    bad = fill("E9", "C1", "ACC1", 10, 200, "10.10", 4_000, 7)  # CumQty > OrderQty
    lines = [
        snapshot("ACME", 0, "10.00", 100, "10.10", 200, seq=1),
        new_order("C1", "ACC1", 1_000, 2),
        fill("E1", "C1", "ACC1", 40, 40, "10.10", 2_000, 3),
        new_order("C2", "ACC2", 2_500, 4),
        fill("E2", "C2", "ACC2", 100, 100, "10.10", 3_000, 5),
        bad,
    ]
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False)
    before_cash, before_holdings, _ = ledger_state(settings.postgres_dsn)
    with psycopg.connect(settings.postgres_dsn) as conn:  # an analyst's suppression rule
        conn.execute("INSERT INTO suppressions (account, reason, actor, starts_at, ends_at) "
                     "VALUES ('ACC1', 'market maker', 'ann', now(), now() + interval '1 day')")

    capsys.readouterr()
    assert main(["gdpr", "pseudonymise", "ACC1", "--data-dir", str(settings.data_dir)]) == 0
    out = capsys.readouterr().out
    pseudonym = out.split(" -> ")[1].split()[0]
    assert pseudonym.startswith("psn_")

    cash, holdings, executions = ledger_state(settings.postgres_dsn)
    assert "ACC1" not in cash and cash[pseudonym] == before_cash["ACC1"]
    assert holdings[(pseudonym, "ACME")] == before_holdings[("ACC1", "ACME")]
    assert cash["ACC2"] == before_cash["ACC2"]
    with psycopg.connect(settings.postgres_dsn) as conn:
        for table in ("orders", "executions", "holdings", "accounts", "suppressions"):
            left = conn.execute(f"SELECT count(*) FROM {table} WHERE account = 'ACC1'").fetchone()
            assert left == (0,), table
        assert conn.execute(
            "SELECT count(*) FROM executions WHERE account = %s", (pseudonym,)
        ).fetchone() == (1,)
        raws = [bytes(r) for (r,) in conn.execute("SELECT raw FROM dead_letters")]
        assert raws and all(b"1=ACC1\x01" not in r for r in raws)
        assert any(f"1={pseudonym}\x01".encode() in r for r in raws)
        owner, mapped = conn.execute(
            "SELECT a.owner, m.account FROM accounts a JOIN pseudonym_map m "
            "ON m.pseudonym = a.account"
        ).fetchone()
        assert mapped == "ACC1" and owner != "alice"
    [(left,)] = audit_rows(
        settings,
        "SELECT count() FROM audit_log WHERE account = 'ACC1' OR position(raw_fix, '1=ACC1') > 0",
    )
    assert left == 0
    [(kept,)] = audit_rows(
        settings, f"SELECT count() FROM audit_log FINAL WHERE account = '{pseudonym}'"
    )
    assert kept == 2  # the order and its fill

    # Again: same pseudonym, nothing more to change.
    assert main(["gdpr", "pseudonymise", "ACC1", "--data-dir", str(settings.data_dir)]) == 0
    assert f"-> {pseudonym} (PostgreSQL: 0 rows" in capsys.readouterr().out
