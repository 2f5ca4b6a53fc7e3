"""Margin is a pure function of the input: a simulated day (market data, orders, fills for 40
accounts whose opening positions are loaded first) replayed under very different engine
conditions writes the same `account_margin` rows and the same margin alerts.

`test_margin_steps_...` drives the two steps directly (no dataflow, no stores) with the day
cut into batches at random places and resumed from pickled snapshots: the rows and alerts come
out the same. `test_margin_rows_...` replays the day through Bytewax into PostgreSQL under
different conditions: 256 KiB chunks on one worker (the reference); 2 KiB chunks (a hundred times
more, smaller batches, other interleavings of marks and fills); 2 workers with recovery and
50 ms epochs (snapshots, epoch boundaries everywhere); 2 processes x 2 workers (the account
shards in another process than the input). Each run gets a fresh database and Redis db (the
opening marks are read from Redis). Wall-clock columns (`updated_at`, `created_at`) are left out.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import secrets
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg
import pytest
import redis

from bench.common import free_ports, scratch_database
from brokerflow.cli import main
from brokerflow.commands.replay import run_flows
from brokerflow.settings import Settings
from connectors.file import FixLogSource
from connectors.raw import RawChunk
from domain.margin_book import MarginBook
from domain.sharding import SYMBOL_SHARDS
from flows.context import FlowContext
from flows.margin import AccountLogic, FeedLogic, MarginEffects
from flows.operators import FlowBatch, make_decoder
from flows.quotes import make_sharder
from sinks.margin import OpeningAccount

pytestmark = pytest.mark.slow

FLOWS = ("margin",)
MARGIN_KINDS = ("MARGIN_CALL", "MARGIN_CALL_CURED", "LIQUIDATION", "CONCENTRATION")
GRACE_S = 120  # liquidations within the 20 minutes of the day
ROOT = Path(__file__).resolve().parents[2]

# One process of a cluster: the same replay as `run_flows` in this test, with -i/-a.
CLUSTER_PROCESS = """
import sys
from pathlib import Path
from brokerflow.commands.replay import run_flows
from brokerflow.settings import load_settings
from connectors.file import FixLogSource
day, process_id, addresses = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(";")
run_flows(FixLogSource([day], chunk_bytes=16_384), load_settings(None, None), "replay",
          workers=2, progress=False, flows=("margin",), process_id=process_id,
          addresses=addresses)
"""


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated once for the module: every test reads it, none changes it."""
    path = tmp_path_factory.mktemp("margin-day") / "day.fix"
    options = ["--symbols", "5", "--minutes", "20", "--orders", "--accounts", "40",
               "--orders-per-minute", "200", "--seed", "11"]  # fmt: skip
    assert main(["simulate", *options, "--out", str(path)]) == 0
    tighten_cash(path.with_suffix(".accounts.csv"), path.with_suffix(".positions.csv"))
    return path


def tighten_cash(accounts: Path, positions: Path) -> None:
    """Give every other account just enough cash for its maintenance requirement at the
    opening prices, give or take a few per cent: the day's prices call, cure and liquidate."""
    signed: dict[str, Decimal] = {}
    gross: dict[str, Decimal] = {}
    with positions.open(newline="") as fh:
        for row in csv.DictReader(fh):
            value = Decimal(row["quantity"]) * Decimal(row["avg_price"])
            signed[row["account"]] = signed.get(row["account"], Decimal(0)) + value
            gross[row["account"]] = gross.get(row["account"], Decimal(0)) + abs(value)
    with accounts.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows):
        account = row["account"]
        if n % 2 or account not in gross:
            continue
        margin = Decimal(row["maintenance_margin"]) * (1 + Decimal(n % 7 - 2) / 100)
        row["cash"] = str((margin * gross[account] - signed[account]).quantize(Decimal("0.01")))
    with accounts.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def fresh(postgres_dsn, redis_db_url, settings_factory, day, monkeypatch):
    """`fresh()` -> settings on a new database holding the day's opening state, and an empty
    Redis db (the same one each time: runs are sequential)."""
    names: list[str] = []

    def make():
        name = f"bf_test_{secrets.token_hex(5)}"
        names.append(name)
        dsn = scratch_database(postgres_dsn, name)
        redis.Redis.from_url(redis_db_url).flushdb()
        settings = settings_factory(
            postgres_dsn=dsn, redis_url=redis_db_url, margin_grace_s=GRACE_S
        )
        monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", dsn)
        monkeypatch.setenv("BROKERFLOW_REDIS_URL", redis_db_url)
        monkeypatch.setenv("BROKERFLOW_MARGIN_GRACE_S", str(GRACE_S))  # the cluster's processes
        for kind in ("accounts", "positions"):
            csv = day.with_suffix(f".{kind}.csv")
            assert main(["load", kind, str(csv), "--data-dir", str(settings.data_dir)]) == 0
        return settings

    yield make
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def margin_output(dsn: str) -> tuple[list[tuple], list[tuple]]:
    """`account_margin` without `updated_at`, and the margin alerts, sorted."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT account, equity, gross_value, ratio, state, event_time, call_since "
            "FROM account_margin ORDER BY account"
        ).fetchall()
        alerts = conn.execute(
            "SELECT alert_id, kind, account, symbol, event_time, details FROM alerts "
            "WHERE kind = ANY(%s) ORDER BY alert_id",
            (list(MARGIN_KINDS),),
        ).fetchall()
    return rows, [(*a[:5], json.dumps(a[5], sort_keys=True)) for a in alerts]


def replay_with(day: Path, settings, chunk_bytes: int, workers: int = 1, **options) -> None:
    run_flows(FixLogSource([day], chunk_bytes=chunk_bytes), settings, "replay",
              workers=workers, progress=False, flows=FLOWS, **options)  # fmt: skip


def replay_in_two_processes(day: Path, settings) -> None:
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    env = {**os.environ, "BROKERFLOW_POSTGRES_DSN": settings.postgres_dsn,
           "BROKERFLOW_REDIS_URL": settings.redis_url,
           "BROKERFLOW_DATA_DIR": str(settings.data_dir)}  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLUSTER_PROCESS, str(day), str(i), addresses],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        for i in range(2)
    ]
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:  # a process whose peer failed waits for it forever
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, err in zip(procs, errors, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]


@pytest.fixture(scope="module")
def screened() -> dict[str, tuple[list[tuple], list[tuple]]]:
    """The margin output of `day` replayed in 256 KiB chunks on one worker, the screen on: the
    reference of both replay tests, made by the first that needs it."""
    return {}


def screened_output(day: Path, fresh, screened: dict) -> tuple[list[tuple], list[tuple]]:
    if "output" not in screened:
        reference = fresh()
        replay_with(day, reference, chunk_bytes=256 * 1024)
        screened["output"] = margin_output(reference.postgres_dsn)
    return screened["output"]


def test_margin_rows_and_alerts_do_not_depend_on_batching_epochs_or_workers(
    day, fresh, screened, tmp_path
):
    expected = screened_output(day, fresh, screened)
    rows, alerts = expected
    assert len(rows) == 40
    kinds = {a[1] for a in alerts}
    assert set(MARGIN_KINDS) <= kinds, kinds  # every kind of margin alert, in numbers

    small = fresh()
    replay_with(day, small, chunk_bytes=2_048)
    assert margin_output(small.postgres_dsn) == expected, "2 KiB chunks"

    recovered = fresh()
    replay_with(day, recovered, chunk_bytes=16_384, workers=2,
                recovery_dir=tmp_path / "recovery", snapshot_s=0.05)  # fmt: skip
    assert margin_output(recovered.postgres_dsn) == expected, "2 workers, 50 ms epochs"

    cluster = fresh()
    replay_in_two_processes(day, cluster)
    assert margin_output(cluster.postgres_dsn) == expected, "2 processes x 2 workers"


def test_margin_writes_what_an_exact_look_at_every_account_every_window_writes(
    day, fresh, screened, monkeypatch
):
    """The screen only saves work: a reference replay in which every account of every shard is
    evaluated exactly at every window writes the same rows and the same alerts (calls, cures,
    liquidations, concentration episodes with their hysteresis, rows on material change)."""
    expected = screened_output(day, fresh, screened)  # before the screen is replaced

    def everyone(book, *_args, **_kwargs):
        return np.arange(len(book.names))

    monkeypatch.setattr(MarginBook, "screen", everyone)
    reference = fresh()
    replay_with(day, reference, chunk_bytes=256 * 1024)  # as the screened run was cut
    rows, alerts = margin_output(reference.postgres_dsn)
    assert {a[1] for a in alerts} >= set(MARGIN_KINDS) and len(rows) == 40
    assert (rows, alerts) == expected


# -- the two steps driven directly -----------------------------------------------------------


def opening_accounts(day: Path) -> dict[str, OpeningAccount]:
    """The day's opening state as `sinks.margin.load_accounts` would read it once loaded."""
    holdings: dict[str, dict[str, Decimal]] = {}
    with day.with_suffix(".positions.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            holdings.setdefault(row["account"], {})[row["symbol"]] = Decimal(row["quantity"])
    with day.with_suffix(".accounts.csv").open(newline="") as fh:
        return {
            row["account"]: OpeningAccount(
                row["account"], row["owner"], Decimal(row["cash"]),
                Decimal(row["initial_margin"]), Decimal(row["maintenance_margin"]),
                holdings.get(row["account"], {}),
            )
            for row in csv.DictReader(fh)
        }  # fmt: skip


def run_steps(
    decoded: FlowBatch, ctx: FlowContext, rng: random.Random | None
) -> dict[str, tuple[list, list]]:
    """Feed the decoded day through the symbol shards' `FeedLogic`s and the `AccountLogic`s, as
    the flow wires them; return each account shard's rows and alerts, each in order. With
    `rng`: batches of random sizes, symbol shards that run at different speeds (their output
    held back at random), account batches that group several parts, and every step rebuilt
    from its pickled snapshot now and then (a resume)."""
    sharder = make_sharder(SYMBOL_SHARDS, ctx.stats, with_orders=True)
    feeds: dict[str, FeedLogic] = {}
    accounts: dict[str, AccountLogic] = {}
    out: dict[str, tuple[list, list]] = {}
    waiting: dict[str, list] = {}  # parts not yet given to their account shard

    def collect(key: str, effects: list) -> None:
        rows, alerts = out.setdefault(key, ([], []))
        for e in effects:
            assert type(e) is MarginEffects
            rows += e.rows
            alerts += e.alerts

    def deliver(key: str) -> None:
        logic = accounts.setdefault(key, AccountLogic(None, ctx))
        collect(key, logic.on_batch(waiting.pop(key))[0])

    def route(items: list) -> None:
        for key, item in items:
            waiting.setdefault(key, []).append(item)
            if rng is None or rng.random() < 0.5:
                deliver(key)

    slow: dict[str, list] = {}  # a symbol shard's parts still on their way

    def emit(feed_key: str, items: list) -> None:
        slow.setdefault(feed_key, []).extend(items)
        if rng is None or rng.random() < 0.3:
            route(slow.pop(feed_key))

    def drain() -> None:
        for feed_key in list(slow):
            route(slow.pop(feed_key))
        for key in list(waiting):
            deliver(key)

    events, seqs, progress = decoded.events, decoded.seqs, decoded.progress
    i = 0
    while i < len(events):
        size = len(events) if rng is None else rng.choice((1, 7, 300, 5_000))
        last = seqs[min(i + size, len(seqs)) - 1]
        part = FlowBatch(events[i : i + size], [], 0, 0, [], seqs[i : i + size],
                         dataclasses.replace(progress, last=last))  # fmt: skip
        for key, shard_batch in sharder(part):
            emit(key, feeds.setdefault(key, FeedLogic(None, ctx)).on_batch([shard_batch])[0])
        i += size
        if rng is not None and rng.random() < 0.2:  # an epoch ends and the run resumes there
            drain()
            feeds = {k: FeedLogic(f.snapshot(), ctx) for k, f in feeds.items()}
            accounts = {k: AccountLogic(a.snapshot(), ctx) for k, a in accounts.items()}
    for key, feed in feeds.items():
        emit(key, feed.on_eof()[0])
    drain()
    for key, logic in accounts.items():
        collect(key, logic.on_eof()[0])
    return out


def test_margin_steps_give_the_same_rows_and_alerts_however_the_input_is_cut(day):
    ctx = FlowContext(
        Settings(margin_grace_s=GRACE_S), "redis://unused", "postgresql://unused",
        margin_opening=opening_accounts(day), margin_marks={}, recovery=True, ordered_inputs=1,
    )  # fmt: skip
    lines = day.read_bytes().splitlines(keepends=True)
    events = make_decoder(ctx)(RawChunk(f"file:{day}", 1, lines))
    expected = run_steps(events, ctx, None)
    kinds = {a.kind for _, alerts in expected.values() for a in alerts}
    assert set(MARGIN_KINDS) <= kinds
    for seed in range(3):
        got = run_steps(events, ctx, random.Random(seed))
        assert got == expected, f"cut with seed {seed}"


@pytest.mark.parametrize("opening_marks", [False, True])
def test_margin_steps_write_what_an_exact_look_at_every_account_writes(
    day, monkeypatch, opening_marks
):
    """Every row and alert the steps emit, in order: the screen changes none of them against
    a reference that evaluates every account exactly at every window, with or without marks
    at the start (then the opening figures stand for a first row). And rows are written on
    change: far fewer than the reference's looks."""
    opening = opening_accounts(day)
    symbols = sorted({s for a in opening.values() for s in a.holdings})
    marks = {s: Decimal(40 + 7 * n) for n, s in enumerate(symbols)} if opening_marks else {}
    ctx = FlowContext(
        Settings(margin_grace_s=GRACE_S), "redis://unused", "postgresql://unused",
        margin_opening=opening, margin_marks=marks, ordered_inputs=1,
    )  # fmt: skip
    lines = day.read_bytes().splitlines(keepends=True)
    events = make_decoder(ctx)(RawChunk(f"file:{day}", 1, lines))
    expected = run_steps(events, ctx, None)
    [(rows, alerts)] = expected.values()
    assert set(MARGIN_KINDS) <= {a.kind for a in alerts}

    looks = []
    monkeypatch.setattr(
        MarginBook, "screen", lambda book, *_: looks.append(1) or np.arange(len(book.names))
    )
    assert run_steps(events, ctx, None) == expected
    assert len(rows) * 10 < len(looks) * 40  # 40 accounts a look; a row for under a tenth
