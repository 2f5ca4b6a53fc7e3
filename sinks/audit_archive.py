"""Sinks layer: the audit trail read out of ClickHouse in a fixed order, archived as Parquet with
a manifest, and read back in.

- `read_rows(store, start, end)`: `audit_log` rows (deduplicated: FINAL) with start <= timestamp
  < end, in the chain's order (`domain.audit_digest.chain_order`: timestamp, event_id as
  text), values as `domain.audit_digest` takes them.
- `write_month(store, month, directory)`: one month as `audit_log-YYYY-MM.parquet` (a row group
  per day, so memory is bounded by a day), written under a temporary name and renamed; returns
  its manifest entry (rows, sha256 of the file, content digest of the rows).
- `file_rows(path)`: the rows of an archive file, in file order, as `read_rows` gives them.
- `restore_file(store, path)`: inserts the rows of a file whose event_id `audit_log` does not
  hold yet (existing rows win: a restore never replaces a row, e.g. a pseudonymised one).

The Parquet schema is written here, not by the engine's `FORMAT Parquet`, so chdb and a
ClickHouse server produce the same file: event_id as text, timestamp as UTC microseconds,
decimals as decimal128(38, 10), strings as strings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from domain.audit_digest import AUDIT_COLUMNS, chain, chain_order, row_hash
from domain.errors import BrokerflowError
from sinks.clickhouse import ClickHouseStore

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "brokerflow-audit-archive/1"
_DECIMALS = ("quantity", "price", "last_qty", "last_px")
_BATCH_ROWS = 50_000

_SELECT = (
    "SELECT " + ", ".join(AUDIT_COLUMNS) + " FROM audit_log FINAL "
    "WHERE timestamp >= toDateTime64({start:String}, 6, 'UTC') "
    "AND timestamp < toDateTime64({end:String}, 6, 'UTC') "
    # event_id as text: ClickHouse orders UUIDs by their two 64-bit halves, PostgreSQL and
    # Python by their bytes; as text all three agree (rows of one timestamp are common).
    "ORDER BY timestamp, toString(event_id)"
)


class ArchiveError(BrokerflowError):
    """An archive directory or file cannot be used as asked; one line."""


def file_name(month: str) -> str:
    """`audit_log-YYYY-MM.parquet`."""
    return f"audit_log-{month}.parquet"


def _text(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def read_rows(store: ClickHouseStore, start: dt.datetime, end: dt.datetime) -> list[tuple]:
    """`audit_log` rows with `start` <= timestamp < `end` (UTC), deduplicated, in order."""
    _, rows = store.query(_SELECT, {"start": _text(start), "end": _text(end)})
    rows.sort(key=chain_order)  # already so (ORDER BY); the chain's order is defined here
    return rows


def days_with_rows(
    store: ClickHouseStore, start: dt.date | None = None, end: dt.date | None = None
) -> dict[dt.date, int]:
    """`{day: rows}` of `audit_log` (deduplicated), for start <= day < end when given."""
    where = []
    params: dict[str, Any] = {}
    if start is not None:
        where.append("timestamp >= toDateTime64({start:String}, 6, 'UTC')")
        params["start"] = f"{start} 00:00:00"
    if end is not None:
        where.append("timestamp < toDateTime64({end:String}, 6, 'UTC')")
        params["end"] = f"{end} 00:00:00"
    sql = (
        "SELECT toString(toDate(timestamp)) AS d, count() FROM audit_log FINAL "
        + ("WHERE " + " AND ".join(where) + " " if where else "")
        + "GROUP BY d ORDER BY d"
    )
    _, rows = store.query(sql, params)
    return {dt.date.fromisoformat(d): int(n) for d, n in rows}


def months_before(store: ClickHouseStore, before: dt.date) -> dict[str, int]:
    """`{"YYYY-MM": rows}` of the months of `audit_log` that end on or before `before`."""
    months: dict[str, int] = {}
    for day, n in days_with_rows(store, end=before).items():
        key = f"{day.year:04d}-{day.month:02d}"
        months[key] = months.get(key, 0) + n
    return months


def _schema() -> Any:
    import pyarrow as pa

    fields = []
    for name in AUDIT_COLUMNS:
        if name == "timestamp":
            kind = pa.timestamp("us", tz="UTC")
        elif name in _DECIMALS:
            kind = pa.decimal128(38, 10)
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind, nullable=name in ("quantity", "price")))
    return pa.schema(fields, metadata={b"brokerflow": MANIFEST_FORMAT.encode()})


def _batch(rows: Sequence[Sequence[Any]]) -> Any:
    import pyarrow as pa

    schema = _schema()
    columns = list(zip(*rows, strict=True))
    arrays = []
    for index, field in enumerate(schema):
        values = columns[index]
        if field.name == "event_id":
            values = [str(v) for v in values]
        arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _month_bounds(month: str) -> tuple[dt.date, dt.date]:
    first = dt.date.fromisoformat(month + "-01")
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, nxt


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_month(store: ClickHouseStore, month: str, directory: Path) -> dict[str, Any]:
    """Write one month of `audit_log` to `directory` (which must not hold it); return its
    manifest entry without the provenance fields (`commit`, `version`, `created_at`)."""
    import pyarrow.parquet as pq

    target = directory / file_name(month)
    if target.exists():
        msg = f"{target} already exists: the month is archived there (not overwritten)"
        raise ArchiveError(msg)
    first, nxt = _month_bounds(month)
    temp = directory / f".{file_name(month)}.partial"
    hashes: list[bytes] = []
    first_ts = last_ts = None
    day = first
    with pq.ParquetWriter(temp, _schema(), compression="zstd") as writer:
        while day < nxt:
            start = dt.datetime.combine(day, dt.time(), dt.UTC)
            day += dt.timedelta(days=1)
            rows = read_rows(store, start, dt.datetime.combine(day, dt.time(), dt.UTC))
            if not rows:
                continue
            writer.write_table(_batch(rows))
            hashes.extend(row_hash(r) for r in rows)
            first_ts = first_ts or rows[0][1]
            last_ts = rows[-1][1]
    if target.exists():  # made meanwhile by another archive run
        temp.unlink()
        msg = f"{target} already exists: the month is archived there (not overwritten)"
        raise ArchiveError(msg)
    temp.rename(target)
    return {
        "month": month,
        "file": target.name,
        "rows": len(hashes),
        "bytes": target.stat().st_size,
        "sha256": sha256_file(target),
        "content_digest": chain(month, hashes),
        "first_timestamp": None if first_ts is None else first_ts.isoformat(),
        "last_timestamp": None if last_ts is None else last_ts.isoformat(),
    }


def iter_file_rows(path: Path) -> Iterator[list[tuple]]:
    """The rows of an archive file in batches, in file order, values as `read_rows` gives
    them (event_id as a UUID, timestamp as an aware datetime, decimals as Decimal)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        if list(names) != list(AUDIT_COLUMNS):
            msg = f"{path.name}: not an audit_log archive (columns {', '.join(names[:3])}…)"
            raise ArchiveError(msg)
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
            columns = [batch.column(i).to_pylist() for i in range(len(AUDIT_COLUMNS))]
            columns[0] = [uuid.UUID(v) for v in columns[0]]
            yield list(zip(*columns, strict=True))
    except (pa.ArrowException, OSError, ValueError) as exc:
        msg = f"{path.name}: unreadable as Parquet ({str(exc).splitlines()[0][:120]})"
        raise ArchiveError(msg) from None


def file_content(path: Path, month: str) -> tuple[int, str]:
    """Rows and content digest of an archive file (the same as `write_month` computed)."""
    hashes = [row_hash(r) for batch in iter_file_rows(path) for r in batch]
    return len(hashes), chain(month, hashes)


def restore_file(store: ClickHouseStore, path: Path, month: str) -> tuple[int, int, set[str]]:
    """Insert the rows of an archive file that `audit_log` does not hold (by event_id);
    return (rows in the file, rows inserted, the accounts of the inserted rows). A second
    restore inserts none."""
    first, nxt = _month_bounds(month)
    _, present = store.query(
        "SELECT DISTINCT toString(event_id) FROM audit_log "
        "WHERE timestamp >= toDateTime64({start:String}, 6, 'UTC') "
        "AND timestamp < toDateTime64({end:String}, 6, 'UTC')",
        {"start": f"{first} 00:00:00", "end": f"{nxt} 00:00:00"},
    )
    known = {row[0] for row in present}
    total = inserted = 0
    accounts: set[str] = set()
    for batch in iter_file_rows(path):
        total += len(batch)
        fresh = [r for r in batch if str(r[0]) not in known]
        if not fresh:
            continue
        columns = list(zip(*fresh, strict=True))
        # DateTime64 columns go in as int ticks (the stores' contract), microseconds here.
        columns[1] = [_micros(ts) for ts in columns[1]]
        inserted += store.insert_columns("audit_log", AUDIT_COLUMNS, columns)
        known.update(str(r[0]) for r in fresh)
        accounts.update(r[3] for r in fresh)
    return total, inserted, accounts


def _micros(ts: dt.datetime) -> int:
    delta = ts.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of an archive directory (an empty one when the directory has none)."""
    path = directory / MANIFEST
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "table": "audit_log", "files": []}
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != MANIFEST_FORMAT or not isinstance(doc.get("files"), list):
            raise ValueError
    except (ValueError, AttributeError):
        msg = f"{path}: not a brokerflow audit archive manifest"
        raise ArchiveError(msg) from None
    return doc


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically (a crash leaves the old one or the new one)."""
    path = directory / MANIFEST
    temp = directory / f".{MANIFEST}.partial"
    temp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(temp, path)
