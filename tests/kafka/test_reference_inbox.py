"""The gateway's drop folder of reference changes (issue 20, part 1), on librdkafka's mock
cluster: a good file is sequenced among the FIX messages and applied by the flows in order
with the fills; a bad file is refused whole, with its line and reason, nothing of it published.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from pathlib import Path

import psycopg

from brokerflow.cli import main
from brokerflow.commands.gateway import FileInput, run_gateway
from brokerflow.commands.replay import replay
from brokerflow.commands.run import run_kafka
from connectors.reference_inbox import InboxInput, postgres_lookup
from tests.flows.test_executions_flow import load
from tests.flows.test_live_run import _config, exchange  # noqa: F401 - a fixture
from tests.flows.test_quotes_flow import write_file
from tests.flows.test_reference_changes import fill
from tests.kafka.test_gateway_sessions import gateway, msg_type, read_topic


def query(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_a_dropped_file_is_published_in_sequence_and_booked_before_the_fills(
    kafka_bootstrap, settings_factory, tmp_path, monkeypatch, capsys
) -> None:
    settings = settings_factory(kafka_bootstrap=kafka_bootstrap)
    (tmp_path / "accounts.csv").write_text("account,owner,cash\nOLD1,olga,1000\n")
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "1-accounts.csv").write_text(
        "account,owner,cash,initial_margin,maintenance_margin\nNEW1,nina,5000,0.6,0.4\n"
    )
    (inbox / "2-cash.csv").write_text("account,amount,movement_id\nNEW1,-1000,W-1\n")
    # The fills of the new account, on symbols of several partitions: booked only if its
    # opening comes before them in each partition.
    symbols = ("ACME", "IBM", "MSFT", "AAPL", "TSLA", "NVDA")
    fills = [
        fill(f"E{n}", "NEW1", symbol, 1, 10, "20", 1_000 + n) for n, symbol in enumerate(symbols)
    ]
    day = write_file(tmp_path / "day.fix", fills)
    config = tmp_path / "gateway.toml"
    config.write_text(f'[reference]\ninbox = "{inbox}"\n')
    monkeypatch.setenv("BROKERFLOW_KAFKA_BOOTSTRAP", kafka_bootstrap)

    argv = ["gateway", str(day), "--config", str(config), "--quiet", "--json", "--data-dir",
            str(settings.data_dir)]  # fmt: skip
    assert main(argv) == 0
    sent = json.loads(capsys.readouterr().out.splitlines()[-1])
    # the opening and the withdrawal, each in its account's partition and copied to the 3 others
    assert (sent["published"], sent["copies"]) == (2 + len(fills), 2 * 3)
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["1-accounts.csv", "2-cash.csv"]
    assert not list(inbox.glob("*.csv"))

    flows = ("quotes", "ledger", "margin", "surveillance")
    ran = run_kafka(settings, until_end=True, progress=False, flows=flows, workers=2)
    assert ran.as_dict()["messages"] == sent["published"]  # copies counted once
    dsn = settings.postgres_dsn
    assert query(
        dsn, "SELECT owner, cash, initial_margin FROM accounts WHERE account = 'NEW1'"
    ) == [("nina", Decimal(5000) - 1000 - 10 * 20 * len(fills), Decimal("0.6"))]
    assert len(query(dsn, "SELECT exec_id FROM executions")) == len(fills)
    assert query(dsn, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert query(dsn, "SELECT movement_id FROM cash_movements") == [("W-1",)]


def test_a_bad_file_is_refused_whole_with_its_line_and_reason(
    kafka_bootstrap, settings_factory, tmp_path, caplog
) -> None:
    settings = settings_factory(kafka_bootstrap=kafka_bootstrap)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "cash.csv").write_text("account,amount,movement_id\nACC1,100,M-1\nACC1,ten,M-2\n")
    day = write_file(tmp_path / "day.fix", [fill("E1", "ACC1", "ACME", 1, 100, "20", 1_000)])

    with caplog.at_level(logging.WARNING, logger="brokerflow.gateway"):
        sent = run_gateway(settings, InboxInput(FileInput([day]), inbox), progress=False)
    assert sent.as_dict()["published"] == 1  # the fill alone
    rejected = inbox / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == ["cash.csv", "cash.csv.reason"]
    assert (rejected / "cash.csv.reason").read_text() == "line 3: amount 'ten' is not a number\n"
    assert [r.getMessage() for r in caplog.records] == ["reference_file_rejected"]
    assert not list((inbox / "done").iterdir())


def test_an_inbox_that_is_not_a_folder_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[reference]\ninbox = "{tmp_path / "missing"}"\n')
    day = write_file(tmp_path / "day.fix", [])
    assert main(["gateway", str(day), "--config", str(config), "--quiet"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a folder" in err[0]


def test_files_are_checked_against_the_ledger_before_anything_is_published(
    settings_factory, tmp_path, monkeypatch
) -> None:
    settings = settings_factory()
    (tmp_path / "accounts.csv").write_text("account,owner,cash\nACC1,alice,1000\n")
    load(settings, "accounts", tmp_path / "accounts.csv", monkeypatch)
    with psycopg.connect(settings.postgres_dsn) as conn:  # a movement the ledger booked
        conn.execute(
            "INSERT INTO cash_movements (movement_id, account, amount, event_time, ts_event) "
            "VALUES ('M-1', 'ACC1', 100, now(), 0)"
        )
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    files = {
        "1-open.csv": "account,owner,cash\nNEW9,nina,0\n",
        # NEW9 is opened by the file before; M-1 again as booked: a re-delivery, published
        "2-cash.csv": "account,amount,movement_id\nNEW9,50,M-2\nACC1,100,M-1\n",
        "3-ghost.csv": "account,amount,movement_id\nACC1,10,M-3\nGHOST,5,M-4\n",
        "4-reuse.csv": "account,amount,movement_id\nACC1,999,M-1\n",
    }
    for name, text in files.items():
        (inbox / name).write_text(text)

    chunks = list(InboxInput([], inbox, postgres_lookup(settings.postgres_dsn)).scan())
    assert [(c.source, len(c.lines)) for c in chunks] == [
        ("inbox:1-open.csv", 1),
        ("inbox:2-cash.csv", 2),
    ]
    reasons = {p.name: p.read_text() for p in (inbox / "rejected").glob("*.reason")}
    assert reasons == {
        "3-ghost.csv.reason": "line 3: account 'GHOST' is not a known account\n",
        "4-reuse.csv.reason": "line 2: movement_id M-1 was booked already, for account 'ACC1', "
        "amount 100\n",
    }


def test_files_dropped_while_fix_sessions_run_are_published_among_their_messages(
    tmp_path,
    exchange,  # noqa: F811 - the fixture
    kafka_bootstrap,
    monkeypatch,
    capsys,
) -> None:
    monkeypatch.setenv("BROKERFLOW_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("BROKERFLOW_DATA_DIR", str(tmp_path / "data"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = _config(tmp_path, exchange.port)
    config.write_text(config.read_text() + f'\n[reference]\ninbox = "{inbox}"\n')

    def drop_later() -> None:
        time.sleep(1.0)  # the sessions are publishing by now
        (inbox / "late.tmp").write_text("account,amount,movement_id\nACC1,100,M-9\n")
        (inbox / "late.tmp").rename(inbox / "late.csv")  # complete: now it is taken

    (inbox / "early.csv").write_text("account,owner,cash\nNEW1,nina,100\n")
    dropper = threading.Thread(target=drop_later)
    dropper.start()
    sent = gateway(config, 3, capsys)
    dropper.join()
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["early.csv", "late.csv"]
    events = read_topic(kafka_bootstrap, "fix.events")
    types = [msg_type(m) for m in events]
    # each change once per partition (the mock cluster makes 4): the original and its copies
    assert types.count(b"UA") == types.count(b"UC") == 4
    assert sent["copies"] >= 2 * 3
    assert {b"W", b"X"} <= set(types)


def test_a_day_with_reference_changes_through_kafka_gives_the_replays_rows(
    kafka_bootstrap, settings_factory, postgres_dsn, tmp_path, monkeypatch
) -> None:
    """The changes are lines of the day's file; the gateway copies each into every partition,
    and 2 workers read the 4 partitions: the ledger, margin and surveillance rows are the
    replay's (in order with the fills however the partitions interleave)."""
    from tests.kafka.stores import postgres_rows
    from tests.kafka.test_kafka_flows import (
        drop_database,
        flush_redis,
        fresh_database,
        load_day,
    )

    day = tmp_path / "day.fix"
    argv = ["simulate", "--symbols", "6", "--minutes", "2", "--orders", "--reference-changes",
            "--out", str(day), "--seed", "5"]  # fmt: skip
    assert main(argv) == 0
    assert b"35=UA\x01" in day.read_bytes() and b"35=UC\x01" in day.read_bytes()
    settings = settings_factory()
    load_day(day, settings, monkeypatch)
    replayed = replay([day], settings, progress=False).as_dict()
    expected = postgres_rows(settings.postgres_dsn)
    assert replayed["dead_letters"] == 0 and expected["executions"]

    flush_redis(settings.redis_url)  # the margin flow's opening marks come from Redis
    name, dsn = fresh_database(postgres_dsn)
    try:
        kafka = settings.model_copy(
            update={"postgres_dsn": dsn, "kafka_bootstrap": kafka_bootstrap}
        )
        load_day(day, kafka, monkeypatch)
        run_gateway(kafka, FileInput([day]), progress=False)
        run_kafka(kafka, until_end=True, progress=False, workers=2)
        got = postgres_rows(dsn)
    finally:
        drop_database(postgres_dsn, name)
    for table, rows in expected.items():
        assert got[table] == rows, table
