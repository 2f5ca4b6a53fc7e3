"""What the flows left in Redis, PostgreSQL and ClickHouse, in a form two runs can be compared by.

Columns that record when or from where a row was written (wall-clock stamps, serial ids, the
input's name) are left out: the same input through a file or through Kafka differs only there.
"""

from __future__ import annotations

import json

import psycopg
import redis

from sinks.clickhouse import open_store

PG_TABLES = (
    "accounts", "holdings", "orders", "executions", "stop_orders", "alerts", "account_margin",
    "dead_letters",
)  # fmt: skip
WRITTEN_COLUMNS = frozenset(
    ("id", "created_at", "updated_at", "received_at", "ts_init", "source", "evaluated_at",
     "dedup_key")  # dead letters: keyed by where the line was read (file line, bf-seq)
)
CH_TABLES = ("audit_log", "market_ticks", "alerts")


def _clean(row: dict) -> str:
    return json.dumps({k: v for k, v in row.items() if k not in WRITTEN_COLUMNS}, sort_keys=True,
                      default=str)  # fmt: skip


def postgres_rows(dsn: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with psycopg.connect(dsn) as conn:
        for table in PG_TABLES:
            rows = conn.execute(f"SELECT row_to_json(t) FROM {table} t").fetchall()  # noqa: S608
            out[table] = sorted(_clean(r[0]) for r in rows)
    return out


def redis_contents(url: str) -> dict[str, object]:
    client = redis.Redis.from_url(url)
    out: dict[str, object] = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key)
        if kind == b"string":
            out[key.decode()] = client.get(key)
        elif kind == b"stream":
            out[key.decode()] = _stream_entries(client, key)
        elif kind == b"list":
            out[key.decode()] = client.lrange(key, 0, -1)
    client.close()
    return out


def _stream_entries(client: redis.Redis, key: bytes) -> dict[bytes, list]:
    """A stream's entries in order per symbol, or per account and alert kind: entry ids are
    wall-clock, and entries of different symbols or sinks interleave by timing, a replay's too
    (an account's CONCENTRATION from margin and its PUMP_AND_DUMP from surveillance arrive in
    either order when the flows read their Kafka topics at their own pace)."""
    entries: dict[bytes, list] = {}
    for _, fields in client.xrange(key):
        subject = fields.get(b"symbol") or fields.get(b"account") or b""
        if b"kind" in fields:
            subject += b"/" + fields[b"kind"]
        entries.setdefault(subject, []).append(fields)
    return entries


def clickhouse_rows(settings) -> dict[str, list[str]]:
    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        out: dict[str, list[str]] = {}
        for table in CH_TABLES:
            names, rows = store.query(f"SELECT * FROM {table} FINAL")
            out[table] = sorted(_clean(dict(zip(names, row, strict=True))) for row in rows)
        return out
    finally:
        store.close()


def clear_clickhouse(settings) -> None:
    store = open_store(settings.clickhouse_url, settings.data_dir)
    try:
        for table in CH_TABLES:
            store.command(f"TRUNCATE TABLE {table}")
    finally:
        store.close()
