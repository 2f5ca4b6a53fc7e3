"""The index circuit breaker across a restart (issue 19, part 5): a replay stopped after (or
before) the trip and resumed from its Bytewax recovery directory trips each level once, as an
uninterrupted run does. The breaker's state is not in the snapshots: it is rebuilt from the
stores when the run starts (`domain.circuit_breaker.BreakerOpening`).

The stop: the first run reads the day's file as far as it is written, the resumed run the same
file with the rest of the day appended (the file source resumes at its snapshotted offset)."""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg
import redis

from brokerflow.commands.replay import replay
from tests.flows.test_circuit_breaker_flow import MIN, T0_MS, index_close, settings, trade_at
from tests.flows.test_market_status_flow import halts
from tests.flows.test_quotes_flow import snapshot, write_file
from tests.flows.test_stops_flow import stop, stop_rows

__all__ = ["settings"]  # the fixture, shared with the breaker's flow tests

TRIP_1 = 2 * MIN
TRIP_2 = 30 * MIN  # during level 1's halt (45 minutes): level 2 raises it


def morning() -> list[bytes]:
    """Up to the trip of level 1 and a while after it."""
    return [
        index_close("1000", 0, 1),
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=2),
        trade_at("ACME", "100.00", 100, 3),
        stop("S1", "2", "99.50", 200, 4),
        trade_at("IDX", "950", 1_000, 5),  # 5 % down: nothing
        trade_at("IDX", "899", TRIP_1, 6),  # 10.1 %: level 1
        trade_at("ACME", "99.00", TRIP_1 + 2 * MIN, 7),  # crosses 99.50 while halted: held
    ]


def rest_of_the_day() -> list[bytes]:
    return [
        trade_at("IDX", "880", 20 * MIN, 8),  # 12 %: level 1 tripped already today
        trade_at("IDX", "849", TRIP_2, 9),  # 15.1 %: level 2 (needs the previous close)
        trade_at("IDX", "852", TRIP_2 + MIN, 10),  # still past level 2: nothing more
        trade_at("ACME", "98.70", TRIP_2 + 5 * MIN, 11),  # still halted: held
    ]


def run(tmp_path, settings, lines: list[bytes]) -> dict:
    """Replay the day's file as written so far, resuming from the recovery directory."""
    path = write_file(tmp_path / "day.fix", lines)
    summary = replay([path], settings, progress=False, orders_out=tmp_path / "orders-out.fix",
                     recovery_dir=tmp_path / "recovery", snapshot_s=0.05)  # fmt: skip
    return summary.as_dict()


def breaker_alerts(dsn: str) -> list[tuple[int, float]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT details FROM alerts WHERE kind = 'CIRCUIT_BREAKER' ORDER BY event_time"
        ).fetchall()
    return [(d["level"], d["previous_close"]) for (d,) in rows]


def status_stream(r: redis.Redis) -> list[tuple[str, int | None, int | None]]:
    frames = [json.loads(f[b"data"]) for _, f in r.xrange("stream:market_status")]
    return [(f["state"], f["level"], f["until"]) for f in frames]


def test_resumed_after_the_trip_trips_it_once_and_a_deeper_fall_trips_level_2(tmp_path, settings):
    first = run(tmp_path, settings, morning())
    assert first["alerts"].get("CIRCUIT_BREAKER") == 1
    resumed = run(tmp_path, settings, morning() + rest_of_the_day())
    # resumed after the trip: the first run's messages are not read again
    assert resumed["messages"] == len(rest_of_the_day())

    assert breaker_alerts(settings.postgres_dsn) == [(1, 1000.0), (2, 1000.0)]
    [(scope, reason, _, _, ended)] = halts(settings.postgres_dsn, "circuit_breaker")
    assert (scope, ended) == ("market", False)  # level 2 raised the running halt: no 2nd row
    assert reason.startswith("index circuit breaker level 1: 10.10 % below")
    r = redis.Redis.from_url(settings.redis_url)
    assert status_stream(r) == [
        ("HALTED", 1, T0_MS + TRIP_1 + 45 * MIN),
        ("HALTED", 2, T0_MS + TRIP_2 + 105 * MIN),
    ]
    status = json.loads(r.get("market:status"))
    assert (status["state"], status["level"]) == ("HALTED", 2)
    r.close()
    assert stop_rows(settings.postgres_dsn)["S1"][0] == "ACTIVE"  # held through both


def test_resumed_before_the_trip_still_trips_it(tmp_path, settings):
    before = morning()[:5]  # the index 5 % down: nothing yet
    first = run(tmp_path, settings, before)
    assert first["alerts"].get("CIRCUIT_BREAKER") is None
    resumed = run(tmp_path, settings, morning() + rest_of_the_day())
    assert resumed["messages"] == len(morning()) + len(rest_of_the_day()) - len(before)

    assert breaker_alerts(settings.postgres_dsn) == [(1, 1000.0), (2, 1000.0)]
    [(_, reason, _, _, _)] = halts(settings.postgres_dsn, "circuit_breaker")
    assert reason.startswith("index circuit breaker level 1")
    r = redis.Redis.from_url(settings.redis_url)
    assert [s[:2] for s in status_stream(r)] == [("HALTED", 1), ("HALTED", 2)]
    r.close()
    rows = stop_rows(settings.postgres_dsn)
    assert (rows["S1"][0], rows["S1"][2]) == ("ACTIVE", None)  # held: crossed only while halted
    assert Decimal("99.50") == rows["S1"][1]
