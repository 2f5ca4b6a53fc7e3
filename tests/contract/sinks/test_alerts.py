"""Alerts into real PostgreSQL `alerts` and Redis `stream:alerts`: once each, evidence kept."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import psycopg
import pytest
import redis

from domain.alerts import STOP_TRIGGERED, WASH_TRADE, alert_id, make_alert
from sinks.alerts import STREAM, AlertWriter
from sinks.postgres import migrate

T0 = 1_764_081_000_000_000_000  # 2025-11-25T14:30:00Z in ns


@pytest.fixture
def db(pg_dsn: str) -> str:
    migrate(pg_dsn)
    return pg_dsn


@pytest.fixture
def r(redis_db_url: str):
    client = redis.Redis.from_url(redis_db_url)
    yield client
    client.close()


def stop_alert(cl_ord_id: str, px: str = "99.40"):
    return make_alert(
        STOP_TRIGGERED, f"stop:{cl_ord_id}", "INFO", T0 + 5_000_000,
        account="ACC1", owner="alice", symbol="ACME",
        details={"cl_ord_id": cl_ord_id, "stop_px": Decimal("99.50"), "trigger_px": Decimal(px)},
    )  # fmt: skip


def test_alerts_land_once_in_postgres_and_on_the_stream(db: str, redis_db_url: str, r) -> None:
    counts: Counter[str] = Counter()
    writer = AlertWriter(db, redis_db_url, count=lambda name, n: counts.update({name: n}))
    wash = make_alert(WASH_TRADE, "self:T1", "HIGH", T0, account="ACC2", symbol="ACME",
                      details={"exec_ids": ["E1", "E2"], "owner": "bob"})  # fmt: skip
    assert writer.write([stop_alert("C1"), wash]) == 2
    # A replayed batch, plus one new alert, plus a duplicate inside the batch.
    assert writer.write([stop_alert("C1"), wash, stop_alert("C2"), stop_alert("C2")]) == 1
    writer.close()

    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT alert_id, kind, severity, account, symbol, event_time, details, status "
            "FROM alerts ORDER BY kind, alert_id"
        ).fetchall()
    assert len(rows) == 3
    by_id = {row[0]: row for row in rows}
    c1 = by_id[alert_id(STOP_TRIGGERED, "stop:C1")]
    assert c1[1:5] == ("STOP_TRIGGERED", "INFO", "ACC1", "ACME")
    assert c1[5].timestamp() == pytest.approx((T0 + 5_000_000) / 1e9)
    assert c1[6] == {"cl_ord_id": "C1", "stop_px": "99.50", "trigger_px": "99.40"}
    assert c1[7] == "OPEN"

    entries = r.xrange(STREAM)
    assert len(entries) == 3
    fields = [e[1] for e in entries]
    assert [f[b"kind"] for f in fields] == [b"STOP_TRIGGERED", b"WASH_TRADE", b"STOP_TRIGGERED"]
    assert fields[1][b"account"] == b"ACC2"
    doc = json.loads(fields[0][b"data"])
    assert doc["alert_id"] == alert_id(STOP_TRIGGERED, "stop:C1")
    assert doc["details"]["trigger_px"] == "99.40"
    assert doc["event_time"] == (T0 + 5_000_000) // 10**6
    assert counts == {"alerts.STOP_TRIGGERED": 2, "alerts.WASH_TRADE": 1}


def test_alert_retried_after_postgres_only_still_reaches_the_stream(
    db: str, redis_db_url: str, r
) -> None:
    from sinks.alerts import write_alerts_postgres

    # A crash between the two writes: PostgreSQL has the alert, the stream does not.
    with psycopg.connect(db, autocommit=True) as conn:
        write_alerts_postgres(conn, [stop_alert("C9")])
    writer = AlertWriter(db, redis_db_url)
    assert writer.write([stop_alert("C9")]) == 0  # nothing new for the record
    writer.close()
    assert len(r.xrange(STREAM)) == 1


def test_alert_severity_must_be_known() -> None:
    with pytest.raises(ValueError, match="severity"):
        make_alert(STOP_TRIGGERED, "k", "SEVERE", T0)


def spoof(key: str, ts_ns: int, score: int, first: bool):
    """A spoofing alert of the episode opened by finding `spoof:1`, as the flow makes it."""
    from domain.triage import occurrence

    evidence = {"fill_exec_id": key, "cancelled_cl_ord_ids": [f"{key}-c"]}
    return make_alert(
        "SPOOFING", "spoof:1", str(score), ts_ns, account="ACC9", symbol="ACME",
        details={**evidence, "occurrences": {
            key: occurrence(ts_ns, score, None if first else evidence)}},
    )  # fmt: skip


def test_an_episode_continued_adds_evidence_to_its_alert_and_reopens_it(db: str, redis_db_url):
    writer = AlertWriter(db, redis_db_url)
    assert writer.write([spoof("F1", T0, 70, first=True)]) == 1
    # The pattern goes on: same alert, more evidence, a higher score; and again in one batch.
    assert writer.write([spoof("F2", T0 + 60 * 10**9, 85, first=False)]) == 0
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE alerts SET status = 'CLOSED', closed_by = 'ann'")
        conn.commit()
    assert writer.write([spoof("F3", T0 + 120 * 10**9, 60, first=False),
                         spoof("F4", T0 + 180 * 10**9, 65, first=False)]) == 0  # fmt: skip
    # A replay of all of it changes nothing.
    assert writer.write([spoof("F1", T0, 70, True), spoof("F2", T0 + 60 * 10**9, 85, False)]) == 0
    writer.close()
    with psycopg.connect(db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM alerts").fetchone()
        severity, score, status, details = conn.execute(
            "SELECT severity, score, status, details FROM alerts"
        ).fetchone()
        history = conn.execute(
            "SELECT actor, action, from_status, to_status, note FROM alert_actions ORDER BY id"
        ).fetchall()
    assert count == 1
    assert (severity, score, status) == ("85", 85, "OPEN")
    assert sorted(details["occurrences"]) == ["F1", "F2", "F3", "F4"]
    assert details["occurrences"]["F3"]["cancelled_cl_ord_ids"] == ["F3-c"]
    assert details["fill_exec_id"] == "F1"  # the first finding's evidence stays the headline
    assert history == [
        ("pipeline", "evidence", "OPEN", "OPEN", "the pattern continued: 2 occurrences"),
        ("pipeline", "reopen", "CLOSED", "OPEN", "the pattern continued: 4 occurrences"),
    ]
