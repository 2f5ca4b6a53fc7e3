"""The market-data flow end to end: FIX files -> replay -> Redis quotes and PostgreSQL dead letters.

Runs against real Redis and PostgreSQL (see tests/conftest.py for which servers).
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
import redis
import simplefix

from brokerflow.cli import main
from brokerflow.commands.replay import replay
from simulator.market import MarketSimulator

DAY = "20261125"


def fix(msg_type: str, pairs: list[tuple[int, object]], seq: int = 1, sending: str = "") -> bytes:
    """Build one FIX 4.4 message with simplefix (computes 9 and 10)."""
    m = simplefix.FixMessage()
    m.append_pair(8, "FIX.4.4")
    m.append_pair(35, msg_type)
    m.append_pair(49, "VENUE")
    m.append_pair(56, "BROKERFLOW")
    m.append_pair(34, seq)
    m.append_pair(52, sending or f"{DAY}-14:30:00.000")
    for tag, value in pairs:
        m.append_pair(tag, value)
    return m.encode()


def ts(ms: int) -> str:
    """SendingTime (52) `ms` milliseconds after 14:30:00 of DAY."""
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    return f"{DAY}-14:{30 + m:02d}:{s:02d}.{ms:03d}"


def snapshot(symbol: str, at_ms: int, bid, bid_size, ask, ask_size, seq=1) -> bytes:
    return fix(
        "W",
        [(55, symbol), (268, 2), (269, 0), (270, bid), (271, bid_size),
         (269, 1), (270, ask), (271, ask_size)],
        seq,
        ts(at_ms),
    )


def incremental(entries: list[list[tuple[int, object]]], at_ms: int, seq=1) -> bytes:
    pairs: list[tuple[int, object]] = [(268, len(entries))]
    for e in entries:
        pairs += e
    return fix("X", pairs, seq, ts(at_ms))


def write_file(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def quote(r: redis.Redis, symbol: str) -> dict:
    raw = r.get(f"quote:{symbol}")
    assert raw is not None, f"no quote:{symbol} in Redis"
    return json.loads(raw)


def stream_entries(r: redis.Redis, symbol: str | None = None) -> list[dict]:
    out = []
    for _id, fields in r.xrange("stream:quotes"):
        if symbol is None or fields[b"symbol"].decode() == symbol:
            out.append(json.loads(fields[b"data"]))
    return out


def redis_state(r: redis.Redis) -> dict:
    state = {}
    for key in sorted(r.keys("*")):
        kind = r.type(key)
        if kind == b"string":
            state[key] = (r.get(key), r.ttl(key) > 0)
        elif kind == b"stream":
            state[key] = [fields for _id, fields in r.xrange(key)]
    return state


@pytest.fixture
def r(redis_db_url):
    client = redis.Redis.from_url(redis_db_url)
    yield client
    client.close()


@pytest.fixture
def settings(settings_factory):
    return settings_factory()


def test_replay_quote_and_ohlc_equal_what_the_fix_said(tmp_path, settings, r):
    lines = [
        snapshot("ACME", 0, "10.00", 500, "10.05", 300, seq=1),
        # Trades: build the bar and the volume.
        incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "10.02"), (271, 100)]], 500, 2),
        incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "10.40"), (271, 200)]], 1000, 3),
        incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "9.90"), (271, 50)]], 1500, 4),
        # New best bid before the delete of the old one, in one message (out of order).
        incremental(
            [
                [(279, 0), (269, 0), (55, "ACME"), (270, "10.01"), (271, 700)],
                [(279, 2), (269, 0), (55, "ACME"), (270, "10.00")],
            ],
            2000,
            5,
        ),
        # The ask level is deleted and replaced by a higher one.
        incremental(
            [
                [(279, 2), (269, 1), (55, "ACME"), (270, "10.05")],
                [(279, 0), (269, 1), (55, "ACME"), (270, "10.07"), (271, 900)],
            ],
            2500,
            6,
        ),
        incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "10.03"), (271, 25)]], 3000, 7),
    ]
    summary = replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False)
    q = quote(r, "ACME")
    assert (q["bid"], q["bid_size"], q["ask"], q["ask_size"]) == (10.01, 700, 10.07, 900)
    assert (q["ltp"], q["ltq"], q["volume"]) == (10.03, 25, 375)
    assert q["ts"] == 1_795_617_000_000 + 3000  # 2026-11-25T14:30:03Z, from the message
    assert q["symbol"] == "ACME" and q["seq"] >= 1
    ohlc = json.loads(r.get("ohlc:ACME:2026-11-25"))
    assert ohlc == {"open": 10.02, "high": 10.40, "low": 9.90, "close": 10.03, "volume": 375}
    ttl = r.ttl("ohlc:ACME:2026-11-25")
    assert 6 * 86_400 < ttl <= 7 * 86_400
    assert summary.as_dict()["messages"] == len(lines)
    assert summary.as_dict()["dead_letters"] == 0


def test_replay_symbols_of_one_x_message_and_inherited_symbol(tmp_path, settings, r):
    lines = [
        snapshot("AAA", 0, "1.00", 1, "1.10", 1),
        snapshot("BBB", 0, "2.00", 1, "2.10", 1),
        # One X for two symbols; the second AAA entry inherits 55 from the entry before it.
        incremental(
            [
                [(279, 1), (269, 0), (55, "BBB"), (270, "2.05"), (271, 10)],
                [(279, 1), (269, 1), (55, "AAA"), (270, "1.08"), (271, 20)],
                [(279, 0), (269, 2), (270, "1.07"), (271, 5)],
            ],
            700,
        ),
    ]
    replay([write_file(tmp_path / "multi.fix", lines)], settings, progress=False)
    assert (quote(r, "BBB")["bid"], quote(r, "BBB")["bid_size"]) == (2.05, 10)
    a = quote(r, "AAA")
    assert (a["ask"], a["ask_size"], a["ltp"], a["ltq"]) == (1.08, 20, 1.07, 5)


def test_coalescing_one_update_per_interval_and_final_state_kept(tmp_path, settings_factory, r):
    settings = settings_factory(coalesce_ms=100)
    lines = [snapshot("ACME", 0, "10.00", 100, "10.10", 100, seq=1)]
    # 100 trades 10 ms apart: one second of event time.
    for i in range(1, 101):
        px = f"{10 + i / 100:.2f}"
        lines.append(
            incremental([[(279, 0), (269, 2), (55, "ACME"), (270, px), (271, i)]], i * 10, i + 1)
        )
    replay([write_file(tmp_path / "burst.fix", lines)], settings, progress=False)
    entries = stream_entries(r, "ACME")
    # Leading edge at 0 ms; then, at each 100 ms boundary, the state held since the last
    # publish (its last change 10 ms before); the final state at the end of the stream.
    t0 = 1_795_617_000_000
    assert [e["ts"] - t0 for e in entries] == [0, *range(90, 1000, 100), 1000]
    assert [e["seq"] for e in entries] == list(range(1, 13))
    # The last published state is the last input: never withheld.
    assert entries[-1]["ltp"] == 11.0 and entries[-1]["ltq"] == 100
    assert quote(r, "ACME") == entries[-1]


def test_quiet_symbol_update_is_published_at_once(tmp_path, settings_factory, r):
    settings = settings_factory(coalesce_ms=100)
    lines = [
        snapshot("ACME", 0, "10.00", 100, "10.10", 100),
        incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "10.05"), (271, 1)]], 5_000),
        incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "10.06"), (271, 1)]], 9_000),
    ]
    replay([write_file(tmp_path / "quiet.fix", lines)], settings, progress=False)
    assert [e["ltp"] for e in stream_entries(r, "ACME")] == [None, 10.05, 10.06]


def test_malformed_input_becomes_dead_letters_and_good_messages_flow(
    tmp_path, settings, r, pg_dsn
):
    good1 = snapshot("ACME", 0, "10.00", 100, "10.10", 100, seq=1)
    good2 = incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "10.05"), (271, 7)]], 500, 2)
    bad_checksum = good2[:-4] + b"000\x01"
    body_start = good2.index(b"\x019=") + 3
    body_end = good2.index(b"\x01", body_start)
    bad_length = good2[:body_start] + b"999" + good2[body_end:]
    no_symbol = fix("W", [(268, 1), (269, 0), (270, "1.0"), (271, 1)], 3)
    unknown = fix("ZZ", [(58, "what is this")], 4)
    lines = [
        b"# a comment line, skipped",
        good1,
        b"this line is not FIX at all",
        bad_checksum,
        bad_length,
        no_symbol,
        unknown,
        b"",
        good2,
    ]
    summary = replay([write_file(tmp_path / "mixed.fix", lines)], settings, progress=False)
    q = quote(r, "ACME")
    assert (q["bid"], q["ltp"], q["ltq"]) == (10.0, 10.05, 7)
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT source, reason FROM dead_letters ORDER BY source").fetchall()
        raws = dict(conn.execute("SELECT source, raw FROM dead_letters").fetchall())
    reasons = {src.rsplit(":", 1)[1]: reason for src, reason in rows}
    # The raw text is the line as written, without the file's newline.
    assert {bytes(raw) for src, raw in raws.items() if src.endswith(":4")} == {bad_checksum}
    assert set(reasons) == {"3", "4", "5", "6", "7"}, rows
    assert "8=" in reasons["3"] or "BeginString" in reasons["3"]
    assert "CheckSum(10)" in reasons["4"]
    assert "BodyLength(9)" in reasons["5"]
    assert "Symbol(55)" in reasons["6"]
    assert "MsgType(35)" in reasons["7"] and "ZZ" in reasons["7"]
    assert summary.as_dict()["dead_letters"] == 5


def test_replay_twice_gives_the_same_redis_state_and_no_new_rows(
    tmp_path, settings, r, pg_dsn
):
    sim = MarketSimulator(symbols=5, seed=3)
    path = tmp_path / "sim.fix"
    sim.write_file(path, max_messages=3_000)
    with path.open("ab") as fh:
        fh.write(b"garbage line\n")
    replay([path], settings, progress=False)
    first = redis_state(r)
    with psycopg.connect(pg_dsn) as conn:
        letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    second_run = replay([path], settings, progress=False).as_dict()
    assert redis_state(r) == first
    assert second_run["quotes"] == 0 and second_run["stale_quotes_skipped"] > 0
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == letters == 1


def test_replay_of_a_simulated_session_matches_the_simulator(tmp_path, settings, r):
    sim = MarketSimulator(symbols=20, seed=11)
    path = tmp_path / "session.fix"
    sim.write_file(path, minutes=1)
    summary = replay([path], settings, progress=False).as_dict()
    expected = sim.expected_final_quotes()
    assert summary["dead_letters"] == 0
    assert summary["symbols"] == len(expected) == 20
    for symbol, want in expected.items():
        got = quote(r, symbol)
        for field in ("bid", "bid_size", "ask", "ask_size", "ltp", "ltq"):
            assert got[field] == pytest.approx(float(want[field])), (symbol, field)
        # The feed's cumulative volume (269=B) wins over our own sum once it has been seen.
        assert got["volume"] == pytest.approx(float(want["volume_reported"])), symbol
        bar = json.loads(r.get(f"ohlc:{symbol}:2026-11-25"))
        assert bar["high"] == pytest.approx(float(want["high"])), symbol
        assert bar["low"] == pytest.approx(float(want["low"])), symbol


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"hello\nworld\n", "not a FIX log")],
)
def test_replay_bad_file_is_one_line_error(tmp_path, capsys, content, message):
    path = tmp_path / "input.fix"
    if content is not None:
        path.write_bytes(content)
    assert main(["replay", str(path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_replay_json_summary_is_last_line(tmp_path, capsys, settings_factory, monkeypatch):
    settings = settings_factory()
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    path = write_file(tmp_path / "one.fix", [snapshot("ACME", 0, "1.00", 1, "1.01", 1)])
    assert main(["replay", "--quiet", "--json", str(path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    doc = json.loads(last)
    assert doc["messages"] == 1 and doc["quotes"] == 1 and doc["dead_letters"] == 0
    assert doc["alerts"] == {} and doc["executions"] == 0


def test_change_against_the_venues_close_in_the_morning_snapshot(tmp_path, settings, r):
    """A 269=5 in the first 35=W (no trade yet today) is the previous session's close; one after
    today's trades is today's close and leaves prev_close alone."""
    morning = fix(
        "W",
        [(55, "ACME"), (268, 3), (269, 0), (270, "10.00"), (271, 500),
         (269, 1), (270, "10.05"), (271, 300), (269, 5), (270, "9.80")],
        1,
        ts(0),
    )  # fmt: skip
    # An ohlc key of yesterday that must not win over the venue's close.
    r.set("ohlc:ACME:2026-11-24", json.dumps({"open": 1, "high": 1, "low": 1, "close": 1.0,
                                              "volume": 1}))  # fmt: skip
    lines = [
        morning,
        incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "10.02"), (271, 100)]], 500, 2),
        incremental([[(279, 0), (269, 2), (55, "ACME"), (270, "10.13"), (271, 100)]], 1000, 3),
    ]
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False)
    q = quote(r, "ACME")
    # By hand: 10.13 - 9.80 = 0.33; 0.33 / 9.80 = 3.367 % -> 3.37
    assert (q["prev_close"], q["change"], q["change_pct"]) == (9.80, 0.33, 3.37)
    assert (q["open"], q["high"], q["low"]) == (10.02, 10.13, 10.02)
    first = stream_entries(r, "ACME")[0]
    assert (first["prev_close"], first["change"], first["change_pct"]) == (9.80, None, None)

    evening = fix("W", [(55, "ACME"), (268, 1), (269, 5), (270, "10.10")], 4, ts(2000))
    replay([write_file(tmp_path / "day2.fix", [*lines, evening])], settings, progress=False)
    q = quote(r, "ACME")
    assert q["prev_close"] == 9.80  # today's close did not become prev_close
    assert json.loads(r.get("ohlc:ACME:2026-11-25"))["close"] == 10.10


def test_change_against_yesterdays_ohlc_key_read_once(tmp_path, settings, r):
    """Without a close from the venue, the previous close is the latest earlier day's ohlc key
    in Redis (a Monday finds Friday's)."""
    r.set("ohlc:BOLT:2026-11-20", json.dumps({"open": 50.0, "high": 51.0, "low": 49.0,
                                              "close": 50.25, "volume": 10.0}))  # fmt: skip
    r.set("ohlc:BOLT:2026-11-19", json.dumps({"close": 1.0}))
    lines = [
        snapshot("BOLT", 0, "49.90", 100, "50.10", 100, seq=1),
        incremental([[(279, 0), (269, 2), (55, "BOLT"), (270, "49.75"), (271, 10)]], 500, 2),
        snapshot("CARD", 600, "5.00", 1, "5.01", 1, seq=3),
        incremental([[(279, 0), (269, 2), (55, "CARD"), (270, "5.01"), (271, 10)]], 700, 4),
    ]
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False)
    q = quote(r, "BOLT")
    # By hand: 49.75 - 50.25 = -0.5; -0.5 / 50.25 = -0.995 % -> -1.0
    assert (q["prev_close"], q["change"], q["change_pct"]) == (50.25, -0.5, -1.0)
    assert all(e["prev_close"] == 50.25 for e in stream_entries(r, "BOLT"))
    card = quote(r, "CARD")  # no earlier day in Redis: no change
    assert (card["prev_close"], card["change"], card["change_pct"]) == (None, None, None)
