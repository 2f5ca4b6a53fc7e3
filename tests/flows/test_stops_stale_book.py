"""The stop engine on a stale book (issue 21): FIX files -> replay -> stop_orders, children,
alerts. A stale book's prices (here: a book crossed by increments) do not trigger, ratchet or
fire a leg; the first sound 35=W is evaluated at once and fires at its own prices.

Real PostgreSQL and Redis (tests/conftest.py) and chdb under the test's data dir.
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from tests.flows.test_executions_flow import load
from tests.flows.test_quotes_flow import fix, incremental, ts
from tests.flows.test_stops_flow import children, order_list, run, stop_rows


@pytest.fixture
def settings(settings_factory, tmp_path, monkeypatch):
    s = settings_factory()
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account,owner,cash\nACC1,alice,100000\n")
    load(s, "accounts", accounts, monkeypatch)
    return s


def book(symbol: str, at_ms: int, seq: int, bid: str, ask: str, last: str | None) -> bytes:
    """A sound 35=W: bid, ask and (when given) the last trade."""
    pairs: list[tuple[int, object]] = [(55, symbol), (268, 3 if last else 2),
                                       (269, 0), (270, bid), (271, 100),
                                       (269, 1), (270, ask), (271, 100)]  # fmt: skip
    if last:
        pairs += [(269, 2), (270, last), (271, 100)]
    return fix("W", pairs, seq, ts(at_ms))


def trade(symbol: str, px: str, at_ms: int, seq: int) -> bytes:
    return incremental([[(279, 0), (269, 2), (55, symbol), (270, px), (271, 100)]], at_ms, seq)


def cross(symbol: str, bid: str, at_ms: int, seq: int) -> bytes:
    """An increment that adds a bid above the best ask: the increments crossed the book."""
    return incremental([[(279, 0), (269, 0), (55, symbol), (270, bid), (271, 100)]], at_ms, seq)


def stop(cl_ord_id: str, symbol: str, at_ms: int, seq: int, **tags: str) -> bytes:
    """A GTC sell 35=D; the order type and prices as `t<tag>=value`."""
    pairs = [(11, cl_ord_id), (1, "ACC1"), (55, symbol), (54, "2"), (60, ts(at_ms)),
             (38, 100), *((int(k[1:]), v) for k, v in tags.items()), (59, "1")]  # fmt: skip
    return fix("D", pairs, seq, ts(at_ms))


def leg(cl_ord_id: str, side: str, stop_px: str, at_ms: int) -> list[tuple[int, object]]:
    return [(11, cl_ord_id), (1, "ACC1"), (55, "OCOX"), (54, side), (60, ts(at_ms)), (38, 100),
            (40, "3"), (99, stop_px), (59, "1")]  # fmt: skip


# Three stops, each on its own symbol, each crossed only by prices of a stale book:
# - S1 (ACME), sell stop 99.50: a stale trade print at 99.00 and a stale bid/ask below it;
# - T1 (TRLX), sell trailing stop 1.00 from 100: stale prints at 105 (a ratchet to stop 104)
#   then 103.50 (would fire after that ratchet);
# - the OCO of OCOX, sell stop 99.50 and buy stop 101.00: a stale print at 99.00.
STALE_PART = [
    book("ACME", 0, 1, "99.90", "100.10", "100.00"),
    book("TRLX", 0, 2, "99.90", "100.10", "100.00"),
    book("OCOX", 0, 3, "99.90", "100.10", "100.00"),
    stop("S1", "ACME", 100, 4, t40="3", t99="99.50"),
    stop("T1", "TRLX", 100, 5, t40="P", t18="a", t211="1.00"),
    order_list("L1", "1", [leg("O1", "2", "99.50", 100), leg("O2", "1", "101.00", 100)], 100, 6),
    cross("ACME", "100.20", 1_000, 7),  # bid 100.20 >= ask 100.10: stale (crossed)
    cross("TRLX", "100.20", 1_000, 8),
    cross("OCOX", "100.20", 1_000, 9),
    trade("ACME", "99.00", 1_500, 10),  # past S1, but a stale book's print
    incremental(
        [
            [(279, 0), (269, 0), (55, "ACME"), (270, "98.90"), (271, 100)],
            [(279, 0), (269, 1), (55, "ACME"), (270, "99.00"), (271, 100)],
        ],
        1_600,
        11,
    ),  # fmt: skip
    trade("TRLX", "105.00", 1_500, 12),
    trade("TRLX", "103.50", 1_600, 13),
    trade("OCOX", "99.00", 1_500, 14),
]
# The first sound price: each symbol's next 35=W.
SOUND_PART = [
    book("ACME", 3_000, 15, "99.30", "99.40", "99.35"),  # fires S1 at 99.35
    book("TRLX", 3_000, 16, "103.50", "103.70", "103.60"),  # ratchets to 103.60: stop 102.60
    book("OCOX", 3_000, 17, "99.10", "99.20", "99.15"),  # fires O1, cancels O2
    trade("TRLX", "102.50", 4_000, 18),  # sound: fires T1 at its stop 102.60
]


def alerts(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT kind, details->>'cl_ord_id' FROM alerts ORDER BY 2").fetchall()


def test_stale_prices_trigger_nothing_and_the_first_sound_snapshot_fires(tmp_path, settings):
    summary, out = run(tmp_path, settings, STALE_PART, "stale.fix")
    assert summary["stops"] == {"accepted": 4}  # S1, T1 and the two OCO legs
    rows = stop_rows(settings.postgres_dsn)
    assert {k: v[0] for k, v in rows.items()} == {
        "S1": "ACTIVE", "T1": "ACTIVE", "O1": "ACTIVE", "O2": "ACTIVE"
    }  # fmt: skip
    assert alerts(settings.postgres_dsn) == []
    assert children(out) == []

    # The same day on to its snapshots (a fresh run of the whole file).
    summary, out = run(tmp_path, settings, STALE_PART + SOUND_PART, "day.fix")
    assert summary["stops"] == {"accepted": 4, "triggered": 3, "cancelled": 1}
    rows = stop_rows(settings.postgres_dsn)
    status, stop_px, trigger_px, triggered_at, child = rows["S1"]
    assert (status, stop_px, trigger_px, child) == (
        "TRIGGERED", Decimal("99.50"), Decimal("99.35"), "S1.T"
    )  # fmt: skip
    assert triggered_at.strftime("%H:%M:%S.%f") == "14:30:03.000000"  # the snapshot's time
    # No ratchet on the stale 105: the high-water mark is the sound snapshot's 103.60.
    status, stop_px, trigger_px, triggered_at, _ = rows["T1"]
    assert (status, stop_px, trigger_px) == ("TRIGGERED", Decimal("102.60"), Decimal("102.50"))
    assert triggered_at.strftime("%H:%M:%S") == "14:30:04"
    assert (rows["O1"][0], rows["O1"][2], rows["O2"][0]) == (
        "TRIGGERED", Decimal("99.15"), "CANCELLED"
    )  # fmt: skip
    assert sorted(c[11] for c in children(out)) == [b"O1.T", b"S1.T", b"T1.T"]
    assert alerts(settings.postgres_dsn) == [
        ("STOP_TRIGGERED", "O1"), ("STOP_TRIGGERED", "S1"), ("STOP_TRIGGERED", "T1")
    ]  # fmt: skip


def test_a_sound_snapshot_without_a_trade_keeps_the_last_sound_trade(tmp_path, settings):
    """The stale print is no last price even after the book is sound again: a snapshot that
    carries no trade of its own leaves the last sound trade (100.00) standing."""
    lines = [
        book("ACME", 0, 1, "99.90", "100.10", "100.00"),
        stop("S1", "ACME", 100, 2, t40="3", t99="99.50"),
        cross("ACME", "100.20", 1_000, 3),
        trade("ACME", "99.00", 1_500, 4),
        book("ACME", 3_000, 5, "99.90", "100.10", None),  # sound, no trade
        book("ACME", 4_000, 6, "99.80", "100.00", None),  # nor here
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["stops"] == {"accepted": 1}
    assert stop_rows(settings.postgres_dsn)["S1"][0] == "ACTIVE"
    assert children(out) == []


def sequenced(symbol: str, px: str, at_ms: int, seq: int, rpt_seq: int) -> bytes:
    """A trade increment whose entry carries RptSeq (83)."""
    entry = [(279, 0), (269, 2), (55, symbol), (83, rpt_seq), (270, px), (271, 100)]
    return incremental([entry], at_ms, seq)


def sequenced_book(symbol: str, at_ms: int, seq: int, rpt_seq: int, bid: str, ask: str,
                   last: str) -> bytes:  # fmt: skip
    pairs = [(55, symbol), (83, rpt_seq), (268, 3), (269, 0), (270, bid), (271, 100),
             (269, 1), (270, ask), (271, 100), (269, 2), (270, last), (271, 100)]  # fmt: skip
    return fix("W", pairs, seq, ts(at_ms))


def damaged(line: bytes) -> bytes:
    """The line with its CheckSum (10) wrong: a dead letter whose Symbol can still be read."""
    head, _, _ = line.rpartition(b"10=")
    return head + b"10=000\x01"


def test_an_rptseq_gap_or_a_damaged_increment_holds_the_stop_until_the_next_snapshot(
    tmp_path, settings
):
    lines = [
        sequenced_book("ACME", 0, 1, 10, "99.90", "100.10", "100.00"),
        sequenced_book("DMGX", 0, 2, 10, "99.90", "100.10", "100.00"),
        stop("S1", "ACME", 100, 3, t40="3", t99="99.50"),
        stop("S2", "DMGX", 100, 4, t40="3", t99="99.50"),
        sequenced("ACME", "99.80", 1_000, 5, 11),
        sequenced("ACME", "99.00", 2_000, 6, 13),  # RptSeq 13 after 11: a lost update
        sequenced("ACME", "98.80", 2_500, 7, 14),
        sequenced("ACME", "98.70", 2_600, 8, 12),  # behind: a duplicate, ignored
        damaged(sequenced("DMGX", "99.60", 1_000, 9, 11)),  # a dead letter: DMGX is stale
        sequenced("DMGX", "99.00", 2_000, 10, 12),  # in sequence, but the book is stale
        sequenced_book("ACME", 3_000, 11, 20, "99.20", "99.30", "99.25"),
        sequenced_book("DMGX", 3_500, 12, 20, "99.30", "99.50", "99.40"),
    ]
    summary, out = run(tmp_path, settings, lines)
    assert summary["stops"] == {"accepted": 2, "triggered": 2}
    rows = stop_rows(settings.postgres_dsn)
    assert (rows["S1"][2], rows["S1"][3].strftime("%H:%M:%S.%f")) == (
        Decimal("99.25"), "14:30:03.000000"
    )  # fmt: skip
    assert (rows["S2"][2], rows["S2"][3].strftime("%H:%M:%S.%f")) == (
        Decimal("99.40"), "14:30:03.500000"
    )  # fmt: skip
    assert sorted(c[11] for c in children(out)) == [b"S1.T", b"S2.T"]
