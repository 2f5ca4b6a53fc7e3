"""The pipeline benchmark's parts that need no store: CPU attribution of py-spy samples, the
latency matching of commits to chunks, and the refusal to report an empty pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cpu_shares import FLOWS, OTHER, attribute, shares_pct, top_frames
from bench.pipeline import refusal
from bench.pipeline_day import Day
from bench.pipeline_run import latencies

ROOT = Path("/repo")
SITE = "/venv/lib/python3.11/site-packages"


def frame(name: str, path: str, line: int = 1) -> str:
    return f"{name} ({path}:{line})"


def sample(*frames: str, count: int = 1) -> str:
    return ";".join(frames) + f" {count}"


RUN = frame("run_main", f"{SITE}/bytewax/testing.py")


PSYCOPG = f"{SITE}/psycopg/cursor.py"
CHDB = f"{SITE}/chdb/state/sqlitelike.py"


@pytest.mark.parametrize(
    ("stack", "flow"),
    [
        # the deepest flow frame decides, not the leaf: shared helpers count for their caller
        ([("_close_window", "/repo/flows/margin.py"), ("execute", PSYCOPG)], "margin"),
        ([("on_batch", "/repo/flows/stops.py"), ("screen", "/repo/domain/margin_book.py")],
         "margin"),
        ([("figures", "/repo/domain/margin.py"), ("to_ticks", "/repo/domain/values.py")],
         "margin"),
        # the FIX encoder is the stop engine's, though it lives among the connectors
        ([("decode", "/repo/flows/operators.py"), ("encode", "/repo/connectors/fix/encode.py")],
         "stops"),
        ([("decode", "/repo/flows/operators.py"), ("tokenize", "/repo/connectors/fix/codec.py")],
         "read+decode"),
        ([("write_batch", "/repo/sinks/clickhouse/sinks.py"), ("query", CHDB)], "audit"),
        ([("query", CHDB)], "audit"),
        ([("write", "/repo/sinks/postgres.py"), ("execute", PSYCOPG)], OTHER),
        ([("write", "/repo/sinks/alerts.py"), ("write", "/repo/sinks/postgres.py")], "alerts"),
    ],
)  # fmt: skip
def test_attribute_a_sample_goes_to_the_flow_of_its_deepest_flow_frame(stack, flow):
    flows, _ = attribute([sample(RUN, *(frame(name, path) for name, path in stack), count=3)],
                         ROOT)  # fmt: skip
    assert flows == {flow: 3}


def test_attribute_shares_add_up_and_name_where_the_time_goes():
    lines = [
        sample(RUN, frame("_evaluate", "/repo/flows/margin.py"), count=6),
        sample(RUN, frame("tokenize", "/repo/connectors/fix/codec.py"), count=3),
        sample(RUN, frame("wait", "/usr/lib/python3.11/threading.py"), count=1),
        "garbage without a count",
    ]
    flows, frames = attribute(lines, ROOT)
    pct = shares_pct(flows)
    assert list(pct) == list(FLOWS)
    assert (pct["margin"], pct["read+decode"], pct[OTHER]) == (60.0, 30.0, 10.0)
    assert sum(pct.values()) == pytest.approx(100)
    assert top_frames(frames, 2) == [
        "60.0 % margin: _evaluate (flows/margin.py)",
        "30.0 % read+decode: tokenize (connectors/fix/codec.py)",
    ]
    # engine/other names its innermost frame
    assert any("wait (/usr/lib/python3.11/threading.py)" in line for line in top_frames(frames))


MS = 1_000_000


def test_latencies_match_commits_to_the_chunks_their_events_came_from():
    # three chunks read at 0, 100 and 200 ms, holding event times up to 10, 20 and 30 s
    reads = {1: 0, 1001: 100 * MS, 2001: 200 * MS}
    newest = {1: 10_000 * MS, 1001: 20_000 * MS, 2001: 30_000 * MS}
    # a quote batch of events 15-25 s (chunks 2 and 3) committed at 250 ms
    quotes = [(15_000 * MS, 25_000 * MS, 250 * MS)]
    # an alert of event time 5 s (chunk 1) in the stream at 40 ms; one judged after the input
    alerts = [(5_000 * MS, 40 * MS, "WASH_TRADE"), (99_000 * MS, 300 * MS, "EXCESSIVE_OTR")]
    out = latencies(reads, newest, quotes, alerts)
    assert out["chunks"] == 3
    assert out["quote"] == {"p50_ms": 50.0, "p99_ms": 150.0, "samples": 2}  # 150 and 50 ms
    assert out["alert"] == {"p50_ms": 40.0, "p99_ms": 40.0, "samples": 1,
                            "judged_at_end_of_input": 1}  # fmt: skip
    assert out["alert_by_kind"] == {"WASH_TRADE": {"p50_ms": 40.0, "p99_ms": 40.0, "samples": 1}}


def _day(generated: bool, **by_type: int) -> Day:
    composition = {"messages": sum(by_type.values()), "messages_by_type": by_type}
    if generated:
        composition |= {"spec": {}, "stop_orders": 100}
    return Day(Path("day.fix"), Path("day.accounts.csv"), Path("day.positions.csv"), composition)


def _summary(**kw) -> dict:
    return {"messages": 1_000, "dead_letters": 0, "executions": 10, "stops": {"triggered": 3},
            **kw}  # fmt: skip


ALERTS = {"by_kind": {"STOP_TRIGGERED": 3}}


@pytest.mark.parametrize(
    ("day", "summary", "alerts", "problem"),
    [
        (_day(False, X=1_000), _summary(messages=0), ALERTS, "processed no message"),
        (_day(False, X=990, **{"8": 10}), _summary(executions=0), ALERTS,
         "has 10 execution reports (35=8) and the run booked none"),
        (_day(False, X=1_000), _summary(dead_letters=600), ALERTS, "600 of the 1,000 messages"),
        (_day(True, X=990, **{"8": 10}), _summary(), {"by_kind": {}}, "raised no alert"),
        (_day(True, X=990, **{"8": 10}), _summary(stops={"accepted": 100}), ALERTS,
         "none of the day's 100 stop orders fired"),
    ],
)  # fmt: skip
def test_refusal_names_why_an_empty_pipeline_is_not_reported(day, summary, alerts, problem):
    assert problem in refusal(day, summary, alerts)


def test_refusal_accepts_a_day_that_did_its_work():
    assert refusal(_day(True, X=990, **{"8": 10}), _summary(), ALERTS) is None
    # a user's market-data-only day books nothing and raises nothing, rightly
    assert refusal(_day(False, X=1_000), _summary(executions=0, stops={}), {"by_kind": {}}) is None
