"""`brokerflow sql {postgres,clickhouse} "SELECT …" [--format table,csv,json]`: ad-hoc read-only
queries on the configured store.

PostgreSQL: the query runs in a READ ONLY transaction on a connection whose default is read-only
too, over the extended protocol, which takes one statement only: `COMMIT; DELETE …` cannot escape
it. ClickHouse (chdb or a server): one SELECT/WITH/SHOW/DESCRIBE/EXPLAIN statement only, run with
the `readonly=1` setting (a chdb connection opened read-only, or the server's query setting).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from console.tables import FORMATS, write_result
from domain.errors import BrokerflowError

__all__ = ["FORMATS", "QueryError", "query_clickhouse", "query_postgres", "write_result"]


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
    from brokerflow.stores import open_clickhouse
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
