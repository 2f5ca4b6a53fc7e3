"""What a run left in every store, in a form two runs can be compared by (the fault tests).

Wall-clock columns (`created_at`, `updated_at` set by `now()`, dead letters' `id` and
`received_at`) are left out: they differ between any two runs. Everything else, including
the event-time columns, must be identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import redis

# table -> columns that record the wall clock, not the input
_WALL_CLOCK = {
    # positions_version counts the ledger's transactions per account: how batches were cut
    "accounts": {"created_at", "updated_at", "positions_version"},
    "holdings": {"updated_at"},
    "orders": set(),
    "executions": {"created_at"},
    "stop_orders": {"created_at", "updated_at"},
    "alerts": {"created_at", "updated_at"},
    "account_margin": {"updated_at"},
    "dead_letters": {"id", "received_at"},
}

# ClickHouse: every stored row, de-duplicated as the ReplacingMergeTree keys do (FINAL), and
# the number of distinct keys (what every report counts).
_CLICKHOUSE = {
    "audit_log": "SELECT event_id, event_type, account, cl_ord_id, exec_id, symbol, "
    "toString(timestamp), order_details, market_snapshot FROM audit_log FINAL ORDER BY event_id",
    "market_ticks": "SELECT symbol, toString(ts), seq, bid, ask, ltp FROM market_ticks FINAL "
    "ORDER BY symbol, ts, seq",
    "alerts": "SELECT alert_id, kind, account, symbol FROM alerts FINAL ORDER BY alert_id",
}


def postgres_contents(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the ledger, stop, alert, margin and dead-letter tables, sorted."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(dsn) as conn:
        for table, skip in _WALL_CLOCK.items():
            columns = [
                name
                for (name,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s ORDER BY ordinal_position",
                    (table,),
                )
                if name not in skip
            ]
            where = ""
            if table == "dead_letters":
                # Data-quality letters come from sampled validation under a CPU budget: which
                # rows are validated depends on timing, so runs are compared without them.
                where = " WHERE step_id IS DISTINCT FROM 'check_data_quality'"
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}{where}").fetchall()
            out[table] = sorted(rows, key=repr)
    return out


def redis_contents(url: str) -> dict[str, Any]:
    """Every key of the db: strings by value, streams as their entries' fields in order."""
    client = redis.Redis.from_url(url)
    out: dict[str, Any] = {}
    for key in sorted(client.scan_iter(count=1000)):
        if key == b"positions:versions":  # the ledger's transactions per account: batching
            continue
        kind = client.type(key)
        if key == b"stream:orders":  # in order per order; orders of two symbols interleave
            by_order: dict[bytes, list] = {}
            for _, fields in client.xrange(key):
                order = json.loads(fields[b"data"])
                # The stop engine's TRIGGERED/HELD frames come from the stops flow's sink, the
                # venue's reports from the ledger's: two sinks, interleaved by timing.
                stops = "/stops" if order["status"] in ("TRIGGERED", "HELD") else ""
                by_order.setdefault(
                    f"{order['account']}@{order['symbol']}{stops}".encode(), []
                ).append(fields)
            out[key.decode()] = by_order
        elif key == b"stream:positions":
            # The last document of each account and kind: there is one per committed ledger
            # transaction, and how the engine cuts batches (a resumed run's differ) is timing.
            last: dict[bytes, dict] = {}
            for _, fields in client.xrange(key):
                last[fields[b"account"] + b"/" + fields[b"kind"]] = fields
            out[key.decode()] = last
        elif kind == b"stream":
            out[key.decode()] = [fields for _, fields in client.xrange(key)]
        elif kind == b"string":
            out[key.decode()] = client.get(key)
        else:
            out[key.decode()] = kind.decode()
    client.close()
    return out


# The queries run in one process (its start costs seconds), each through the CLI's own
# `brokerflow sql clickhouse ... --format json`, its output collected.
_QUERY_ALL = """
import contextlib, io, json, sys
from brokerflow.cli import main
out = {}
for table, query in json.loads(sys.argv[2]).items():
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["sql", "clickhouse", query, "--format", "json", "--data-dir", sys.argv[1]])
    assert code == 0, (table, code)
    out[table] = json.loads(printed.getvalue())
print(json.dumps(out))
"""


def clickhouse_contents(data_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """The audit trail, ticks and alerts copy of the run's embedded ClickHouse (chdb), read in a
    subprocess: chdb holds one data directory per process."""
    result = subprocess.run(
        [sys.executable, "-c", _QUERY_ALL, str(data_dir), json.dumps(_CLICKHOUSE)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
