"""The ledger writer's holdings documents (Redis `positions:{account}`), against real PostgreSQL
and Redis: after every batch each changed account's document is what the tables say, whether
the writer built it from its cache or read it whole."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from decimal import Decimal

import psycopg
import pytest
import redis

from domain.positions import NS_PER_DAY, day_of
from sinks.ledger import HoldingsDocCache, LedgerWriter
from sinks.positions import HOLDINGS, MARGIN, PositionsPublisher
from tests.contract.sinks.test_ledger import T0, db, fill, report  # noqa: F401 - db: a fixture

SYMBOLS = ("AAPL", "MSFT", "IBM")


def expected_doc(dsn: str, account: str, ts_ms: int) -> dict:
    """The document as the tables say: cash, and the holdings open or traded on ts's day (ts:
    the account row's event time of its document)."""
    day = day_of(ts_ms * 1_000_000)
    with psycopg.connect(dsn) as conn:
        cash = conn.execute(
            "SELECT cash, positions_ts_ns, positions_version FROM accounts WHERE account = %s",
            (account,),
        ).fetchone()
        rows = conn.execute(
            "SELECT symbol, quantity, avg_price, pnl_day, realised_pnl_day FROM holdings "
            "WHERE account = %s ORDER BY symbol",
            (account,),
        ).fetchall()
    holdings = []
    for symbol, quantity, avg, pnl_day, day_pnl in rows:
        today = pnl_day is not None and (pnl_day.toordinal() - 719_163) == day
        if quantity or today:
            holdings.append({"symbol": symbol, "quantity": quantity, "avg_price": avg,
                             "realised_pnl_today": day_pnl if today else 0})  # fmt: skip
    assert cash[1] // 1_000_000 == ts_ms
    return {"account": account, "cash": cash[0], "holdings": holdings, "ts": ts_ms}


def published(client: redis.Redis, account: str) -> dict:
    raw = client.get(f"positions:{account}")
    assert raw is not None
    return json.loads(raw, parse_float=Decimal)


@pytest.fixture
def client(redis_db_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_db_url)


def test_ledger_holdings_documents_match_the_tables_after_every_batch(
    db: str,  # noqa: F811
    redis_db_url: str,
    client: redis.Redis,
):
    rng = random.Random(19)
    publisher = PositionsPublisher(redis_db_url)
    cache = HoldingsDocCache()
    positions = {(a, s): 0 for a in ("A1", "A2") for s in SYMBOLS}
    n = 0
    with psycopg.connect(db, autocommit=True) as conn:
        for batch_no in range(12):
            events = []
            for _ in range(rng.randint(1, 6)):
                n += 1
                account, symbol = rng.choice(("A1", "A2")), rng.choice(SYMBOLS)
                held = positions[account, symbol]
                side = "2" if held > 0 and rng.random() < 0.5 else "1"
                qty = rng.randint(1, held) if side == "2" else rng.randint(1, 50)
                positions[account, symbol] = held + (qty if side == "1" else -qty)
                px = f"{rng.randint(900, 1100) / 100:.2f}"
                day_shift = NS_PER_DAY if batch_no >= 8 else 0  # the last batches: the next day
                e = fill(f"E{n}", str(qty), px, str(qty), cl_ord_id=f"c{n}", account=account,
                         symbol=symbol, side=side, order_qty=str(qty))  # fmt: skip
                events.append(replace(e, ts_event=T0 + n * 10**9 + day_shift))
            if batch_no == 5:
                # Another writer changes A1's holdings between batches (as `load positions`
                # does: its row is updated too): the cached document must not hide it.
                conn.execute("UPDATE holdings SET quantity = quantity + 7 WHERE account = 'A1'")
                conn.execute("UPDATE accounts SET updated_at = now() WHERE account = 'A1'")
                positions.update({k: v + 7 for k, v in positions.items() if k[0] == "A1"})
            result = LedgerWriter(conn, positions=publisher, cache=cache).apply(events)
            assert result.dead_letters == []
            changed = {e.account for e in events}
            assert {account for account, _, _ in result.positions} == changed
            for account in changed:
                doc = published(client, account)
                assert doc == expected_doc(db, account, doc["ts"])
    assert len(cache.entries) == 2  # the documents came from the cache after the first read
    publisher.close()


def test_margin_document_never_goes_back_in_event_time(redis_db_url: str, client: redis.Redis):
    publisher = PositionsPublisher(redis_db_url)
    newer = '{"account":"A1","equity":900,"excess":600,"state":"NORMAL","ts":2000}'
    older = '{"account":"A1","equity":100,"excess":-50,"state":"CALL","ts":1000}'
    assert publisher.publish(MARGIN, [("A1", 2000, newer)]) == 1
    assert publisher.publish(MARGIN, [("A1", 1000, older)]) == 0  # a replayed, older row
    assert client.get("margin:A1") == newer.encode()
    assert [f[b"data"] for _, f in client.xrange("stream:positions")] == [newer.encode()]
    publisher.close()


def test_ledger_holdings_document_drops_a_holding_a_late_bust_closes(
    db: str,  # noqa: F811
    redis_db_url: str,
    client: redis.Redis,
):
    publisher = PositionsPublisher(redis_db_url)
    writer_cache = HoldingsDocCache()
    next_day = NS_PER_DAY

    def book(conn: psycopg.Connection, *events: object) -> None:
        LedgerWriter(conn, positions=publisher, cache=writer_cache).apply(list(events))

    with psycopg.connect(db, autocommit=True) as conn:
        book(conn, fill("e1", "10", "50", "10", cl_ord_id="c1", account="A2", symbol="XYZ", n=1))
        second = fill("e2", "5", "10", "5", cl_ord_id="c2", account="A2", symbol="AAPL", n=2)
        book(conn, replace(second, ts_event=second.ts_event + next_day))
        assert [h["symbol"] for h in published(client, "A2")["holdings"]] == ["AAPL", "XYZ"]
        # The next day the venue busts yesterday's XYZ fill: nothing open, nothing traded
        # today in XYZ, so it leaves today's document.
        bust = report("h1", "H", cl_ord_id="c1", account="A2", symbol="XYZ", last_qty="10",
                      last_px="50", cum_qty="0", ref="e1", n=3)  # fmt: skip
        book(conn, replace(bust, ts_event=bust.ts_event + next_day))
        doc = published(client, "A2")
        assert [h["symbol"] for h in doc["holdings"]] == ["AAPL"]
        assert doc == expected_doc(db, "A2", doc["ts"])
    publisher.close()


def test_holdings_document_of_an_earlier_commit_published_late_is_left_out(
    redis_db_url: str, client: redis.Redis
):
    publisher = PositionsPublisher(redis_db_url)
    later = '{"account":"A1","cash":900,"holdings":[],"ts":1000}'
    earlier = '{"account":"A1","cash":500,"holdings":[],"ts":1000}'  # same event time
    assert publisher.publish(HOLDINGS, [("A1", 3, later)]) == 1
    assert publisher.publish(HOLDINGS, [("A1", 2, earlier)]) == 0  # another writer, late
    assert client.get("positions:A1").decode() == later
    assert publisher.publish(HOLDINGS, [("A1", 3, later)]) == 0  # the same again: no entry
    assert client.xlen("stream:positions") == 1
    publisher.close()
