"""The Bytewax sinks into ClickHouse: one insert per batch on the worker thread
(`ClickHouseSink`: `AuditSink`, `TicksSink`, `AlertsSink`, the tests' reference), and the
pipelined ones the flows use (`PipelinedAuditSink`, `PipelinedTicksSink`,
`PipelinedAlertsSink`: a background writer builds the columns and inserts them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from domain.audit import AuditRecord
from domain.quotes import Quote
from sinks.background import BackgroundWriter
from sinks.clickhouse.rows import (
    ALERT_COLUMNS,
    AUDIT_COLUMNS,
    TICK_COLUMNS,
    alert_columns,
    alert_rows,
    audit_columns,
    audit_rows,
    tick_columns,
    tick_rows,
)
from sinks.clickhouse.store import (
    DEFAULT_MAX_INSERT_ROWS,
    ClickHouseStore,
    open_store,
    retryable_errors,
)
from sinks.retry import RetryPolicy, retry_with_backoff


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
    the flow goes on (`sinks.background`); see `PipelinedAuditSink`. `min_rows` and `max_rows`
    left at None are the sink's `default_min_rows` and `default_max_rows`."""

    table: str
    columns: tuple[str, ...]
    partition: str
    counter_name: str
    default_min_rows = 20_000
    default_max_rows = 50_000

    def __init__(
        self,
        url: str | None,
        data_dir: Path,
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
        min_rows: int | None = None,
        max_rows: int | None = None,
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
        self._min_rows = self.default_min_rows if min_rows is None else min_rows
        self._max_rows = self.default_max_rows if max_rows is None else max_rows
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
    default_min_rows = 100_000
    default_max_rows = 200_000


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
