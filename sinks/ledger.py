"""Sinks layer: the ledger of record in PostgreSQL (orders, executions, holdings, cash).

`LedgerWriter.apply(events)` books a batch of order events in ONE transaction:

1. resolve the account of events that carry none (from their order, or the fill they name);
2. lock the touched `accounts` rows, in account order (`SELECT … ORDER BY account FOR UPDATE`),
   which serialises every writer of an account and cannot deadlock between ledger writers;
3. read what the batch needs: the executions it names (its own ExecIDs, to drop those already
   booked, and the fills its H/G reports name), the holdings and the orders it moves;
4. book the events in order with `domain.ledger_book.LedgerBook`, which holds what step 3
   read and the booking rules; an event it rejects (unknown account, a bad report, a
   transition the order table refuses, a trade cancel of an unknown fill) becomes a dead
   letter and changes nothing at all;
5. write: one `COPY executions` of the new execution rows (an ExecID another transaction booked
   meanwhile fails it on the primary key, and the batch is retried), one statement each for the
   reversals, holdings, cash, orders (holdings and orders COPYed into session TEMP staging tables
   first, then upserted from there), and dead letters in the sink.

A replayed or duplicated execution report is found in step 3 and changes nothing. Deadlocks and
serialization failures are retried with `retry_with_backoff`; the whole transaction is redone.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

import psycopg
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)
from psycopg import errors as pg_errors

from domain.dead_letters import DeadLetter
from domain.errors import BrokerflowError
from domain.events import REFERENCE_TYPES, ExecutionReport, OrderRequest, ReferenceEvent
from domain.ledger import ZERO, Holding
from domain.ledger_book import (
    NO_DAY,
    Booked,
    BookedFill,
    Duplicate,
    HoldingKey,
    LedgerBook,
    Rejected,
)
from domain.orders import FILL_EXEC_TYPES, Order, OrdStatus, status_from_name
from domain.positions import day_of, holding_item, holdings_doc_of
from sinks.background import BackgroundPartition
from sinks.positions import HOLDINGS, PositionsDoc, PositionsPublisher
from sinks.postgres import PgBatchWriter, write_dead_letters
from sinks.reference import apply_reference
from sinks.retry import RetryPolicy, retry_with_backoff

LedgerEvent = ExecutionReport | OrderRequest | ReferenceEvent
_REFERENCE = frozenset(REFERENCE_TYPES)
STEP_ID = "write_ledger"

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
_EXECUTION_TYPES = (
    "text", "text", "text", "text", "text", "text", "numeric", "numeric", "numeric", "numeric",
    "numeric", "text", "text", "text", "int8", "text", "text", "text",
    "numeric", "numeric", "numeric",
)  # fmt: skip
_ALL_EXECUTION_COLUMNS = EXECUTION_COLUMNS + COMPUTED_COLUMNS

# Executions are written by COPY straight into the table: psycopg formats COPY rows in C,
# while it dumps array parameters element by element in Python (that dumping cost more than
# the INSERT itself). A plain COPY has no ON CONFLICT: ExecIDs booked before the batch were
# read under the account locks and skipped, so a unique violation means another transaction
# booked one meanwhile, and the batch is redone (`ConcurrentInsertError`), as before.
_COPY_EXECUTIONS = f"COPY executions ({', '.join(_ALL_EXECUTION_COLUMNS)}) FROM STDIN"

# Orders and holdings are upserts: they are COPYed into per-session TEMP staging tables first.
# Temp tables are private to the session (concurrent writers never see each other's rows) and
# write no WAL. The upsert empties its staging table (DELETE ... RETURNING), so a batch run
# inside a caller's longer transaction never sees an earlier batch's rows; ON COMMIT DELETE ROWS
# is the backstop. A rolled-back batch takes its staged rows with it.
_STAGE_ORDERS = "ledger_stage_orders"
_STAGE_HOLDINGS = "ledger_stage_holdings"


def _stage_ddl(table: str, columns: Sequence[str], types: Sequence[str]) -> str:
    cols = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
    return f"CREATE TEMP TABLE IF NOT EXISTS {table} ({cols}) ON COMMIT DELETE ROWS"


_ORDER_COLUMNS = (
    "cl_ord_id", "order_id", "orig_cl_ord_id", "account", "symbol", "side", "ord_type",
    "quantity", "price", "stop_px", "status", "cum_qty", "leaves_qty", "avg_px",
    "time_in_force", "ts_created", "ts_updated", "last_exec_id", "last_request_id",
)  # fmt: skip
_ORDER_TYPES = (
    "text", "text", "text", "text", "text", "text", "text", "numeric", "numeric", "numeric",
    "text", "numeric", "numeric", "numeric", "text", "int8", "int8", "text", "text",
)  # fmt: skip
_ORDER_UPDATES = ", ".join(
    f"{c} = EXCLUDED.{c}" for c in _ORDER_COLUMNS if c not in ("cl_ord_id", "ts_created")
)
_UPSERT_ORDERS = (
    f"WITH s AS (DELETE FROM {_STAGE_ORDERS} RETURNING *) "
    f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}, created_at, updated_at) "
    f"SELECT {', '.join(_ORDER_COLUMNS)}, "
    f"to_timestamp(0) + (s.ts_created / 1000) * interval '1 microsecond', "
    f"to_timestamp(0) + (s.ts_updated / 1000) * interval '1 microsecond' "
    f"FROM s ORDER BY cl_ord_id "
    f"ON CONFLICT (cl_ord_id) DO UPDATE SET {_ORDER_UPDATES}, updated_at = EXCLUDED.updated_at"
)
_SELECT_ORDERS = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders WHERE cl_ord_id = ANY(%s::text[])"
_SELECT_ORDERS_BY_ORDER_ID = (
    f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders WHERE order_id = ANY(%s::text[])"
)

# The key lists below are bound as one array literal each (`_text_array`), not as lists.
# The account lock runs unprepared (`prepare=False`): once psycopg prepares a statement the
# server soon switches to a generic plan, made without seeing the array, and for the lock that
# plan (the whole table filtered against the array) took 7-11 ms a batch instead of ~1 ms. The
# other reads keep their prepared plans: planning them for a 1,400-element array cost more.
# xmin (the transaction that last updated the row) tells whether an account's holdings document
# cached by `HoldingsDocCache` still stands: every change to its holdings updates its row too.
_LOCK_ACCOUNTS = (
    "SELECT account, xmin::text FROM accounts WHERE account = ANY(%s::text[]) "
    "ORDER BY account FOR UPDATE"
)
_SELECT_FILLS = (
    "SELECT exec_id, account, symbol, side, last_qty, last_px, realised_pnl, commission, "
    "exec_type, reversed_by, ts_event FROM executions WHERE exec_id = ANY(%s::text[])"
)
_SELECT_HOLDINGS = (
    "SELECT h.account, h.symbol, h.quantity, h.avg_price, h.realised_pnl, h.pnl_day, "
    "h.realised_pnl_day FROM holdings h "
    "JOIN unnest(%s::text[], %s::text[]) AS k(account, symbol) "
    "ON h.account = k.account AND h.symbol = k.symbol"
)
_HOLDING_COLUMNS = (
    "account", "symbol", "quantity", "avg_price", "realised_pnl", "pnl_day", "realised_pnl_day",
)  # fmt: skip
_HOLDING_TYPES = ("text", "text", "numeric", "numeric", "numeric", "date", "numeric")
_UPSERT_HOLDINGS = (
    f"WITH s AS (DELETE FROM {_STAGE_HOLDINGS} RETURNING *) "
    f"INSERT INTO holdings ({', '.join(_HOLDING_COLUMNS)}) "
    f"SELECT {', '.join(_HOLDING_COLUMNS)} FROM s ORDER BY account, symbol "
    "ON CONFLICT (account, symbol) DO UPDATE SET quantity = EXCLUDED.quantity, "
    "avg_price = EXCLUDED.avg_price, realised_pnl = EXCLUDED.realised_pnl, "
    "pnl_day = EXCLUDED.pnl_day, realised_pnl_day = EXCLUDED.realised_pnl_day, updated_at = now()"
)
# The holdings documents of the accounts a batch changed (`_Batch.holdings_docs`), read in the
# transaction after its writes: cash, and every holding open or traded on some day.
_SELECT_POSITIONS = (
    "SELECT a.account, a.cash, h.symbol, h.quantity, h.avg_price, h.pnl_day, h.realised_pnl_day "
    "FROM accounts a LEFT JOIN holdings h ON h.account = a.account "
    "AND (h.quantity <> 0 OR h.pnl_day IS NOT NULL) "
    "WHERE a.account = ANY(%s::text[]) ORDER BY a.account, h.symbol"
)
_UPDATE_CASH = (
    "UPDATE accounts a SET cash = a.cash + d.delta, updated_at = now(), "
    "positions_ts_ns = GREATEST(a.positions_ts_ns, d.ts), "
    "positions_version = a.positions_version + 1 "
    "FROM unnest(%s::text[], %s::numeric[], %s::bigint[]) AS d(account, delta, ts) "
    "WHERE a.account = d.account "
    "RETURNING a.account, a.cash, a.xmin::text, a.positions_ts_ns, a.positions_version"
)
_MARK_REVERSED = (
    "UPDATE executions e SET reversed_by = r.reversed_by "
    "FROM unnest(%s::text[], %s::text[]) AS r(exec_id, reversed_by) WHERE e.exec_id = r.exec_id"
)

# One round trip; once the session has the tables it is a catalog lookup per batch.
_CREATE_STAGES = "; ".join(
    (
        _stage_ddl(_STAGE_ORDERS, _ORDER_COLUMNS, _ORDER_TYPES),
        _stage_ddl(_STAGE_HOLDINGS, _HOLDING_COLUMNS, _HOLDING_TYPES),
    )
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = _EPOCH.date()
_RETRY_ON: tuple[type[Exception], ...] = (
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
)


class ConcurrentInsertError(BrokerflowError):
    """Another transaction booked an ExecID of this batch meanwhile; the batch is redone."""


_RETRY_ON = (*_RETRY_ON, ConcurrentInsertError)


@dataclass(frozen=True, slots=True)
class LedgerResult:
    """What one `LedgerWriter.apply` did.

    Attributes:
        applied: events applied (new execution reports and order requests).
        duplicates: execution reports already booked (same ExecID), which changed nothing.
        dead_letters: events rejected whole, with their raw message, source and reason.
        executions: execution rows inserted (new execution reports).
        positions: the holdings documents of the accounts whose holdings or cash changed, as
            committed (`domain.positions.holdings_doc`), when the writer publishes them.
        replayed_accounts: accounts of fills already booked and not in `positions`, whose
            documents are published again from the tables (a crash may have come between the
            commit and the publish).
    """

    applied: int
    duplicates: int
    dead_letters: list[DeadLetter] = field(default_factory=list)
    executions: int = 0
    positions: list[PositionsDoc] = field(default_factory=list)
    replayed_accounts: list[str] = field(default_factory=list)


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


def _booked_row(
    report: ExecutionReport,
    account: str,
    commission: Decimal,
    realised: Decimal,
    cash_delta: Decimal,
) -> tuple[Any, ...]:
    """The `_ALL_EXECUTION_COLUMNS` row the writer COPYs for a report it booked."""
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


def _date(day: int | None) -> dt.date | None:
    if day is None:
        return None
    date = _DATES.get(day)
    if date is None:
        date = _DATES[day] = _EPOCH_DATE + dt.timedelta(days=day)
    return date


def _day_number(date: dt.date | None) -> int | None:
    return None if date is None else (date - _EPOCH_DATE).days


def _order_from_row(row: Sequence[Any]) -> Order:
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


def _order_row(o: Order) -> tuple[Any, ...]:
    return (
        o.cl_ord_id, o.order_id, o.orig_cl_ord_id, o.account, o.symbol, o.side, o.ord_type,
        o.quantity, o.price, o.stop_px, _STATUS_NAMES[o.status], o.cum_qty, o.leaves_qty, o.avg_px,
        o.time_in_force, o.ts_created, o.ts_updated, o.last_exec_id, o.last_request_id,
    )  # fmt: skip


class _Batch:
    """One transaction's booking: the `LedgerBook` its reads fill, and what its events
    changed, to write."""

    def __init__(self, cur: psycopg.Cursor, step_id: str, book: LedgerBook) -> None:
        self.cur = cur
        self.step_id = step_id
        self.book = book
        self.rows: list[tuple[Any, ...]] = []
        self.reversals: list[tuple[str, str]] = []
        self.dirty_orders: set[str] = set()
        self.dirty_holdings: set[HoldingKey] = set()
        self.cash: dict[str, Decimal] = {}
        # account -> the latest event time of the batch's reports that moved its holdings or cash
        self.changed_accounts: dict[str, int] = {}
        self.versions: dict[str, str] = {}  # account -> xmin of its row when locked
        # account -> (cash, xmin, positions_ts_ns, positions_version) after the batch's writes
        self.updated: dict[str, tuple[Decimal, str, int, int]] = {}
        self.dead_letters: list[DeadLetter] = []
        self.applied = 0
        self.duplicates = 0
        # Accounts of fills already booked: a batch replayed after a crash between its commit and
        # the publish of its documents publishes them again (the publisher skips identical ones).
        self.replayed_accounts: set[str] = set()

    # -- reads ---------------------------------------------------------------------------------

    def load_fills(self, exec_ids: set[str]) -> None:
        book = self.book
        want = [x for x in exec_ids if x not in book.fills]
        while want:
            self.cur.execute(_SELECT_FILLS, (_text_array(want),))
            want = book.add_booked_fills(BookedFill(*row) for row in self.cur.fetchall())

    def load_orders(self, cl_ord_ids: set[str]) -> None:
        if cl_ord_ids:
            self.cur.execute(_SELECT_ORDERS, (_text_array(cl_ord_ids),))
            self.book.add_orders(_order_from_row(row) for row in self.cur.fetchall())

    def load_orders_by_order_id(self, order_ids: set[str]) -> None:
        """Read every row of these OrderIDs (37), for the reports routed by it."""
        rows: list[Any] = []
        if order_ids:
            self.cur.execute(_SELECT_ORDERS_BY_ORDER_ID, (_text_array(order_ids),))
            rows = self.cur.fetchall()
        self.book.add_orders_by_order_id(order_ids, (_order_from_row(row) for row in rows))

    def load_pending_replacements(self) -> None:
        """Read the rows of the 35=G requests pending on the orders read."""
        want = self.book.pending_replacements()
        if want:
            self.load_orders(want)

    def load_holdings(self, keys: set[HoldingKey]) -> None:
        if keys:
            accounts, symbols = zip(*keys, strict=True)
            self.cur.execute(_SELECT_HOLDINGS, (_text_array(accounts), _text_array(symbols)))
            holdings, days = self.book.holdings, self.book.day_pnl
            for account, symbol, quantity, avg_price, realised, day, day_pnl in self.cur.fetchall():
                holdings[account, symbol] = Holding(quantity, avg_price, realised)
                days[account, symbol] = (_day_number(day), day_pnl)

    # -- events --------------------------------------------------------------------------------

    def book_events(self, events: Sequence[LedgerEvent], accounts: Sequence[str | None]) -> None:
        """Book each event with the `LedgerBook` and gather what to write."""
        apply = self.book.apply
        rows, reversals, cash, changed = self.rows, self.reversals, self.cash, self.changed_accounts
        dirty_orders, dirty_holdings = self.dirty_orders, self.dirty_holdings
        for event, account in zip(events, accounts, strict=True):
            result = apply(event, account)  # type: ignore[arg-type]
            kind = type(result)
            if kind is Booked:
                booked = cast(Booked, result)
                dirty_orders.update(booked.orders)
                self.applied += 1
                if type(event) is not ExecutionReport:
                    continue
                account, cash_delta = booked.account, booked.cash_delta
                if booked.holdings or cash_delta:
                    dirty_holdings.update(booked.holdings)
                    if changed.get(account, -1) < event.ts_event:
                        changed[account] = event.ts_event
                    # Even by 0: a change to the holdings always updates the account's row
                    # (its xmin).
                    cash[account] = cash.get(account, ZERO) + cash_delta
                if booked.reversed is not None:
                    reversals.append((booked.reversed, event.exec_id))
                rows.append(
                    _booked_row(event, account, booked.commission, booked.realised, cash_delta)
                )
            elif kind is Duplicate:
                self.duplicates += 1
                if cast(Duplicate, result).fill:
                    self.replayed_accounts.add(cast(Duplicate, result).account)
            else:
                self.dead_letter(cast(Rejected, result))

    def dead_letter(self, rejected: Rejected) -> None:
        event, error = rejected.event, rejected.error
        self.dead_letters.append(
            DeadLetter(
                source=event.source,
                reason=str(error),
                raw=event.raw,
                step_id=self.step_id,
                error=type(error).__name__,
                tag=rejected.tag,
            )
        )

    # -- writes --------------------------------------------------------------------------------

    def write(self) -> None:
        cur = self.cur
        if self.rows:
            try:
                _copy(cur, _COPY_EXECUTIONS, _EXECUTION_TYPES, self.rows)
            except pg_errors.UniqueViolation as exc:
                msg = f"an ExecID of the batch was booked concurrently: {exc}"
                raise ConcurrentInsertError(msg) from exc
        if self.reversals:
            exec_ids, reversed_by = zip(*self.reversals, strict=True)
            cur.execute(_MARK_REVERSED, (_text_array(exec_ids), _text_array(reversed_by)))
        if self.dirty_holdings or self.dirty_orders:
            cur.execute(_CREATE_STAGES)
        if self.dirty_holdings:
            holdings, days = self.book.holdings, self.book.day_pnl
            rows = []
            for key in sorted(self.dirty_holdings):
                h = holdings[key]
                day, day_pnl = days.get(key, NO_DAY)
                rows.append(
                    (key[0], key[1], h.quantity, h.avg_price, h.realised_pnl, _date(day), day_pnl)
                )
            _copy(cur, f"COPY {_STAGE_HOLDINGS} FROM STDIN", _HOLDING_TYPES, rows)
            cur.execute(_UPSERT_HOLDINGS)
        if self.cash:
            accounts = sorted(self.cash)
            cash = self.cash
            deltas = "{" + ",".join([str(cash[a]) for a in accounts]) + "}"
            ts = [self.changed_accounts[a] for a in accounts]
            cur.execute(_UPDATE_CASH, (_text_array(accounts), deltas, ts))
            self.updated = {row[0]: row[1:] for row in cur.fetchall()}
        if self.dirty_orders:
            orders = self.book.orders
            rows = [_order_row(orders[c]) for c in sorted(self.dirty_orders)]
            _copy(cur, f"COPY {_STAGE_ORDERS} FROM STDIN", _ORDER_TYPES, rows)
            cur.execute(_UPSERT_ORDERS)

    def holdings_docs(
        self, cache: HoldingsDocCache
    ) -> tuple[list[PositionsDoc], dict[str, _AccountDoc]]:
        """The holdings documents of the accounts the batch changed, as they stand after its
        writes, and the cache entries to keep once the transaction commits.

        An account's document holds its cash and each holding open, or traded on the
        document's day (so a position closed today keeps its realised P&L in view); the day is
        that of the document's event time, the latest of the account's reports in the batch.
        Accounts `cache` holds as of the xmin their row had when locked are updated from the
        batch's own holdings; the others are read whole, in one query."""
        changed = self.changed_accounts
        if not changed:
            return [], {}
        entries = cache.entries
        versions = self.versions
        stale = sorted(
            a for a in changed if (e := entries.get(a)) is None or e.version != versions.get(a)
        )
        read = {account: lines for account, (_, lines) in _read_lines(self.cur, stale).items()}
        touched: dict[str, list[str]] = {}
        for account, symbol in self.dirty_holdings:
            touched.setdefault(account, []).append(symbol)
        holdings, days = self.book.holdings, self.book.day_pnl
        docs: list[PositionsDoc] = []
        kept: dict[str, _AccountDoc] = {}
        for account in sorted(changed):
            # The account's latest event time over every transaction, not this one's: the day's
            # last document is the same however the fills were batched (`positions_ts_ns`).
            cash, version, ts_ns, doc_version = self.updated[account]
            day = day_of(ts_ns)
            lines = read.get(account)
            if lines is not None:
                entry = _AccountDoc(version, lines, {}, day)
            else:
                old = entries[account]
                same_day = old.day == day
                texts = dict(old.texts) if same_day else {}
                order = old.order if same_day else None
                entry = _AccountDoc(version, dict(old.lines), texts, day, order)
                for symbol in touched.get(account, ()):
                    h = holdings[account, symbol]
                    pnl_day, day_pnl = days.get((account, symbol), NO_DAY)
                    line = (h.quantity, h.avg_price, pnl_day, day_pnl)
                    was = entry.lines.get(symbol)
                    entry.lines[symbol] = line
                    texts.pop(symbol, None)
                    shown = _shown(line, day)
                    if entry.order is not None and (was is None or _shown(was, day) != shown):
                        # A holding comes into the document or leaves it (the old entry's
                        # list is shared: copied once).
                        if entry.order is order:
                            entry.order = list(order)
                        if shown:
                            bisect.insort(entry.order, symbol)
                        else:
                            entry.order.remove(symbol)
            ts = ts_ns // 1_000_000
            docs.append(
                (account, doc_version, holdings_doc_of(account, cash, entry.items(), ts))
            )  # fmt: skip
            kept[account] = entry
        return docs, kept


# A holding as the documents need it: quantity, avg_price, pnl_day, realised_pnl_day.
_Line = tuple[Decimal, Decimal, int | None, Decimal]


def _read_lines(
    cur: psycopg.Cursor, accounts: Sequence[str]
) -> dict[str, tuple[Decimal, dict[str, _Line]]]:
    """account -> (cash, the holdings a document may show), in one query."""
    out: dict[str, tuple[Decimal, dict[str, _Line]]] = {}
    if accounts:
        cur.execute(_SELECT_POSITIONS, (_text_array(accounts),))
        for account, cash, symbol, quantity, avg, date, day_pnl in cur.fetchall():
            lines = out.setdefault(account, (cash, {}))[1]
            if symbol is not None:
                lines[symbol] = (quantity, avg, _day_number(date), day_pnl)
    return out


# The ledger's event time and version of each account's document; an account no flow has
# changed yet (positions_ts_ns 0: loaded only) takes its last execution's event time.
_LAST_EVENTS = (
    "SELECT a.account, CASE WHEN a.positions_ts_ns > 0 THEN a.positions_ts_ns ELSE "
    "coalesce((SELECT max(e.ts_event) FROM executions e WHERE e.account = a.account), 0) END, "
    "a.positions_version FROM accounts a WHERE a.account = ANY(%s::text[])"
)


def publish_holdings(
    conn: psycopg.Connection, publisher: PositionsPublisher, accounts: Iterable[str]
) -> int:
    """Publish the holdings documents of `accounts` as the tables hold them now: after
    `brokerflow load`, which changes holdings and cash outside the flows. A load is no event:
    a document's `ts` is the ledger's for the account (the event time of its last execution
    row when no flow has changed it: 0 without one), its version the account row's, and its
    day's realised P&L that day's. The ledger also calls it for the accounts of a batch
    replayed after a crash: the document is then the one it published, or should have.
    Returns the documents published."""
    wanted = sorted(set(accounts))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(_LAST_EVENTS, (_text_array(wanted),))
        last = {account: (ts_ns, version) for account, ts_ns, version in cur.fetchall()}
        read = _read_lines(cur, wanted)
    docs: list[PositionsDoc] = []
    for account, (cash, lines) in sorted(read.items()):
        ts_ns, version = last.get(account, (0, 0))
        items = _AccountDoc("", lines, {}, day_of(ts_ns)).items()
        ts = ts_ns // 1_000_000
        docs.append((account, version, holdings_doc_of(account, cash, items, ts)))
    return publisher.publish(HOLDINGS, docs)


def _shown(line: _Line, day: int) -> bool:
    """Whether a holding is in the document of `day`: open, or traded that day."""
    return bool(line[0]) or line[2] == day


@dataclass(slots=True)
class _AccountDoc:
    """An account's holdings as of its row's xmin `version`, and their JSON for `day`."""

    version: str
    lines: dict[str, _Line]
    texts: dict[str, str]  # symbol -> `holding_item` for `day`, of the lines in the document
    day: int
    order: list[str] | None = None  # the symbols in the document, sorted; None: to be made

    def items(self) -> list[str]:
        """The document's holdings as JSON, in symbol order: open, or traded on `day`."""
        day, lines, texts = self.day, self.lines, self.texts
        order = self.order
        if order is None:
            order = self.order = sorted(s for s, line in lines.items() if _shown(line, day))
        out = []
        for symbol in order:
            text = texts.get(symbol)
            if text is None:
                quantity, avg, pnl_day, day_pnl = lines[symbol]
                realised = day_pnl if pnl_day == day else ZERO
                text = texts[symbol] = holding_item(symbol, quantity, avg, realised)
            out.append(text)
        return out


class HoldingsDocCache:
    """The holdings of the accounts a ledger writer published lately, so that a batch reads
    from PostgreSQL only the accounts it has not seen or another transaction changed since
    (their row's xmin moved: every change to an account's holdings updates its row: the
    ledger's fills, `brokerflow load positions`). Entries are kept only after a commit.

    Args:
        max_accounts: entries kept; past it the cache starts again empty.
    """

    def __init__(self, max_accounts: int = 100_000) -> None:
        self.entries: dict[str, _AccountDoc] = {}
        self.max_accounts = max_accounts

    def keep(self, entries: dict[str, _AccountDoc]) -> None:
        """Keep the entries of a committed transaction."""
        if len(self.entries) + len(entries) > self.max_accounts:
            self.entries.clear()
        self.entries.update(entries)


def _copy(
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


def _text_array(values: Iterable[str | None]) -> str:
    """Return a PostgreSQL array literal of `values`, to bind to `%s::text[]`.

    psycopg dumps a list parameter element by element in Python (a regex per element); one
    joined string costs a fraction of that. Elements are always quoted, so any text round-trips
    (backslashes and double quotes escaped, as the array syntax requires); None is NULL.

    >>> _text_array(["a", 'b"c', "d\\\\e", ""])
    '{"a","b\\\\"c","d\\\\\\\\e",""}'
    >>> _text_array([]), _text_array(["x", None])
    ('{}', '{"x",NULL}')
    """
    items = list(values)
    if not items:
        return "{}"
    if None in items:  # rare (keys are never NULL in practice): element by element
        return "{" + ",".join("NULL" if v is None else _text_array([v])[1:-1] for v in items) + "}"
    texts = cast(list[str], items)
    whole = "".join(texts)
    if "\\" in whole or '"' in whole:
        texts = [v.replace("\\", "\\\\").replace('"', '\\"') for v in texts]
    return '{"' + '","'.join(texts) + '"}'


class LedgerWriter:
    """Book batches of order events into the ledger tables of a migrated database.

    Args:
        conn: an open connection in autocommit mode (each `apply` is its own transaction).
        policy: retries on deadlock and serialization failure.
        step_id: the step named in dead letters.
        store_dead_letters: also write the dead letters to `dead_letters`, in the same
            transaction (the Bytewax sink does; direct callers may prefer to handle them).
        positions: publish the holdings documents of the accounts each transaction changed
            (`sinks.positions`), after its commit, so Redis never shows an uncommitted booking.
            Without it the documents are neither read nor published.
        cache: the holdings documents known from earlier batches (`HoldingsDocCache`); pass
            the same one to each writer of a connection's batches.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        policy: RetryPolicy | None = None,
        step_id: str = STEP_ID,
        store_dead_letters: bool = False,
        positions: PositionsPublisher | None = None,
        cache: HoldingsDocCache | None = None,
    ) -> None:
        self._conn = conn
        self._cache = cache if cache is not None else HoldingsDocCache()
        self._policy = policy or RetryPolicy(attempts=8, base_s=0.01, max_s=0.5)
        self._step_id = step_id
        self._store_dead_letters = store_dead_letters
        self._positions = positions

    def apply(self, events: Sequence[LedgerEvent]) -> LedgerResult:
        """Book `events` (in their order) in one transaction; see the module docstring.

        Returns:
            How many events were applied, how many execution reports were already booked, and
            the dead letters of the events rejected whole.

        Raises:
            psycopg.Error: the database failed (after the retries for deadlocks and
                serialization failures); nothing of the batch was written.
        """
        if not events:
            return LedgerResult(0, 0, [])
        policy = self._policy
        result = retry_with_backoff(
            lambda: self._apply_once(events),
            attempts=policy.attempts,
            base_s=policy.base_s,
            max_s=policy.max_s,
            retry_on=_RETRY_ON,
        )
        if self._positions is not None:
            if result.positions:
                self._positions.publish(HOLDINGS, result.positions)  # committed by now
            if result.replayed_accounts:
                publish_holdings(self._conn, self._positions, result.replayed_accounts)
        return result

    def _apply_once(self, events: Sequence[LedgerEvent]) -> LedgerResult:
        conn = self._conn
        if not _REFERENCE.isdisjoint(map(type, events)):
            return self._apply_with_reference(events)
        with conn.transaction(), conn.cursor() as cur:
            batch, docs, entries = self._book(cur, events)
            if self._store_dead_letters and batch.dead_letters:
                write_dead_letters(conn, batch.dead_letters)
        self._cache.keep(entries)  # committed
        published = {doc[0] for doc in docs}
        return LedgerResult(
            batch.applied, batch.duplicates, batch.dead_letters, len(batch.rows), docs,
            sorted(batch.replayed_accounts - published),
        )  # fmt: skip

    def _apply_with_reference(self, events: Sequence[LedgerEvent]) -> LedgerResult:
        """A batch with reference changes (issue 20): the runs of order events between them
        are booked as batches of their own, and each change in its place, all in ONE
        transaction: a fill after an account's opening finds the account, and none of it is
        written unless all of it is."""
        conn = self._conn
        applied = duplicates = executions = 0
        letters: list[DeadLetter] = []
        docs: dict[str, PositionsDoc] = {}
        entries: dict[str, _AccountDoc] = {}
        republish: set[str] = set()
        with conn.transaction(), conn.cursor() as cur:
            run: list[LedgerEvent] = []
            for event in [*events, None]:
                if event is not None and type(event) not in _REFERENCE:
                    run.append(event)
                    continue
                if run:
                    batch, found, kept = self._book(cur, run)
                    applied += batch.applied
                    duplicates += batch.duplicates
                    executions += len(batch.rows)
                    letters += batch.dead_letters
                    republish |= batch.replayed_accounts
                    docs.update((doc[0], doc) for doc in found)  # the later one wins
                    entries.update(kept)
                    run = []
                if event is None:
                    break
                outcome = apply_reference(cur, event, self._step_id)  # type: ignore[arg-type]
                if outcome.applied:
                    applied += 1
                elif outcome.dead_letter is None:
                    duplicates += 1
                if outcome.dead_letter is not None:
                    letters.append(outcome.dead_letter)
                if outcome.changed_cash is not None:
                    # published from the tables after the commit; a later run's document
                    # of the account would carry the cash too, but this is simpler and rare
                    republish.add(outcome.changed_cash)
                    docs.pop(outcome.changed_cash, None)
                    entries.pop(outcome.changed_cash, None)
            if self._store_dead_letters and letters:
                write_dead_letters(conn, letters)
        self._cache.keep(entries)  # committed
        return LedgerResult(
            applied, duplicates, letters, executions, list(docs.values()),
            sorted(republish - docs.keys()),
        )  # fmt: skip

    def _book(
        self, cur: psycopg.Cursor, events: Sequence[LedgerEvent]
    ) -> tuple[_Batch, list[PositionsDoc], dict[str, _AccountDoc]]:
        """Book a run of order events in the caller's transaction (steps 1-5 of the module
        docstring, dead letters not stored); return the batch and its holdings documents."""
        accounts = _resolve_accounts(cur, events)
        wanted = sorted({a for a in accounts if a is not None})
        cur.execute(_LOCK_ACCOUNTS, (_text_array(wanted),), prepare=False)
        versions = dict(cur.fetchall())
        known = versions.keys()
        book = LedgerBook(known)
        batch = _Batch(cur, self._step_id, book)
        batch.versions = versions

        exec_ids: set[str] = set()
        cl_ord_ids: set[str] = set()
        holding_keys: set[tuple[str, str]] = set()
        for event, account in zip(events, accounts, strict=True):
            if account not in known:
                continue
            if event.cl_ord_id:
                cl_ord_ids.add(event.cl_ord_id)
            if event.orig_cl_ord_id:
                cl_ord_ids.add(event.orig_cl_ord_id)
            if type(event) is ExecutionReport:
                exec_ids.add(event.exec_id)
                if event.exec_ref_id:
                    exec_ids.add(event.exec_ref_id)
                if event.exec_type in FILL_EXEC_TYPES:
                    holding_keys.add((account, event.symbol))
        batch.load_fills(exec_ids)
        for fill in book.fills.values():
            if fill.account in known:
                holding_keys.add((fill.account, fill.symbol))
        batch.load_holdings(holding_keys)
        batch.load_orders(cl_ord_ids)
        order_ids, echoed_replace = book.order_ids_to_read(events, accounts)  # type: ignore[arg-type]
        batch.load_orders_by_order_id(order_ids)
        if echoed_replace:
            batch.load_pending_replacements()

        batch.book_events(events, accounts)
        batch.write()
        docs, entries = batch.holdings_docs(self._cache) if self._positions else ([], {})
        return batch, docs, entries


def _resolve_accounts(cur: psycopg.Cursor, events: Sequence[LedgerEvent]) -> list[str | None]:
    """Return each event's account: Account (1), else its order's, else its fill's (H/G)."""
    accounts: list[str | None] = [e.account for e in events]
    if all(accounts):
        return accounts
    by_order: dict[str, str] = {}
    by_exec: dict[str, str] = {}
    for event in events:
        if event.account and event.cl_ord_id:
            by_order.setdefault(event.cl_ord_id, event.account)
        if event.account and type(event) is ExecutionReport:
            by_exec.setdefault(event.exec_id, event.account)
    need_orders: set[str] = set()
    need_execs: set[str] = set()
    for event, account in zip(events, accounts, strict=True):
        if account is None:
            need_orders.update(x for x in (event.cl_ord_id, event.orig_cl_ord_id) if x)
            if type(event) is ExecutionReport and event.exec_ref_id:
                need_execs.add(event.exec_ref_id)
    need_orders -= by_order.keys()
    need_execs -= by_exec.keys()
    if need_orders:
        cur.execute(
            "SELECT cl_ord_id, account FROM orders WHERE cl_ord_id = ANY(%s::text[])",
            (_text_array(need_orders),),
        )
        by_order.update(dict(cur.fetchall()))
    if need_execs:
        cur.execute(
            "SELECT exec_id, account FROM executions WHERE exec_id = ANY(%s::text[])",
            (_text_array(need_execs),),
        )
        by_exec.update(dict(cur.fetchall()))
    for i, event in enumerate(events):
        if accounts[i] is None:
            found = by_order.get(event.cl_ord_id or "") or by_order.get(event.orig_cl_ord_id or "")
            if found is None and type(event) is ExecutionReport and event.exec_ref_id:
                found = by_exec.get(event.exec_ref_id)
            accounts[i] = found
    return accounts


# -- Bytewax sink ------------------------------------------------------------------------------


Counter = Callable[[str, int], None]


class _LedgerPartition(StatelessSinkPartition[list[LedgerEvent]]):
    def __init__(self, writer: PgBatchWriter[LedgerEvent], close: Callable[[], None]) -> None:
        self._writer = writer
        self._close = close

    def write_batch(self, items: list[list[LedgerEvent]]) -> None:
        events = [event for chunk in items for event in chunk]
        if events:
            self._writer.write(events)

    def close(self) -> None:
        self._close()


def _ledger_writer(
    dsn: str,
    step_id: str,
    count: Counter | None,
    policy: RetryPolicy | None,
    redis_url: str | None = None,
) -> tuple[PgBatchWriter[LedgerEvent], Callable[[], None]]:
    """A connected `PgBatchWriter` booking with `LedgerWriter` (dead letters stored too), and
    publishing the holdings documents to `redis_url` when given; and its close."""
    step_id = step_id.rsplit(".", 1)[-1]  # "flow.write_ledger" -> "write_ledger", as decode_fix
    positions = PositionsPublisher(redis_url, policy) if redis_url else None
    cache = HoldingsDocCache()

    def write(conn: psycopg.Connection, events: Sequence[LedgerEvent]) -> int:
        result = LedgerWriter(
            conn, step_id=step_id, store_dead_letters=True, positions=positions, cache=cache
        ).apply(events)
        if count is not None:
            count("executions", result.executions)
            count("executions_duplicate", result.duplicates)
            count("dead_letters", len(result.dead_letters))
        return result.applied

    writer: PgBatchWriter[LedgerEvent] = PgBatchWriter(dsn, write, policy)
    writer.connect()

    def close() -> None:
        writer.close()
        if positions is not None:
            positions.close()

    return writer, close


class LedgerSink(DynamicSink[list[LedgerEvent]]):
    """Bytewax sink booking lists of order events with `LedgerWriter`, one transaction per batch.

    Each worker connects in `build`. Dead letters are written to `dead_letters` in the same
    transaction. Connection errors are retried with bounded backoff (reconnecting), then raised.

    Args:
        dsn: a migrated database (`sinks.postgres.migrate`).
        count: called as `count(name, n)` with "executions" (new execution rows),
            "executions_duplicate" and "dead_letters" after each batch.
        policy: retries on connection errors.
        redis_url: where to publish the holdings documents (`sinks.positions`); None: nowhere.
    """

    def __init__(
        self,
        dsn: str,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
        redis_url: str | None = None,
    ) -> None:
        self._dsn = dsn
        self._count = count
        self._policy = policy
        self._redis_url = redis_url

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[list[LedgerEvent]]:
        """Connect this worker's partition."""
        return _LedgerPartition(
            *_ledger_writer(self._dsn, step_id, self._count, self._policy, self._redis_url)
        )


LEDGER_PARTITION = "ledger"


def ledger_partition_key(events: list[LedgerEvent]) -> tuple[str, list[LedgerEvent]]:
    """Key a chunk's order events for `PipelinedLedgerSink` (one partition)."""
    return LEDGER_PARTITION, events


class PipelinedLedgerSink(FixedPartitionedSink[list[LedgerEvent], None]):
    """Bytewax sink booking `(LEDGER_PARTITION, [order events])` items with `LedgerWriter`, the
    transactions running on a background thread while the worker goes on (`sinks.background`).

    One partition, one writer: everything is booked in the order the sink receives it, which
    keeps each worker's order (one input partition, or Kafka partitions put back into the
    gateway's order by `flows.align`), as one `LedgerSink` per worker did. Other processes
    writing the same accounts are kept right by the account locks. Batches that queue up while
    a transaction runs are booked together in the next one (at most `max_events` events). Each
    epoch's snapshot waits until its transactions are committed. Dead letters, counters,
    retries and the holdings documents (`redis_url`) as `LedgerSink`.
    """

    def __init__(
        self,
        dsn: str,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
        max_events: int = 20_000,
        recovery: bool = True,
        redis_url: str | None = None,
    ) -> None:
        self._redis_url = redis_url
        self._dsn = dsn
        self._count = count
        self._policy = policy
        self._max_events = max_events
        self._recovery = recovery

    def list_parts(self) -> list[str]:
        """The one ledger partition."""
        return [LEDGER_PARTITION]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSinkPartition[list[LedgerEvent], None]:
        """Connect a partition and start its writer thread."""
        writer, close = _ledger_writer(
            self._dsn, step_id, self._count, self._policy, self._redis_url
        )
        return BackgroundPartition.threaded(
            writer.write, close, f"{step_id}.{for_part}", self._max_events, self._recovery
        )


__all__ = [
    "COMPUTED_COLUMNS",
    "EXECUTION_COLUMNS",
    "LEDGER_PARTITION",
    "ConcurrentInsertError",
    "LedgerResult",
    "LedgerSink",
    "LedgerWriter",
    "PipelinedLedgerSink",
    "execution_rows",
    "ledger_partition_key",
    "publish_holdings",
    "transact_time",
]
