"""Sinks layer: a store write overlapped with the dataflow, drained before each snapshot.

`BackgroundWriter` runs one `write(batch)` at a time on its own thread, in submission order,
while the Bytewax worker goes on with the next input: a database wait (psycopg and chdb release
the GIL while the server or the engine works) then overlaps decoding and the other steps.
Batches queued while a write was running are joined into the next one (up to `max_items`), so
a writer that falls behind makes fewer, larger transactions or inserts instead of a longer queue.

`BackgroundPartition` is the Bytewax sink partition of a sink that hands each batch straight to
a `BackgroundWriter` (`sinks.ledger.PipelinedLedgerSink`, `sinks.alerts.AlertSink`).

Guarantees, for the sinks built on it (those two and `sinks.clickhouse.PipelinedAuditSink`):
- order: one thread, FIFO, and a batch never starts before the previous one finished;
- nothing lost: `drain()` returns only once everything submitted is written. The sinks are
  `StatefulSinkPartition`s whose `snapshot()`, which Bytewax calls at the end of every epoch
  before it commits the epoch's snapshots, drains: a committed epoch never has writes in flight
  (only when the run snapshots for recovery: without, nothing is committed, and waiting at every
  epoch's end cost the all-flows replay ~4 % of its wall time);
- errors: the write retries as before (its own bounded backoff); if it still fails, nothing
  after it is written and the error is raised by the next `submit`, `drain` or `close`, which
  stops the flow before the epoch is committed, so a restart replays it (the writes are
  idempotent on the input). An error found only when the partition closes is not raised
  there (that aborts the process) but kept for `take_failures`: the runner reports it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from bytewax.outputs import StatefulSinkPartition

T = TypeVar("T")

_FAILURES: list[BaseException] = []  # write errors found by `close`, for the runner
_FAILURES_LOCK = threading.Lock()


def report_failure(exc: BaseException) -> None:
    """Keep a write error found where it cannot be raised (a partition's close) for the runner."""
    with _FAILURES_LOCK:
        _FAILURES.append(exc)


def take_failures() -> list[BaseException]:
    """The write errors that `BackgroundWriter.close` found and could not raise; cleared."""
    with _FAILURES_LOCK:
        out = list(_FAILURES)
        _FAILURES.clear()
    return out


class BackgroundWriter(Generic[T]):
    """Write submitted batches on one background thread, in order; see the module docstring.

    Args:
        write: `write(items)` writes one batch (with its own retries) or raises.
        name: the thread's name.
        max_items: at most this many items are joined into one write.
        max_pending: `submit` waits while this many items are queued (back pressure).
    """

    def __init__(
        self,
        write: Callable[[list[T]], object],
        name: str,
        max_items: int = 20_000,
        max_pending: int = 40_000,
    ) -> None:
        self._write = write
        self._max_items = max_items
        self._max_pending = max_pending
        self._queue: deque[Sequence[T]] = deque()
        self._queued = 0  # items in the queue
        self._busy = False  # a write is running
        self._error: BaseException | None = None
        self._reports = 0  # how often the error was raised to the caller
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[T]) -> None:
        """Queue a batch; wait while the queue is full. Raise the error of a failed write."""
        if not items:
            return
        with self._cond:
            while self._queued >= self._max_pending and self._error is None:
                self._cond.wait()
            self._raise_error()
            self._queue.append(items)
            self._queued += len(items)
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every submitted batch is written; raise the error of a failed write."""
        with self._cond:
            while (self._queue or self._busy) and self._error is None:
                self._cond.wait()
            self._raise_error()

    def close(self, last: Sequence[T] = ()) -> None:
        """Submit `last`, drain, then stop the thread. Never raises: Bytewax closes the
        partitions of a flow that is stopping (maybe because another sink failed), and an
        error raised from there aborts the process with a Rust backtrace. An error `submit`
        or `drain` did not raise already is kept for `take_failures`, which the runner checks
        once the flow is down (`last` is then dropped: its epoch is never committed)."""
        reported = self._reports > 0
        try:
            self.submit(last)
            self.drain()
        except BaseException as exc:  # noqa: BLE001 - reported by the runner, see above
            if not reported:
                report_failure(exc)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            self._reports += 1
            raise self._error

    def _take(self) -> list[T] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            batch = list(self._queue.popleft())
            while self._queue and len(batch) + len(self._queue[0]) <= self._max_items:
                batch.extend(self._queue.popleft())
            self._queued -= len(batch)
            self._busy = True
            self._cond.notify_all()
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                exc.add_note(f"in the background writer {self._thread.name}")
                with self._cond:
                    self._error = exc
                    self._busy = False
                    self._queue.clear()
                    self._queued = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class OrderedWriter(Protocol[T]):
    """What a `BackgroundPartition` hands its batches to: `BackgroundWriter` (a thread) or
    `sinks.writer_process.ProcessWriter` (a process), with the same guarantees (above)."""

    def submit(self, items: list[T]) -> None: ...
    def drain(self) -> None: ...
    def close(self) -> None: ...


class BackgroundPartition(StatefulSinkPartition[list[T], None]):
    """A sink partition whose batches an `OrderedWriter` writes, in order, drained at each
    epoch's snapshot (so the epoch's writes are done before it commits).

    Args:
        writer: writes the batches, in order (`BackgroundPartition.threaded` makes one thread).
        close: closes the store connections, after the writer has stopped.
        recovery: the run snapshots for recovery. Without, nothing is committed at an epoch's
            end and nobody resumes from it: the snapshot does not wait for the writes (they
            are still written in order, and `close` waits for all of them).
    """

    def __init__(
        self,
        writer: OrderedWriter[T],
        close: Callable[[], object] = lambda: None,
        recovery: bool = True,
    ) -> None:
        self._background = writer
        self._close = close
        self._recovery = recovery

    @classmethod
    def threaded(
        cls,
        write: Callable[[list[T]], object],
        close: Callable[[], object],
        name: str,
        max_items: int,
        recovery: bool = True,
    ) -> BackgroundPartition[T]:
        """A partition whose `write(items)` (one joined batch, with its own retries, or raise)
        runs on a `BackgroundWriter` thread named `name`, at most `max_items` per write."""
        return cls(BackgroundWriter(write, name, max_items=max_items), close, recovery)

    def write_batch(self, values: list[list[T]]) -> None:
        items = [item for chunk in values for item in chunk]
        if items:
            self._background.submit(items)

    def snapshot(self) -> None:
        if self._recovery:
            self._background.drain()  # the epoch's writes are done before its snapshot
        return None

    def close(self) -> None:
        try:
            self._background.close()
        finally:
            self._close()
