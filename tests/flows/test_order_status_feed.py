"""The traders' order-status feed: every execution report of an account, booked by the ledger
flow, lands on Redis `stream:orders` as the `order` frame the edge pushes — in order, with the
reject reason, each ExecID once."""

from __future__ import annotations

import json

import redis

from brokerflow.commands.replay import replay
from tests.flows.test_executions_flow import load
from tests.flows.test_quotes_flow import fix, ts, write_file

STATUS = {"0": "0", "1": "1", "2": "2", "4": "4", "8": "8", "5": "0", "H": "0", "C": "C"}


def report(exec_id, account, cl, exec_type, ord_status, at_ms, seq, *, order="O1", qty=100,
           last=0, cum=0, leaves=100, px="10.00", avg="0", text=None, orig=None,
           ref=None):  # fmt: skip
    pairs = [(37, order), (11, cl), (17, exec_id), (150, exec_type), (39, ord_status),
             (1, account), (55, "ACME"), (54, "1"), (38, qty), (40, "2"), (44, px),
             (32, last), (31, px if last else 0), (14, cum), (151, leaves), (6, avg),
             (60, ts(at_ms))]  # fmt: skip
    if text:
        pairs.append((58, text))
    if orig:
        pairs.append((41, orig))
    if ref:
        pairs.append((19, ref))
    return fix("8", pairs, seq, ts(at_ms))


def test_a_traders_orders_reach_stream_orders_in_order_with_the_reject_reason(
    tmp_path, settings_factory, monkeypatch
):
    settings = settings_factory()
    (tmp_path / "accounts.csv").write_text("account,owner,cash\nT1,tess,1000000\nU1,uma,1000\n")
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)
    lines = [
        report("E1", "T1", "C1", "0", "0", 0, 1),
        report("E2", "T1", "C1", "F", "1", 10, 2, last=40, cum=40, leaves=60, avg="10.00"),
        report("E3", "T1", "C2", "5", "1", 20, 3, orig="C1", qty=80, cum=40, leaves=40,
               avg="10.00"),  # replaced down to 80  # fmt: skip
        report("E4", "T1", "C2", "F", "2", 30, 4, qty=80, last=40, cum=80, leaves=0,
               avg="10.00"),  # fmt: skip
        report("E5", "T1", "C2", "H", "1", 40, 5, qty=80, cum=40, leaves=40, avg="10.00",
               ref="E4"),  # the exchange busts the last fill  # fmt: skip
        report("E6", "T1", "C9", "8", "8", 50, 6, order="O9", leaves=0,
               text="price outside the daily band"),  # fmt: skip
        report("E7", "U1", "D1", "0", "0", 60, 7, order="P1"),
        report("E8", "U1", "D1-X", "4", "4", 70, 8, order="P1", leaves=0, orig="D1"),
    ]
    day = write_file(tmp_path / "day.fix", lines)
    replay([day], settings, progress=False, flows=("ledger",))
    client = redis.Redis.from_url(settings.redis_url)
    entries = client.xrange("stream:orders")
    frames = [json.loads(fields[b"data"]) for _, fields in entries]
    by_account = [fields[b"account"].decode() for _, fields in entries]
    assert by_account == ["T1"] * 6 + ["U1"] * 2
    tess = [(f["exec_id"], f["status"], f["exec_type"]) for f in frames[:6]]
    assert tess == [
        ("E1", "NEW", "NEW"),
        ("E2", "PARTIALLY_FILLED", "TRADE"),
        ("E3", "REPLACED", "REPLACED"),
        ("E4", "FILLED", "TRADE"),
        ("E5", "PARTIALLY_FILLED", "TRADE_CANCEL"),
        ("E6", "REJECTED", "REJECTED"),
    ]
    fill = frames[1]
    assert (fill["last_qty"], fill["last_px"], fill["cum_qty"], fill["leaves_qty"]) == (
        40, 10.00, 40, 60)  # fmt: skip
    assert (fill["type"], fill["account"], fill["side"], fill["symbol"]) == (
        "order", "T1", "BUY", "ACME")  # fmt: skip
    assert frames[5]["reason"] == "price outside the daily band"
    assert frames[0]["reason"] is None
    assert frames[0]["ts"] == frames[1]["ts"] - 10
    assert (frames[7]["status"], frames[7]["cl_ord_id"]) == ("CANCELED", "D1-X")

    # The same file again: every ExecID is on the stream already; nothing is added.
    replay([day], settings, progress=False, flows=("ledger",))
    assert client.xlen("stream:orders") == len(lines)
    client.close()
