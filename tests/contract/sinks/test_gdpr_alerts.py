"""The right to be forgotten reaches the alerts: PostgreSQL `alerts` details, ClickHouse `alerts`
(account and details) and `stream:alerts`, on the real stores; other accounts are untouched."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import redis

from brokerflow.commands.gdpr import (
    forget_stream_alerts,
    load_or_create_key,
    pseudonym_of,
    pseudonymise_clickhouse,
    pseudonymise_postgres,
)
from domain.alerts import make_alert
from sinks.alerts import write_alerts_postgres, write_alerts_redis
from sinks.clickhouse import ALERT_COLUMNS, ChdbStore, alert_rows, migrate_clickhouse, open_store
from sinks.postgres import migrate

T0 = 1_764_000_000_000_000_000


def alerts() -> list:
    """A wash trade between ACC1 and ACC2 (raised on ACC2, naming both), a margin call on ACC1,
    and one on ACC3 alone."""
    return [
        make_alert("WASH_TRADE", "w1", "HIGH", T0, account="ACC2", symbol="ACME",
                   details={"accounts": ["ACC1", "ACC2"], "fills": ["E1", "E2"]}),
        make_alert("MARGIN_CALL", "m1", "MEDIUM", T0 + 1, account="ACC1",
                   details={"deficit": "120.50"}),
        make_alert("MARGIN_CALL", "m3", "MEDIUM", T0 + 2, account="ACC3",
                   details={"note": "ACC10 is another account"}),
    ]  # fmt: skip


def test_pseudonymising_an_account_rewrites_or_removes_it_in_every_alert_store(
    tmp_path: Path, pg_dsn: str, redis_db_url: str
) -> None:
    key = load_or_create_key(tmp_path)
    psn = pseudonym_of("ACC1", key)
    migrate(pg_dsn)
    with psycopg.connect(pg_dsn) as conn, conn.transaction():
        write_alerts_postgres(conn, alerts())
    client = redis.Redis.from_url(redis_db_url)
    write_alerts_redis(client, alerts(), 1_000)
    store = open_store(f"chdb://{tmp_path}/ch", tmp_path)
    assert isinstance(store, ChdbStore)
    try:
        migrate_clickhouse(store)
        store.insert("alerts", ALERT_COLUMNS, alert_rows(alerts()))

        pseudonymise_postgres(pg_dsn, "ACC1", key)
        pseudonymise_clickhouse(store, "ACC1", key)
        deleted = forget_stream_alerts(redis_db_url, "ACC1")

        with psycopg.connect(pg_dsn) as conn:
            rows = dict(conn.execute("SELECT kind || ':' || account, details FROM alerts"))
        assert rows["WASH_TRADE:ACC2"]["accounts"] == [psn, "ACC2"]  # the counterparty
        assert rows[f"MARGIN_CALL:{psn}"] == {"deficit": "120.50"}
        assert rows["MARGIN_CALL:ACC3"] == {"note": "ACC10 is another account"}  # not a match
        _, ch = store.query(
            "SELECT kind, account, details FROM alerts FINAL ORDER BY kind, account"
        )
        by = {(k, a): json.loads(d) for k, a, d in ch}
        assert set(by) == {("MARGIN_CALL", "ACC3"), ("MARGIN_CALL", psn), ("WASH_TRADE", "ACC2")}
        assert by[("WASH_TRADE", "ACC2")]["accounts"] == [psn, "ACC2"]
        _, left = store.query("SELECT count() FROM alerts WHERE position(details, '\"ACC1\"') > 0")
        assert left == [(0,)]
        # The feed: both entries naming ACC1 deleted, the other kept; a second call finds none.
        assert deleted == 2
        kept = [json.loads(f[b"data"]) for _id, f in client.xrange("stream:alerts")]
        assert [(a["kind"], a["account"]) for a in kept] == [("MARGIN_CALL", "ACC3")]
        assert forget_stream_alerts(redis_db_url, "ACC1") == 0
    finally:
        store.close()
        client.close()
