"""Tamper evidence for the audit trail: a canonical encoding of `audit_log` rows, per-row and
per-column hashes, the hash chain over a day's (or an archived month's) rows, and the naming of
the rows that differ from a seal.

Pure: rows come in as Python values in `AUDIT_COLUMNS` order (UUID, datetime, Decimal, str or
None, as both ClickHouse backends and Parquet give them back), so the same rows give the same
hashes whichever store or file they were read from.

- `row_encoding(row)`: a JSON array of the canonical values (UUID as text, timestamp as UTC
  ISO with microseconds, decimals without trailing zeros, NULL as null), UTF-8, no spaces.
- `row_hash(row)` = sha256(encoding); `column_hashes(row)`: the first 4 bytes of sha256 of each
  column's canonical value, concatenated (80 bytes), enough to say which columns changed.
- `chain(label, row_hashes)`: link_0 = sha256("brokerflow-audit/1|" + label), link_i =
  sha256(link_{i-1} || row_hash_i), rows in (timestamp, event_id as text) order
  (`chain_order`); the digest is the last link (hex). Chaining the row hashes (rather than
  the encodings) lets the stored row hashes be checked against the stored digest, so an edit
  of the seal's rows is caught as well.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

AUDIT_COLUMNS = (
    "event_id", "timestamp", "event_type", "account", "order_id", "cl_ord_id", "orig_cl_ord_id",
    "exec_id", "symbol", "side", "ord_type", "ord_status", "quantity", "price", "last_qty",
    "last_px", "order_details", "market_snapshot", "raw_fix", "source",
)  # fmt: skip
"""The columns a row's hashes cover, in order (= `sinks.clickhouse.AUDIT_COLUMNS`)."""

CHAIN_VERSION = "brokerflow-audit/1"
COLUMN_HASH_BYTES = 4


def canonical_value(value: Any) -> Any:
    """Return a JSON value that is the same for equal audit values however they were read.

    >>> canonical_value(Decimal("60.0000000000")), canonical_value(Decimal("-0E-10"))
    ('60', '0')
    >>> canonical_value(dt.datetime(2024, 3, 4, 10, 0, 5, tzinfo=dt.UTC))
    '2024-03-04T10:00:05.000000Z'
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # the store's DateTime64 columns are all UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, Decimal):
        if value.is_zero():
            return "0"
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def row_encoding(row: Sequence[Any]) -> bytes:
    """The canonical bytes of one row (values in `AUDIT_COLUMNS` order)."""
    return _encode([canonical_value(v) for v in row])


def row_hash(row: Sequence[Any]) -> bytes:
    """sha256 of `row_encoding(row)` (32 bytes)."""
    return hashlib.sha256(row_encoding(row)).digest()


def column_hashes(row: Sequence[Any]) -> bytes:
    """The first `COLUMN_HASH_BYTES` of sha256 of each column's canonical value, concatenated."""
    return b"".join(
        hashlib.sha256(_encode(canonical_value(v))).digest()[:COLUMN_HASH_BYTES] for v in row
    )


def chain_order(row: Sequence[Any]) -> tuple[str, str]:
    """The chain's order of a row: its timestamp, then its event_id as text (the order of
    PostgreSQL's uuid and of the text, not ClickHouse's UUID order, which differs).

    >>> sorted([("b", "2024-03-04 10:00"), ("a", "2024-03-04 10:00")], key=chain_order)[0][0]
    'a'
    """
    return canonical_value(row[1]), str(row[0])


def chain(label: str, row_hashes: Iterable[bytes]) -> str:
    """The hash chain's last link (hex) over row hashes in `chain_order`.

    `label` (the day "2024-03-04" or the month "2024-03") starts the chain, so the same rows
    under another day give another digest.
    """
    link = hashlib.sha256(f"{CHAIN_VERSION}|{label}".encode()).digest()
    for h in row_hashes:
        link = hashlib.sha256(link + h).digest()
    return link.hex()


@dataclass(frozen=True, slots=True)
class RowSeal:
    """What a seal keeps of one row: enough to say it changed, and which columns."""

    event_id: str
    ts: dt.datetime
    row_hash: bytes
    column_hashes: bytes
    event_type: str = ""


def seal_rows(rows: Iterable[Sequence[Any]]) -> list[RowSeal]:
    """`RowSeal`s of rows (values in `AUDIT_COLUMNS` order), in the order given."""
    return [RowSeal(str(r[0]), r[1], row_hash(r), column_hashes(r), str(r[2] or "")) for r in rows]


@dataclass(frozen=True, slots=True)
class Finding:
    """One row that differs from a seal: `kind` is "changed", "deleted" or "added"."""

    kind: str
    event_id: str
    ts: dt.datetime | None
    event_type: str = ""
    columns: tuple[str, ...] = ()

    def line(self) -> str:
        """One line naming the row (and the columns of a change)."""
        when = canonical_value(self.ts) if self.ts is not None else "?"
        what = f" {self.event_type}" if self.event_type else ""
        text = f"{self.kind} row {self.event_id}{what} at {when}"
        if self.kind == "changed":
            text += ": " + (", ".join(self.columns) if self.columns else "columns not known")
        return text


def changed_columns(sealed: bytes, current: bytes) -> tuple[str, ...]:
    """The names of the columns whose hashes differ (empty if the layouts differ)."""
    n = COLUMN_HASH_BYTES
    if len(sealed) != len(current) or len(sealed) != n * len(AUDIT_COLUMNS):
        return ()
    return tuple(
        name
        for i, name in enumerate(AUDIT_COLUMNS)
        if sealed[i * n : (i + 1) * n] != current[i * n : (i + 1) * n]
    )


def diff(sealed: Sequence[RowSeal], current: Sequence[RowSeal]) -> list[Finding]:
    """Name every row that was changed, deleted or added since the seal, in time order.

    A row is matched by its event_id (derived from the input, and the key a re-delivery keeps).
    """
    before: Mapping[str, RowSeal] = {r.event_id: r for r in sealed}
    now: Mapping[str, RowSeal] = {r.event_id: r for r in current}
    findings: list[Finding] = []
    for event_id, old in before.items():
        new = now.get(event_id)
        if new is None:
            findings.append(Finding("deleted", event_id, old.ts, old.event_type))
        elif new.row_hash != old.row_hash:
            columns = changed_columns(old.column_hashes, new.column_hashes)
            findings.append(Finding("changed", event_id, new.ts, new.event_type, columns))
    for event_id, new in now.items():
        if event_id not in before:
            findings.append(Finding("added", event_id, new.ts, new.event_type))
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    findings.sort(key=lambda f: (_aware(f.ts) if f.ts is not None else far, f.event_id))
    return findings


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)
