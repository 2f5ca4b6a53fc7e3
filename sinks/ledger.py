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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

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
from domain.events import REFERENCE_TYPES, ExecutionReport
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
from domain.orders import FILL_EXEC_TYPES
from sinks.background import BackgroundPartition
from sinks.holdings_docs import AccountDoc, HoldingsDocCache, holdings_docs, publish_holdings
from sinks.ledger_sql import (
    COMPUTED_COLUMNS,
    COPY_EXECUTIONS,
    CREATE_STAGES,
    EXECUTION_COLUMNS,
    EXECUTION_TYPES,
    HOLDING_TYPES,
    LOCK_ACCOUNTS,
    MARK_REVERSED,
    ORDER_TYPES,
    SELECT_FILLS,
    SELECT_HOLDINGS,
    SELECT_ORDERS,
    SELECT_ORDERS_BY_ORDER_ID,
    STAGE_HOLDINGS,
    STAGE_ORDERS,
    UPDATE_CASH,
    UPSERT_HOLDINGS,
    UPSERT_ORDERS,
    LedgerEvent,
    booked_row,
    copy_rows,
    day_date,
    day_number,
    execution_rows,
    order_from_row,
    order_row,
    text_array,
    transact_time,
)
from sinks.positions import HOLDINGS, PositionsDoc, PositionsPublisher
from sinks.postgres import PgBatchWriter, write_dead_letters
from sinks.reference import apply_reference
from sinks.retry import RetryPolicy, retry_with_backoff

_REFERENCE = frozenset(REFERENCE_TYPES)
STEP_ID = "write_ledger"

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
            self.cur.execute(SELECT_FILLS, (text_array(want),))
            want = book.add_booked_fills(BookedFill(*row) for row in self.cur.fetchall())

    def load_orders(self, cl_ord_ids: set[str]) -> None:
        if cl_ord_ids:
            self.cur.execute(SELECT_ORDERS, (text_array(cl_ord_ids),))
            self.book.add_orders(order_from_row(row) for row in self.cur.fetchall())

    def load_orders_by_order_id(self, order_ids: set[str]) -> None:
        """Read every row of these OrderIDs (37), for the reports routed by it."""
        rows: list[Any] = []
        if order_ids:
            self.cur.execute(SELECT_ORDERS_BY_ORDER_ID, (text_array(order_ids),))
            rows = self.cur.fetchall()
        self.book.add_orders_by_order_id(order_ids, (order_from_row(row) for row in rows))

    def load_pending_replacements(self) -> None:
        """Read the rows of the 35=G requests pending on the orders read."""
        want = self.book.pending_replacements()
        if want:
            self.load_orders(want)

    def load_holdings(self, keys: set[HoldingKey]) -> None:
        if keys:
            accounts, symbols = zip(*keys, strict=True)
            self.cur.execute(SELECT_HOLDINGS, (text_array(accounts), text_array(symbols)))
            holdings, days = self.book.holdings, self.book.day_pnl
            for account, symbol, quantity, avg_price, realised, day, day_pnl in self.cur.fetchall():
                holdings[account, symbol] = Holding(quantity, avg_price, realised)
                days[account, symbol] = (day_number(day), day_pnl)

    # -- events --------------------------------------------------------------------------------

    def book_events(self, events: Sequence[LedgerEvent], accounts: Sequence[str | None]) -> None:
        """Book each event with the `LedgerBook` and gather what to write."""
        apply = self.book.apply
        rows, reversals, cash, changed = self.rows, self.reversals, self.cash, self.changed_accounts
        dirty_orders, dirty_holdings = self.dirty_orders, self.dirty_holdings
        applied = duplicates = 0
        for event, account in zip(events, accounts, strict=True):
            result = apply(event, account)  # type: ignore[arg-type]
            if type(result) is Booked:
                # Unpacked, not read by name: a named field is a property call each.
                _, account, orders, holdings, _, cash_delta, commission, realised, reversed_id = (
                    result
                )
                dirty_orders.update(orders)
                applied += 1
                if type(event) is not ExecutionReport:
                    continue
                if holdings or cash_delta:
                    dirty_holdings.update(holdings)
                    if changed.get(account, -1) < event.ts_event:
                        changed[account] = event.ts_event
                    # Even by 0: a change to the holdings always updates the account's row
                    # (its xmin).
                    cash[account] = cash.get(account, ZERO) + cash_delta
                if reversed_id is not None:
                    reversals.append((reversed_id, event.exec_id))
                rows.append(booked_row(event, account, commission, realised, cash_delta))
            elif type(result) is Duplicate:
                duplicates += 1
                if result.fill:
                    self.replayed_accounts.add(result.account)
            else:
                self.dead_letter(result)  # type: ignore[arg-type]
        self.applied += applied
        self.duplicates += duplicates

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
                copy_rows(cur, COPY_EXECUTIONS, EXECUTION_TYPES, self.rows)
            except pg_errors.UniqueViolation as exc:
                msg = f"an ExecID of the batch was booked concurrently: {exc}"
                raise ConcurrentInsertError(msg) from exc
        if self.reversals:
            exec_ids, reversed_by = zip(*self.reversals, strict=True)
            cur.execute(MARK_REVERSED, (text_array(exec_ids), text_array(reversed_by)))
        if self.dirty_holdings or self.dirty_orders:
            cur.execute(CREATE_STAGES)
        if self.dirty_holdings:
            holdings, days = self.book.holdings, self.book.day_pnl
            rows = []
            for key in sorted(self.dirty_holdings):
                h = holdings[key]
                day, day_pnl = days.get(key, NO_DAY)
                rows.append(
                    (
                        key[0],
                        key[1],
                        h.quantity,
                        h.avg_price,
                        h.realised_pnl,
                        day_date(day),
                        day_pnl,
                    )
                )
            copy_rows(cur, f"COPY {STAGE_HOLDINGS} FROM STDIN", HOLDING_TYPES, rows)
            cur.execute(UPSERT_HOLDINGS)
        if self.cash:
            accounts = sorted(self.cash)
            cash = self.cash
            deltas = "{" + ",".join([str(cash[a]) for a in accounts]) + "}"
            ts = [self.changed_accounts[a] for a in accounts]
            cur.execute(UPDATE_CASH, (text_array(accounts), deltas, ts))
            self.updated = {row[0]: row[1:] for row in cur.fetchall()}
        if self.dirty_orders:
            orders = self.book.orders
            rows = [order_row(orders[c]) for c in sorted(self.dirty_orders)]
            copy_rows(cur, f"COPY {STAGE_ORDERS} FROM STDIN", ORDER_TYPES, rows)
            cur.execute(UPSERT_ORDERS)


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
        entries: dict[str, AccountDoc] = {}
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
    ) -> tuple[_Batch, list[PositionsDoc], dict[str, AccountDoc]]:
        """Book a run of order events in the caller's transaction (steps 1-5 of the module
        docstring, dead letters not stored); return the batch and its holdings documents."""
        accounts = _resolve_accounts(cur, events)
        wanted = sorted({a for a in accounts if a is not None})
        cur.execute(LOCK_ACCOUNTS, (text_array(wanted),), prepare=False)
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
        docs: list[PositionsDoc] = []
        entries: dict[str, AccountDoc] = {}
        if self._positions:
            docs, entries = holdings_docs(
                cur, self._cache, batch.changed_accounts, batch.versions, batch.updated,
                batch.dirty_holdings, book.holdings, book.day_pnl,
            )  # fmt: skip
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
            (text_array(need_orders),),
        )
        by_order.update(dict(cur.fetchall()))
    if need_execs:
        cur.execute(
            "SELECT exec_id, account FROM executions WHERE exec_id = ANY(%s::text[])",
            (text_array(need_execs),),
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
    "HoldingsDocCache",
    "LedgerEvent",
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
