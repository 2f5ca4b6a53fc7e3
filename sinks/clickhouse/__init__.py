"""Sinks layer: ClickHouse, the audit trail and analytics store.

Owns the `ClickHouseStore` protocol and its two backends, chosen by URL (`open_store`):

- `chdb:///abs/path` or `chdb://` (= `<data_dir>/clickhouse`): the embedded ClickHouse engine,
  in-process (`ChdbStore`). chdb hosts one engine per process, bound to one path; connections to
  that path are shared through a module-level registry (`_SessionRegistry`), and asking for a
  second path while the first is open is an error.
- `http(s)://user:pass@host:8123/db`: a ClickHouse server through clickhouse-connect
  (`ServerStore`).

Both run the same DDL (`sql/clickhouse/`, applied by `migrate_clickhouse`) and the same report
SQL, take rows in the same shape (`audit_rows`, `tick_rows`: Python values; DateTime64 columns as
int ticks, e.g. epoch microseconds for DateTime64(6)), or the same values one sequence per column
(`insert_columns` of `audit_columns`, `tick_columns`), and split inserts into chunks of
`max_insert_rows` rows. Also the Bytewax sinks `AuditSink`, `TicksSink` and `AlertsSink` (one
insert per batch, on the worker thread; the tests' reference) and the pipelined ones the flows
use (audit, the stop engine's audit rows, surveillance's alerts).

chdb inserts are `INSERT … SELECT * FROM Python(table)` of an Arrow table built from the rows'
columns (`_arrow_table`), with Decimal, UUID and Date values passed as strings for the
INSERT's conversion to parse: for audit rows ~40 % less CPU than JSON, Python and chdb
together (the earlier finding that Arrow loses held for arrays built from Decimal objects).
A table with a column type Arrow does not carry here goes in as `INSERT … FORMAT
JSONCompactColumns`: one C-speed `json.dumps` of the batch, which measured fastest of
TabSeparated, JSONCompactEachRow and streaming `send_insert`. Also the pipelined sinks
(`PipelinedAuditSink`, `PipelinedTicksSink`): rows handed to a background writer that builds the
columns and inserts them in large inserts off the worker thread (chdb releases the GIL while it
inserts), drained at every epoch's snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from domain.audit import AuditRecord
from domain.errors import BrokerflowError
from domain.quotes import Quote
from sinks.background import BackgroundWriter
from sinks.postgres import MigrationError, load_migrations
from sinks.retry import RetryPolicy, retry_with_backoff

DEFAULT_MAX_INSERT_ROWS = 10_000

AUDIT_COLUMNS = (
    "event_id",
    "timestamp",
    "event_type",
    "account",
    "order_id",
    "cl_ord_id",
    "orig_cl_ord_id",
    "exec_id",
    "symbol",
    "side",
    "ord_type",
    "ord_status",
    "quantity",
    "price",
    "last_qty",
    "last_px",
    "order_details",
    "market_snapshot",
    "raw_fix",
    "source",
)
"""`audit_log` columns in the order of `audit_rows`."""

TICK_COLUMNS = (
    "symbol",
    "ts",
    "seq",
    "bid",
    "bid_size",
    "ask",
    "ask_size",
    "ltp",
    "ltq",
    "volume",
)
"""`market_ticks` columns in the order of `tick_rows`."""

_CREATE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`")
_READ_ONLY_VERBS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN"})
# JSON output settings of every query connection: exact decimals, unquoted 64-bit ints,
# nan/inf as strings (JSON has no literal for them).
_JSON_SETTINGS = {
    "output_format_json_quote_decimals": "1",
    "output_format_json_quote_64bit_integers": "0",
    "output_format_json_quote_denormals": "1",
}


class ClickHouseError(BrokerflowError):
    """The ClickHouse store refused or failed a statement; one line from the engine."""


class ReadOnlyError(ClickHouseError):
    """A statement that could write was given where only reads are allowed."""


class ClickHouseStore(Protocol):
    """What the audit sinks, the reports and `brokerflow sql clickhouse` need of ClickHouse.

    Attributes:
        url: the store's URL with the password masked.
        retryable: the errors worth another try (connection-level), for `retry_with_backoff`.
    """

    url: str
    retryable: tuple[type[Exception], ...]

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run one statement (DDL, a mutation) and discard any result."""
        ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows (tuples in `columns` order) in chunks; return how many were sent."""
        ...

    def insert_columns(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> int:
        """Insert the same values as `insert`, given one sequence per column (all of one
        length, in `columns` order), in chunks; return how many rows were sent."""
        ...

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, readonly: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one query with `{name:Type}` parameters; return column names and rows."""
        ...

    def close(self) -> None:
        """Release the connection (or this store's share of the embedded engine)."""
        ...


# -- shared SQL helpers ------------------------------------------------------------------------


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements on `;` outside quotes and comments; drop empty ones.

    >>> split_statements("SELECT ';'; -- a; comment\\nSELECT 2;")
    ["SELECT ';'", '-- a; comment\\nSELECT 2']
    """
    statements: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
        elif c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif c == ";":
            statements.append(sql[start:i])
            start = i + 1
        i += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if _strip_comments(s).strip()]


def _strip_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"--[^\n]*", " ", sql)


def check_read_only(sql: str) -> str:
    """Return the single statement of `sql` if it only reads, else raise `ReadOnlyError`.

    Allowed: one SELECT, WITH, SHOW, DESCRIBE/DESC or EXPLAIN statement. This is the first
    line of defence; the query also runs with `readonly=1` on both backends.
    """
    statements = split_statements(sql)
    if len(statements) != 1:
        msg = f"exactly one statement is allowed, {len(statements)} were given"
        raise ReadOnlyError(msg)
    words = _strip_comments(statements[0]).split(None, 1)
    verb = words[0].lstrip("(").upper() if words else ""
    if verb not in _READ_ONLY_VERBS:
        given = verb or "nothing"
        msg = f"only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN are allowed, {given} was given"
        raise ReadOnlyError(msg)
    # chdb writes INTO OUTFILE on the client side, where readonly=1 does not reach.
    if _INTO_OUTFILE.search(_QUOTED.sub("''", _strip_comments(statements[0]))):
        msg = "INTO OUTFILE is not allowed (use --format and redirect the output)"
        raise ReadOnlyError(msg)
    return statements[0]


def quote_identifier(name: str) -> str:
    """Return a table or column name quoted for ClickHouse; refuse anything but a plain name."""
    if not _IDENTIFIER.match(name):
        msg = f"not a plain identifier: {name!r}"
        raise ClickHouseError(msg)
    return f"`{name}`"


def chunks(rows: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Yield consecutive slices of at most `size` rows."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- rows ------------------------------------------------------------------------------------


def audit_rows(records: Iterable[AuditRecord]) -> list[tuple[Any, ...]]:
    """Return `audit_log` rows (in `AUDIT_COLUMNS` order); `timestamp` as epoch microseconds."""
    return [
        (
            r.event_id,
            r.ts_event_us,
            r.event_type,
            r.account,
            r.order_id,
            r.cl_ord_id,
            r.orig_cl_ord_id,
            r.exec_id,
            r.symbol,
            r.side,
            r.ord_type,
            r.ord_status,
            r.quantity,
            r.price,
            r.last_qty,
            r.last_px,
            r.order_details,
            r.market_snapshot,
            r.raw_fix,
            r.source,
        )
        for r in records
    ]


def tick_rows(quotes: Iterable[Quote]) -> list[tuple[Any, ...]]:
    """Return `market_ticks` rows (in `TICK_COLUMNS` order); `ts` as epoch microseconds."""
    return [
        (q.symbol, q.ts * 1000, q.seq, q.bid, q.bid_size, q.ask, q.ask_size, q.ltp, q.ltq, q.volume)
        for q in quotes
    ]


# `AuditRecord` attributes in `AUDIT_COLUMNS` order (`timestamp` is `ts_event_us`).
_AUDIT_ROW = attrgetter(*("ts_event_us" if c == "timestamp" else c for c in AUDIT_COLUMNS))


def audit_columns(records: Sequence[AuditRecord]) -> list[Sequence[Any]]:
    """Return the values of `audit_rows(records)` one sequence per column (`AUDIT_COLUMNS`).

    One C-level `attrgetter` per record and one transposition: no Python loop per value.
    """
    if not records:
        return [() for _ in AUDIT_COLUMNS]
    return list(zip(*map(_AUDIT_ROW, records), strict=True))


def tick_columns(quotes: Sequence[Quote]) -> list[Sequence[Any]]:
    """Return the values of `tick_rows(quotes)` one sequence per column (`TICK_COLUMNS`).

    A `Quote` is a tuple, so one transposition (in C) gives every field's column; only `ts`
    (epoch ms -> µs) is computed per value. The fields after `seq` are not stored.
    """
    if not quotes:
        return [() for _ in TICK_COLUMNS]
    symbol, bid, bid_size, ask, ask_size, ltp, ltq, volume, ts, seq, *_ = zip(*quotes, strict=True)
    return [symbol, [t * 1000 for t in ts], seq, bid, bid_size, ask, ask_size, ltp, ltq, volume]


# -- value conversion (chdb: JSON in, JSON out) ------------------------------------------------


def _unwrap(type_name: str) -> str:
    while True:
        for wrapper in ("Nullable(", "LowCardinality("):
            if type_name.startswith(wrapper):
                type_name = type_name[len(wrapper) : -1]
                break
        else:
            return type_name


def _datetime_scale(type_name: str) -> int:
    match = re.match(r"DateTime64\((\d+)", type_name)
    return int(match[1]) if match else 0


def _json_encoder(type_name: str) -> Callable[[Any], Any] | None:
    """Return how to turn a row value into JSON for a column type (None: as it is)."""
    base = _unwrap(type_name)
    if base.startswith("DateTime"):
        scale = _datetime_scale(base)
        unit = 10**scale
        template = f"%d.%0{scale}d" if scale else "%d"

        def encode_datetime(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, int):
                return template % divmod(value, unit) if scale else "%d" % value
            if isinstance(value, dt.datetime):
                return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return str(value)

        return encode_datetime
    if base.startswith(("Decimal", "UUID", "Int128", "Int256", "UInt128", "UInt256")):
        return _str_or_none
    if base.startswith("Date"):
        return _str_or_none
    return None


def _str_or_none(value: Any) -> Any:
    return None if value is None else str(value)


def _json_decoder(type_name: str) -> Callable[[Any], Any] | None:
    """Return how to turn a JSONCompact value into a Python value for a column type."""
    base = _unwrap(type_name)
    if base.startswith("Decimal"):
        return _decimal_or_none
    if base.startswith("DateTime"):
        return _datetime_or_none
    if base.startswith("Date"):
        return _date_or_none
    if base == "UUID":
        return _uuid_or_none
    if base.startswith("Float"):
        return _float_or_none
    return None


def _decimal_or_none(value: Any) -> Any:
    return None if value is None else Decimal(value)


def _datetime_or_none(value: Any) -> Any:
    # Our DateTime columns are all in UTC ('UTC' in the type, and chdb runs with UTC).
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def _date_or_none(value: Any) -> Any:
    return None if value is None else dt.date.fromisoformat(value)


def _uuid_or_none(value: Any) -> Any:
    return None if value is None else uuid.UUID(value)


def _float_or_none(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value


def decode_json_compact(payload: bytes) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Parse a `FORMAT JSONCompact` result into column names and typed rows."""
    if not payload.strip():
        return [], []
    try:
        doc = json.loads(payload)
        meta = doc["meta"]
    except (ValueError, KeyError, TypeError):
        msg = "the result was not JSONCompact: leave out FORMAT (use --format)"
        raise ClickHouseError(msg) from None
    columns = [column["name"] for column in meta]
    decoders = [_json_decoder(column["type"]) for column in meta]
    if not any(decoders):
        return columns, [tuple(row) for row in doc["data"]]
    rows = [
        tuple(v if f is None else f(v) for f, v in zip(decoders, row, strict=True))
        for row in doc["data"]
    ]
    return columns, rows


def _column_encoder(type_name: str) -> Callable[[Sequence[Any]], list[Any]] | None:
    """Return how to turn a whole column into JSON values (None: as it is).

    Same values as `_json_encoder` per value, with the common cases inlined.
    """
    encode = _json_encoder(type_name)
    if encode is None:
        return None
    if encode is _str_or_none:
        return _str_or_none_column
    base = _unwrap(type_name)
    if base.startswith("DateTime") and _datetime_scale(base):
        scale = _datetime_scale(base)
        unit = 10**scale
        template = f"%d.%0{scale}d"

        def encode_ticks(column: Sequence[Any]) -> list[Any]:
            return [template % divmod(v, unit) if v.__class__ is int else encode(v) for v in column]

        return encode_ticks
    return lambda column: [encode(v) for v in column]


def _str_or_none_column(column: Sequence[Any]) -> list[Any]:
    return [None if v is None else str(v) for v in column]


def encode_json_columns(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return rows as one `JSONCompactColumns` document: a JSON array of column arrays.

    Columns whose type needs no conversion go in as the transposed tuples (JSON arrays too).
    Non-ASCII is written as `\\u` escapes: the C encoder's ASCII path is the faster one, and
    ClickHouse reads the escapes (surrogate pairs included) back to the same UTF-8.
    """
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for index, type_name in enumerate(types):
        encoder = _column_encoder(type_name)
        if encoder is not None:
            columns[index] = encoder(columns[index])
    return json.dumps(columns)


# -- Arrow input (chdb) ---------------------------------------------------------------------------
#
# chdb reads an Arrow table in place through its Python() table function, and INSERT ... SELECT
# converts each column to the table's type (strings to UUID or Decimal, NULL to the default of a
# non-Nullable column, as JSON input does). For 390,517 audit rows this cost ~20 % less Python
# than one json.dumps of the columns, and less of chdb's CPU than parsing that JSON.
# (pyarrow comes with chdb, which requires it.)

_ARROW_TIME_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}
_ARROW_INSERT_LOCK = threading.Lock()
_ARROW_AS_TEXT = ("Decimal", "UUID", "Date", "Int128", "Int256", "UInt128", "UInt256")


def _arrow_array(type_name: str, column: Sequence[Any]) -> Any:
    """Return `column` (Python values as `audit_rows` makes them) as an Arrow array that
    INSERT ... SELECT converts to `type_name`, or None for a type taken only as JSON.

    Raises:
        pyarrow.ArrowException, TypeError, OverflowError: a value does not fit the array type.
    """
    import pyarrow as pa

    base = _unwrap(type_name)
    if base.startswith("DateTime64"):
        unit = _ARROW_TIME_UNITS.get(_datetime_scale(base))
        if unit is None:
            return None
        ticks = pa.array(column, pa.int64())  # int ticks only: a datetime raises, JSON takes it
        return ticks.cast(pa.timestamp(unit, tz="UTC"))
    if base == "String" or base.startswith("FixedString"):
        return pa.array(column, pa.string())
    if base.startswith(_ARROW_AS_TEXT) and not base.startswith("DateTime"):
        return pa.array(_str_or_none_column(column), pa.string())
    if base in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32"):
        return pa.array(column, pa.int64())
    if base == "UInt64":
        return pa.array(column, pa.uint64())
    if base in ("Float32", "Float64"):
        return pa.array(column, pa.float64())
    if base == "Bool":
        return pa.array(column, pa.bool_())
    return None


def _arrow_table(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    """Return rows as an Arrow table (columns `c0`, `c1`...), or None if any column's type or
    value needs the JSON path."""
    return _arrow_columns(types, list(zip(*rows, strict=True)))


def _arrow_columns(types: Sequence[str], columns: Sequence[Sequence[Any]]) -> Any:
    """`_arrow_table` of values given one sequence per column."""
    import pyarrow as pa

    arrays = []
    try:
        for type_name, column in zip(types, columns, strict=True):
            array = _arrow_array(type_name, column)
            if array is None:
                return None
            arrays.append(array)
    except (pa.ArrowException, TypeError, OverflowError):
        return None
    return pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])


# -- chdb: the embedded engine ----------------------------------------------------------------


class _SessionRegistry:
    """One shared chdb session per path, reference-counted; chdb allows one path per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: str | None = None
        self._session: Any = None
        self._users = 0

    def acquire(self, path: str) -> Any:
        from chdb.session import Session

        with self._lock:
            if self._session is not None:
                if path != self._path:
                    msg = (
                        f"chdb is already open at {self._path} in this process; "
                        f"one embedded ClickHouse path per process ({path} was asked for)"
                    )
                    raise ClickHouseError(msg)
            else:
                Path(path).mkdir(parents=True, exist_ok=True)
                try:
                    session = Session(path)
                except RuntimeError as exc:
                    raise ClickHouseError(_first_line(exc)) from None
                for name, value in _JSON_SETTINGS.items():
                    session.query(f"SET {name} = {value}")
                self._session, self._path = session, path
            self._users += 1
            return self._session

    def release(self, path: str) -> None:
        with self._lock:
            if self._session is None or path != self._path:
                return
            self._users -= 1
            if self._users <= 0:
                self._session.close()
                self._session, self._path, self._users = None, None, 0


_SESSIONS = _SessionRegistry()


class ChdbStore:
    """The embedded ClickHouse engine at a directory (`chdb:///path`).

    Sessions are thread-safe (chdb's own locks), so every `ChdbStore` of the process shares one.
    Read-only queries run on a separate connection opened with `readonly=1`.
    """

    retryable: tuple[type[Exception], ...] = ()

    def __init__(self, path: Path, max_insert_rows: int = DEFAULT_MAX_INSERT_ROWS) -> None:
        self.path = str(Path(path).resolve())
        self.url = f"chdb://{self.path}"
        self.max_insert_rows = max_insert_rows
        self._session = _SESSIONS.acquire(self.path)
        self._types: dict[str, dict[str, str]] = {}
        self._closed = False

    def _run(self, conn: Any, sql: str, params: Mapping[str, Any] | None, fmt: str) -> bytes:
        if self._closed:
            msg = "the ClickHouse store is closed"
            raise ClickHouseError(msg)
        try:
            result = conn.query(sql, fmt, params=dict(params) if params else None)
        except RuntimeError as exc:
            raise ClickHouseError(_first_line(exc)) from None
        return result.bytes() if hasattr(result, "bytes") else bytes(result)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run one statement and discard its result."""
        self._run(self._session, sql, params, "TabSeparated")

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, readonly: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one query; with `readonly` on a connection where writes are refused."""
        if not readonly:
            return decode_json_compact(self._run(self._session, sql, params, "JSONCompact"))
        from chdb.state.sqlitelike import connect

        settings = "&".join(f"{k}={v}" for k, v in _JSON_SETTINGS.items())
        try:
            conn = connect(f"{self.path}?{settings}&readonly=1")
        except RuntimeError as exc:
            raise ClickHouseError(_first_line(exc)) from None
        try:
            return decode_json_compact(self._run(conn, sql, params, "JSONCompact"))
        finally:
            conn.close()

    def column_types(self, table: str) -> dict[str, str]:
        """Return `{column: type}` of a table (cached per store)."""
        types = self._types.get(table)
        if types is None:
            _, rows = self.query(f"DESCRIBE TABLE {quote_identifier(table)}")
            types = {row[0]: row[1] for row in rows}
            self._types[table] = types
        return types

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows, `max_insert_rows` per statement: as an Arrow table when every column
        has a type `_arrow_array` takes (`audit_log`, `market_ticks`...), else as
        `JSONCompactColumns`."""
        if not rows:
            return 0
        return self.insert_columns(table, columns, list(zip(*rows, strict=True)))

    def insert_columns(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> int:
        """Insert values given one sequence per column, as `insert` does: one Arrow table built
        from the columns, sent in slices of `max_insert_rows` rows (slicing copies nothing)."""
        rows = len(data[0]) if data else 0
        if not rows:
            return 0
        known = self.column_types(table)
        missing = [c for c in columns if c not in known]
        if missing:
            msg = f"table {table} has no column {missing[0]}"
            raise ClickHouseError(msg)
        types = [known[c] for c in columns]
        names = ", ".join(quote_identifier(c) for c in columns)
        head = f"INSERT INTO {quote_identifier(table)} ({names}) "
        size = self.max_insert_rows
        arrow = _arrow_columns(types, data)
        if arrow is not None:
            for start in range(0, rows, size):
                self._insert_arrow(head, arrow if rows <= size else arrow.slice(start, size))
            return rows
        for chunk in chunks(list(zip(*data, strict=True)), size):
            sql = head + "FORMAT JSONCompactColumns\n" + encode_json_columns(types, chunk)
            self._run(self._session, sql, None, "TabSeparated")
        return rows

    def insert_arrow(self, table: str, columns: Sequence[str], arrow: Any) -> int:
        """Insert a `pyarrow.Table` whose columns are `columns`, in order, in one statement
        (chdb converts each column to the table's type); return its rows."""
        names = ", ".join(quote_identifier(c) for c in columns)
        self._insert_arrow(f"INSERT INTO {quote_identifier(table)} ({names}) ", arrow)
        return int(arrow.num_rows)

    def query_arrow(self, sql: str) -> Any:
        """Run one query; return its result as a `pyarrow.Table` (chdb's own Arrow output)."""
        if self._closed:
            msg = "the ClickHouse store is closed"
            raise ClickHouseError(msg)
        try:
            return self._session.query(sql, "ArrowTable")
        except RuntimeError as exc:
            raise ClickHouseError(_first_line(exc)) from None

    def _insert_arrow(self, head: str, table: Any) -> None:
        # chdb's Python() table function finds the table by its variable name in the Python
        # frames, and not only this thread's: two threads inserting at once (the audit and the
        # ticks writers) read each other's tables. One Arrow insert at a time in the process.
        with _ARROW_INSERT_LOCK:
            bf_arrow_rows = table  # noqa: F841 - read by name by the statement below
            sql = head + "SELECT * FROM Python(bf_arrow_rows)"
            self._run(self._session, sql, None, "TabSeparated")

    def close(self) -> None:
        """Give back this store's share of the process-wide session."""
        if not self._closed:
            self._closed = True
            _SESSIONS.release(self.path)


# -- ClickHouse server over HTTP ----------------------------------------------------------------


class ServerStore:
    """A ClickHouse server through clickhouse-connect (`http(s)://user:pass@host:8123/db`).

    Rows go in Native format, `max_insert_rows` per request; read-only queries carry the
    server setting `readonly=1`, so the server itself refuses writes.
    """

    def __init__(
        self,
        url: str,
        max_insert_rows: int = DEFAULT_MAX_INSERT_ROWS,
        client: Any = None,
        **client_args: Any,
    ) -> None:
        """Connect to the server of `url` (or use `client`, a clickhouse-connect `Client`)."""
        from clickhouse_connect.driver.exceptions import OperationalError

        self.url = _mask_password(url)
        self.max_insert_rows = max_insert_rows
        self.retryable = (OperationalError,)
        if client is None:
            import clickhouse_connect

            client = clickhouse_connect.get_client(dsn=url, **client_args)
        self._client = client

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run one statement and discard its result."""
        self._call(lambda: self._client.command(sql, parameters=dict(params or {})))

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, readonly: bool = False
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one query, with the `readonly=1` setting when asked."""
        settings = {"readonly": 1} if readonly else None
        result = self._call(
            lambda: self._client.query(sql, parameters=dict(params or {}), settings=settings)
        )
        return list(result.column_names), [tuple(row) for row in result.result_rows]

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows, `max_insert_rows` per request."""
        quote_identifier(table)
        for chunk in chunks(rows, self.max_insert_rows):
            self._call(lambda c=chunk: self._client.insert(table, c, column_names=list(columns)))
        return len(rows)

    def insert_columns(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> int:
        """Insert values given one sequence per column, `max_insert_rows` rows per request
        (clickhouse-connect's column-oriented insert: the same Native data as `insert`)."""
        quote_identifier(table)
        rows = len(data[0]) if data else 0
        size = self.max_insert_rows
        for start in range(0, rows, size):
            part = data if rows <= size else [c[start : start + size] for c in data]
            self._call(
                lambda p=part: self._client.insert(
                    table, p, column_names=list(columns), column_oriented=True
                )
            )
        return rows

    def _call(self, fn: Callable[[], Any]) -> Any:
        from clickhouse_connect.driver.exceptions import DatabaseError

        try:
            return fn()
        except self.retryable:
            raise
        except DatabaseError as exc:
            raise ClickHouseError(_first_line(exc)) from None

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()


# -- opening and migrating ----------------------------------------------------------------------


def open_store(
    url: str | None, data_dir: Path, max_insert_rows: int = DEFAULT_MAX_INSERT_ROWS
) -> ClickHouseStore:
    """Open the store a `BROKERFLOW_CLICKHOUSE_URL` names.

    Args:
        url: `chdb:///abs/path`, `chdb://` (or None: `<data_dir>/clickhouse`), or
            `http(s)://user:pass@host:port/db`.
        data_dir: the data dir, for the embedded default.
        max_insert_rows: rows per INSERT statement or request.

    Raises:
        ClickHouseError: an unknown scheme, or chdb already open at another path.
    """
    if not url or url in ("chdb://", "chdb:"):
        return ChdbStore(Path(data_dir) / "clickhouse", max_insert_rows)
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        return ChdbStore(Path(path), max_insert_rows)
    if parts.scheme in ("http", "https", "clickhouse", "clickhouses"):
        return ServerStore(url, max_insert_rows)
    msg = f"BROKERFLOW_CLICKHOUSE_URL scheme {parts.scheme!r} is not chdb, http or https"
    raise ClickHouseError(msg)


def is_embedded(url: str | None) -> bool:
    """The store a URL names is chdb in this process (one process per directory)."""
    return not url or urlsplit(url).scheme == "chdb"


def opens_store(url: str | None, process_id: int) -> bool:
    """Process `process_id` of a run may open the store: always a server; embedded chdb, which
    holds one process per directory, only in the first process of a cluster (it migrates the
    store, and the others' rows are routed to it: `_PipelinedSink.list_parts`)."""
    return process_id == 0 or not is_embedded(url)


def retryable_errors(url: str | None) -> tuple[type[Exception], ...]:
    """Return the errors worth a retry for a store URL: connection errors of a server; none for
    chdb, whose failures (bad SQL, a full disk, another path open) do not heal by waiting."""
    if not is_embedded(url):
        from clickhouse_connect.driver.exceptions import OperationalError

        return (OperationalError,)
    return ()


def default_sql_dir() -> Path:
    """Return the repository's `sql/clickhouse` directory."""
    return Path(__file__).resolve().parents[2] / "sql" / "clickhouse"


def set_audit_retention(store: ClickHouseStore, years: int) -> bool:
    """Keep `audit_log` rows `years` years after their event time (a table TTL); return
    whether it changed. Rows past it go at the parts' next merges. A changed retention is not
    written into the existing parts at once (`materialize_ttl_after_modify = 0`: a large table
    would be rewritten whole at start-up): it holds for the parts written after it, and
    `ALTER TABLE audit_log MATERIALIZE TTL` applies it to the older ones when an operator
    chooses. Idempotent: the TTL in force is read first."""
    ttl = f"toDateTime(timestamp) + toIntervalYear({int(years)})"
    _, rows = store.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'audit_log'"
    )
    if rows and f"TTL {ttl}" in str(rows[0][0]):
        return False
    store.command(f"ALTER TABLE audit_log MODIFY TTL {ttl} "
                  "SETTINGS materialize_ttl_after_modify = 0")  # fmt: skip
    return True


def migrate_clickhouse(store: ClickHouseStore, sql_dir: Path | None = None) -> list[str]:
    """Apply the numbered files of `sql/clickhouse/` that this store has not seen yet.

    ClickHouse has no transactions and no advisory locks, so each file must be idempotent
    (`CREATE … IF NOT EXISTS`): a file interrupted half-way, or applied by two processes at once,
    is simply run again, and `schema_migrations` (a ReplacingMergeTree on `version`) keeps one
    row per file. Statements are sent one at a time (a server takes one per request).

    Returns:
        The names of the files applied by this call (empty when up to date).

    Raises:
        MigrationError: a file failed, or was edited after it was applied.
    """
    migrations = load_migrations(sql_dir if sql_dir is not None else default_sql_dir())
    store.command(_CREATE_SCHEMA_MIGRATIONS)
    _, rows = store.query("SELECT version, name, checksum FROM schema_migrations FINAL")
    applied = {int(version): (name, checksum) for version, name, checksum in rows}
    applied_now: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            name, checksum = applied[migration.version]
            if checksum != migration.checksum:
                msg = (
                    f"migration {migration.name} was edited after it was applied "
                    f"(as {name}); add a new numbered file instead"
                )
                raise MigrationError(msg)
            continue
        for statement in split_statements(migration.sql):
            try:
                store.command(statement)
            except ClickHouseError as exc:
                msg = f"migration {migration.name} failed: {exc}"
                raise MigrationError(msg) from exc
        store.insert(
            "schema_migrations",
            ("version", "name", "checksum"),
            [(migration.version, migration.name, migration.checksum)],
        )
        applied_now.append(migration.name)
    return applied_now


# -- Bytewax sinks ----------------------------------------------------------------------------


class _StoreWriter:
    """Inserts rows into one table, reopening the store and retrying on connection errors."""

    def __init__(
        self,
        url: str | None,
        data_dir: Path,
        table: str,
        columns: Sequence[str],
        policy: RetryPolicy | None,
        max_insert_rows: int = DEFAULT_MAX_INSERT_ROWS,
    ) -> None:
        self._url = url
        self._data_dir = data_dir
        self._table = table
        self._columns = tuple(columns)
        self._policy = policy or RetryPolicy()
        self._store: ClickHouseStore | None = None
        self._retryable = retryable_errors(url)
        self._max_insert_rows = max_insert_rows

    def _open(self) -> ClickHouseStore:
        if self._store is None:
            self._store = open_store(self._url, self._data_dir, self._max_insert_rows)
        return self._store

    def _drop(self, attempt: int, error: Exception, delay_s: float) -> None:
        if self._store is not None:
            self._store.close()
        self._store = None

    def connect(self) -> None:
        self._retry(self._open)

    def write(self, rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        # Retrying is safe: rows are keyed on the input (ReplacingMergeTree, event_id).
        return self._retry(lambda: self._open().insert(self._table, self._columns, rows))

    def write_columns(self, data: Sequence[Sequence[Any]]) -> int:
        if not data or not len(data[0]):
            return 0
        return self._retry(lambda: self._open().insert_columns(self._table, self._columns, data))

    def _retry(self, fn: Callable[[], Any]) -> Any:
        policy = self._policy
        return retry_with_backoff(
            fn,
            attempts=policy.attempts,
            base_s=policy.base_s,
            max_s=policy.max_s,
            retry_on=self._retryable,
            on_retry=self._drop,
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


Counter = Callable[[str, int], None]


class _RowsPartition(StatelessSinkPartition[list[Any]]):
    def __init__(
        self,
        writer: _StoreWriter,
        to_rows: Callable[[Iterable[Any]], list[Any]],
        count: Callable[[int], None] | None,
    ) -> None:
        self._writer = writer
        self._to_rows = to_rows
        self._count = count

    def write_batch(self, items: list[list[Any]]) -> None:
        written = self._writer.write(self._to_rows(item for batch in items for item in batch))
        if self._count is not None and written:
            self._count(written)

    def close(self) -> None:
        self._writer.close()


class ClickHouseSink(DynamicSink[list[Any]]):
    """Bytewax sink inserting lists of items into one table, one batched insert per batch.

    Connects in `build` (the store is shared per process for chdb); the schema must exist
    (`migrate_clickhouse`). Each `write_batch` is one insert (chunked by the store), retried with
    bounded backoff on connection errors, then raised. Retrying is safe: the tables are
    ReplacingMergeTrees keyed on the input.

    Args:
        table, columns: where the rows go.
        to_rows: items -> rows in `columns` order.
        url, data_dir: the store (`open_store`).
        count: called as `count(counter_name, rows)` after each insert.
        counter_name: the name `count` gets.
        policy: retries on connection errors.
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        to_rows: Callable[[Iterable[Any]], list[Any]],
        url: str | None,
        data_dir: Path,
        count: Counter | None = None,
        counter_name: str = "",
        policy: RetryPolicy | None = None,
    ) -> None:
        self._table = table
        self._columns = tuple(columns)
        self._to_rows = to_rows
        self._url = url
        self._data_dir = Path(data_dir)
        self._count = count
        self._counter_name = counter_name or table
        self._policy = policy

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[list[Any]]:
        """Open this worker's store."""
        writer = _StoreWriter(self._url, self._data_dir, self._table, self._columns, self._policy)
        writer.connect()
        count, name = self._count, self._counter_name
        return _RowsPartition(
            writer, self._to_rows, None if count is None else (lambda n: count(name, n))
        )


class AuditSink(ClickHouseSink):
    """`audit_log` rows from lists of `AuditRecord`s (counter "audit_rows")."""

    def __init__(
        self,
        url: str | None,
        data_dir: Path,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            "audit_log", AUDIT_COLUMNS, audit_rows, url, data_dir, count, "audit_rows", policy
        )


AUDIT_PARTITION = "audit"


def audit_partition_key(records: list[AuditRecord]) -> tuple[str, list[AuditRecord]]:
    """Key a batch of audit records for `PipelinedAuditSink` (one partition)."""
    return AUDIT_PARTITION, records


class _PipelinedColumnsPartition(StatefulSinkPartition[list[Any], None]):
    """Items held on the worker thread, then turned into columns and inserted by a background
    writer; see `PipelinedAuditSink`."""

    def __init__(
        self,
        writer: _StoreWriter,
        to_columns: Callable[[list[Any]], list[Sequence[Any]]],
        count: Counter | None,
        counter_name: str,
        thread_name: str,
        min_rows: int,
        max_rows: int,
        max_delay_s: float | None,
        recovery: bool = True,
    ) -> None:
        self._recovery = recovery
        self._writer = writer
        self._to_columns = to_columns
        self._count = count
        self._counter_name = counter_name
        self._min_rows = min_rows
        self._max_delay_s = float("inf") if max_delay_s is None else max_delay_s
        self._held: list[Any] = []
        self._held_since = 0.0
        # Back pressure only when a whole insert waits behind the one being written.
        self._background = BackgroundWriter(
            self._write, thread_name, max_items=max_rows, max_pending=max_rows
        )

    def _write(self, items: list[Any]) -> None:
        started, cpu_started = time.perf_counter_ns(), time.thread_time_ns()
        written = self._writer.write_columns(self._to_columns(items))
        count = self._count
        if count is not None and written:
            name = self._counter_name
            count(name, written)
            # What this table's writer spent: building the columns and inserting them (the
            # engine's own threads, merges, are not in the thread's CPU time).
            count(f"{name}_write_us", (time.perf_counter_ns() - started) // 1000)
            count(f"{name}_write_cpu_us", (time.thread_time_ns() - cpu_started) // 1000)

    def _hand_over(self) -> None:
        if self._held:
            self._background.submit(self._held)
            self._held = []

    def write_batch(self, values: list[list[Any]]) -> None:
        held = self._held
        if not held:
            self._held_since = time.monotonic()
        for batch in values:
            held.extend(batch)
        if len(held) >= self._min_rows or time.monotonic() - self._held_since >= self._max_delay_s:
            self._hand_over()

    def snapshot(self) -> None:
        self._hand_over()
        if self._recovery:  # see sinks.background: nobody resumes from an epoch otherwise
            self._background.drain()  # the epoch's rows are inserted before its snapshot
        return None

    def close(self) -> None:
        held, self._held = self._held, []
        try:
            self._background.close(held)
        finally:
            self._writer.close()


class _PipelinedSink(FixedPartitionedSink[list[Any], None]):
    """One table's rows from `(partition, [item])` items, inserted by a background writer while
    the flow goes on (`sinks.background`); see `PipelinedAuditSink`."""

    table: str
    columns: tuple[str, ...]
    partition: str
    counter_name: str

    def __init__(
        self,
        url: str | None,
        data_dir: Path,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
        min_rows: int = 20_000,
        max_rows: int = 50_000,
        max_delay_s: float | None = 1.0,
        recovery: bool = True,
        local: bool = True,
    ) -> None:
        self._recovery = recovery
        self._local = local
        self._url = url
        self._data_dir = Path(data_dir)
        self._count = count
        self._policy = policy
        self._min_rows = min_rows
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s

    @staticmethod
    def to_columns(items: list[Any]) -> list[Sequence[Any]]:
        """Items -> one sequence per column, in `columns` order."""
        raise NotImplementedError

    def list_parts(self) -> list[str]:
        """The one partition, where this process may write the store (`local`): in a cluster
        on embedded chdb, only the first process lists it, so that Bytewax builds it there and
        routes every process's rows to it (chdb holds one process per directory)."""
        return [self.partition] if self._local else []

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[list[Any], None]:
        """Open the store and start the writer thread."""
        writer = _StoreWriter(
            self._url, self._data_dir, self.table, self.columns, self._policy, self._max_rows
        )
        writer.connect()
        return _PipelinedColumnsPartition(
            writer,
            self.to_columns,
            self._count,
            self.counter_name,
            f"{step_id}.{for_part}",
            self._min_rows,
            self._max_rows,
            self._max_delay_s,
            self._recovery,
        )


class PipelinedAuditSink(_PipelinedSink):
    """`audit_log` rows from `(AUDIT_PARTITION, [AuditRecord])` items, inserted by a background
    writer while the flow goes on (`sinks.background`).

    Rows are held until there are `min_rows` of them, the oldest has waited `max_delay_s`
    (None: no time limit), or the epoch ends, then inserted in statements of up to `max_rows`
    rows: ClickHouse writes a part per insert and merges parts later, so a few large inserts
    cost a fraction of many small ones (measured on chdb: 1,000-row inserts took 1.4x the CPU
    of 50,000-row ones; a day's 20,389 audit rows took 0.9-1.1 CPU s in 35 inserts, 0.1-0.2 s
    in 1-4).
    The writer thread also builds the columns (`audit_columns`), so the worker thread only
    hands the records over. Each epoch's snapshot waits until its rows are inserted, so nothing
    held is lost to a crash: the uncommitted epoch is replayed. One partition: the audit trail
    has no order to keep (rows are keyed on the input) and one writer makes the largest
    inserts. Counter "audit_rows" (and "audit_rows_write_us", "audit_rows_write_cpu_us": the
    writer's wall and thread CPU time); retries as `AuditSink`.
    """

    table = "audit_log"
    columns = AUDIT_COLUMNS
    partition = AUDIT_PARTITION
    counter_name = "audit_rows"
    to_columns = staticmethod(audit_columns)


LIVE_MAX_DELAY_S = 1.0
"""A live run's pipelined sinks insert held rows at least this often (a replay holds them until
the minimum insert or the epoch's end)."""

TICKS_PARTITION = "ticks"


def ticks_partition_key(quotes: list[Quote]) -> tuple[str, list[Quote]]:
    """Key a batch of published quotes for `PipelinedTicksSink` (one partition)."""
    return TICKS_PARTITION, quotes


class PipelinedTicksSink(_PipelinedSink):
    """`market_ticks` rows from `(TICKS_PARTITION, [Quote])` items, as `PipelinedAuditSink`
    does for audit rows: held on the worker thread, turned into columns (`tick_columns`) and
    inserted by a background writer in inserts of up to `max_rows` rows.

    Written on the worker thread, one insert per Bytewax batch (~800 quotes), the same ticks
    cost ~15 s of wall time and ~22 s of CPU per 667,000 rows on chdb; in 35 inserts ~1.5 CPU
    s, in 7 ~0.8-1.0 s. Counter "ticks" (and "ticks_write_us", "ticks_write_cpu_us").
    """

    table = "market_ticks"
    columns = TICK_COLUMNS
    partition = TICKS_PARTITION
    counter_name = "ticks"
    to_columns = staticmethod(tick_columns)

    def __init__(
        self,
        url: str | None,
        data_dir: Path,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
        min_rows: int = 100_000,
        max_rows: int = 200_000,
        max_delay_s: float | None = 1.0,
        recovery: bool = True,
        local: bool = True,
    ) -> None:
        super().__init__(
            url, data_dir, count, policy, min_rows, max_rows, max_delay_s, recovery, local
        )


class TicksSink(ClickHouseSink):
    """`market_ticks` rows from lists of coalesced `Quote`s (counter "ticks")."""

    def __init__(
        self,
        url: str | None,
        data_dir: Path,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            "market_ticks", TICK_COLUMNS, tick_rows, url, data_dir, count, "ticks", policy
        )


ALERT_COLUMNS = (
    "alert_id", "event_time", "kind", "severity", "account", "owner", "symbol", "details",
)  # fmt: skip


def alert_rows(alerts: Iterable[Any]) -> list[tuple[Any, ...]]:
    """`alerts` rows (in `ALERT_COLUMNS` order) from `domain.alerts.Alert`s."""
    return [
        (a.alert_id, a.event_time // 1000, a.kind, a.severity, a.account or "", a.owner or "",
         a.symbol or "", a.details_json())
        for a in alerts
    ]  # fmt: skip


def alert_columns(alerts: Sequence[Any]) -> list[Sequence[Any]]:
    """Return the values of `alert_rows(alerts)` one sequence per column (`ALERT_COLUMNS`)."""
    if not alerts:
        return [() for _ in ALERT_COLUMNS]
    return list(zip(*alert_rows(alerts), strict=True))


ALERTS_PARTITION = "alerts"


def alerts_partition_key(alerts: list[Any]) -> tuple[str, list[Any]]:
    """Key a batch of alerts for `PipelinedAlertsSink` (one partition)."""
    return ALERTS_PARTITION, alerts


class PipelinedAlertsSink(_PipelinedSink):
    """ClickHouse `alerts` rows from `(ALERTS_PARTITION, [Alert])` items, inserted by a
    background writer as `PipelinedAuditSink` does for audit rows (counter
    "alerts_clickhouse"). Alerts are few but come in many batches: written on the worker
    thread, an insert per batch that had one, the stop engine's audit rows and the
    surveillance alerts cost the all-flows replay ~9 s of its worker's 65 s (chdb's fixed cost
    per insert, waited for)."""

    table = "alerts"
    columns = ALERT_COLUMNS
    partition = ALERTS_PARTITION
    counter_name = "alerts_clickhouse"
    to_columns = staticmethod(alert_columns)


class AlertsSink(ClickHouseSink):
    """ClickHouse `alerts` rows from lists of `Alert`s (counter "alerts_clickhouse"), one
    insert per batch on the worker thread; the flows use `PipelinedAlertsSink`."""

    def __init__(
        self,
        url: str | None,
        data_dir: Path,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            "alerts", ALERT_COLUMNS, alert_rows, url, data_dir, count, "alerts_clickhouse",
            policy,
        )  # fmt: skip
