"""edge.positions.PositionsBook: documents and marks in, `positions` frames out (pure)."""

from __future__ import annotations

import json
from decimal import Decimal

from edge.positions import PositionsBook

D = Decimal


def holdings(account: str, *lines: tuple[str, str, str, str], cash: str = "1000", ts: int = 10):
    items = ",".join(
        f'{{"symbol":"{s}","quantity":{q},"avg_price":{a},"realised_pnl_today":{r}}}'
        for s, q, a, r in lines
    )
    return f'{{"account":"{account}","cash":{cash},"holdings":[{items}],"ts":{ts}}}'.encode()


def quote(symbol: str, ltp: float | None, bid: float = 1.0, ask: float = 2.0, ts: int = 20):
    doc = {"symbol": symbol, "bid": bid, "ask": ask, "ltp": ltp, "ts": ts, "seq": 1}
    return json.dumps(doc).encode()


def entry(account: str, kind: str, data: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    return b"1-0", {b"account": account.encode(), b"kind": kind.encode(), b"data": data}


def frame(book: PositionsBook, account: str) -> dict:
    return json.loads(book.frame(account), parse_float=Decimal)


def test_positions_frame_unrealised_pnl_long_short_closed_and_unmarked():
    book = PositionsBook()
    book.watch("A1")
    book.set_holdings("A1", holdings(
        "A1", ("LONG", "10", "100.5", "0"), ("SHORT", "-20", "50", "3.5"),
        ("DONE", "0", "0", "12"), ("NEW", "5", "7", "0"),
    ))  # fmt: skip
    book.on_quote("LONG", quote("LONG", 101.25, ts=30))
    book.on_quote("SHORT", quote("SHORT", None, bid=44.0, ask=46.0))  # no trade yet: the mid
    got = {h["symbol"]: h for h in frame(book, "A1")["holdings"]}
    assert got["LONG"]["unrealised_pnl"] == 10 * (D("101.25") - D("100.5"))
    assert (got["SHORT"]["mark"], got["SHORT"]["unrealised_pnl"]) == (D(45), -20 * (D(45) - 50))
    assert got["SHORT"]["unrealised_pnl"] > 0  # a short gains when the price falls
    assert (got["DONE"]["unrealised_pnl"], got["DONE"]["realised_pnl_today"]) == (0, 12)
    assert (got["NEW"]["mark"], got["NEW"]["unrealised_pnl"]) == (None, None)
    whole = frame(book, "A1")
    assert (whole["cash"], whole["equity"], whole["state"], whole["ts"]) == (1000, None, None, 30)


def test_positions_only_held_symbols_are_indexed_and_unwatching_forgets_them():
    book = PositionsBook()
    book.watch("A1")
    book.watch("A1")  # two connections of A1
    book.watch("B1")
    book.set_holdings("A1", holdings("A1", ("ACME", "5", "1", "0"), ("GONE", "0", "0", "1")))
    book.set_holdings("B1", holdings("B1", ("ACME", "1", "1", "0"), ("XYZ", "2", "1", "0")))
    assert book.by_symbol == {"ACME": {"A1", "B1"}, "XYZ": {"B1"}}  # not GONE: nothing open
    book.take_due()
    book.on_quote("IBM", quote("IBM", 3.0))  # held by nobody: nothing due
    assert book.take_due() == []
    book.unwatch("A1")
    assert "A1" in book.accounts  # one connection of A1 left
    book.unwatch("A1")
    book.unwatch("B1")
    assert (book.accounts, book.by_symbol, book.marks) == ({}, {}, {})


def test_positions_due_once_per_change_and_a_snapshot_never_overwrites_the_stream():
    book = PositionsBook()
    book.watch("A1")
    book.on_entries([entry("A1", "holdings", holdings("A1", ("ACME", "5", "1", "0"), ts=50))])
    book.on_entries([entry("Z9", "holdings", holdings("Z9", ("ACME", "9", "1", "0")))])
    assert "Z9" not in book.accounts  # nobody watches Z9
    # A snapshot read before the stream entry arrived is older: it is not taken.
    assert not book.set_holdings("A1", holdings("A1", ("ACME", "1", "1", "0"), ts=40), True)
    book.on_entries([entry("A1", "margin", b'{"equity":7,"excess":2,"state":"CALL","ts":60}')])
    assert [a for a, _ in book.take_due()] == ["A1"]
    assert book.take_due() == []
    book.on_quote("ACME", quote("ACME", 2.0, ts=70))
    book.on_quote("ACME", quote("ACME", 2.0, ts=80))  # same mark
    book.on_quote("ACME", quote("ACME", 9.0, ts=65))  # an older quote
    [(account, raw)] = book.take_due()
    got = json.loads(raw)
    assert (account, got["holdings"][0]["quantity"], got["holdings"][0]["mark"]) == ("A1", 5, 2.0)
    assert (got["equity"], got["excess"], got["state"], got["ts"]) == (7, 2, "CALL", 70)
    assert book.take_due() == []


def test_a_stale_quote_moves_no_mark_and_flags_the_holding_until_a_sound_one():
    book = PositionsBook()
    book.watch("A1")
    book.set_holdings("A1", holdings("A1", ("ACME", "10", "100", "0"), ("XYZ", "1", "5", "0")))
    book.on_quote("ACME", quote("ACME", 101.0, ts=30))
    book.take_due()
    stale = json.loads(quote("ACME", 80.0, bid=90.0, ask=89.0, ts=40))
    stale |= {"stale": True, "stale_reason": "crossed", "stale_since": 40}
    book.on_quote("ACME", json.dumps(stale).encode())
    [(_, raw)] = book.take_due()  # the flag is news: the holder is due
    got = {h["symbol"]: h for h in json.loads(raw, parse_float=Decimal)["holdings"]}
    assert (got["ACME"]["mark"], got["ACME"]["stale"]) == (101, True)  # the last sound mark
    assert got["ACME"]["unrealised_pnl"] == 10 and "stale" not in got["XYZ"]
    book.on_quote("ACME", json.dumps(stale).encode())
    assert book.take_due() == []  # still stale: nothing new
    book.on_quote("ACME", quote("ACME", 95.0, ts=50))  # sound again
    got = frame(book, "A1")["holdings"][0]
    assert (got["mark"], "stale" in got) == (95, False)
