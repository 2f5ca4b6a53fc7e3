"""The audit trail keeps how an order is identified (issue 18): a cancel (35=F) or
cancel/replace (35=G) carrying OrderID (37) is stored with it, and the trading history shows
each event's OrigClOrdID (41). Raw FIX -> replay (decoder, audit flow) -> ClickHouse
`audit_log` and the named report; real Redis and PostgreSQL (tests/conftest.py), chdb under
the test's data dir."""

from __future__ import annotations

from pathlib import Path

import simplefix

from brokerflow.commands.replay import replay
from brokerflow.commands.report import run_report
from sinks.clickhouse import open_store


def _message(seq: int, msg_type: str, at: str, *pairs: tuple[int, str]) -> bytes:
    m = simplefix.FixMessage()
    for tag, value in ((8, "FIX.4.4"), (35, msg_type), (49, "BROKER"), (56, "VENUE"),
                       (34, str(seq)), (52, f"20240304-{at}.000"), *pairs):  # fmt: skip
        m.append_pair(tag, value)
    m.append_pair(60, f"20240304-{at}.000")
    return m.encode() + b"\n"


def _day(path: Path) -> Path:
    order = ((1, "ACC1"), (55, "AAPL"), (54, "1"), (40, "2"))
    path.write_bytes(
        b"".join(
            [
                _message(1, "D", "10:00:00", (11, "C1"), *order, (38, "100"), (44, "10")),
                _message(2, "8", "10:00:01", (37, "V1"), (17, "E0"), (11, "C1"), (150, "0"),
                         (39, "0"), *order, (38, "100"), (44, "10"), (14, "0"), (151, "100"),
                         (6, "0")),
                _message(3, "G", "10:00:02", (11, "C2"), (41, "C1"), (37, "V1"), *order,
                         (38, "80"), (44, "10")),
                _message(4, "F", "10:00:03", (11, "Q1"), (41, "C2"), (37, "V1"), *order,
                         (38, "80")),
                # a cancel without 37, as FIX allows
                _message(5, "F", "10:00:04", (11, "Q2"), (41, "C2"), *order, (38, "80")),
            ]
        )
    )  # fmt: skip
    return path


def test_audit_rows_of_requests_carry_order_id_and_history_orig_cl_ord_id(
    tmp_path: Path, settings_factory
) -> None:
    settings = settings_factory()
    summary = replay([_day(tmp_path / "day.fix")], settings, progress=False,
                     flows=("quotes", "audit")).as_dict()  # fmt: skip
    assert summary["dead_letters"] == 0
    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        _, rows = store.query(
            "SELECT event_type, cl_ord_id, orig_cl_ord_id, order_id FROM audit_log FINAL "
            "ORDER BY timestamp"
        )
        period = {"account": "ACC1", "from": "2024-03-04", "to": "2024-03-05"}
        columns, history = run_report(store, "trading_history", period)
    finally:
        store.close()
    assert rows == [
        ("ORDER_PLACED", "C1", "", ""),
        ("ORDER_ACCEPTED", "C1", "", "V1"),
        ("ORDER_MODIFIED", "C2", "C1", "V1"),
        ("ORDER_CANCEL_REQUESTED", "Q1", "C2", "V1"),
        ("ORDER_CANCEL_REQUESTED", "Q2", "C2", ""),
    ]
    assert columns[columns.index("cl_ord_id") + 1] == "orig_cl_ord_id"
    named = [dict(zip(columns, row, strict=True)) for row in history]
    assert [(r["cl_ord_id"], r["orig_cl_ord_id"], r["order_id"]) for r in named] == [
        (cl_ord_id, orig, order_id) for _, cl_ord_id, orig, order_id in rows
    ]
