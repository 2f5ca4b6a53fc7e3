"""The executions benchmark: a fills-heavy day replayed into the ledger and the audit trail.

Printed in one run, next to each other:
    end to end   FIX 35=8 -> decode -> ledger (PostgreSQL: orders, executions, holdings, cash,
                 one transaction per batch) + audit trail (ClickHouse audit_log with the market
                 snapshot), through the Bytewax flows of `replay`
    bare COPY    `COPY executions (...) FROM STDIN` of the same execution rows in one
                 transaction: what PostgreSQL alone takes for the rows, with no booking at all

The ledger is a fresh database `brokerflow_bench` on the configured PostgreSQL server and the
audit store a fresh chdb directory under the data dir (or the configured ClickHouse server).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench.common import DATA_DIR, scratch_database, write_result
from bench.ingest import BENCH_REDIS_DB
from brokerflow.commands.load import ACCOUNTS, POSITIONS, load_rows, read_accounts, read_positions
from brokerflow.commands.replay import replay
from brokerflow.services import ensure_services
from brokerflow.settings import Settings
from connectors.fix import decode_lines
from simulator.fills import write_fills_file
from sinks.clickhouse import is_embedded, open_store
from sinks.ledger import EXECUTION_COLUMNS, execution_rows

GOAL_FILLS_PER_S = 10_000
BENCH_DATABASE = "brokerflow_bench"
ACCOUNTS_N = 1_000
SYMBOLS_N = 100


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_file(fills: int, say: Callable[[str], None] = _say) -> Path:
    """Return the cached fills file (and its accounts/positions CSVs), generating it if needed."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"fills-{fills}-{ACCOUNTS_N}.fix"
    if path.exists() and path.with_suffix(".positions.csv").exists():
        return path
    say(f"generating a fills-heavy day of {fills:,} fills for {ACCOUNTS_N:,} accounts -> {path}")
    tmp = path.with_suffix(".tmp")
    write_fills_file(
        tmp,
        fills,
        accounts=ACCOUNTS_N,
        symbols=SYMBOLS_N,
        accounts_out=path.with_suffix(".accounts.csv"),
        positions_out=path.with_suffix(".positions.csv"),
    )
    tmp.rename(path)
    return path


def fresh_database(server_dsn: str) -> str:
    """(Re)create the benchmark database on the server; return its DSN."""
    return scratch_database(server_dsn, BENCH_DATABASE)


def copy_rate(dsn: str, rows: list[tuple]) -> float:
    """Rows/s of a bare COPY of `rows` into an empty copy of `executions` (same indexes, logged
    like the real table), in one transaction."""
    columns = ", ".join(EXECUTION_COLUMNS)
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_executions")
        conn.execute("CREATE TABLE bench_executions (LIKE executions INCLUDING ALL)")
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
            f"COPY bench_executions ({columns}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        rate = len(rows) / (time.perf_counter() - t0)
        conn.execute("DROP TABLE bench_executions")
        conn.commit()
        return rate


def run(
    settings: Settings, fills: int = 200_000, say: Callable[[str], None] = _say
) -> dict:
    """Run the benchmark; print the table; write bench/results/executions.json."""
    path = ensure_file(fills, say)
    endpoints = ensure_services(settings, {"redis", "postgres"})
    dsn = fresh_database(endpoints.postgres_dsn)
    load_rows(dsn, ACCOUNTS, read_accounts(path.with_suffix(".accounts.csv")), "accounts")
    load_rows(dsn, POSITIONS, read_positions(path.with_suffix(".positions.csv")), "positions")
    clickhouse_url = settings.clickhouse_url
    if is_embedded(clickhouse_url):
        chdb_dir = (settings.data_dir / "bench-clickhouse").resolve()
        shutil.rmtree(chdb_dir, ignore_errors=True)
        clickhouse_url = f"chdb://{chdb_dir}"
    redis_url = urlunsplit(urlsplit(endpoints.redis_url)._replace(path=f"/{BENCH_REDIS_DB}"))
    bench_settings = settings.model_copy(
        update={"postgres_dsn": dsn, "clickhouse_url": clickhouse_url, "redis_url": redis_url}
    )

    say(f"end to end: replaying {path.name} into the ledger ({BENCH_DATABASE}) and the audit "
        f"trail ({clickhouse_url})")  # fmt: skip
    summary = replay([path], bench_settings, progress=False, flows=("ledger", "audit")).as_dict()
    seconds = summary["seconds"]
    messages = summary["messages"]
    with psycopg.connect(dsn) as conn:
        booked_fills = conn.execute(
            "SELECT count(*) FROM executions WHERE exec_type = 'F'"
        ).fetchone()[0]
    fills_rate = booked_fills / seconds

    store = open_store(clickhouse_url, settings.data_dir)
    try:
        audit_rows = store.query("SELECT uniqExact(event_id) FROM audit_log")[1][0][0]
    finally:
        store.close()

    say("yardstick: bare COPY of the same execution rows")
    lines = path.read_bytes().splitlines(keepends=True)
    events = decode_lines(lines, "bench", 1).events
    rows = execution_rows(events)
    copy_rows_per_s = copy_rate(dsn, rows)

    yardsticks = {
        "bare_copy_rows_per_s": round(copy_rows_per_s),
        "end_to_end_fills_over_copy": round(fills_rate / copy_rows_per_s, 3),
        "messages": messages,
        "messages_per_s": round(messages / seconds),
        "fills_booked": booked_fills,
        "execution_rows": summary["executions"],
        "audit_rows": audit_rows,
        "dead_letters": summary["dead_letters"],
        "seconds": seconds,
    }
    out = write_result(
        "executions", "fills/s", round(fills_rate), GOAL_FILLS_PER_S, yardsticks
    )
    rows_table = [
        ("end to end: FIX -> ledger + audit trail", f"{fills_rate:,.0f} fills/s",
         f"goal >= {GOAL_FILLS_PER_S:,}"),
        ("  all execution reports", f"{messages / seconds:,.0f} msg/s",
         f"{messages:,} messages, {summary['dead_letters']:,} dead letters"),
        ("yardstick: bare COPY of the execution rows", f"{copy_rows_per_s:,.0f} rows/s",
         f"{len(rows):,} rows"),
        ("audit rows (distinct events)", f"{audit_rows:,}", "ClickHouse audit_log"),
        ("end to end fills / bare COPY rows", f"{fills_rate / copy_rows_per_s:.2f}", ""),
    ]  # fmt: skip
    print(f"executions: {booked_fills:,} fills booked, {path.name}")
    for name, value, note in rows_table:
        print(f"  {name:<48} {value:>16}  {note}")
    verdict = "meets" if fills_rate >= GOAL_FILLS_PER_S else "MISSES"
    print(f"  {verdict} the goal; results in {out}")
    return {"end_to_end": fills_rate, **yardsticks}
