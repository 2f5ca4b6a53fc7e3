"""The `ClickHouseStore` protocol and its two adapters, chosen by URL (`open_store`): the
embedded engine (`ChdbStore`, one path per process through `_SessionRegistry`) and a server
through clickhouse-connect (`ServerStore`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from sinks.clickhouse.codecs import _arrow_columns, decode_json_compact, encode_json_columns
from sinks.clickhouse.errors import ClickHouseError
from sinks.clickhouse.sql_text import quote_identifier

DEFAULT_MAX_INSERT_ROWS = 10_000

# JSON output settings of every query connection: exact decimals, unquoted 64-bit ints,
# nan/inf as strings (JSON has no literal for them).
_JSON_SETTINGS = {
    "output_format_json_quote_decimals": "1",
    "output_format_json_quote_64bit_integers": "0",
    "output_format_json_quote_denormals": "1",
}

# chdb inserts one Arrow table at a time in the process (`ChdbStore._insert_arrow`).
_ARROW_INSERT_LOCK = threading.Lock()


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


# -- opening ------------------------------------------------------------------------------------


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
