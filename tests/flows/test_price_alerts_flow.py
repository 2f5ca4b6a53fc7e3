"""Traders' price alerts in the quotes flow (issue 19, part 3): FIX files replayed through the
real flow into real PostgreSQL and Redis. An alert fires once, as a PRICE_ALERT on
stream:alerts and in `alerts`, and its row turns FIRED; a second run over input that crosses it
again fires nothing; alerts created or deleted while the flow runs reach its book."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis

from brokerflow.commands.replay import replay
from domain.alerts import alert_id
from domain.price_alerts import PriceAlert
from flows import price_alerts as price_alerts_flow
from sinks import price_alerts as store
from sinks.postgres import migrate
from tests.flows.test_quotes_flow import incremental, write_file


def trade(symbol: str, px: str, at_ms: int, seq: int) -> bytes:
    return incremental([[(279, 0), (269, 2), (55, symbol), (270, px), (271, 100)]], at_ms, seq)


def day_file(path: Path, prices: list[str], symbol: str = "AAPL") -> Path:
    """One trade a second (past the coalescing window, so each price is published)."""
    return write_file(path, [trade(symbol, px, i * 1000, i + 1) for i, px in enumerate(prices)])


@pytest.fixture
def settings(settings_factory):
    made = settings_factory()
    migrate(made.postgres_dsn)
    return made


@pytest.fixture
def conn(settings):
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as c:
        yield c


def stream_alerts(settings) -> list[dict]:
    with redis.Redis.from_url(settings.redis_url) as r:
        entries = r.xrange("stream:alerts")
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def rows(conn, sql: str, *params) -> list[tuple]:
    return conn.execute(sql, params).fetchall()


def test_price_alert_fires_once_and_not_again_on_a_second_run(tmp_path, settings, conn):
    up = store.create(conn, user="ann", account="ACC1", symbol="AAPL", condition="ltp_above",
                      value="101")  # fmt: skip
    never = store.create(conn, user="ann", account="ACC1", symbol="AAPL",
                         condition="ltp_below", value="90")  # fmt: skip
    gone = store.create(conn, user="bob", account="ACC2", symbol="AAPL", condition="ltp_above",
                        value="100.5")  # fmt: skip
    store.delete(conn, gone.id)
    # 101.20 crosses 101 (the first trade at or above it: 2 s after 14:30), 101.50 again.
    path = day_file(tmp_path / "day.fix", ["100.00", "100.60", "101.20", "100.80", "101.50"])

    summary = replay([path], settings, progress=False, flows=("quotes",))

    assert summary.as_dict()["alerts"] == {"PRICE_ALERT": 1}
    fired_at = dt.datetime(2026, 11, 25, 14, 30, 2, tzinfo=dt.UTC)  # the file's day, 2 s in
    assert rows(conn, "SELECT id, status, fired_at, fired_ltp FROM price_alerts ORDER BY id") == [
        (up.id, "FIRED", fired_at, Decimal("101.2")),
        (never.id, "ACTIVE", None, None),
        (gone.id, "DELETED", None, None),
    ]
    expected_id = alert_id("PRICE_ALERT", f"price_alert:{up.id}")
    columns = "alert_id, kind, account, symbol, event_time, details"
    assert rows(conn, f"SELECT {columns} FROM alerts") == [
        (expected_id, "PRICE_ALERT", "ACC1", "AAPL", fired_at,
         {"id": up.id, "condition": "ltp_above", "value": "101", "ltp": 101.2, "user": "ann"}),
    ]  # fmt: skip
    [entry] = stream_alerts(settings)
    assert (entry["kind"], entry["account"]) == ("PRICE_ALERT", "ACC1")
    data = json.loads(entry["data"])
    assert (data["alert_id"], data["details"]["id"], data["details"]["ltp"]) == (
        expected_id, up.id, 101.2)  # fmt: skip

    # A restart over input that crosses it again: FIRED is not loaded, nothing fires again. A
    # new alert set between the runs fires in the second one (101.50 >= 101.4, at 4 s).
    later = store.create(conn, user="ann", account="ACC1", symbol="AAPL",
                         condition="ltp_above", value="101.4")  # fmt: skip
    again = replay([path], settings, progress=False, flows=("quotes",))

    assert again.as_dict()["alerts"] == {"PRICE_ALERT": 1}
    assert rows(conn, "SELECT id, status, fired_at FROM price_alerts WHERE status = 'FIRED' "
                      "ORDER BY id") == [
        (up.id, "FIRED", fired_at),
        (later.id, "FIRED", fired_at + dt.timedelta(seconds=2)),
    ]  # fmt: skip
    assert [r[0] for r in rows(conn, "SELECT details->>'id' FROM alerts ORDER BY 1")] == [
        str(up.id), str(later.id)]  # fmt: skip
    assert [json.loads(e["data"])["details"]["id"] for e in stream_alerts(settings)] == [
        up.id, later.id]  # fmt: skip


def test_change_pct_alert_fires_from_the_previous_close(tmp_path, settings, conn):
    # 35=W with a previous close (269=5 before the day's first trade) of 100.
    pct = store.create(conn, user="ann", account="ACC1", symbol="MSFT",
                       condition="change_pct_below", value="-2")  # fmt: skip
    close = incremental([[(279, 0), (269, 5), (55, "MSFT"), (270, "100"), (271, 0)]], 0, 1)
    lines = [close] + [trade("MSFT", px, (i + 1) * 1000, i + 2)
                       for i, px in enumerate(["99.00", "98.10", "97.90", "97.00"])]  # fmt: skip
    replay([write_file(tmp_path / "pct.fix", lines)], settings, progress=False, flows=("quotes",))

    # -2 % of 100 is 98: the first LTP at or below it is 97.90, at 3 s.
    assert rows(conn, "SELECT id, status, fired_ltp FROM price_alerts") == [
        (pct.id, "FIRED", Decimal("97.9"))]  # fmt: skip


def test_alerts_created_and_deleted_while_the_flow_runs_reach_its_book(
    tmp_path, settings, conn, monkeypatch
):
    """The book follows the table by polling (change_seq): right after the book's first load,
    one alert is deleted and another created; the poll (every batch here, instead of at most
    once a second) brings both into the book before the price that crosses them."""
    doomed = store.create(conn, user="ann", account="ACC1", symbol="IBM",
                          condition="ltp_above", value="150")  # fmt: skip
    # Many batches of IBM at 100 (the file source reads in chunks), then 200 at the end.
    prices = ["100.00"] * 20_000 + ["200.00"]
    lines = [trade("IBM", px, i * 50, i + 1) for i, px in enumerate(prices)]
    path = write_file(tmp_path / "long.fix", lines)
    created: list[PriceAlert] = []
    original = store.PriceAlertReader.load

    def load_then_change(self, symbols):
        out = original(self, symbols)
        if not created:
            with psycopg.connect(settings.postgres_dsn, autocommit=True) as c:
                store.delete(c, doomed.id)
                created.append(store.create(c, user="ann", account="ACC1", symbol="IBM",
                                            condition="ltp_above", value="199"))  # fmt: skip
        return out

    monkeypatch.setattr(store.PriceAlertReader, "load", load_then_change)
    monkeypatch.setattr(price_alerts_flow, "POLL_S", 0.0)
    replay([path], settings, progress=False, flows=("quotes",))

    assert rows(conn, "SELECT id, status FROM price_alerts ORDER BY id") == [
        (doomed.id, "DELETED"), (created[0].id, "FIRED")]  # fmt: skip
    assert [json.loads(e["data"])["details"]["id"] for e in stream_alerts(settings)] == [
        created[0].id]  # fmt: skip
