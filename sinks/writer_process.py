"""Sinks layer: a store writer run in a process of its own, fed batches through a pipe.

`ProcessWriter` has `BackgroundWriter`'s contract (`sinks.background`: `submit`, `drain`,
`close`; order kept, nothing lost, a failed write raised by the next call) but runs the writes
in a child process instead of a thread. Why: a writer thread shares the worker's GIL. Its
Python (rows read, JSON made, the driver's own code) runs while the worker waits, and each of
its round trips hands the GIL back and forth; in `bench price-alerts`, fired alerts written on
a thread took ~10 % off the quotes flow while the same batches handed to a writer that only
slept took nothing. In a child process the worker's cost per batch is one pickle and one pipe
write.

Protocol, on one duplex pipe: the parent sends `list[item]` batches, then `None` to close; the
child joins the batches already waiting (up to `max_items`), writes them with the writer
`make(count)` built in the child, and answers each batch it took with one reply, `(taken,
counts, None)` or, on a write that still failed after the writer's own retries, `(taken,
counts, "Error: message")`, after which it stops. `counts` are what the writer counted (its
`count(name, n)` calls, e.g. `alerts.PRICE_ALERT`), added to the parent's counter on receipt.
The child ends when the parent closes the pipe or dies (end of file), so a killed worker leaves
no writer behind; what it had not written is replayed from the input on restart, as with a
thread (the writes are idempotent on the input).

The child is started with "spawn" (a fresh interpreter): the worker runs Rust threads, which a
fork would copy in whatever state they were in. `make` must therefore be picklable: a
module-level function, or a `functools.partial` of one.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Generic, Protocol, TypeVar

from domain.errors import BrokerflowError
from sinks.background import report_failure
from sinks.child_signals import ignore_interrupts, interrupts_blocked

T = TypeVar("T")
Counter = Callable[[str, int], None]


class BatchWriter(Protocol):
    """What runs in the child: `connect`, `write(batch)`, `close`."""

    def connect(self) -> None: ...

    def write(self, items: Sequence[Any]) -> object: ...

    def close(self) -> None: ...


class WriterProcessError(BrokerflowError):
    """The writer process failed a write (after its own retries) or died."""


def _serve(make: Callable[[Counter], BatchWriter], conn: Connection, max_items: int) -> None:
    """The child: write what comes, reply per batch taken; see the module docstring."""
    ignore_interrupts()  # the parent closes the pipe when its run ends
    counts: dict[str, int] = {}

    def count(name: str, n: int) -> None:
        counts[name] = counts.get(name, 0) + n

    writer = make(count)
    try:
        try:
            writer.connect()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
            conn.send((0, counts, f"{type(exc).__name__}: {exc}"))
            return
        closing = False
        while not closing:
            try:
                first = conn.recv()
            except EOFError:  # the parent is gone
                return
            if first is None:
                return
            batch, taken = list(first), 1
            while len(batch) < max_items and conn.poll():
                more = conn.recv()
                if more is None:
                    closing = True
                    break
                batch += more
                taken += 1
            try:
                writer.write(batch)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
                conn.send((taken, counts, f"{type(exc).__name__}: {exc}"))
                return
            conn.send((taken, counts, None))
            counts.clear()
    except (BrokenPipeError, EOFError, ConnectionResetError):
        return  # the parent is gone: nothing to report to
    finally:
        writer.close()
        conn.close()


class ProcessWriter(Generic[T]):
    """Write submitted batches in a child process, in order; see the module docstring.

    Args:
        make: `make(count)` builds the writer in the child (picklable).
        name: the child process's name.
        count: the parent's counter, given what the child's writer counted.
        max_items: at most this many items are joined into one write.
        max_pending: `submit` waits while this many items are unanswered (back pressure).
    """

    def __init__(
        self,
        make: Callable[[Counter], BatchWriter],
        name: str,
        count: Counter | None = None,
        max_items: int = 20_000,
        max_pending: int = 40_000,
    ) -> None:
        self._count = count
        self._max_pending = max_pending
        self._pending: deque[int] = deque()  # sizes of the batches sent and not yet answered
        self._pending_items = 0
        self._error: WriterProcessError | None = None
        self._reports = 0
        self._make, self._name, self._max_items = make, name, max_items
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    def _start(self) -> Connection:
        """The child, started on the first batch: a run that writes nothing starts none."""
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe(duplex=True)
        self._process = context.Process(
            target=_serve, args=(self._make, child, self._max_items), name=self._name,
            daemon=True,
        )  # fmt: skip
        with interrupts_blocked():
            self._process.start()
        child.close()  # the child holds its end: our copy would hide its exit
        return self._conn

    def submit(self, items: Sequence[T]) -> None:
        """Send a batch; wait while too many items are unanswered. Raise a failed write."""
        if not items:
            return
        self._receive(block=False)
        while self._pending_items >= self._max_pending and self._error is None:
            self._receive(block=True)
        self._raise_error()
        conn = self._conn or self._start()
        try:
            conn.send(list(items))
        except OSError as exc:
            self._fail(f"the writer process {self._name} is gone ({exc})")
            self._raise_error()
        self._pending.append(len(items))
        self._pending_items += len(items)

    def drain(self) -> None:
        """Wait until every batch sent is written; raise the error of a failed write."""
        while self._pending and self._error is None:
            self._receive(block=True)
        self._raise_error()

    def close(self, last: Sequence[T] = ()) -> None:
        """Send `last`, drain, then stop the child. Never raises (as `BackgroundWriter.close`):
        an error not raised to a caller already is kept for the runner (`take_failures`)."""
        reported = self._reports > 0
        try:
            self.submit(last)
            self.drain()
        except BaseException as exc:  # noqa: BLE001 - reported by the runner
            if not reported:
                report_failure(exc)
        finally:
            self._stop()

    def _stop(self) -> None:
        if self._conn is None or self._process is None:
            return
        try:
            self._conn.send(None)
        except OSError:
            pass  # gone already
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
        self._conn.close()

    def _receive(self, block: bool) -> None:
        """Take the replies that are there (or wait for one, `block`)."""
        conn, process = self._conn, self._process
        if conn is None or process is None:
            return
        while self._pending and self._error is None and (block or conn.poll()):
            block = False
            try:
                taken, counts, error = conn.recv()
            except (EOFError, OSError):
                process.join(timeout=1)
                self._fail(f"the writer process {self._name} died (exit code {process.exitcode})")
                return
            for _ in range(taken):
                self._pending_items -= self._pending.popleft()
            if self._count is not None:
                for name, n in counts.items():
                    self._count(name, n)
            if error is not None:
                self._fail(f"in the writer process {self._name}: {error}")

    def _fail(self, message: str) -> None:
        self._error = WriterProcessError(message)
        self._pending.clear()
        self._pending_items = 0

    def _raise_error(self) -> None:
        if self._error is not None:
            self._reports += 1
            raise self._error
