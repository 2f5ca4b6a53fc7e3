"""Every flow in one in-process dataflow, fed by Bytewax's `TestingSource`, run with 1 worker and
with 2 (`entry_point`, tests/flows/conftest.py): what a user would see in the stores.

The dataflow is the product's own (`flows.pipeline.build_pipeline`) with the context a replay
builds; only the input is a `TestingSource` of `RawChunk`s, a handful of FIX lines written for
the purpose: a quote, a stop that fires, a wash trade between two accounts of one owner, and an
account that falls into a margin call. Real Redis and PostgreSQL (tests/conftest.py), chdb under
the test's data dir. The CLI tests (test_*_flow.py) stay for the commands.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import redis
from bytewax.testing import TestingSource

from bench.stores_digest import differences, digests
from brokerflow.cli import main
from brokerflow.commands.replay import account_state
from brokerflow.settings import Settings
from brokerflow.stores import prepare_stores
from connectors.raw import RawChunk
from flows.context import FlowContext
from flows.margin import shard_count
from flows.pipeline import ALL_FLOWS, build_pipeline
from flows.placement import plan
from flows.surveillance import ACCOUNT_SHARDS
from sinks.background import take_failures
from tests.flows.conftest import EntryPoint
from tests.flows.test_executions_flow import audit_rows, load
from tests.flows.test_margin_flow import trade as margin_trade
from tests.flows.test_quotes_flow import quote, snapshot
from tests.flows.test_stops_flow import children, stop, trade
from tests.flows.test_surveillance_flow import report

ACCOUNTS = (
    "account,owner,cash\n"
    "ACC1,alice,100000\n"  # the stop's
    "A1,alice,1000000\nA2,alice,1000000\n"  # a wash trade between them
    "ACC2,bob,-8000\n"  # 1,000 XYZ bought on credit: the margin call's
)
POSITIONS = "account,symbol,quantity,avg_price\nACC2,XYZ,1000,10\n"
CHUNK_LINES = 3  # several chunks, so that the input's batches are not all one


def day() -> list[bytes]:
    """One session's messages, MsgSeqNum (34) in order."""
    return [
        snapshot("ACME", 0, "99.90", 100, "100.10", 100, seq=1),
        trade("100.00", 100, 2),
        stop("S1", "2", "99.50", 200, 3),  # sell 100 ACME if it trades at 99.50 or below
        margin_trade("XYZ", "12", 300, 4),  # ACC2: equity 12,000 - 8,000 = 4,000 >= 30 % x 12,000
        report("E1", "A1", "1", match="T1", px="100.00", at_ms=400, seq=5),  # alice buys
        report("E2", "A2", "2", match="T1", px="100.00", at_ms=500, seq=6),  # from alice
        margin_trade("XYZ", "11", 1_000, 7),  # 3,000 < 3,300: MARGIN_CALL at 14:30:01
        trade("99.60", 1_000, 8),
        trade("99.30", 2_000, 9),  # through 99.50: the stop fires at 99.30
        trade("99.00", 3_000, 10),
    ]


def chunks(lines: list[bytes], size: int = CHUNK_LINES) -> list[RawChunk]:
    return [
        RawChunk("test:day", start + 1, lines[start : start + size])
        for start in range(0, len(lines), size)
    ]


def run_day(settings: Settings, entry_point: EntryPoint, out: Path, source: TestingSource) -> None:
    """`source` through every flow, with the context `brokerflow replay` would build."""
    endpoints = prepare_stores(settings, ALL_FLOWS)
    opening, marks, owners = account_state(endpoints, set(ALL_FLOWS))
    ctx = FlowContext(
        settings,
        endpoints.redis_url,
        endpoints.postgres_dsn,
        orders_out=out,
        margin_opening=opening,
        margin_marks=marks,
        owners=owners,
        workers=entry_point.workers,
        ordered_inputs=1,  # one input in order: its line numbers order the events
    )
    if ctx.workers > 1:  # as `brokerflow replay -w 2` places the shards
        placed = plan(source.list_parts(), ctx.workers, shard_count(ctx), ACCOUNT_SHARDS)
        ctx = dataclasses.replace(ctx, placement=placed)
    take_failures()  # an earlier test's, in this process
    entry_point.run(build_pipeline(source, ctx))
    assert take_failures() == []  # no background write failed as its partition closed


def rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


# The stores' contents per worker count, compared once both have run (in this session).
CONTENTS: dict[int, dict] = {}


@pytest.fixture
def settings(settings_factory, tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    s = settings_factory(margin_grace_s=60)
    (tmp_path / "accounts.csv").write_text(ACCOUNTS)
    (tmp_path / "positions.csv").write_text(POSITIONS)
    load(s, "accounts", tmp_path / "accounts.csv", monkeypatch)
    load(s, "positions", tmp_path / "positions.csv", monkeypatch)
    return s


def test_every_flow_stores_what_a_user_sees(settings, entry_point, tmp_path) -> None:  # noqa: ANN001
    orders_out = tmp_path / "orders-out.fix"
    run_day(settings, entry_point, orders_out, TestingSource(chunks(day())))
    dsn = settings.postgres_dsn

    # quotes: the last L1 of each symbol in Redis
    r = redis.Redis.from_url(settings.redis_url)
    try:
        acme, xyz = quote(r, "ACME"), quote(r, "XYZ")
        stream_alerts = [json.loads(f[b"data"]) for _, f in r.xrange("stream:alerts")]
    finally:
        r.close()
    assert (acme["bid"], acme["ask"], acme["ltp"]) == (99.9, 100.1, 99.0)
    assert xyz["ltp"] == 11.0

    # ledger: the wash trade's two fills booked, one order and one execution each
    assert rows(dsn, "SELECT account, symbol, quantity FROM holdings WHERE symbol = 'ACME' "
                     "ORDER BY account") == [("A1", "ACME", 100), ("A2", "ACME", -100)]  # fmt: skip
    assert rows(dsn, "SELECT exec_id FROM executions ORDER BY exec_id") == [("E1",), ("E2",)]
    assert rows(dsn, "SELECT count(*) FROM orders WHERE account IN ('A1', 'A2')") == [(2,)]

    alerts = {
        kind: details
        for kind, details in rows(dsn, "SELECT kind, details FROM alerts ORDER BY alert_id")
    }
    # stops: triggered at 99.30, its child order sent, alerted
    [(status, trigger_px, child_id)] = rows(
        dsn, "SELECT status, trigger_px, child_cl_ord_id FROM stop_orders WHERE cl_ord_id = 'S1'"
    )
    assert (status, trigger_px, child_id) == ("TRIGGERED", Decimal("99.30"), "S1.T")
    [child] = children(orders_out)
    assert (child[11], child[1], child[54], child[38]) == (b"S1.T", b"ACC1", b"2", b"100")
    assert alerts["STOP_TRIGGERED"]["child_cl_ord_id"] == "S1.T"

    # margin: ACC2 called at 14:30:01, 300 of cash short of maintenance
    [(state,)] = rows(dsn, "SELECT state FROM account_margin WHERE account = 'ACC2'")
    assert state != "NORMAL"
    assert Decimal(alerts["MARGIN_CALL"]["cash_to_maintenance"]) == Decimal(300)

    # surveillance: the wash trade, with its evidence
    wash = alerts["WASH_TRADE"]
    assert (wash["exec_ids"], wash["accounts"]) == (["E1", "E2"], ["A1", "A2"])
    assert wash["matched_by"] == "TrdMatchID(880)"
    assert {a["kind"] for a in stream_alerts} >= {"STOP_TRIGGERED", "MARGIN_CALL", "WASH_TRADE"}

    # audit: the stop's placement and its trigger, each with the market as it was
    audit = dict(
        audit_rows(
            settings,
            "SELECT event_type, market_snapshot FROM audit_log FINAL WHERE cl_ord_id = 'S1'",
        )  # fmt: skip
    )
    assert json.loads(audit["ORDER_TRIGGERED"])["ltp"] == 99.3
    assert json.loads(audit["ORDER_PLACED"])["ltp"] == 100.0

    # 1 and 2 workers leave the same contents in Redis, PostgreSQL and ClickHouse
    CONTENTS[entry_point.workers] = digests(settings)
    if len(CONTENTS) == 2:
        assert differences(CONTENTS[1], CONTENTS[2]) == []


SIMULATED: dict[int, dict] = {}  # as CONTENTS, for the simulated day


def test_a_simulated_day_gives_the_same_stores_with_1_and_2_workers(
    settings_factory, entry_point, tmp_path, monkeypatch
) -> None:  # noqa: ANN001
    """`brokerflow simulate`'s day with orders: more keys per shard than the hand-written one."""
    path = tmp_path / "day.fix"
    options = ["--symbols", "4", "--minutes", "2", "--orders", "--accounts", "20", "--seed", "7"]
    assert main(["simulate", *options, "--out", str(path)]) == 0
    settings = settings_factory()
    load(settings, "accounts", path.with_suffix(".accounts.csv"), monkeypatch)
    load(settings, "positions", path.with_suffix(".positions.csv"), monkeypatch)
    lines = path.read_bytes().splitlines()
    run_day(settings, entry_point, tmp_path / "orders-out.fix", TestingSource(chunks(lines, 500)))

    r = redis.Redis.from_url(settings.redis_url)
    try:
        assert len(list(r.scan_iter("quote:*"))) == 4
    finally:
        r.close()
    [(executions,)] = rows(settings.postgres_dsn, "SELECT count(*) FROM executions")
    assert executions > 100
    assert rows(settings.postgres_dsn, "SELECT count(*) FROM dead_letters") == [(0,)]
    SIMULATED[entry_point.workers] = digests(settings)
    if len(SIMULATED) == 2:
        assert differences(SIMULATED[1], SIMULATED[2]) == []
