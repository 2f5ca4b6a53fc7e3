"""`brokerflow sql {postgres,clickhouse} "SELECT …" [--format table,csv,json]`: ad-hoc read-only
queries on the configured store.

PostgreSQL: the query runs in a READ ONLY transaction on a connection whose default is read-only
too, over the extended protocol, which takes one statement only: `COMMIT; DELETE …` cannot escape
it. ClickHouse (chdb or a server): one SELECT/WITH/SHOW/DESCRIBE/EXPLAIN statement only, run with
the `readonly=1` setting (a chdb connection opened read-only, or the server's query setting).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import sys
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO

from domain.errors import BrokerflowError

FORMATS = ("table", "csv", "json")


class QueryError(BrokerflowError):
    """The store refused or failed the query."""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `sql` subcommand."""
    p = sub.add_parser(
        "sql",
        parents=[common],
        help="ad-hoc read-only query on the configured store",
        description="Run one read-only SQL statement and print its rows.",
    )
    p.add_argument("store", choices=("postgres", "clickhouse"), help="which store to query")
    p.add_argument("query", help='one SQL statement, e.g. "SELECT * FROM dead_letters"')
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the query and print the result; errors are raised as `BrokerflowError`s."""
    if args.store == "clickhouse":
        columns, rows = query_clickhouse(args, args.query)
        write_result(columns, rows, args.format, sys.stdout)
        return 0
    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from sinks.postgres import migrate

    settings = load_settings(args.config, args.data_dir)
    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    assert dsn is not None
    migrate(dsn)  # schemas are created on first use
    columns, rows = query_postgres(dsn, args.query)
    write_result(columns, rows, args.format, sys.stdout)
    return 0


def query_postgres(dsn: str, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one statement read-only and return its column names and rows.

    Raises:
        QueryError: the statement failed or tried to write; one line, from the server.
    """
    import psycopg

    try:
        with psycopg.connect(
            dsn, autocommit=True, options="-c default_transaction_read_only=on"
        ) as conn:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                # prepare=True: extended protocol, one statement only; no placeholder parsing.
                cur.execute(query.encode(), prepare=True)
                if cur.description is None:
                    return [], []
                columns = [column.name for column in cur.description]
                return columns, cur.fetchall()
    except psycopg.Error as exc:
        raise QueryError(_first_line(exc)) from None


def query_clickhouse(
    args: argparse.Namespace, query: str
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement on the configured ClickHouse store.

    Raises:
        ReadOnlyError: the statement could write, or there is not exactly one.
        ClickHouseError: the store refused or failed it; one line.
    """
    from brokerflow.commands.report import open_clickhouse
    from sinks.clickhouse import check_read_only

    statement = check_read_only(query)  # before opening the store: bad input fails fast
    store = open_clickhouse(args)
    try:
        return store.query(statement, readonly=True)
    finally:
        store.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- output ------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """Render one value for the table and CSV formats."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", "replace")
        return text.replace("\x01", "|").replace("\x00", "\\x00")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _json_value(value: Any) -> Any:
    """Render one value for the JSON format."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        as_float = float(value)
        # A number when a float shows it exactly, else a string so no digit is lost.
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview | dt.datetime | dt.date | dt.time):
        return _text(value)
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value, default=_json_default))
    return value


def _json_default(value: Any) -> Any:
    converted = _json_value(value)
    return converted if converted is not value else str(value)


def write_result(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: TextIO
) -> None:
    """Print rows as an aligned text table, CSV with a header, or one JSON array of objects."""
    if fmt == "json":
        records = [dict(zip(columns, map(_json_value, row), strict=True)) for row in rows]
        out.write(json.dumps(records, default=_json_default, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(v) for v in row] for row in rows)
        return
    if not columns:
        out.write("(no result set)\n")
        return
    cells = [[_text(v).replace("\n", "\\n") for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    numeric = [
        bool(rows)
        and all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return " | ".join(parts).rstrip()

    out.write(line(columns) + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")
    out.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")
