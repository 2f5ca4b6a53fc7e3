"""Ledger sink contract, against a real PostgreSQL: orders, executions, holdings, cash."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import bytewax.operators as op
import psycopg
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from domain.events import ExecutionReport, OrderRequest
from sinks.ledger import (
    EXECUTION_COLUMNS,
    LedgerResult,
    LedgerSink,
    LedgerWriter,
    PipelinedLedgerSink,
    execution_rows,
    ledger_partition_key,
)
from sinks.postgres import migrate

D = Decimal
T0 = 1_700_000_000_000_000_000


def report(
    exec_id: str,
    exec_type: str = "F",
    *,
    cl_ord_id: str | None = "c1",
    orig: str | None = None,
    ord_status: str | None = None,
    account: str | None = "A1",
    symbol: str = "AAPL",
    side: str = "1",
    order_qty: str | None = "100",
    price: str | None = "10",
    last_qty: str = "0",
    last_px: str = "0",
    cum_qty: str = "0",
    leaves_qty: str | None = None,
    avg_px: str = "0",
    ref: str | None = None,
    n: int = 0,
    raw: bytes | None = None,
) -> ExecutionReport:
    leaves = (
        D(leaves_qty)
        if leaves_qty is not None
        else (D(order_qty) - D(cum_qty) if order_qty is not None else D(0))
    )
    if ord_status is None:
        ord_status = {"F": "1" if leaves else "2", "0": "0", "4": "4", "8": "8", "5": "0"}.get(
            exec_type, "1"
        )
    return ExecutionReport(
        exec_id=exec_id,
        order_id="o-" + (orig or cl_ord_id or "x"),
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=orig,
        exec_type=exec_type,
        ord_status=ord_status,
        account=account,
        symbol=symbol,
        side=side,
        order_qty=D(order_qty) if order_qty is not None else None,
        ord_type="2",
        price=D(price) if price is not None else None,
        stop_px=None,
        last_qty=D(last_qty),
        last_px=D(last_px),
        cum_qty=D(cum_qty),
        leaves_qty=leaves,
        avg_px=D(avg_px),
        ts_event=T0 + n * 1_000_000,
        exec_ref_id=ref,
        raw=raw if raw is not None else f"8=FIX.4.4|35=8|17={exec_id}|".encode(),
        source=f"file:test.fix:{n}",
    )


def fill(exec_id: str, qty: str, px: str, cum: str, **kw: Any) -> ExecutionReport:
    kw.setdefault("avg_px", px)
    return report(exec_id, "F", last_qty=qty, last_px=px, cum_qty=cum, **kw)


def request(
    msg_type: str,
    cl_ord_id: str,
    orig: str | None = None,
    *,
    account: str | None = "A1",
    qty: str = "100",
    price: str = "10",
    side: str = "1",
    n: int = 0,
) -> OrderRequest:
    return OrderRequest(
        msg_type=msg_type,
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=orig,
        account=account,
        symbol="AAPL",
        side=side,
        order_qty=D(qty),
        ord_type="2",
        price=D(price),
        stop_px=None,
        time_in_force="0",
        ts_event=T0 + n * 1_000_000,
        raw=f"8=FIX.4.4|35={msg_type}|11={cl_ord_id}|".encode(),
        source=f"file:test.fix:{n}",
    )


@pytest.fixture
def db(pg_dsn: str) -> str:
    migrate(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "INSERT INTO accounts (account, owner, cash) VALUES "
            "('A1', 'alice', 100000), ('A2', 'bob', 50000)"
        )
    return pg_dsn


def apply(dsn: str, events: list[Any]) -> LedgerResult:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return LedgerWriter(conn).apply(events)


def one(dsn: str, query: str, *params: Any) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
    return row


def cash(dsn: str, account: str = "A1") -> Decimal:
    return one(dsn, "SELECT cash FROM accounts WHERE account = %s", account)[0]


def holding(dsn: str, account: str = "A1", symbol: str = "AAPL") -> tuple[Decimal, Decimal]:
    row = one(
        dsn,
        "SELECT quantity, avg_price FROM holdings WHERE account = %s AND symbol = %s",
        account,
        symbol,
    )
    return (row[0], row[1]) if row else (D(0), D(0))


def status(dsn: str, cl_ord_id: str = "c1") -> str:
    return one(dsn, "SELECT status FROM orders WHERE cl_ord_id = %s", cl_ord_id)[0]


def snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in ("accounts", "holdings", "orders", "executions")
        }


# -- lifecycle ---------------------------------------------------------------------------------


def test_ledger_new_partial_partial_fill_books_orders_executions_holdings_cash(db: str) -> None:
    events = [
        request("D", "c1", n=0),
        report("e0", "0", n=1),
        fill("e1", "30", "10", "30", n=2),
        fill("e2", "30", "11", "60", avg_px="10.5", n=3),
    ]
    result = apply(db, events)
    assert (result.applied, result.duplicates, result.dead_letters) == (4, 0, [])
    assert status(db) == "PARTIALLY_FILLED"
    result = apply(db, [fill("e3", "40", "12", "100", avg_px="11.1", n=4)])
    assert result.executions == 1
    assert status(db) == "FILLED"
    assert holding(db) == (D(100), D("11.1"))
    assert cash(db) == D(100000) - D(300) - D(330) - D(480)
    row = one(db, "SELECT cum_qty, leaves_qty, order_id, time_in_force FROM orders")
    assert row == (D(100), D(0), "o-c1", "0")
    assert one(db, "SELECT count(*) FROM executions")[0] == 4
    ts = one(db, "SELECT transact_time, ts_event FROM executions WHERE exec_id = 'e3'")
    assert ts[1] == T0 + 4_000_000
    assert int(ts[0].timestamp()) == T0 // 10**9


def test_ledger_sell_realises_pnl_and_keeps_average(db: str) -> None:
    apply(db, [fill("b1", "10", "100", "10", order_qty="10")])
    apply(
        db,
        [fill("s1", "4", "120", "4", cl_ord_id="c2", side="2", order_qty="10", leaves_qty="6")],
    )
    assert holding(db) == (D(6), D(100))
    pnl = one(db, "SELECT realised_pnl FROM executions WHERE exec_id = 's1'")[0]
    assert pnl == D(80)
    assert one(db, "SELECT realised_pnl FROM holdings")[0] == D(80)
    assert cash(db) == D(100000) - D(1000) + D(480)


def test_ledger_cancel_reject_and_replace_move_orders(db: str) -> None:
    events = [
        request("D", "c1", n=0),
        report("e0", "0", n=1),
        request("F", "c1x", "c1", n=2),
    ]
    apply(db, events)
    assert status(db) == "PENDING_CANCEL"
    apply(db, [report("e1", "4", cl_ord_id="c1x", orig="c1", leaves_qty="0", n=3)])
    assert status(db) == "CANCELED"
    apply(db, [request("D", "r1", n=4), report("e2", "8", cl_ord_id="r1", leaves_qty="0", n=5)])
    assert status(db, "r1") == "REJECTED"
    events = [
        request("D", "g1", n=6),
        report("e3", "0", cl_ord_id="g1", n=7),
        fill("e4", "20", "10", "20", cl_ord_id="g1", n=8),
        request("G", "g2", "g1", qty="50", n=9),
        report("e5", "5", cl_ord_id="g2", orig="g1", order_qty="50", cum_qty="20", n=10),
    ]
    result = apply(db, events)
    assert result.dead_letters == []
    assert status(db, "g1") == "REPLACED"
    assert status(db, "g2") == "PARTIALLY_FILLED"
    assert one(db, "SELECT quantity, cum_qty, leaves_qty FROM orders WHERE cl_ord_id = 'g2'") == (
        D(50),
        D(20),
        D(30),
    )
    assert cash(db) == D(100000) - D(200)  # only the fill moved cash


def test_ledger_replayed_events_change_nothing(db: str) -> None:
    events = [
        request("D", "c1", n=0),
        report("e0", "0", n=1),
        fill("e1", "30", "10", "30", n=2),
        request("F", "c1x", "c1", n=3),
        report("e2", "4", cl_ord_id="c1x", orig="c1", cum_qty="30", leaves_qty="0", n=4),
    ]
    apply(db, events)
    before = snapshot(db)
    result = apply(db, events)
    assert result.duplicates == 3 and result.executions == 0
    # a duplicate inside one batch, too
    result = apply(db, [fill("e1", "30", "10", "30", n=2), fill("e1", "30", "10", "30", n=2)])
    assert result.duplicates == 2
    assert snapshot(db) == before


def test_ledger_commission_is_subtracted_from_cash(db: str) -> None:
    raw = b"8=FIX.4.4|35=8|17=e1|12=2.5|13=3|"
    apply(db, [fill("e1", "10", "10", "10", raw=raw)])
    assert cash(db) == D(100000) - D(100) - D("2.5")
    assert one(db, "SELECT commission FROM executions")[0] == D("2.5")


# -- corrections -------------------------------------------------------------------------------


def test_ledger_trade_cancel_reverses_exactly_its_fill(db: str) -> None:
    apply(db, [fill("e1", "30", "10", "30", n=1)])
    after_first = (cash(db), holding(db))
    apply(db, [fill("e2", "20", "13", "50", avg_px="11.2", n=2)])
    bust = report("h1", "H", last_qty="20", last_px="13", cum_qty="30", avg_px="10", ref="e2", n=3)
    result = apply(db, [bust])
    assert result.dead_letters == [] and result.executions == 1
    assert (cash(db), holding(db)) == after_first
    assert one(db, "SELECT reversed_by FROM executions WHERE exec_id = 'e2'")[0] == "h1"
    assert status(db) == "PARTIALLY_FILLED"
    # the same H again, and a second H of the same fill, change nothing
    assert apply(db, [bust]).duplicates == 1
    again = report("h2", "H", last_qty="20", last_px="13", cum_qty="30", ref="e2", n=4)
    result = apply(db, [again])
    assert [d.tag for d in result.dead_letters] == [19]
    assert (cash(db), holding(db)) == after_first


def test_ledger_trade_correct_amends_the_fill(db: str) -> None:
    apply(db, [fill("e1", "30", "10", "30", n=1)])
    correct = report("g1", "G", last_qty="25", last_px="9", cum_qty="25", avg_px="9", ref="e1", n=2)
    result = apply(db, [correct])
    assert result.dead_letters == []
    assert holding(db) == (D(25), D(9))
    assert cash(db) == D(100000) - D(225)
    # a later trade cancel naming the original cancels the corrected fill
    apply(db, [report("h1", "H", last_qty="25", last_px="9", cum_qty="0", ref="e1", n=3)])
    assert holding(db) == (D(0), D(0))
    assert cash(db) == D(100000)


def test_ledger_trade_cancel_of_unknown_fill_is_a_dead_letter(db: str) -> None:
    result = apply(db, [report("h1", "H", last_qty="1", last_px="1", ref="nope")])
    assert result.dead_letters[0].reason == "ExecRefID(19) 'nope' names no booked fill"
    assert one(db, "SELECT count(*) FROM executions")[0] == 0


# -- bad input ---------------------------------------------------------------------------------


def test_ledger_unknown_account_is_a_dead_letter_and_nothing_else_changes(db: str) -> None:
    before = snapshot(db)
    bad = fill("e1", "10", "10", "10", account="ZZ", n=7)
    result = apply(db, [bad, request("D", "c9", account="ZZ")])
    assert result.applied == 0
    letter = result.dead_letters[0]
    assert letter.reason == "Account(1) 'ZZ' is not a known account"
    assert (letter.raw, letter.source, letter.tag) == (bad.raw, "file:test.fix:7", 1)
    assert snapshot(db) == before


def test_ledger_bad_reports_are_dead_letters(db: str) -> None:
    events = [
        fill("e1", "10", "10", "120", cl_ord_id="x1", leaves_qty="0"),  # CumQty > OrderQty
        fill("e2", "10", "-1", "10", cl_ord_id="x2"),  # negative price
        report("e3", "F", cl_ord_id="x3", last_qty="5", last_px="1", cum_qty="5", leaves_qty="9"),
        fill("e4", "10", "10", "10", cl_ord_id="ok"),
    ]
    result = apply(db, events)
    assert [d.tag for d in result.dead_letters] == [14, 31, 151]
    assert result.executions == 1
    assert holding(db) == (D(10), D(10))


def test_ledger_account_resolved_from_the_order(db: str) -> None:
    apply(db, [request("D", "c1", account="A2")])
    result = apply(db, [fill("e1", "10", "10", "10", account=None)])
    assert result.dead_letters == []
    assert cash(db, "A2") == D(49900)


def test_ledger_overfill_is_a_dead_letter(db: str) -> None:
    apply(db, [fill("e1", "100", "10", "100")])
    result = apply(db, [fill("e2", "1", "10", "101", order_qty="101")])
    assert result.dead_letters[0].error == "InvalidTransition"
    assert holding(db) == (D(100), D(10))


def test_ledger_ids_with_quotes_backslashes_and_commas_round_trip(db: str) -> None:
    # The writer binds its key lists as array literals: every character must survive.
    exec_id, cl_ord_id = 'e"1\\,{x} y', 'c,1"\\'
    events = [fill(exec_id, "10", "10", "10", cl_ord_id=cl_ord_id)]
    assert apply(db, events).executions == 1
    assert one(db, "SELECT exec_id, cl_ord_id FROM executions")[0:2] == (exec_id, cl_ord_id)
    assert status(db, cl_ord_id) == "PARTIALLY_FILLED"
    before = snapshot(db)
    result = apply(db, events)  # found again by its ExecID: a duplicate
    assert (result.duplicates, result.executions) == (1, 0)
    assert snapshot(db) == before


def test_ledger_batches_inside_one_outer_transaction(db: str) -> None:
    # Orders and holdings go through session staging tables: a second batch in the same
    # transaction must not see the first one's staged rows.
    first = [request("D", "c1", n=0), fill("e1", "10", "10", "10", n=1)]
    second = [fill("e2", "20", "11", "30", avg_px="10.666667", n=2)]
    with psycopg.connect(db) as conn, conn.transaction():
        writer = LedgerWriter(conn)
        assert writer.apply(first).executions == 1
        assert writer.apply(second).executions == 1
    assert holding(db) == (D(30), D("10.666667"))
    assert cash(db) == D(100000) - D(100) - D(220)
    row = one(db, "SELECT cum_qty, last_exec_id, status FROM orders WHERE cl_ord_id = 'c1'")
    assert row == (D(30), "e2", "PARTIALLY_FILLED")


# -- concurrency -------------------------------------------------------------------------------


def _stream(accounts: list[str], per_account: int) -> list[ExecutionReport]:
    events = []
    for i in range(per_account):
        for a in accounts:
            side = "1" if i % 3 else "2"
            events.append(
                report(
                    f"{a}-e{i}",
                    "F",
                    cl_ord_id=f"{a}-c{i}",
                    account=a,
                    side=side,
                    order_qty="5",
                    last_qty="5",
                    last_px=str(100 + i % 7),
                    cum_qty="5",
                    avg_px=str(100 + i % 7),
                    n=i,
                )
            )
    return events


def test_ledger_two_concurrent_writers_with_overlapping_batches(db: str) -> None:
    accounts = [f"C{i}" for i in range(8)]
    with psycopg.connect(db) as conn:
        conn.cursor().executemany(
            "INSERT INTO accounts (account, owner, cash) VALUES (%s, 'x', 1000000)",
            [(a,) for a in accounts],
        )
    events = _stream(accounts, 60)
    # Writer 1: the first 2/3 in batches of 40; writer 2: the last 2/3, reversed accounts order.
    cut1, cut2 = len(events) * 2 // 3, len(events) // 3
    parts = [events[:cut1], list(reversed(events[cut2:]))]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(part: list[ExecutionReport]) -> None:
        try:
            with psycopg.connect(db, autocommit=True) as conn:
                writer = LedgerWriter(conn)
                barrier.wait()
                for start in range(0, len(part), 40):
                    writer.apply(part[start : start + 40])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(db) as conn:
        query = "SELECT count(*), count(DISTINCT exec_id) FROM executions"
        n, distinct = conn.execute(query).fetchone()
        assert n == distinct == len(events)
        for a in accounts:
            mine = [e for e in events if e.account == a]
            expected_cash = D(1000000) + sum(
                (-e.last_qty if e.side == "1" else e.last_qty) * e.last_px for e in mine
            )
            expected_qty = sum(e.last_qty if e.side == "1" else -e.last_qty for e in mine)
            got = conn.execute(
                "SELECT a.cash, h.quantity FROM accounts a JOIN holdings h USING (account) "
                "WHERE account = %s",
                (a,),
            ).fetchone()
            assert got == (expected_cash, expected_qty)
        total = conn.execute(
            "SELECT sum(cash_delta) FROM executions WHERE account = ANY(%s)", (accounts,)
        ).fetchone()[0]
        booked = conn.execute(
            "SELECT sum(cash) - 1000000 * count(*) FROM accounts WHERE account = ANY(%s)",
            (accounts,),
        ).fetchone()[0]
        assert total == booked


def test_ledger_exec_id_booked_concurrently_redoes_the_batch(db: str) -> None:
    # Another transaction books the same ExecID (under another account) while the writer runs:
    # the writer's insert waits for it, fails on the key, and the redone batch finds a duplicate.
    other = psycopg.connect(db)
    try:
        other.execute(
            "INSERT INTO executions (exec_id, order_id, account, symbol, side, exec_type, "
            "ord_status, transact_time, ts_event) "
            "VALUES ('e1', 'o', 'A2', 'AAPL', '1', 'F', '1', now(), 0)"
        )
        results: list[LedgerResult] = []
        worker = threading.Thread(
            target=lambda: results.append(apply(db, [fill("e1", "10", "10", "10")]))
        )
        worker.start()
        with psycopg.connect(db, autocommit=True) as watch:
            for _ in range(500):  # until the writer waits on the other transaction's row
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.01)
            assert waiting
        other.commit()
        worker.join(10)
    finally:
        other.close()
    assert [(r.applied, r.duplicates, r.executions) for r in results] == [(0, 1, 0)]
    assert holding(db) == (D(0), D(0)) and cash(db) == D(100000)
    assert one(db, "SELECT account FROM executions WHERE exec_id = 'e1'")[0] == "A2"


# -- the Bytewax sink and the benchmark rows ---------------------------------------------------


def test_ledger_sink_books_batches_and_dead_letters(db: str) -> None:
    counts: dict[str, int] = {}

    def count(name: str, n: int) -> None:
        counts[name] = counts.get(name, 0) + n

    batches = [
        [fill("e1", "10", "10", "10", n=1), fill("e2", "5", "10", "15", n=2)],
        [fill("e1", "10", "10", "10", n=1), fill("x1", "1", "1", "1", account="ZZ", n=3)],
    ]
    flow = Dataflow("ledger_test")
    stream = op.input("inp", flow, TestingSource(batches))
    op.output("write_ledger", stream, LedgerSink(db, count=count))
    run_main(flow)
    assert counts == {"executions": 2, "executions_duplicate": 1, "dead_letters": 1}
    assert holding(db) == (D(15), D(10))
    row = one(db, "SELECT reason, step_id, source FROM dead_letters")
    assert row == ("Account(1) 'ZZ' is not a known account", "write_ledger", "file:test.fix:3")


def test_pipelined_ledger_sink_books_batches_in_order_across_epochs(db: str) -> None:
    counts: dict[str, int] = {}

    def count(name: str, n: int) -> None:
        counts[name] = counts.get(name, 0) + n

    batches = [  # an epoch each (epoch_interval 0): every epoch's snapshot drains the writer
        [fill("e1", "10", "10", "10", n=1)],
        [fill("e2", "5", "10", "15", n=2)],
        [fill("e1", "10", "10", "10", n=1), fill("x1", "1", "1", "1", account="ZZ", n=3)],
    ]
    flow = Dataflow("ledger_pipelined_test")
    stream = op.input("inp", flow, TestingSource(batches))
    keyed = op.map("key", stream, ledger_partition_key)
    op.output("write_ledger", keyed, PipelinedLedgerSink(db, count=count))
    run_main(flow, epoch_interval=timedelta(0))
    assert counts == {"executions": 2, "executions_duplicate": 1, "dead_letters": 1}
    assert holding(db) == (D(15), D(10))
    row = one(db, "SELECT reason, step_id, source FROM dead_letters")
    assert row == ("Account(1) 'ZZ' is not a known account", "write_ledger", "file:test.fix:3")


def test_execution_rows_copy_into_executions(db: str) -> None:
    events = [fill(f"e{i}", "1", "10", "1", n=i) for i in range(5)]
    rows = execution_rows(events)
    assert len(rows) == 5 and len(rows[0]) == len(EXECUTION_COLUMNS)
    with psycopg.connect(db) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY executions ({', '.join(EXECUTION_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    assert one(db, "SELECT count(*) FROM executions")[0] == 5
