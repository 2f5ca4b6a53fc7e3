"""The traders' positions feed, the pipeline side: after each committed ledger transaction the
holdings document of every account it changed is in Redis (`positions:{account}` and an entry of
`stream:positions`), with the day's realised P&L of unreversed fills; the margin flow's rows go
out as `margin:{account}` documents with them."""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg
import redis

from brokerflow.commands.replay import replay
from tests.flows.test_executions_flow import load
from tests.flows.test_quotes_flow import DAY, fix, write_file

NEXT_DAY = "20261126"


def at(day: str, second: int) -> str:
    return f"{day}-14:30:{second:02d}.000"


def fill(exec_id: str, account: str, symbol: str, side: str, qty: int, px: str, when: str,
         seq: int, exec_type: str = "F", ref: str | None = None) -> bytes:  # fmt: skip
    pairs = [(37, "O-" + exec_id), (11, "C-" + exec_id), (17, exec_id), (150, exec_type),
             (39, "2"), (1, account), (55, symbol), (54, side), (38, qty), (40, "2"),
             (44, px), (32, qty if exec_type == "F" else 0), (31, px), (14, qty), (151, 0),
             (6, px), (60, when)]  # fmt: skip
    if ref:
        pairs.append((19, ref))
    return fix("8", pairs, seq, when)


def new_order(exec_id: str, account: str, when: str, seq: int) -> bytes:
    pairs = [(37, "O-" + exec_id), (11, "C-" + exec_id), (17, exec_id), (150, "0"), (39, "0"),
             (1, account), (55, "ACME"), (54, "1"), (38, 5), (40, "2"), (44, "9.00"),
             (32, 0), (31, 0), (14, 0), (151, 5), (6, 0), (60, when)]  # fmt: skip
    return fix("8", pairs, seq, when)


def stream(client: redis.Redis) -> list[tuple[str, str, dict]]:
    return [
        (f[b"account"].decode(), f[b"kind"].decode(), json.loads(f[b"data"]))
        for _, f in client.xrange("stream:positions")
    ]


def doc(client: redis.Redis, key: str) -> dict:
    raw = client.get(key)
    assert raw is not None, f"no {key}"
    return json.loads(raw, parse_float=Decimal)


def day_pnl_from_executions(dsn: str) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    """(account, symbol) -> (holdings.realised_pnl_day, the sum over the day's unreversed rows)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT h.account, h.symbol, h.realised_pnl_day, coalesce(("
            "  SELECT sum(e.realised_pnl) FROM executions e WHERE e.account = h.account"
            "  AND e.symbol = h.symbol AND e.reversed_by IS NULL"
            "  AND (e.transact_time AT TIME ZONE 'UTC')::date = h.pnl_day), 0) "
            "FROM holdings h WHERE h.pnl_day IS NOT NULL"
        ).fetchall()
    return {(a, s): (kept, summed) for a, s, kept, summed in rows}


def test_ledger_publishes_the_holdings_document_of_each_account_it_changed(
    tmp_path, settings_factory, monkeypatch
):
    settings = settings_factory()
    (tmp_path / "accounts.csv").write_text("account,owner,cash\nT1,tess,100000\nU1,uma,1000\n")
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)
    day1 = write_file(tmp_path / "day1.fix", [
        fill("E1", "T1", "ACME", "1", 40, "10.10", at(DAY, 1), 1),
        fill("E2", "T1", "ACME", "1", 60, "10.12", at(DAY, 2), 2),   # avg 10.112
        fill("E3", "T1", "ACME", "2", 30, "10.50", at(DAY, 3), 3),   # +11.64, busted below
        fill("E4", "T1", "ACME", "2", 20, "10.60", at(DAY, 4), 4),   # +9.76
        fill("E5", "T1", "ACME", "2", 0, "10.50", at(DAY, 5), 5, exec_type="H", ref="E3"),
        fill("E6", "T1", "XYZ", "1", 10, "5.00", at(DAY, 6), 6),
        fill("E7", "T1", "XYZ", "2", 10, "6.00", at(DAY, 7), 7),     # closed today: +10
        new_order("E8", "U1", at(DAY, 8), 8),  # no fill: U1's holdings and cash unchanged
    ])  # fmt: skip
    client = redis.Redis.from_url(settings.redis_url)
    loaded = len(stream(client))  # the load's documents (test_load_publishes_…)
    replay([day1], settings, progress=False, flows=("ledger",))

    tess = doc(client, "positions:T1")
    assert tess == {
        "account": "T1",
        # 100000 - 40 x 10.10 - 60 x 10.12 + 20 x 10.60 - 10 x 5 + 10 x 6
        "cash": Decimal("99210.80"),
        "holdings": [
            {"symbol": "ACME", "quantity": 80, "avg_price": Decimal("10.112"),
             "realised_pnl_today": Decimal("9.76")},
            {"symbol": "XYZ", "quantity": 0, "avg_price": 0,
             "realised_pnl_today": Decimal("10")},
        ],
        "ts": tess["ts"],
    }  # fmt: skip
    assert tess["ts"] == 1_795_617_007_000  # E7's TransactTime, 2026-11-25 14:30:07 UTC
    versions = client.hgetall("positions:versions")  # the ledger's order of T1's documents
    assert int(versions[b"T1"]) >= 1 and int(versions.get(b"U1", 0)) == 0  # U1: the load's
    assert doc(client, "positions:U1")["ts"] == 0  # the load's: the ledger changed nothing of U1
    entries = stream(client)[loaded:]
    assert entries and {(a, k) for a, k, _ in entries} == {("T1", "holdings")}
    assert entries[-1][2] == json.loads(client.get("positions:T1"))
    assert all(kept == summed for kept, summed in day_pnl_from_executions(
        settings.postgres_dsn).values())  # fmt: skip

    # The same file again books nothing, so publishes nothing.
    replay([day1], settings, progress=False, flows=("ledger",))
    assert len(stream(client)) == loaded + len(entries)

    # The next day: the day's realised P&L starts again; yesterday's closed holding is gone.
    day2 = write_file(tmp_path / "day2.fix", [
        fill("F1", "T1", "ACME", "2", 10, "11.00", at(NEXT_DAY, 1), 1),  # +8.88
    ])  # fmt: skip
    replay([day2], settings, progress=False, flows=("ledger",))
    tess = doc(client, "positions:T1")
    assert tess["holdings"] == [
        {"symbol": "ACME", "quantity": 70, "avg_price": Decimal("10.112"),
         "realised_pnl_today": Decimal("8.88")},
    ]  # fmt: skip
    assert tess["cash"] == Decimal("99320.80")
    assert int(client.hget("positions:versions", "T1")) > int(versions[b"T1"])
    assert all(kept == summed for kept, summed in day_pnl_from_executions(
        settings.postgres_dsn).values())  # fmt: skip


def test_margin_flow_publishes_the_margin_document_with_each_row(
    tmp_path, settings_factory, monkeypatch
):
    from tests.flows.test_margin_flow import FLOWS, margin_row, run, setup, trade

    settings = settings_factory()
    setup(tmp_path, settings, monkeypatch, "ACC8,hal,0\n", "ACC8,XYZ,100,100\n")
    prices = ("100", "101.50", "103", "106")
    run(tmp_path, settings, [trade("XYZ", px, 1_000 * n, n + 1) for n, px in enumerate(prices)])
    assert FLOWS == ("quotes", "ledger", "margin")
    client = redis.Redis.from_url(settings.redis_url)
    hal = doc(client, "margin:ACC8")
    equity, gross, _ratio, state = margin_row(settings.postgres_dsn, "ACC8")
    # 100 XYZ at 106, no cash: equity 10,600; excess = equity - 30 % of the gross value 10,600.
    assert hal == {"account": "ACC8", "equity": Decimal(10600), "excess": Decimal(7420),
                   "state": "NORMAL", "ts": 1_795_617_003_000}  # fmt: skip
    assert (hal["equity"], hal["state"]) == (equity, state) and gross == Decimal(10600)
    entries = [(a, k, d) for a, k, d in stream(client) if k == "margin"]
    assert entries and all(a == "ACC8" for a, _, _ in entries)
    assert entries[-1][2] == json.loads(client.get("margin:ACC8"))


def test_load_publishes_the_loaded_accounts_holdings_documents(
    tmp_path, settings_factory, monkeypatch
):
    settings = settings_factory()
    (tmp_path / "accounts.csv").write_text("account,owner,cash\nL1,lee,2500.50\nL2,lou,10\n")
    (tmp_path / "positions.csv").write_text(
        "account,symbol,quantity,avg_price\nL1,ACME,100,9.5\nL1,XYZ,-20,31.25\n"
    )
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)
    client = redis.Redis.from_url(settings.redis_url)
    assert doc(client, "positions:L2") == {"account": "L2", "cash": 10, "holdings": [], "ts": 0}
    load(settings, "positions", tmp_path / "positions.csv", monkeypatch)
    assert doc(client, "positions:L1") == {
        "account": "L1", "cash": Decimal("2500.50"), "ts": 0,  # a load is no event
        "holdings": [
            {"symbol": "ACME", "quantity": 100, "avg_price": Decimal("9.5"),
             "realised_pnl_today": 0},
            {"symbol": "XYZ", "quantity": -20, "avg_price": Decimal("31.25"),
             "realised_pnl_today": 0},
        ],
    }  # fmt: skip
