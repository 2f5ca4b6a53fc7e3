"""Sinks layer: the ledger's SQL and the rows it reads and writes (PostgreSQL).

The statements `sinks.ledger.LedgerWriter` runs, with the columns and PostgreSQL types of the
rows it COPYs, and the conversions between rows and domain values (orders, execution rows, the
days of holdings' realised P&L). Bulk-binding helpers: `text_array` (one array literal for a
list of keys) and `copy_rows` (a text-format `COPY ... FROM STDIN`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, cast

import psycopg

from domain.events import ExecutionReport, OrderRequest, ReferenceEvent
from domain.orders import Order, OrdStatus, status_from_name

LedgerEvent = ExecutionReport | OrderRequest | ReferenceEvent

# The columns of `executions` taken from the report (`execution_rows`), in this order.
EXECUTION_COLUMNS = (
    "exec_id",
    "order_id",
    "cl_ord_id",
    "account",
    "symbol",
    "side",
    "last_qty",
    "last_px",
    "cum_qty",
    "leaves_qty",
    "avg_px",
    "exec_type",
    "ord_status",
    "transact_time",
    "ts_event",
    "trd_match_id",
    "exec_ref_id",
    "source",
)
# ... and those the writer computes, appended to each row.
COMPUTED_COLUMNS = ("commission", "realised_pnl", "cash_delta")

# transact_time goes as timestamptz text (`_timestamptz_text`); the server parses it.
EXECUTION_TYPES = (
    "text", "text", "text", "text", "text", "text", "numeric", "numeric", "numeric", "numeric",
    "numeric", "text", "text", "text", "int8", "text", "text", "text",
    "numeric", "numeric", "numeric",
)  # fmt: skip
ALL_EXECUTION_COLUMNS = EXECUTION_COLUMNS + COMPUTED_COLUMNS

# Executions are written by COPY straight into the table: psycopg formats COPY rows in C,
# while it dumps array parameters element by element in Python (that dumping cost more than
# the INSERT itself). A plain COPY has no ON CONFLICT: ExecIDs booked before the batch were
# read under the account locks and skipped, so a unique violation means another transaction
# booked one meanwhile, and the batch is redone (`ConcurrentInsertError`), as before.
COPY_EXECUTIONS = f"COPY executions ({', '.join(ALL_EXECUTION_COLUMNS)}) FROM STDIN"

# Orders and holdings are upserts: they are COPYed into per-session TEMP staging tables first.
# Temp tables are private to the session (concurrent writers never see each other's rows) and
# write no WAL. The upsert empties its staging table (DELETE ... RETURNING), so a batch run
# inside a caller's longer transaction never sees an earlier batch's rows; ON COMMIT DELETE ROWS
# is the backstop. A rolled-back batch takes its staged rows with it.
STAGE_ORDERS = "ledger_stage_orders"
STAGE_HOLDINGS = "ledger_stage_holdings"


def _stage_ddl(table: str, columns: Sequence[str], types: Sequence[str]) -> str:
    cols = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
    return f"CREATE TEMP TABLE IF NOT EXISTS {table} ({cols}) ON COMMIT DELETE ROWS"


ORDER_COLUMNS = (
    "cl_ord_id", "order_id", "orig_cl_ord_id", "account", "symbol", "side", "ord_type",
    "quantity", "price", "stop_px", "status", "cum_qty", "leaves_qty", "avg_px",
    "time_in_force", "ts_created", "ts_updated", "last_exec_id", "last_request_id",
)  # fmt: skip
ORDER_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "numeric", "numeric", "numeric",
    "text", "numeric", "numeric", "numeric", "text", "int8", "int8", "text", "text",
)  # fmt: skip
ORDER_UPDATES = ", ".join(
    f"{c} = EXCLUDED.{c}" for c in ORDER_COLUMNS if c not in ("cl_ord_id", "ts_created")
)
UPSERT_ORDERS = (
    f"WITH s AS (DELETE FROM {STAGE_ORDERS} RETURNING *) "
    f"INSERT INTO orders ({', '.join(ORDER_COLUMNS)}, created_at, updated_at) "
    f"SELECT {', '.join(ORDER_COLUMNS)}, "
    f"to_timestamp(0) + (s.ts_created / 1000) * interval '1 microsecond', "
    f"to_timestamp(0) + (s.ts_updated / 1000) * interval '1 microsecond' "
    f"FROM s ORDER BY cl_ord_id "
    f"ON CONFLICT (cl_ord_id) DO UPDATE SET {ORDER_UPDATES}, updated_at = EXCLUDED.updated_at"
)
SELECT_ORDERS = f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE cl_ord_id = ANY(%s::text[])"
SELECT_ORDERS_BY_ORDER_ID = (
    f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE order_id = ANY(%s::text[])"
)

# The key lists below are bound as one array literal each (`text_array`), not as lists.
# The account lock runs unprepared (`prepare=False`): once psycopg prepares a statement the
# server soon switches to a generic plan, made without seeing the array, and for the lock that
# plan (the whole table filtered against the array) took 7-11 ms a batch instead of ~1 ms. The
# other reads keep their prepared plans: planning them for a 1,400-element array cost more.
# xmin (the transaction that last updated the row) tells whether an account's holdings document
# cached by `HoldingsDocCache` still stands: every change to its holdings updates its row too.
LOCK_ACCOUNTS = (
    "SELECT account, xmin::text FROM accounts WHERE account = ANY(%s::text[]) "
    "ORDER BY account FOR UPDATE"
)
SELECT_FILLS = (
    "SELECT exec_id, account, symbol, side, last_qty, last_px, realised_pnl, commission, "
    "exec_type, reversed_by, ts_event FROM executions WHERE exec_id = ANY(%s::text[])"
)
SELECT_HOLDINGS = (
    "SELECT h.account, h.symbol, h.quantity, h.avg_price, h.realised_pnl, h.pnl_day, "
    "h.realised_pnl_day FROM holdings h "
    "JOIN unnest(%s::text[], %s::text[]) AS k(account, symbol) "
    "ON h.account = k.account AND h.symbol = k.symbol"
)
HOLDING_COLUMNS = (
    "account", "symbol", "quantity", "avg_price", "realised_pnl", "pnl_day", "realised_pnl_day",
)  # fmt: skip
HOLDING_TYPES = ("text", "text", "numeric", "numeric", "numeric", "date", "numeric")
UPSERT_HOLDINGS = (
    f"WITH s AS (DELETE FROM {STAGE_HOLDINGS} RETURNING *) "
    f"INSERT INTO holdings ({', '.join(HOLDING_COLUMNS)}) "
    f"SELECT {', '.join(HOLDING_COLUMNS)} FROM s ORDER BY account, symbol "
    "ON CONFLICT (account, symbol) DO UPDATE SET quantity = EXCLUDED.quantity, "
    "avg_price = EXCLUDED.avg_price, realised_pnl = EXCLUDED.realised_pnl, "
    "pnl_day = EXCLUDED.pnl_day, realised_pnl_day = EXCLUDED.realised_pnl_day, updated_at = now()"
)
UPDATE_CASH = (
    "UPDATE accounts a SET cash = a.cash + d.delta, updated_at = now(), "
    "positions_ts_ns = GREATEST(a.positions_ts_ns, d.ts), "
    "positions_version = a.positions_version + 1 "
    "FROM unnest(%s::text[], %s::numeric[], %s::bigint[]) AS d(account, delta, ts) "
    "WHERE a.account = d.account "
    "RETURNING a.account, a.cash, a.xmin::text, a.positions_ts_ns, a.positions_version"
)
MARK_REVERSED = (
    "UPDATE executions e SET reversed_by = r.reversed_by "
    "FROM unnest(%s::text[], %s::text[]) AS r(exec_id, reversed_by) WHERE e.exec_id = r.exec_id"
)

# One round trip; once the session has the tables it is a catalog lookup per batch.
CREATE_STAGES = "; ".join(
    (
        _stage_ddl(STAGE_ORDERS, ORDER_COLUMNS, ORDER_TYPES),
        _stage_ddl(STAGE_HOLDINGS, HOLDING_COLUMNS, HOLDING_TYPES),
    )
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = _EPOCH.date()


def transact_time(ts_event: int) -> dt.datetime:
    """Return an event time (int UTC nanoseconds) as an aware datetime, to the microsecond."""
    return _EPOCH + dt.timedelta(microseconds=ts_event // 1000)


_SECOND_TEXTS: dict[int, str] = {}


def _timestamptz_text(ts_event: int) -> str:
    """Return `transact_time(ts_event)` as PostgreSQL timestamptz text, for COPY.

    The date and time of day are formatted once per second of event time (a day has fewer
    seconds than a batch has fills): building a datetime per row, and psycopg dumping it, cost
    more than the rest of the row.

    >>> _timestamptz_text(1_795_617_000_002_345_678)
    '2026-11-25 14:30:00.002345+00'
    """
    seconds, ns = divmod(ts_event, 1_000_000_000)
    head = _SECOND_TEXTS.get(seconds)
    if head is None:
        if len(_SECOND_TEXTS) >= 200_000:
            _SECOND_TEXTS.clear()
        head = (_EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S")
        _SECOND_TEXTS[seconds] = head
    return "%s.%06d+00" % (head, ns // 1000)


def booked_row(
    report: ExecutionReport,
    account: str,
    commission: Decimal,
    realised: Decimal,
    cash_delta: Decimal,
) -> tuple[Any, ...]:
    """The `ALL_EXECUTION_COLUMNS` row the writer COPYs for a report it booked."""
    return (
        *_execution_row(report, account, _timestamptz_text(report.ts_event)),
        commission,
        realised,
        cash_delta,
    )


def _execution_row(
    report: ExecutionReport, account: str | None, transact: dt.datetime | str
) -> tuple[Any, ...]:
    """The report-derived `EXECUTION_COLUMNS`, TransactTime as given (datetime or text)."""
    return (
        report.exec_id,
        report.order_id,
        report.cl_ord_id,
        account,
        report.symbol,
        report.side,
        report.last_qty,
        report.last_px,
        report.cum_qty,
        report.leaves_qty,
        report.avg_px,
        report.exec_type,
        report.ord_status,
        transact,
        report.ts_event,
        report.trd_match_id,
        report.exec_ref_id,
        report.source,
    )


def execution_rows(events: Iterable[LedgerEvent]) -> list[tuple[Any, ...]]:
    """Return the `EXECUTION_COLUMNS` tuples of the execution reports among `events`.

    These are the report-derived columns `LedgerWriter` inserts (it appends
    `COMPUTED_COLUMNS`); a bare `COPY executions (EXECUTION_COLUMNS) FROM STDIN` of them is the
    yardstick of the ledger benchmark.
    """
    return [
        _execution_row(e, e.account, transact_time(e.ts_event))
        for e in events
        if type(e) is ExecutionReport
    ]


_DATES: dict[int, dt.date] = {}


def day_date(day: int | None) -> dt.date | None:
    """The date of a day number (`domain.positions.day_of`), for holdings.pnl_day."""
    if day is None:
        return None
    date = _DATES.get(day)
    if date is None:
        date = _DATES[day] = _EPOCH_DATE + dt.timedelta(days=day)
    return date


def day_number(date: dt.date | None) -> int | None:
    """The day number of a holdings.pnl_day date."""
    return None if date is None else (date - _EPOCH_DATE).days


def order_from_row(row: Sequence[Any]) -> Order:
    """The `Order` of an `ORDER_COLUMNS` row of `orders`."""
    (cl_ord_id, order_id, orig, account, symbol, side, ord_type, quantity, price, stop_px,
     status, cum_qty, leaves_qty, avg_px, tif, ts_created, ts_updated, last_exec_id,
     last_request_id) = row  # fmt: skip
    return Order(
        cl_ord_id=cl_ord_id,
        account=account,
        symbol=symbol,
        side=side,
        status=status_from_name(status),
        order_id=order_id,
        orig_cl_ord_id=orig,
        ord_type=ord_type,
        quantity=quantity,
        price=price,
        stop_px=stop_px,
        cum_qty=cum_qty,
        leaves_qty=leaves_qty,
        avg_px=avg_px,
        time_in_force=tif,
        ts_created=ts_created,
        ts_updated=ts_updated,
        last_exec_id=last_exec_id,
        last_request_id=last_request_id,
    )


_STATUS_NAMES = {status: status.name for status in OrdStatus}  # Enum.name is a slow property


def order_row(o: Order) -> tuple[Any, ...]:
    """The `ORDER_COLUMNS` row of an `Order`."""
    return (
        o.cl_ord_id, o.order_id, o.orig_cl_ord_id, o.account, o.symbol, o.side, o.ord_type,
        o.quantity, o.price, o.stop_px, _STATUS_NAMES[o.status], o.cum_qty, o.leaves_qty, o.avg_px,
        o.time_in_force, o.ts_created, o.ts_updated, o.last_exec_id, o.last_request_id,
    )  # fmt: skip


def copy_rows(
    cur: psycopg.Cursor, statement: str, types: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Run a `COPY ... FROM STDIN` of `rows`, whose columns have the PostgreSQL `types`.

    Text format: psycopg's C text formatter was ~1.7x faster than its binary one here
    (numeric in binary is costly to build), and the server parses either as fast.
    """
    with cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)


def text_array(values: Iterable[str | None]) -> str:
    """Return a PostgreSQL array literal of `values`, to bind to `%s::text[]`.

    psycopg dumps a list parameter element by element in Python (a regex per element); one
    joined string costs a fraction of that. Elements are always quoted, so any text round-trips
    (backslashes and double quotes escaped, as the array syntax requires); None is NULL.

    >>> text_array(["a", 'b"c', "d\\\\e", ""])
    '{"a","b\\\\"c","d\\\\\\\\e",""}'
    >>> text_array([]), text_array(["x", None])
    ('{}', '{"x",NULL}')
    """
    items = list(values)
    if not items:
        return "{}"
    if None in items:  # rare (keys are never NULL in practice): element by element
        return "{" + ",".join("NULL" if v is None else text_array([v])[1:-1] for v in items) + "}"
    texts = cast(list[str], items)
    whole = "".join(texts)
    if "\\" in whole or '"' in whole:
        texts = [v.replace("\\", "\\\\").replace('"', '\\"') for v in texts]
    return '{"' + '","'.join(texts) + '"}'
