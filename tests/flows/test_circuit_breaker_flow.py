"""The index circuit breaker end to end (issue 19, part 5): FIX files replayed into real
PostgreSQL and Redis. A falling index trips level 1 at 10 %: a CIRCUIT_BREAKER alert, the
market HALTED with its level and end, a stop crossed meanwhile held; the market reopens when
the 45 minutes of event time are over and the stop fires at the reopening price."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import psycopg
import pytest
import redis

from tests.flows.test_executions_flow import load
from tests.flows.test_market_status_flow import halts
from tests.flows.test_quotes_flow import DAY, fix, snapshot
from tests.flows.test_stops_flow import children, run, stop, stop_rows

# DAY 14:30:00 UTC in epoch ms: the files' clock starts there
T0_MS = (
    int(dt.datetime.strptime(f"{DAY}-14:30", "%Y%m%d-%H:%M").replace(tzinfo=dt.UTC).timestamp())
    * 1000
)
MIN = 60_000


def at(ms: int) -> str:
    """SendingTime `ms` after DAY 14:30:00 (hours too: the halts last 45 minutes)."""
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(30 + m, 60)
    return f"{DAY}-{14 + h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def index_close(px: str, at_ms: int, seq: int) -> bytes:
    """The venue's previous close of the index (269=5 before the day's first trade)."""
    return fix("W", [(55, "IDX"), (268, 1), (269, 5), (270, px)], seq, at(at_ms))


def trade_at(symbol: str, px: str, at_ms: int, seq: int) -> bytes:
    pairs = [(268, 1), (279, 0), (269, 2), (55, symbol), (270, px), (271, 100)]
    return fix("X", pairs, seq, at(at_ms))


@pytest.fixture
def settings(settings_factory, tmp_path, monkeypatch):
    s = settings_factory(market_status={"index_symbol": "IDX"})
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,100000\n")
    load(s, "accounts", accounts, monkeypatch)
    return s


def day(trip_ms: int, end_ms: int) -> list[bytes]:
    lines = [
        index_close("1000", 0, 1),
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=2),
        trade_at("ACME", "100.00", 100, 3),
        stop("S1", "2", "99.50", 200, 4),
        trade_at("IDX", "950", 1_000, 5),  # 5 % down: nothing
        trade_at("IDX", "899", trip_ms, 6),  # 10.1 % down: level 1
        trade_at("ACME", "99.00", trip_ms + 2 * MIN, 7),  # crosses 99.50 while halted: held
        trade_at("IDX", "880", trip_ms + 20 * MIN, 8),  # 12 %: level 1 already tripped today
    ]
    if end_ms:
        lines.append(trade_at("ACME", "98.80", end_ms, 9))  # the first price after the end
        lines.append(trade_at("ACME", "98.50", end_ms + 1_000, 10))
    return lines


def stream(r: redis.Redis) -> list[dict]:
    return [json.loads(fields[b"data"]) for _, fields in r.xrange("stream:market_status")]


def test_index_falling_10_pct_halts_the_market_for_45_minutes_then_reopens(tmp_path, settings):
    trip = 2 * MIN
    until = trip + 45 * MIN
    r = redis.Redis.from_url(settings.redis_url)

    # the day so far, still inside the halt
    summary, out = run(tmp_path, settings, day(trip, 0), name="morning.fix")
    assert summary["dead_letters"] == 0
    status = json.loads(r.get("market:status"))
    assert {k: status[k] for k in ("scope", "state", "level", "until", "ts", "source")} == {
        "scope": "market", "state": "HALTED", "level": 1, "until": T0_MS + until,
        "ts": T0_MS + trip, "source": "circuit_breaker",
    }  # fmt: skip
    assert stop_rows(settings.postgres_dsn)["S1"][0] == "ACTIVE" and children(out) == []
    with psycopg.connect(settings.postgres_dsn) as conn:
        [(kind, severity, details)] = conn.execute(
            "SELECT kind, severity, details FROM alerts WHERE kind = 'CIRCUIT_BREAKER'"
        ).fetchall()
    assert (kind, severity, details["level"]) == ("CIRCUIT_BREAKER", "CRITICAL", 1)
    assert details["previous_close"] == 1000.0 and details["index"] == 899.0
    assert halts(settings.postgres_dsn, "circuit_breaker") == [
        ("market", status["reason"], "circuit_breaker", True, False)
    ]

    # the whole day: the market reopens at the end of the 45 minutes
    summary, out = run(tmp_path, settings, day(trip, until + 30_000))
    assert summary["stops"] == {"accepted": 1, "triggered": 1}
    _, _, trigger_px, triggered_at, child = stop_rows(settings.postgres_dsn)["S1"]
    assert (trigger_px, child) == (Decimal("98.80"), "S1.T")
    assert triggered_at.strftime("%H:%M:%S") == "15:17:30"  # the reopening price's time
    status = json.loads(r.get("market:status"))
    assert (status["state"], status["level"], status["until"]) == ("OPEN", None, None)
    assert status["ts"] == T0_MS + until  # dated at the halt's end
    assert [(f["state"], f["level"], f["until"]) for f in stream(r)] == [
        ("HALTED", 1, T0_MS + until),
        ("OPEN", None, None),
    ]  # once each: the second replay added nothing
    [(scope, reason, actor, _, ended)] = halts(settings.postgres_dsn, "circuit_breaker")
    assert (scope, actor, ended) == ("market", "circuit_breaker", True)
    assert reason.startswith("index circuit breaker level 1: 10.10 % below")
    with psycopg.connect(settings.postgres_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM alerts WHERE kind = 'CIRCUIT_BREAKER'"
        ).fetchone() == (1,)
    r.close()


def test_stop_shard_reopens_by_itself_when_the_sharders_reopening_never_came(settings):
    """A run resumed from a snapshot taken during the halt: the shards' books say HALTED
    until T, the sharder's breaker starts empty and sends no reopening."""
    from connectors.fix.parse import decode_lines
    from domain.circuit_breaker import CircuitBreakerStatus
    from flows.context import FlowContext
    from flows.quotes import ShardBatch
    from flows.stops import StatusEvents, StopShardLogic

    logic = StopShardLogic(None, FlowContext(settings, settings.redis_url, settings.postgres_dsn))
    decoded = decode_lines(
        [line + b"\n" for line in day(2 * MIN, 47 * MIN + 30_000)], "file:t", 1
    ).events
    acme = [e for e in decoded if getattr(e, "symbol", "") == "ACME"]
    trip_ns = (T0_MS + 2 * MIN) * 10**6
    trip = CircuitBreakerStatus("HALTED", 1, trip_ns + 45 * MIN * 10**6, "level 1", trip_ns)
    first = StatusEvents(acme[:3])  # snapshot, trade, stop
    first.statuses = [(3, trip, True, 0)]
    logic.on_batch([ShardBatch(first, True, [1, 2, 3], None, "0")])
    effects, _ = logic.on_batch([ShardBatch(acme[3:], False, [4, 5, 6], None, "0")])
    [reopened] = [s for e in effects for s in e.statuses]
    assert (reopened.state, reopened.source, reopened.previous_source) == (
        "OPEN",
        "venue",
        "circuit_breaker",
    )
    [row] = [r for e in effects for r in e.rows if r.status == "TRIGGERED"]
    assert row.trigger_px == Decimal("98.80")  # the first price after the halt's end


def test_breaker_with_two_workers_publishes_once_and_holds_the_stop(tmp_path, settings):
    from brokerflow.commands.replay import replay
    from tests.flows.test_quotes_flow import write_file

    until = 2 * MIN + 45 * MIN
    path = write_file(tmp_path / "day.fix", day(2 * MIN, until + 30_000))
    out = tmp_path / "orders-out.fix"
    summary = replay([path], settings, workers=2, progress=False, orders_out=out).as_dict()
    assert summary["alerts"].get("CIRCUIT_BREAKER") == 1
    assert stop_rows(settings.postgres_dsn)["S1"][2] == Decimal("98.80")
    [(_, _, _, _, ended)] = halts(settings.postgres_dsn, "circuit_breaker")
    assert ended
    r = redis.Redis.from_url(settings.redis_url)
    assert [json.loads(f[b"data"])["state"] for _, f in r.xrange("stream:market_status")] == [
        "HALTED", "OPEN"
    ]  # fmt: skip
    r.close()
