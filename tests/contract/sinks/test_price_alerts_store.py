"""sinks.price_alerts against a real PostgreSQL: the limit, soft delete, FIRED never reloaded,
mark_fired idempotent."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from domain.price_alerts import PriceAlertBook, PriceAlertError, PriceAlertFired
from sinks import price_alerts as store
from sinks.postgres import migrate


@pytest.fixture
def conn(pg_dsn: str):
    migrate(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        yield c


def test_price_alerts_create_list_delete(conn) -> None:
    a = store.create(conn, user="u1", symbol="aapl", condition="ltp_above", value="190.5",
                     account="ACC1")  # fmt: skip
    b = store.create(conn, user="u2", symbol="MSFT", condition="change_pct_below", value=-3)
    assert (a.symbol, a.value, a.account) == ("AAPL", Decimal("190.5"), "ACC1")
    assert [r.id for r in store.list_alerts(conn, "u1")] == [a.id]
    assert [r.id for r in store.list_alerts(conn)] == [a.id, b.id]
    store.delete(conn, a.id, user="u1")
    assert store.list_alerts(conn, "u1") == []
    assert [r.status for r in store.list_alerts(conn, "u1", include_deleted=True)] == ["DELETED"]
    with pytest.raises(store.PriceAlertNotFoundError, match="^id: "):
        store.delete(conn, a.id)
    with pytest.raises(store.PriceAlertNotFoundError):
        store.delete(conn, b.id, user="u1")  # not u1's
    assert [x.id for x in store.load_active(conn)] == [b.id]


def test_price_alerts_limit_refused_with_the_reason(conn) -> None:
    for i in range(3):
        store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value=100 + i,
                     max_per_user=3)  # fmt: skip
    with pytest.raises(store.PriceAlertLimitError) as info:
        store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value=1,
                     max_per_user=3)  # fmt: skip
    assert "limit" in str(info.value) and "3" in str(info.value)
    assert len(store.list_alerts(conn, "u1")) == 3
    store.create(conn, user="u2", symbol="AAPL", condition="ltp_above", value=1, max_per_user=3)
    first = store.list_alerts(conn, "u1")[0]
    store.delete(conn, first.id)  # a deleted alert frees its place
    store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value=1, max_per_user=3)


def test_price_alerts_bad_input_names_the_field(conn) -> None:
    for kw, field in [
        ({"symbol": "NOPE"}, "symbol"),
        ({"condition": "ltp_between"}, "condition"),
        ({"value": "x"}, "value"),
        ({"value": "-1"}, "value"),
        ({"user": ""}, "user"),
    ]:
        args = {"user": "u1", "symbol": "AAPL", "condition": "ltp_above", "value": "1", **kw}
        with pytest.raises(PriceAlertError) as info:
            store.create(conn, known_symbols={"AAPL"}, **args)
        assert info.value.field == field
    assert store.list_alerts(conn) == []


def test_price_alerts_fired_once_never_reloaded(conn) -> None:
    a = store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value=101)
    b = store.create(conn, user="u1", symbol="AAPL", condition="ltp_below", value=99)
    book = PriceAlertBook()
    # the flow's load: what the book keeps of each ACTIVE row, the value as the level it fires at
    rows = store.load_resting(conn, {"AAPL"})
    assert rows == [(a.id, "AAPL", "ltp_above", 101.0), (b.id, "AAPL", "ltp_below", 99.0)]
    assert book.add_many(rows) == 2
    hits = book.on_price("AAPL", 101.25, None, 1_700_000_000_000)
    # the sink's read: the rows of those not deleted, what their traders see
    details = store.not_deleted(conn, [h.id for h in hits] + [b.id, 10**9])
    assert details == {a.id: a, b.id: b}
    fired = [h.with_alert(details[h.id]) for h in hits]
    assert store.mark_fired(conn, fired) == [a.id]
    assert store.mark_fired(conn, fired) == []  # a replayed batch changes nothing
    row = store.list_alerts(conn, "u1")[0]
    assert (row.status, row.fired_ltp) == ("FIRED", Decimal("101.25"))
    assert row.fired_at is not None and row.fired_at.year == 2023
    # A restart: the book is rebuilt from the store; the FIRED row is not loaded again.
    assert [x.id for x in store.load_active(conn)] == [b.id]
    # A fire of an alert deleted meanwhile changes nothing and sends no frame.
    store.delete(conn, b.id)
    assert store.not_deleted(conn, [b.id]) == {}
    gone = PriceAlertFired(b, 98.0, 99.0, 2)
    assert store.mark_fired(conn, [gone]) == []
    assert store.mark_fired(conn, []) == []


def test_price_alerts_reader_follows_changes_past_its_cursor(pg_dsn: str, conn) -> None:
    reader = store.PriceAlertReader(pg_dsn, max_age_s=0.0)  # reads the table at every call
    a = store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value="10")
    cursor = reader.head()
    assert reader.changes(cursor) == ([], cursor)
    b = store.create(conn, user="u1", symbol="MSFT", condition="ltp_below", value="5")
    store.delete(conn, a.id)
    changes, after = reader.changes(cursor)
    assert [(c.alert.id, c.status) for c in changes] == [(b.id, "ACTIVE"), (a.id, "DELETED")]
    assert reader.changes(after) == ([], after)
    # Rows the flow marks FIRED are left out of the changes (its book let them go already).
    fired = PriceAlertFired(store.load_active(conn, ["MSFT"])[0], 4.5, 5.0, 1_000)
    assert store.mark_fired(conn, [fired]) == [b.id]
    changes, last = reader.changes(after)
    assert changes == [] and last > after
    assert [x.symbol for x in reader.load(["AAPL", "MSFT"])] == []
    reader.close()


def test_price_alerts_a_fired_alert_can_be_deleted(conn) -> None:
    a = store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value="10")
    store.mark_fired(conn, [PriceAlertFired(a, 10.5, 10.0, 1_000)])
    store.delete(conn, a.id, user="u1")
    assert [(r.status, r.fired_ltp) for r in store.list_alerts(conn, "u1", True)] == [
        ("DELETED", Decimal("10.5"))]  # fmt: skip


def test_price_alerts_reader_reads_the_table_once_per_max_age(pg_dsn: str, conn) -> None:
    shared = store.PriceAlertReader(pg_dsn, max_age_s=3600.0)
    cursor = shared.head()
    store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value="10")
    # Every shard asking within the hour gets what the first read saw: nothing yet.
    assert shared.changes(cursor) == ([], cursor)
    assert shared.changes(cursor) == ([], cursor)
    shared.close()


def test_price_alerts_reader_serves_a_cursor_older_than_it_keeps(pg_dsn: str, conn) -> None:
    reader = store.PriceAlertReader(pg_dsn, max_age_s=0.0, keep=1)
    cursor = reader.head()
    a = store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value="10")
    b = store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value="11")
    changes, after = reader.changes(cursor)  # two changes: more than it keeps
    assert [c.alert.id for c in changes] == [a.id, b.id]
    assert reader.changes(after) == ([], after)
    reader.close()


def test_price_alerts_every_change_draws_a_later_change_seq(conn) -> None:
    """mark_fired draws the rows' change_seq in its own statement (migration 0014), the trigger
    the others': each change still gets a number past every earlier one; fired_ltp keeps every
    digit the float prints with."""
    seq = "SELECT change_seq FROM price_alerts WHERE id = %s"
    a = store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value="0.1")
    b = store.create(conn, user="u1", symbol="AAPL", condition="ltp_above", value="0.2")
    created = [conn.execute(seq, (x.id,)).fetchone()[0] for x in (a, b)]
    ltp = 0.1 + 0.2  # 0.30000000000000004: more digits than a float8 -> numeric cast keeps
    assert store.mark_fired(conn, [PriceAlertFired(a, ltp, 0.1, 1_000)]) == [a.id]
    fired = conn.execute(seq, (a.id,)).fetchone()[0]
    store.delete(conn, a.id)
    deleted = conn.execute(seq, (a.id,)).fetchone()[0]
    assert created[0] < created[1] < fired < deleted
    row = conn.execute("SELECT fired_ltp, fired_at FROM price_alerts WHERE id = %s", (a.id,))
    fired_ltp, fired_at = row.fetchone()
    assert (fired_ltp, fired_at.timestamp()) == (Decimal(repr(ltp)), 1.0)
