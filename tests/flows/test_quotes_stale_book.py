"""What users see of a stale book (issue 21): FIX files -> replay -> `quote:{SYMBOL}`,
`stream:quotes`, the edge's frames, the audit snapshot, dead letters and the run's summary.

A book that lost an update (an RptSeq (83) gap, a damaged 35=X whose Symbol can still be read),
or whose 35=W is itself crossed, publishes its quotes with `"stale": true`, the reason and since
when, until its next sound 35=W; the other symbols are not touched. An RptSeq that goes backwards
is ignored and counted. Real PostgreSQL and Redis (tests/conftest.py), chdb under the test's
data dir, a real edge (tests/edge/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import random

import psycopg
import pytest
import redis
from websockets.asyncio.client import connect

from brokerflow.cli import main
from brokerflow.commands.replay import replay
from tests.edge.conftest import running_edge
from tests.edge.test_edge_server import _drain, _quotes, _until
from tests.flows.test_executions_flow import audit_rows
from tests.flows.test_metrics_endpoint import port  # noqa: F401 - a fixture
from tests.flows.test_quotes_flow import fix, incremental, quote, stream_entries, ts, write_file
from tests.scrape import scrape

T0_MS = 1_795_617_000_000  # 2026-11-25T14:30:00Z, the helpers' day


def book(symbol: str, at_ms: int, seq: int, rpt_seq: int, bid: str, ask: str) -> bytes:
    """A 35=W with its RptSeq (83)."""
    pairs = [(55, symbol), (83, rpt_seq), (268, 2), (269, 0), (270, bid), (271, 100),
             (269, 1), (270, ask), (271, 100)]  # fmt: skip
    return fix("W", pairs, seq, ts(at_ms))


def top(symbol: str, bid: str, at_ms: int, seq: int, rpt_seq: int) -> bytes:
    """A 35=X moving the best bid (a CHANGE of the top: an L1 feed), with its RptSeq."""
    entry = [(279, 1), (269, 0), (55, symbol), (83, rpt_seq), (270, bid), (271, 100)]
    return incremental([entry], at_ms, seq)


def damaged(line: bytes) -> bytes:
    """The line with a bit flipped in its last price: the checksum fails, Symbol still reads."""
    at = line.rindex(b"\x01270=") + 5
    return line[:at] + bytes([line[at] ^ 1]) + line[at + 1 :]


def order(cl_ord_id: str, symbol: str, at_ms: int, seq: int) -> bytes:
    pairs = [(11, cl_ord_id), (1, "ACC1"), (55, symbol), (54, 1), (60, ts(at_ms)), (38, 100),
             (40, 2), (44, "10.00")]  # fmt: skip
    return fix("D", pairs, seq, ts(at_ms))


# GAPX loses RptSeq 12, LOST's increment arrives damaged, CRSW's 35=W is crossed, DUPX gets
# RptSeq 11 a second time, SAFE is sound throughout.
STALE_PART = [
    book("GAPX", 0, 1, 10, "10.00", "10.10"),
    book("LOST", 0, 2, 10, "20.00", "20.10"),
    book("SAFE", 0, 3, 10, "30.00", "30.10"),
    book("DUPX", 0, 4, 10, "40.00", "40.10"),
    book("CRSW", 0, 5, 10, "51.00", "50.90"),  # bid > ask: published flagged, a dead letter
    top("GAPX", "10.01", 1_000, 6, 11),
    top("SAFE", "30.01", 1_000, 7, 11),
    top("DUPX", "40.02", 1_000, 8, 11),
    top("GAPX", "10.03", 2_000, 9, 13),  # RptSeq 12 was lost: stale from here
    damaged(top("LOST", "20.02", 2_000, 10, 11)),  # a dead letter naming LOST: stale
    top("DUPX", "39.00", 2_000, 11, 11),  # RptSeq 11 again: ignored, the book keeps 40.02
    top("GAPX", "10.04", 3_000, 12, 14),
    top("LOST", "20.03", 3_000, 13, 12),
    top("SAFE", "30.02", 3_000, 14, 12),
    order("C1", "GAPX", 3_000, 15),  # audited with the stale book's quote
]
RECOVERY = [
    book("GAPX", 5_000, 16, 20, "10.05", "10.10"),
    book("LOST", 5_000, 17, 20, "20.05", "20.10"),
    book("CRSW", 5_000, 18, 20, "51.00", "51.10"),
    top("GAPX", "10.06", 6_000, 19, 21),
    order("C2", "GAPX", 6_000, 20),
]
STALE_KEYS = {"stale", "stale_reason", "stale_since"}


@pytest.fixture
def settings(settings_factory):
    return settings_factory()


def flags(doc: dict) -> tuple | None:
    """(reason, since) of a stale quote, None of a sound one (which has no stale keys)."""
    if "stale" not in doc:
        assert not STALE_KEYS & set(doc), doc
        return None
    assert doc["stale"] is True, doc
    return doc["stale_reason"], doc["stale_since"]


def test_a_lost_update_makes_exactly_that_symbol_stale_until_its_next_snapshot(tmp_path, settings):
    stale_part = write_file(tmp_path / "stale.fix", STALE_PART)
    summary = replay([stale_part], settings, progress=False, flows=("quotes", "audit"))
    r = redis.Redis.from_url(settings.redis_url)
    gap, lost, crossed = quote(r, "GAPX"), quote(r, "LOST"), quote(r, "CRSW")
    assert (gap["bid"], flags(gap)) == (10.04, ("rptseq_gap", T0_MS + 2_000))
    assert (lost["bid"], flags(lost)) == (20.03, ("dead_letter", T0_MS + 2_000))
    assert (crossed["bid"], crossed["ask"]) == (51.0, 50.9)
    assert flags(crossed) == ("crossed_snapshot", T0_MS)
    assert flags(quote(r, "SAFE")) is None and quote(r, "SAFE")["bid"] == 30.02
    dup = quote(r, "DUPX")
    assert (dup["bid"], flags(dup)) == (40.02, None)  # the backwards RptSeq changed nothing
    # stream:quotes: GAPX's quotes are flagged from the message that showed the gap on
    gap_stream = [(q["ts"] - T0_MS, q["bid"], flags(q)) for q in stream_entries(r, "GAPX")]
    assert gap_stream[0] == (0, 10.0, None)
    assert {f for t, _, f in gap_stream if t < 2_000} == {None}
    assert {f for t, _, f in gap_stream if t >= 2_000} == {("rptseq_gap", T0_MS + 2_000)}
    assert gap_stream[-1][1] == 10.04
    for symbol in ("SAFE", "DUPX"):
        assert {flags(q) for q in stream_entries(r, symbol)} == {None}
    # the dead letters name the damaged line and the crossed snapshot
    with psycopg.connect(settings.postgres_dsn) as conn:
        reasons = [row[0] for row in conn.execute("SELECT reason FROM dead_letters ORDER BY 1")]
    assert len(reasons) == 2
    assert any("CheckSum(10)" in reason for reason in reasons)
    assert "35=W of CRSW is crossed: bid 51.0 >= ask 50.9" in reasons
    stale = summary.as_dict()["stale_books"]
    assert (stale["symbols"], stale["duplicates"], stale["stale_at_end"]) == (3, 1, 3)
    assert stale["reasons"] == {"crossed_snapshot": 1, "dead_letter": 1, "rptseq_gap": 1}
    assert summary.as_dict()["crossed_quotes_unflagged"] == 0

    # The day goes on: each stale symbol's next 35=W makes it sound again.
    day = write_file(tmp_path / "day.fix", STALE_PART + RECOVERY)
    summary = replay([day], settings, progress=False, flows=("quotes", "audit"))
    for symbol, bid in (("GAPX", 10.06), ("LOST", 20.05), ("CRSW", 51.0)):
        q = quote(r, symbol)
        assert (q["bid"], flags(q)) == (bid, None), q
    assert [(q["ts"] - T0_MS, flags(q)) for q in stream_entries(r, "GAPX")][-2:] == [
        (5_000, None),
        (6_000, None),
    ]
    stale = summary.as_dict()["stale_books"]
    assert stale["stale_at_end"] == 0
    assert stale["seconds"] == 3.0 + 3.0 + 5.0  # GAPX and LOST 2 s -> 5 s, CRSW 0 -> 5 s
    lines = summary.lines()
    assert any(
        line.startswith("stale books") and "rptseq_gap 1" in line and "11.0 s stale" in line
        for line in lines
    ), lines
    r.close()

    # The audit trail: the order placed on the stale book says so; the later one does not.
    rows = audit_rows(
        settings, "SELECT cl_ord_id, market_snapshot FROM audit_log FINAL ORDER BY timestamp"
    )
    snapshots = {cl_ord_id: json.loads(snapshot) for cl_ord_id, snapshot in rows}
    assert snapshots["C1"]["bid"] == 10.04
    assert flags(snapshots["C1"]) == ("rptseq_gap", T0_MS + 2_000)
    assert (snapshots["C2"]["bid"], flags(snapshots["C2"])) == (10.06, None)


def test_the_stale_quote_is_flagged_on_the_websocket_in_every_mode(
    tmp_path, settings, redis_db_url
):
    stale_part = write_file(tmp_path / "stale.fix", STALE_PART)
    day = write_file(tmp_path / "day.fix", STALE_PART + RECOVERY)
    modes = ("ltp", "quote", "full")

    # the opening snapshots first: the edge serves symbols it has a quote of
    opening = write_file(tmp_path / "opening.fix", STALE_PART[:5])
    replay([opening], settings, progress=False, flows=("quotes",))

    async def scenario(edge) -> None:
        token = edge.token("ann", "trader", ("A1",))
        clients = [await connect(edge.ws_url(token)) for _ in modes]
        try:
            for ws, mode in zip(clients, modes, strict=True):
                await _until(ws, "hello")
                await ws.send(json.dumps({"action": "subscribe", "symbols": ["GAPX", "SAFE"],
                                          "mode": mode}))  # fmt: skip
                assert flags(await _until(ws, "snapshot")) is None
            await asyncio.to_thread(
                replay, [stale_part], settings, progress=False, flows=("quotes",)
            )
            for ws, mode in zip(clients, modes, strict=True):
                frames = _quotes(await _drain(ws))
                gap = [f for f in frames if f["symbol"] == "GAPX"][-1]
                assert flags(gap) == ("rptseq_gap", T0_MS + 2_000), (mode, gap)
                assert {flags(f) for f in frames if f["symbol"] == "SAFE"} == {None}, mode
            # a client subscribing now gets the flag in its snapshot, in every mode
            async with connect(edge.ws_url(token)) as late:
                await _until(late, "hello")
                for mode in modes:
                    await late.send(json.dumps({"action": "subscribe", "symbols": ["GAPX"],
                                                "mode": mode}))  # fmt: skip
                    snapshot = await _until(late, "snapshot")
                    assert flags(snapshot) == ("rptseq_gap", T0_MS + 2_000), (mode, snapshot)
            # its next 35=W: the frames lose the flag
            await asyncio.to_thread(replay, [day], settings, progress=False, flows=("quotes",))
            for ws, mode in zip(clients, modes, strict=True):
                gap = [f for f in _quotes(await _drain(ws)) if f["symbol"] == "GAPX"][-1]
                assert flags(gap) is None, (mode, gap)
        finally:
            for ws in clients:
                await ws.close()

    with running_edge(redis_db_url) as edge:
        asyncio.run(scenario(edge))


def damage_lines(lines: list[bytes], share: float, seed: int) -> list[bytes]:
    """Damage `share` of the lines as logs and links do (seeded): truncated, a bit flipped,
    bytes lost, garbage inserted."""
    rng = random.Random(seed)
    out = []
    for line in lines:
        body = line.rstrip(b"\n")
        if rng.random() < share:
            at = rng.randrange(len(body))
            kind = rng.randrange(4)
            if kind == 0:
                body = body[: max(1, at)]
            elif kind == 1:
                body = body[:at] + bytes([body[at] ^ (1 << rng.randrange(8))]) + body[at + 1 :]
            elif kind == 2:
                body = body[:at] + body[at + rng.randrange(1, 8) :]
            else:
                garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
                body = body[:at] + garbage + body[at:]
        out.append(body + b"\n")
    return out


def test_a_damaged_day_publishes_no_crossed_quote_unflagged(
    tmp_path,
    settings_factory,
    monkeypatch,
    capsys,
    port,  # noqa: F811 - the fixture
):
    settings = settings_factory(metrics_port=port)
    day = tmp_path / "day.fix"
    assert main(["simulate", "--symbols", "20", "--minutes", "1", "--seed", "5",
                 "--out", str(day)]) == 0  # fmt: skip
    lines = day.read_bytes().splitlines(keepends=True)
    damaged_day = tmp_path / "damaged.fix"
    damaged_day.write_bytes(b"".join(damage_lines(lines, 0.03, seed=21)))
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_METRICS_PORT", str(port))
    capsys.readouterr()
    argv = ["--data-dir", str(settings.data_dir), "replay", "--quiet", "--json",
            "--flows", "quotes", str(damaged_day)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    doc = json.loads(out[-1])
    assert doc["dead_letters"] > 0
    stale_line = [line for line in out if line.startswith("stale books")]
    assert len(stale_line) == 1 and "s stale" in stale_line[0], out

    r = redis.Redis.from_url(settings.redis_url)
    entries = stream_entries(r)
    assert len(entries) == doc["quotes"]  # the whole stream is there to scan
    crossed = [q for q in entries if None not in (q["bid"], q["ask"]) and q["bid"] > q["ask"]]
    assert crossed, "the damage crossed no book: the check below would prove nothing"
    assert [q for q in crossed if q.get("stale") is not True] == []
    assert doc["crossed_quotes"] == len(crossed) and doc["crossed_quotes_unflagged"] == 0
    for symbol in {q["symbol"] for q in entries}:
        q = quote(r, symbol)
        if q["bid"] is not None and q["ask"] is not None and q["bid"] >= q["ask"]:
            assert q.get("stale") is True, q
    r.close()
    stale = doc["stale_books"]
    assert stale["symbols"] > 0 and stale["seconds"] > 0 and sum(stale["reasons"].values()) > 0

    metrics = scrape(f"127.0.0.1:{port}")
    assert metrics[("brokerflow_books_stale", ())] == stale["stale_at_end"]
    by_reason = {dict(labels)["reason"]: v for (name, labels), v in metrics.items()
                 if name == "brokerflow_book_stale_total"}  # fmt: skip
    assert by_reason == stale["reasons"]
    seconds = sum(v for (name, _), v in metrics.items()
                  if name == "brokerflow_book_stale_seconds_total")  # fmt: skip
    assert seconds == pytest.approx(stale["seconds"], abs=0.01)
