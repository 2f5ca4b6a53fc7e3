"""Market status end to end (issue 19): venue halts hold the stop engine; the kill switch
holds child orders and releases them once. FIX files replayed into real PostgreSQL and Redis."""

from __future__ import annotations

import json
from decimal import Decimal

import psycopg
import pytest
import redis

from brokerflow.commands.halt import halt, resume
from tests.eventually import eventually
from tests.flows.test_executions_flow import audit_rows, load
from tests.flows.test_quotes_flow import fix, snapshot, ts
from tests.flows.test_stops_flow import children, run, stop, stop_rows, trade


@pytest.fixture
def settings(settings_factory, tmp_path, monkeypatch):
    s = settings_factory()
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,100000\n")
    load(s, "accounts", accounts, monkeypatch)
    return s


def security_status(code: str, at_ms: int, seq: int, **tags) -> bytes:
    pairs = [(55, "ACME"), (326, code), (60, ts(at_ms))]
    pairs += [(int(name[1:]), value) for name, value in tags.items()]
    return fix("f", pairs, seq, ts(at_ms))


def session_status(code: str, at_ms: int, seq: int) -> bytes:
    pairs = [(336, "1"), (340, code), (58, "MWCB level 1"), (60, ts(at_ms))]
    return fix("h", pairs, seq, ts(at_ms))


def halts(dsn: str, source: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT scope, reason, actor, started_at IS NOT NULL, ended_at IS NOT NULL "
            "FROM trading_halts WHERE source = %s ORDER BY id",
            (source,),
        ).fetchall()


@pytest.mark.parametrize("market_wide", [False, True], ids=["symbol_halt", "market_halt"])
def test_stop_crossed_during_a_halt_fires_at_the_reopening_price(tmp_path, settings, market_wide):
    halted, reopened = (
        (session_status("1", 1_000, 4), session_status("2", 3_000, 6))
        if market_wide
        else (security_status("2", 1_000, 4, t327="D"), security_status("17", 3_000, 6))
    )
    lines = [
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=1),
        trade("100.00", 100, 2),
        stop("S1", "2", "99.50", 200, 3),
        halted,
        trade("99.00", 2_000, 5),  # crosses 99.50 while halted: held
        reopened,
        trade("98.80", 4_000, 7),  # the reopening price
        trade("98.50", 5_000, 8),
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["dead_letters"] == 0
    assert summary["stops"] == {"accepted": 1, "triggered": 1}
    status, _, trigger_px, triggered_at, child_id = stop_rows(settings.postgres_dsn)["S1"]
    assert (status, trigger_px, child_id) == ("TRIGGERED", Decimal("98.80"), "S1.T")
    assert triggered_at.strftime("%H:%M:%S") == "14:30:04"
    [child] = children(out)
    assert child[11] == b"S1.T" and child[60] == b"20261125-14:30:04.000"

    scope = "market" if market_wide else "ACME"
    [(row_scope, reason, actor, started, ended)] = halts(settings.postgres_dsn, "venue")
    assert (row_scope, actor, started, ended) == (scope, "venue", True, True)
    assert reason == ("MWCB level 1" if market_wide else "news dissemination")
    r = redis.Redis.from_url(settings.redis_url)
    key = "market:status" if market_wide else "symbol:status:ACME"
    frame = json.loads(r.get(key))
    r.close()
    assert {k: frame[k] for k in ("type", "scope", "state", "level", "until")} == {
        "type": "market_status", "scope": scope, "state": "OPEN", "level": None, "until": None
    }
    assert frame["ts"] % 100_000 == 3_000  # event time (epoch ms), not the wall clock

    again, _ = run(tmp_path, settings, lines)  # a replay adds nothing
    assert again["orders_out"] == 0 and len(halts(settings.postgres_dsn, "venue")) == 1


def test_stop_still_halted_at_the_end_does_not_fire(tmp_path, settings):
    lines = [
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=1),
        trade("100.00", 100, 2),
        stop("S1", "2", "99.50", 200, 3),
        security_status("2", 1_000, 4),
        trade("99.00", 2_000, 5),
        snapshot("ACME", 2_500, "98.90", 100, "99.10", 100, seq=6),
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["stops"] == {"accepted": 1}
    assert stop_rows(settings.postgres_dsn)["S1"][0] == "ACTIVE"
    assert children(out) == []
    r = redis.Redis.from_url(settings.redis_url)
    assert json.loads(r.get("symbol:status:ACME"))["state"] == "HALTED"
    r.close()


def test_kill_switch_holds_children_then_releases_them_exactly_once(
    tmp_path, settings, monkeypatch, capsys
):
    from brokerflow.cli import main

    dsn = settings.postgres_dsn
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", dsn)
    cli = ["--data-dir", str(settings.data_dir)]
    assert main(["halt", "--reason", "runaway algo", "--as", "ops", *cli]) == 0
    assert capsys.readouterr().out.startswith("halted all at ")
    assert main(["halt", "--reason", "again", *cli]) == 0  # halt twice: says so, changes nothing
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("already halted all since") and line.endswith("nothing changed")
    lines = [
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=1),
        trade("100.00", 100, 2),
        stop("S1", "2", "99.50", 200, 3),
        trade("99.30", 1_000, 4),
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["stops"] == {"accepted": 1, "triggered": 1}
    assert summary["orders_out"] == 0 and children(out) == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT status, child_status, held_reason FROM stop_orders WHERE cl_ord_id = 'S1'"
        ).fetchone() == ("TRIGGERED", "HELD", "kill switch (all): runaway algo")
        assert conn.execute(
            "SELECT child_cl_ord_id, account, released_at FROM held_orders"
        ).fetchall() == [("S1.T", "ACC1", None)]

    # replayed while still halted: held once, nothing sent
    again, _ = run(tmp_path, settings, lines)
    assert again["orders_out"] == 0 and children(out) == []
    [(cl_ord_id, account, details)] = audit_rows(
        settings,
        "SELECT cl_ord_id, account, order_details FROM audit_log FINAL "
        "WHERE event_type = 'ORDER_HELD'",
    )
    assert (cl_ord_id, account) == ("S1.T", "ACC1")
    assert json.loads(details)["reason"] == "kill switch (all): runaway algo"

    assert main(["resume", *cli]) == 0
    assert "1 held order(s) to release" in capsys.readouterr().out
    assert main(["resume", *cli]) == 0
    assert capsys.readouterr().out == "not halted: all is running; nothing changed\n"
    # the flow, started again (or running: polled each second), releases the child once
    run(tmp_path, settings, lines)
    [child] = children(out)
    assert (child[35], child[11], child[1]) == (b"D", b"S1.T", b"ACC1")
    run(tmp_path, settings, lines)
    assert len(children(out)) == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute(
            "SELECT child_status FROM stop_orders WHERE cl_ord_id = 'S1'"
        ).fetchone() == ("RELEASED",)
        [(released,)] = conn.execute("SELECT released_at FROM held_orders").fetchall()
        assert released is not None
    assert halts(dsn, "kill_switch") == [("all", "runaway algo", "ops", True, True)]
    kinds = audit_rows(
        settings,
        "SELECT event_type, account FROM audit_log FINAL "
        "WHERE event_type LIKE 'TRADING_%' ORDER BY timestamp, event_type",
    )
    assert [tuple(k) for k in kinds] == [("TRADING_HALTED", ""), ("TRADING_RESUMED", "")]


def test_account_halt_holds_that_account_only(tmp_path, settings):
    dsn = settings.postgres_dsn
    from sinks.postgres import migrate

    migrate(dsn)
    halt(dsn, "OTHER", "margin review", "ops")
    lines = [
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=1),
        trade("100.00", 100, 2),
        stop("S1", "2", "99.50", 200, 3),
        trade("99.30", 1_000, 4),
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["orders_out"] == 1 and [c[11] for c in children(out)] == [b"S1.T"]


def test_statuses_reach_their_shards_in_stream_order_and_a_session_status_every_shard():
    from brokerflow.metrics import FlowStats
    from connectors.fix.parse import decode_lines
    from domain.sharding import symbol_shard
    from flows.operators import FlowBatch
    from flows.quotes import QUOTE_SHARDS, make_sharder
    from flows.stops import _with_statuses, with_market_status

    other = next(s for s in ("B", "C", "D", "E", "F", "G") if
                 symbol_shard(s) % QUOTE_SHARDS != symbol_shard("ACME") % QUOTE_SHARDS)  # fmt: skip
    lines = [
        trade("100.00", 0, 1),
        security_status("2", 1, 2),
        fix("W", [(55, other), (268, 1), (269, 2), (270, "5"), (271, 1)], 3, ts(2)),
        session_status("1", 3, 4),
        trade("99.00", 4, 5),
    ]
    decoded = decode_lines([line + b"\n" for line in lines], "file:t.fix", 1)
    batch = FlowBatch(decoded.events, [], 0, 5, decoded.lines, [1, 2, 3, 4, 5], None)
    names = [str(n) for n in range(QUOTE_SHARDS)]
    route = with_market_status(make_sharder(QUOTE_SHARDS, FlowStats(), True), names)
    out = dict(route(batch))
    assert set(out) == set(names)  # the 35=h reached every shard
    acme = out[names[symbol_shard("ACME") % QUOTE_SHARDS]]
    assert len(acme.events) == 2 == len(acme.seqs)  # the other steps see the events alone
    seen = [type(e[0]).__name__ if type(e) is tuple else type(e).__name__
            for e in _with_statuses(acme.events, acme.events.statuses)]  # fmt: skip
    assert seen == [
        "MarketDataIncrement", "SecurityStatus", "TradingSessionStatus", "MarketDataIncrement"
    ]
    primaries = [
        key for key, part in out.items()
        for _, event, primary, _ in part.events.statuses
        if primary and type(event).__name__ == "TradingSessionStatus"
    ]  # fmt: skip
    assert primaries == [names[0]]


def test_a_running_sink_releases_held_children_after_resume_within_seconds(tmp_path, pg_dsn):
    from connectors.fix.encode import OutboundOrder
    from flows.stops import encode_child_order as _encode
    from sinks.postgres import migrate
    from sinks.stops import StopOutputSink, StopWrites

    migrate(pg_dsn)
    halt(pg_dsn, "ACC1", "review", "ops")
    out = tmp_path / "out.fix"
    part = StopOutputSink(pg_dsn, out, _encode).build_part("write_stops", "stops", None)
    try:
        child = OutboundOrder("S9.T", "ACC1", "ACME", "2", Decimal(10), "1", None, 0)
        other = OutboundOrder("S8.T", "ACC2", "ACME", "2", Decimal(10), "1", None, 0)
        part.write_batch([StopWrites((), (("S9.T", child), ("S8.T", other)))])
        part.snapshot()
        part._background.drain()
        assert [c[11] for c in children(out)] == [b"S8.T"]
        resume(pg_dsn, "ACC1")
        eventually(lambda: len(children(out)) >= 2, 5, 0.1, "the held child released")
        assert [c[11] for c in children(out)] == [b"S8.T", b"S9.T"]
        part.write_batch([StopWrites((), (("S9.T", child),))])  # decided again: not resent
        part._background.drain()
        assert len(children(out)) == 2
    finally:
        part.close()


def test_market_halt_with_two_workers_and_two_symbols_on_other_shards(tmp_path, settings):
    """A 35=h reaches every shard whichever worker holds it: both symbols' stops wait."""
    from brokerflow.commands.replay import replay
    from domain.sharding import symbol_shard
    from flows.quotes import QUOTE_SHARDS
    from tests.flows.test_quotes_flow import incremental, write_file

    other = next(s for s in ("BETA", "CORP", "DELTA", "ECHO") if
                 symbol_shard(s) % QUOTE_SHARDS != symbol_shard("ACME") % QUOTE_SHARDS)  # fmt: skip

    def px(symbol, price, at_ms, seq):
        return incremental([[(279, 0), (269, 2), (55, symbol), (270, price), (271, 10)]],
                           at_ms, seq)  # fmt: skip

    lines = [
        px("ACME", "100.00", 0, 1),
        px(other, "50.00", 0, 2),
        stop("S1", "2", "99.50", 100, 3),
        fix("D", [(11, "S2"), (1, "ACC1"), (55, other), (54, "2"), (60, ts(100)), (38, 100),
                  (40, "3"), (99, "49.50"), (59, "1")], 4, ts(100)),  # fmt: skip
        session_status("1", 1_000, 5),
        px("ACME", "99.00", 2_000, 6),
        px(other, "49.00", 2_000, 7),
        session_status("2", 3_000, 8),
        px("ACME", "98.00", 4_000, 9),
        px(other, "48.00", 4_000, 10),
    ]
    out = tmp_path / "orders-out.fix"
    path = write_file(tmp_path / "day.fix", lines)
    summary = replay([path], settings, workers=2, progress=False, orders_out=out).as_dict()
    assert summary["stops"] == {"accepted": 2, "triggered": 2}
    rows = stop_rows(settings.postgres_dsn)
    assert (rows["S1"][2], rows["S2"][2]) == (Decimal("98.00"), Decimal("48.00"))
    assert len(halts(settings.postgres_dsn, "venue")) == 1  # published once
