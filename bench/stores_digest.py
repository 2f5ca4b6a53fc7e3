"""What the flows left in Redis, PostgreSQL and ClickHouse, in a form two runs can be compared by.

Columns that record when or from where a row was written (wall-clock stamps, serial ids, the
input's name) are left out: the same input through a file or through Kafka differs only there.
The Kafka tests compare the contents (`redis_contents`, `postgres_rows`, `clickhouse_rows`;
tests/kafka/stores.py re-exports them); `bench scale-out` compares `digests`, one hash per
Redis key and per table, made by `python -m bench.stores_digest` in a process of its own:
embedded ClickHouse (chdb) opens one directory per process, and each run has its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import psycopg
import redis

from sinks.clickhouse import open_store

PG_TABLES = (
    "accounts", "holdings", "orders", "executions", "stop_orders", "alerts", "account_margin",
    "dead_letters",
)  # fmt: skip
WRITTEN_COLUMNS = frozenset(
    ("id", "created_at", "updated_at", "received_at", "ts_init", "source", "evaluated_at",
     "dedup_key",  # dead letters: keyed by where the line was read (file line, bf-seq)
     "positions_version")  # accounts: the ledger's transactions per account (how batches fell)
)
# Redis keys of bookkeeping that depends on how batches fell, not on the input
BOOKKEEPING_KEYS = frozenset({b"positions:versions"})
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
        if key in BOOKKEEPING_KEYS:
            continue
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
    """A stream's entries in order per symbol, per order (`stream:orders`: "account@symbol"; an
    account's orders on two symbols are read from two partitions; `stream:positions`:
    "account/kind"), or per alert subject
    ("account@symbol/kind"):
    entry ids are wall-clock, and entries of different symbols or sinks interleave by timing, a
    replay's too (an account's CONCENTRATION from margin and its PUMP_AND_DUMP from
    surveillance arrive in either order when the flows read their Kafka topics at their own
    pace; its stops on two symbols fire in two shards, on two workers of a cluster). An alert
    about no one account (a wash trade across an owner's accounts) is placed by its owner."""
    entries: dict[bytes, list] = {}
    for _, fields in client.xrange(key):
        subject = fields.get(b"symbol") or b""
        if key == b"stream:positions":  # an account's documents of each kind, in order
            subject = b"%s/%s" % (fields.get(b"account") or b"", fields.get(b"kind") or b"")
        elif key == b"stream:orders":
            order = json.loads(fields.get(b"data") or b"{}")
            symbol = (order.get("symbol") or "").encode()
            subject = b"%s@%s" % (fields.get(b"account") or b"", symbol)
            if order.get("status") in ("TRIGGERED", "HELD"):  # the stops flow's sink, not the
                subject += b"/stops"  # ledger's: the two interleave by timing
        elif b"kind" in fields:
            alert = json.loads(fields.get(b"data") or b"{}")
            who = fields.get(b"account") or (alert.get("owner") or "").encode()
            subject = b"%s@%s/%s" % (who, (alert.get("symbol") or "").encode(), fields[b"kind"])
        entries.setdefault(subject, []).append(fields)
    if key == b"stream:positions":
        # The last document of each: one per committed ledger transaction, and how the engine
        # cuts batches is timing (stores agree when their latest documents do).
        return {subject: docs[-1:] for subject, docs in entries.items()}
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


# -- digests (bench scale-out) ------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """`value` as JSON-able data that is equal for equal contents: dict keys sorted (a stream's
    subjects come in arrival order, which may differ), bytes as text."""
    if isinstance(value, dict):
        return [[_canonical(k), _canonical(v)] for k, v in
                sorted(value.items(), key=lambda item: repr(item[0]))]  # fmt: skip
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def _part(value: Any, items: int) -> dict[str, Any]:
    text = json.dumps(_canonical(value), separators=(",", ":"), default=str)
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "items": items}


def _stream_part(entries: dict[bytes, list], maxlen: int) -> dict[str, Any]:
    """A stream's digest: each subject's entries in order, one short hash each, and whether the
    stream may have been trimmed (`XTRIM MAXLEN ~` never leaves fewer than `maxlen`)."""
    items = sum(len(e) for e in entries.values())
    hashes = {
        subject.decode("utf-8", "backslashreplace"): [
            hashlib.sha256(json.dumps(_canonical(fields)).encode()).hexdigest()[:16]
            for fields in fields_list
        ]
        for subject, fields_list in entries.items()
    }
    return {"items": items, "capped": items >= maxlen, "entries": hashes}


def digests(settings) -> dict[str, dict[str, Any]]:  # noqa: ANN001
    """One digest per Redis key ("redis:KEY") and per table ("postgres:TABLE",
    "clickhouse:TABLE") of the stores `settings` names: `{"sha256", "items"}` (rows, list items;
    1 for a string), or for a stream `_stream_part`. Compared by `differences`."""
    out = {}
    for key, value in redis_contents(settings.redis_url).items():
        if isinstance(value, dict):
            out[f"redis:{key}"] = _stream_part(value, settings.redis_stream_maxlen)
        else:
            out[f"redis:{key}"] = _part(value, len(value) if isinstance(value, list) else 1)
    for table, rows in postgres_rows(settings.postgres_dsn).items():
        out[f"postgres:{table}"] = _part(rows, len(rows))
    for table, rows in clickhouse_rows(settings).items():
        out[f"clickhouse:{table}"] = _part(rows, len(rows))
    return out


def _streams_agree(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same entries per subject, in the same order; where a stream was trimmed (its oldest
    entries, whichever subject they were of), each subject's entries in the shorter one are the
    tail of the longer one's."""
    if not (a["capped"] or b["capped"]):
        return a["entries"] == b["entries"]
    for subject in a["entries"].keys() | b["entries"].keys():
        short, long = sorted((a["entries"].get(subject, []), b["entries"].get(subject, [])),
                             key=len)  # fmt: skip
        if long[len(long) - len(short):] != short:
            return False
    return True


def differences(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> list[str]:
    """The parts ("redis:quote:AAPL", "postgres:alerts") that differ between two `digests`, or
    are in one only."""
    differ = []
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if x is not None and y is not None and "entries" in x and "entries" in y:
            if not _streams_agree(x, y):
                differ.append(key)
        elif x != y:
            differ.append(key)
    return differ


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.stores_digest --out FILE`: the digests of the stores configured by the
    environment (`BROKERFLOW_*`), as JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.stores_digest")
    p.add_argument("--out", type=Path, required=True, help="where to write the digests (JSON)")
    args = p.parse_args(argv)

    from brokerflow.settings import load_settings
    from domain.errors import BrokerflowError

    try:
        result = digests(load_settings())
    except (BrokerflowError, OSError, psycopg.Error, redis.RedisError) as exc:
        print(f"stores_digest: error: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
