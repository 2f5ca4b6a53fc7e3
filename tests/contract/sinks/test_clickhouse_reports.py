"""The named reports on chdb against figures worked out by hand from `scenario()`, and
pseudonymisation.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from brokerflow.commands.gdpr import load_or_create_key, pseudonym_of, pseudonymise_clickhouse
from brokerflow.commands.report import run_report
from domain.audit import audit_record
from sinks.clickhouse import AUDIT_COLUMNS, ChdbStore, audit_rows
from tests.contract.sinks.clickhouse_cases import execution, quote, request

UTC = dt.UTC


def test_report_trading_history(book: ChdbStore) -> None:
    columns, rows = run_report(
        book, "trading_history", {"account": "ACC1", "from": "2024-03-04", "to": "2024-03-05"}
    )
    named = [dict(zip(columns, row, strict=True)) for row in rows]
    assert [r["event_type"] for r in named] == [
        "ORDER_PLACED",  # C1 10:00:00 (inserted twice, one row)
        "ORDER_ACCEPTED",  # A0
        "ORDER_MODIFIED",  # C1b request
        "ORDER_MODIFIED",  # R1 report
        "ORDER_FILLED",  # F1 (delivered twice, one row)
        "ORDER_FILLED",  # F2
        "ORDER_PLACED",  # C3
        "ORDER_FILLED",  # F4
        "TRADE_CANCELLED",  # F4X
        "ORDER_PLACED",  # C7
        "ORDER_CANCEL_REQUESTED",  # C9
    ]
    assert named[4]["exec_id"] == "F1" and named[4]["last_qty"] == Decimal(60)
    # the 35=G C1b replaces C1, and the 35=F C9 cancels C7: OrigClOrdID (41) beside ClOrdID
    assert columns[columns.index("cl_ord_id") + 1] == "orig_cl_ord_id"
    assert [(r["cl_ord_id"], r["orig_cl_ord_id"]) for r in named if r["orig_cl_ord_id"]] == [
        ("C1b", "C1"),
        ("C9", "C7"),
    ]
    assert (named[0]["bid"], named[0]["ask"]) == (100.0, 100.2)
    assert named[0]["timestamp"] == dt.datetime(2024, 3, 4, 10, tzinfo=UTC)


def test_report_wash_sales(book: ChdbStore) -> None:
    columns, rows = run_report(book, "wash_sales", {"from": "2024-03-01", "to": "2024-04-01"})
    named = [dict(zip(columns, row, strict=True)) for row in rows]
    # Sells in March: F4 (busted, out), F5 ACC1 AAPL 03-20 15:00, F3 ACC2 MSFT (no buy).
    # F5 pairs with ACC1's AAPL buys F1 and F2 of 03-04 (16 d 4 h 59 m before); F6 (36 days
    # after) and ACC2's F7 do not pair. (15:00:00 - 10:00:05) + 16 d = 1,400,395 s = 16.21 d.
    assert [(r["account"], r["symbol"], r["sell_exec_id"], r["buy_exec_id"]) for r in named] == [
        ("ACC1", "AAPL", "F5", "F1"),
        ("ACC1", "AAPL", "F5", "F2"),
    ]
    assert [r["days_apart"] for r in named] == [-16.21, -16.21]
    assert (named[0]["sell_qty"], named[0]["sell_px"]) == (Decimal(30), Decimal(99))
    assert (named[1]["buy_qty"], named[1]["buy_px"]) == (Decimal(40), Decimal("100.3"))
    _, none = run_report(book, "wash_sales", {"from": "2024-03-21", "to": "2024-04-01"})
    assert none == []


def test_report_best_execution(book: ChdbStore) -> None:
    columns, rows = run_report(book, "best_execution", {"from": "2024-03-04", "to": "2024-03-05"})
    named = {(r[0], r[1]): dict(zip(columns, r, strict=True)) for r in rows}
    assert set(named) == {("AAPL", "BUY"), ("MSFT", "SELL")}  # F4 busted: no AAPL SELL
    buy = named[("AAPL", "BUY")]
    # Arrival mid of O1: ORDER_PLACED C1 (10:00:00, mid 100.10; C1 → O1 through A0).
    # F1 60 @ 100.20: (100.20 - 100.10) / 100.10 = 9.99001 bps; F2 40 @ 100.30: 19.98002 bps.
    # Weighted: (60 * 9.99001 + 40 * 19.98002) / 100 = 13.986 → 13.99.
    # VWAP F1 over (10:00:00, 10:00:05]: (100 * 100.10 + 300 * 100.20) / 400 = 100.175
    #   → (100.20 - 100.175) / 100.175 = 2.49563 bps.
    # VWAP F2 over (10:00:00, 10:00:10]: (10010 + 30060 + 10040 + 10030) / 600 = 100.23333
    #   → (100.30 - 100.23333) / 100.23333 = 6.65115 bps.
    # Weighted: (60 * 2.49563 + 40 * 6.65115) / 100 = 4.15784 → 4.16.
    assert buy["fills"] == 2 and buy["quantity"] == Decimal(100)
    assert buy["avg_px"] == 100.24  # (60 * 100.20 + 40 * 100.30) / 100
    assert (buy["fills_with_arrival"], buy["arrival_slippage_bps"]) == (2, 13.99)
    assert (buy["fills_with_vwap"], buy["vwap_slippage_bps"]) == (2, 4.16)
    sell = named[("MSFT", "SELL")]
    # F3 sells 50 @ 400.00 against arrival mid 400.5: -(400 - 400.5) / 400.5 = 12.48439 bps.
    assert sell["fills"] == 1 and sell["avg_px"] == 400.0
    assert (sell["fills_with_arrival"], sell["arrival_slippage_bps"]) == (1, 12.48)
    assert (sell["fills_with_vwap"], sell["vwap_slippage_bps"]) == (0, None)  # no MSFT tape


def test_report_best_execution_clordid_reused_by_another_account_or_day(
    store: ChdbStore,
) -> None:
    """ClOrdIDs (11) are unique per account and day only (issue 18): X1 names three orders,
    ACC1's of 03-01 (O0) and of 03-04 (O1) and ACC2's of 03-04 (O2), each with its arrival.
    The acks carry no quote, so each order's arrival is its 35=D's, found through its ClOrdID."""
    aapl_early = quote("AAPL", 89.90, 90.10, "2024-03-01 10:00:00")  # mid 90.00
    aapl = quote("AAPL", 100.00, 100.20, "2024-03-04 10:00:00")  # mid 100.10
    msft = quote("MSFT", 400.0, 401.0, "2024-03-04 11:00:00")  # mid 400.50
    records = [
        audit_record(request("D", "X1", "ACC1", "AAPL", "1", "2024-03-01 10:00:00"), aapl_early),
        audit_record(
            execution("0", "A0", "O0", "X1", "ACC1", "AAPL", "1", "2024-03-01 10:00:01"), None
        ),
        audit_record(request("D", "X1", "ACC1", "AAPL", "1", "2024-03-04 10:00:00"), aapl),
        audit_record(
            execution("0", "A1", "O1", "X1", "ACC1", "AAPL", "1", "2024-03-04 10:00:01"), None
        ),
        audit_record(
            execution(
                "F",
                "F1",
                "O1",
                "X1",
                "ACC1",
                "AAPL",
                "1",
                "2024-03-04 10:01:00",
                "10",
                "100.20",
                "1",
            ),
            None,
        ),  # fmt: skip
        # ACC2's ack is stamped by the venue's clock, a second before our 35=D's
        audit_record(request("D", "X1", "ACC2", "MSFT", "1", "2024-03-04 11:00:01"), msft),
        audit_record(
            execution("0", "A2", "O2", "X1", "ACC2", "MSFT", "1", "2024-03-04 11:00:00"), None
        ),
        audit_record(
            execution(
                "F",
                "F2",
                "O2",
                "X1",
                "ACC2",
                "MSFT",
                "1",
                "2024-03-04 11:01:00",
                "10",
                "401.00",
                "1",
            ),
            None,
        ),  # fmt: skip
    ]
    store.insert("audit_log", AUDIT_COLUMNS, audit_rows(records))
    columns, rows = run_report(store, "best_execution", {"from": "2024-03-04", "to": "2024-03-05"})
    named = {(r[0], r[1]): dict(zip(columns, r, strict=True)) for r in rows}
    assert set(named) == {("AAPL", "BUY"), ("MSFT", "BUY")}
    # F1 10 @ 100.20 against O1's arrival mid 100.10 (not O0's 90.00): 9.99001 bps
    aapl_buy = named[("AAPL", "BUY")]
    assert (aapl_buy["fills_with_arrival"], aapl_buy["arrival_slippage_bps"]) == (1, 9.99)
    # F2 10 @ 401.00 against O2's arrival mid 400.50: 12.48439 bps
    msft_buy = named[("MSFT", "BUY")]
    assert (msft_buy["fills_with_arrival"], msft_buy["arrival_slippage_bps"]) == (1, 12.48)


def test_report_order_to_trade(book: ChdbStore) -> None:
    columns, rows = run_report(book, "order_to_trade", {"from": "2024-03-01", "to": "2024-05-01"})
    got = [
        (
            r["account"],
            str(r["day"]),
            r["placed"],
            r["modified"],
            r["cancelled"],
            r["fills"],
            r["ratio"],
        )
        for r in (dict(zip(columns, row, strict=True)) for row in rows)
    ]
    assert got == [
        # D: C1, C3, C7; G: C1b (R1, the venue's 150=5, is not a message); F: C9.
        # Fills F1 (twice delivered, once counted), F2; F4 busted. 5 / 2 = 2.5.
        ("ACC1", "2024-03-04", 3, 1, 1, 2, 2.5),
        ("ACC1", "2024-03-20", 0, 0, 0, 1, 0.0),
        ("ACC1", "2024-04-25", 0, 0, 0, 1, 0.0),
        ("ACC2", "2024-03-04", 1, 0, 0, 1, 1.0),
        ("ACC2", "2024-03-21", 0, 0, 0, 1, 0.0),
    ]


def test_run_report_missing_and_unknown_params(book: ChdbStore) -> None:
    from brokerflow.commands.report import ReportError

    with pytest.raises(ReportError, match="missing parameter 'account'"):
        run_report(book, "trading_history", {"from": "2024-03-04", "to": "2024-03-05"})
    with pytest.raises(ReportError, match="no parameter 'acount'"):
        run_report(book, "wash_sales", {"from": "a", "to": "b", "acount": "x"})
    with pytest.raises(ReportError, match="no report named 'nope'"):
        run_report(book, "nope", {})


# -- pseudonymisation -----------------------------------------------------------------------


def test_pseudonymise_clickhouse(book: ChdbStore, tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert load_or_create_key(tmp_path) == key  # kept in the data dir
    pseudonym = pseudonymise_clickhouse(book, "ACC1", key)
    assert pseudonym == pseudonym_of("ACC1", key) and "ACC1" not in pseudonym
    period = {"from": "2024-03-04", "to": "2024-03-05"}
    _, gone = run_report(book, "trading_history", {"account": "ACC1", **period})
    assert gone == []
    _, kept = run_report(book, "trading_history", {"account": pseudonym, **period})
    assert len(kept) == 11
    _, pairs = run_report(book, "wash_sales", {"from": "2024-03-01", "to": "2024-04-01"})
    assert {row[0] for row in pairs} == {pseudonym}
    _, left = book.query(
        "SELECT count() FROM audit_log WHERE account = 'ACC1' OR position(raw_fix, '1=ACC1') > 0"
    )
    assert left == [(0,)]
    _, mapped = book.query("SELECT account, pseudonym FROM pseudonym_map FINAL")
    assert mapped == [("ACC1", pseudonym)]
    # Again: nothing left to change, same pseudonym, one mapping row.
    assert pseudonymise_clickhouse(book, "ACC1", key) == pseudonym
    _, mapped = book.query("SELECT count() FROM pseudonym_map FINAL")
    assert mapped == [(1,)]
    # Other accounts are untouched.
    _, others = book.query("SELECT count() FROM audit_log FINAL WHERE account = 'ACC2'")
    assert others == [(3,)]
