"""The stop engine end to end: FIX files -> replay -> stop_orders, child orders, alerts, audit.

Real PostgreSQL and Redis (tests/conftest.py) and chdb under the test's data dir.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis

from brokerflow.commands.replay import replay
from connectors.fix import decode
from tests.flows.test_executions_flow import audit_rows, load
from tests.flows.test_quotes_flow import fix, incremental, snapshot, ts, write_file


@pytest.fixture
def settings(settings_factory, tmp_path, monkeypatch):
    s = settings_factory()
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,100000\n")
    load(s, "accounts", accounts, monkeypatch)
    return s


def stop(
    cl_ord_id: str, side: str, stop_px: str, at_ms: int, seq: int, ord_type: str = "3", **tags
) -> bytes:
    """A GTC 35=D; extra fields as `t<tag>=value` (t44="101.20": Price)."""
    pairs = [(11, cl_ord_id), (1, "ACC1"), (55, "ACME"), (54, side), (60, ts(at_ms)),
             (38, 100), (40, ord_type)]  # fmt: skip
    if stop_px:
        pairs.append((99, stop_px))
    pairs += [(int(name[1:]), value) for name, value in tags.items()]
    pairs.append((59, "1"))
    return fix("D", pairs, seq, ts(at_ms))


def trade(px: str, at_ms: int, seq: int, size: int = 100) -> bytes:
    return incremental([[(279, 0), (269, 2), (55, "ACME"), (270, px), (271, size)]], at_ms, seq)


def cancel(cl_ord_id: str, orig: str, at_ms: int, seq: int) -> bytes:
    pairs = [(11, cl_ord_id), (41, orig), (1, "ACC1"), (55, "ACME"), (54, 2), (60, ts(at_ms))]
    return fix("F", pairs, seq, ts(at_ms))


def stop_rows(dsn: str) -> dict[str, tuple]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT cl_ord_id, status, stop_px, trigger_px, triggered_at, child_cl_ord_id "
            "FROM stop_orders"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def children(path: Path) -> list[dict[int, bytes]]:
    if not path.exists():
        return []
    return [decode(line).first_values() for line in path.read_bytes().splitlines()]


def run(tmp_path: Path, settings, lines: list[bytes], name: str = "day.fix") -> tuple[dict, Path]:
    out = tmp_path / "orders-out.fix"
    summary = replay(
        [write_file(tmp_path / name, lines)], settings, progress=False, orders_out=out
    )
    return summary.as_dict(), out


def test_sell_stop_gaps_through_and_fires_once_with_child_alert_and_audit(tmp_path, settings):
    lines = [
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=1),
        trade("100.00", 100, 2),
        stop("S1", "2", "99.50", 200, 3),
        trade("99.60", 1_000, 4),
        trade("99.30", 2_000, 5),  # gaps through 99.50: fires at 99.30
        trade("99.00", 3_000, 6),
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["stops"] == {"accepted": 1, "triggered": 1}
    assert summary["orders_out"] == 1
    status, stop_px, trigger_px, triggered_at, child_id = stop_rows(settings.postgres_dsn)["S1"]
    assert (status, stop_px, trigger_px, child_id) == (
        "TRIGGERED", Decimal("99.50"), Decimal("99.30"), "S1.T"
    )
    assert triggered_at.strftime("%H:%M:%S.%f") == "14:30:02.000000"
    [child] = children(out)
    assert (child[35], child[11], child[54], child[38], child[40]) == (
        b"D", b"S1.T", b"2", b"100", b"1"
    )
    assert child[1] == b"ACC1" and child[60] == b"20261125-14:30:02.000"

    with psycopg.connect(settings.postgres_dsn) as conn:
        [(kind, account, details)] = conn.execute(
            "SELECT kind, account, details FROM alerts"
        ).fetchall()
    assert (kind, account) == ("STOP_TRIGGERED", "ACC1")
    assert Decimal(details["trigger_px"]) == Decimal("99.30")
    assert details["child_cl_ord_id"] == "S1.T"
    r = redis.Redis.from_url(settings.redis_url)
    [(_, fields)] = r.xrange("stream:alerts")
    assert Decimal(json.loads(fields[b"data"])["details"]["stop_px"]) == Decimal("99.50")
    r.close()
    [(snap,)] = audit_rows(
        settings, "SELECT market_snapshot FROM audit_log WHERE event_type = 'ORDER_TRIGGERED'"
    )
    assert json.loads(snap)["ltp"] == 99.3

    # The same day again: nothing fires twice, no second child, no second alert.
    again, _ = run(tmp_path, settings, lines)
    assert again["orders_out"] == 0
    assert len(children(out)) == 1
    with psycopg.connect(settings.postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (1,)


def test_bid_move_does_not_fire_a_stop_on_last_and_cancel_before_trigger(tmp_path, settings):
    lines = [
        trade("100.00", 0, 1),
        stop("S1", "2", "99.50", 100, 2),
        snapshot("ACME", 500, "99.00", 100, "99.20", 100, seq=3),  # bid/ask below the stop
        cancel("X1", "S1", 600, 4),
        trade("99.00", 700, 5),  # would have fired
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["stops"] == {"accepted": 1, "cancelled": 1}
    assert stop_rows(settings.postgres_dsn)["S1"][0] == "CANCELLED"
    assert children(out) == []


def test_stop_limit_child_is_a_limit_at_its_price_and_buy_stop_on_ask(tmp_path, settings):
    lines = [
        trade("100.00", 0, 1),
        stop("B1", "1", "101.00", 100, 2, ord_type="4", t44="101.20"),
        trade("100.90", 200, 3),
        trade("101.05", 300, 4),
    ]
    _, out = run(tmp_path, settings, lines)
    [child] = children(out)
    assert (child[11], child[54], child[40], child[44]) == (b"B1.T", b"1", b"2", b"101.20")
    assert stop_rows(settings.postgres_dsn)["B1"][2] == Decimal("101.05")


def test_wrong_side_stop_is_a_dead_letter_with_its_reason(tmp_path, settings):
    lines = [trade("99.40", 0, 1), stop("S1", "2", "99.50", 100, 2)]
    summary, out = run(tmp_path, settings, lines)
    assert summary["stops"] == {"rejected": 1}
    with psycopg.connect(settings.postgres_dsn) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters")]
    assert any("S1 rejected" in r and "last price 99.4" in r for r in reasons), reasons
    assert stop_rows(settings.postgres_dsn) == {}
    assert children(out) == []


def test_trailing_stop_ratchets_up_and_fires_on_retrace(tmp_path, settings):
    lines = [
        trade("100.00", 0, 1),
        stop("T1", "2", "", 100, 2, ord_type="P", t18="a", t211="1.00"),
        trade("101.00", 200, 3),
        trade("103.00", 300, 4),  # high water 103: stop 102
        trade("102.50", 400, 5),
        trade("104.00", 500, 6),  # high water 104: stop 103
        trade("103.50", 600, 7),
        trade("102.90", 700, 8),  # fires below 103
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["stops"] == {"accepted": 1, "triggered": 1}
    status, stop_px, trigger_px, *_ = stop_rows(settings.postgres_dsn)["T1"]
    assert (status, stop_px, trigger_px) == ("TRIGGERED", Decimal("103.00"), Decimal("102.90"))
    assert [c[11] for c in children(out)] == [b"T1.T"]


def test_day_stop_expires_at_the_close_in_event_time(tmp_path, settings_factory, monkeypatch):
    s = settings_factory(session_close_utc="14:30")
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,100000\n")
    load(s, "accounts", accounts, monkeypatch)
    day = fix("D", [(11, "S1"), (1, "ACC1"), (55, "ACME"), (54, 2), (60, "20261125-14:00:00.000"),
                    (38, 100), (40, "3"), (99, "99.50"), (59, "0")], 2,
              "20261125-14:00:00.000")  # fmt: skip
    lines = [
        fix("X", [(268, 1), (279, 0), (269, 2), (55, "ACME"), (270, "100.00"), (271, 1)], 1,
            "20261125-13:59:00.000"),
        day,
        trade("99.00", 1_000, 3),  # 14:30:01, after the 14:30 close: the stop is gone
    ]  # fmt: skip
    summary, out = run(tmp_path, s, lines)
    assert summary["stops"] == {"accepted": 1, "expired": 1}
    assert stop_rows(s.postgres_dsn)["S1"][0] == "EXPIRED"
    assert children(out) == []


def order_list(list_id: str, contingency: str, entries: list[list[tuple[int, object]]],
               at_ms: int, seq: int) -> bytes:  # fmt: skip
    pairs: list[tuple[int, object]] = [(66, list_id), (1385, contingency), (73, len(entries))]
    for n, entry in enumerate(entries, 1):
        pairs += [entry[0], (67, n), *entry[1:]]
    return fix("E", pairs, seq, ts(at_ms))


def leg(cl_ord_id: str, side: str, ord_type: str, at_ms: int, **prices: str) -> list:
    out: list[tuple[int, object]] = [(11, cl_ord_id), (1, "ACC1"), (55, "ACME"), (54, side),
                                     (60, ts(at_ms)), (38, 100), (40, ord_type)]  # fmt: skip
    if "stop" in prices:
        out.append((99, prices["stop"]))
    if "limit" in prices:
        out.append((44, prices["limit"]))
    out.append((59, "1"))
    return out


def test_oco_of_two_stops_cancels_the_sibling_when_one_fires(tmp_path, settings):
    lines = [
        trade("100.00", 0, 1),
        order_list("L1", "1", [leg("S1", "2", "3", 100, stop="99.50"),
                               leg("B1", "1", "3", 100, stop="101.00")], 100, 2),  # fmt: skip
        trade("99.40", 1_000, 3),
        trade("101.50", 2_000, 4),  # would fire B1, which the OCO cancelled
    ]
    summary, out = run(tmp_path, settings, lines)
    rows = stop_rows(settings.postgres_dsn)
    assert (rows["S1"][0], rows["B1"][0]) == ("TRIGGERED", "CANCELLED")
    assert [c[11] for c in children(out)] == [b"S1.T"]
    [(placed,)] = audit_rows(
        settings, "SELECT count() FROM audit_log FINAL WHERE event_type = 'ORDER_PLACED'"
    )
    assert placed == 2  # the list is audited as the two orders it places


def test_bracket_activates_only_after_the_entry_is_fully_filled(tmp_path, settings):
    from tests.flows.test_executions_flow import fill

    lines = [
        trade("100.00", 0, 1),
        order_list("BR1", "2", [leg("E1", "1", "2", 100, limit="100.00"),
                                leg("TP1", "2", "2", 100, limit="102.00"),
                                leg("SL1", "2", "3", 100, stop="99.00")], 100, 2),  # fmt: skip
        fill("X1", "E1", "ACC1", 40, 40, "100.00", 500, 3),  # partial: children still held
        trade("98.90", 600, 4),  # below the stop-loss, which is not live yet
        trade("99.50", 650, 5),
        fill("X2", "E1", "ACC1", 60, 100, "100.00", 700, 6),  # full: take-profit out, stop live
        trade("98.80", 900, 7),  # the stop-loss fires; the take-profit is cancelled (OCO)
    ]
    summary, out = run(tmp_path, settings, lines)
    sent = children(out)
    assert [(c[35], c[11]) for c in sent] == [
        (b"D", b"E1"), (b"D", b"TP1"), (b"D", b"SL1.T"), (b"F", b"TP1.C")
    ]  # the take-profit working at the venue is withdrawn when the stop-loss fires
    assert sent[3][41] == b"TP1" and sent[3][38] == b"100"
    rows = stop_rows(settings.postgres_dsn)
    status, stop_px, trigger_px, *_ = rows["SL1"]
    assert (status, stop_px, trigger_px) == ("TRIGGERED", Decimal("99.00"), Decimal("98.80"))
    assert summary["dead_letters"] == 0


def replace(cl_ord_id: str, orig: str, side: str, stop_px: str, at_ms: int, seq: int) -> bytes:
    pairs = [(11, cl_ord_id), (41, orig), (1, "ACC1"), (55, "ACME"), (54, side),
             (60, ts(at_ms)), (38, 100), (40, "3"), (99, stop_px), (59, "1")]  # fmt: skip
    return fix("G", pairs, seq, ts(at_ms))


def test_replace_moves_the_stop_and_a_side_change_is_rejected(tmp_path, settings):
    lines = [
        trade("100.00", 0, 1),
        stop("S1", "2", "99.50", 100, 2),
        replace("S2", "S1", "2", "98.00", 200, 3),  # lower the stop
        replace("S3", "S2", "1", "101.00", 300, 4),  # side change: refused, S2 stays
        trade("99.00", 400, 5),  # would have fired the old stop, not the new one
        trade("97.90", 500, 6),
    ]
    summary, out = run(tmp_path, settings, lines)
    rows = stop_rows(settings.postgres_dsn)
    assert rows["S1"][0] == "CANCELLED"
    assert rows["S2"][:3] == ("TRIGGERED", Decimal("98.00"), Decimal("97.90"))
    assert "S3" not in rows
    assert [c[11] for c in children(out)] == [b"S2.T"]
    with psycopg.connect(settings.postgres_dsn) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters")]
    assert any("S3 rejected" in r and "Side(54)" in r for r in reasons), reasons


@pytest.mark.parametrize(
    ("reference", "second", "price"),
    [("bid", 1, "99.40"), ("mid", 2, "99.45"), ("ask", 3, "99.45"), ("last", 4, "99.40")],
)
def test_each_reference_price_fires_on_its_own_price(
    tmp_path, settings_factory, monkeypatch, reference, second, price
):
    s = settings_factory(stop_reference=reference)
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,100000\n")
    load(s, "accounts", accounts, monkeypatch)
    lines = [
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=1),
        trade("100.00", 50, 2),
        stop("S1", "2", "99.50", 100, 3),
        # Each move takes one more reference through the 99.50 sell stop (W carries no trade).
        snapshot("ACME", 1_000, "99.40", 100, "99.90", 100, seq=4),  # bid 99.40, mid 99.65
        snapshot("ACME", 2_000, "99.30", 100, "99.60", 100, seq=5),  # mid 99.45
        snapshot("ACME", 3_000, "99.00", 100, "99.45", 100, seq=6),  # ask 99.45
        trade("99.40", 4_000, 7),  # last 99.40
    ]
    run(tmp_path, s, lines)
    status, _, trigger_px, triggered_at, _ = stop_rows(s.postgres_dsn)["S1"]
    assert (status, trigger_px) == ("TRIGGERED", Decimal(price))
    assert triggered_at.second == second
