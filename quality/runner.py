"""Data quality: validate sampled micro-batches of the live streams in a child process.

The hot path only offers items (`offer_quotes`, `offer_events`: a few comparisons and a
non-blocking `put`); it never waits. An item is taken when the sampling share lets it through,
the validator's CPU time is within its budget (a share of wall time) and the bounded queue has
room; otherwise it is skipped and counted, so coverage (items covered / items seen) is
reported next to the cost. The child gathers taken items per suite and validates when a suite
has `batch_rows` rows or its oldest row waited `interval_s`; at `close` the rest is validated.

Why a process, not a thread: GX and pandas run Python, so a validator thread took the GIL from
the Bytewax worker (measured: 20-25 % off the ingest rate for ~12 % of validator CPU, most of
the rest waiting for the GIL after each store round trip). The child has its own interpreter
and, on a 2-core machine, its own core; the worker pays only for pickling what it offers. The
child writes `dq_results` and the dead letters itself and sends its counters back.

Counters (`count(name, n)`, per suite `quotes` or `fills`): dq_seen.S / dq_covered.S (stream
items: quotes; decoded events for fills), dq_rows.S, dq_rows_failed.S, dq_validations.S,
dq_validations_failed.S, dq_failed.S.CHECK (rows), dq_cpu_us, and dead_letters.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from domain.dead_letters import DeadLetter
from domain.quotes import Quote
from quality.frames import (
    Frame,
    MarketReference,
    fill_frame,
    fills_of,
    quote_frame,
    quote_raw,
    quote_source,
)
from quality.store import DqRecord, dq_writer
from quality.suites import FILLS, QUOTES, Suite, fill_suite, quote_suite
from quality.validator import GxValidator, Validation
from sinks.child_signals import ignore_interrupts, interrupts_blocked

STEP_ID = "check_data_quality"
ERROR = "DataQualityError"
GRACE_S = 0.5  # CPU the validator may spend before the budget applies (its first frames)
QUEUE_ITEMS = 64
_STOP = "stop"  # a string: it crosses the process boundary

log = logging.getLogger("brokerflow.dq")


@dataclass(frozen=True, slots=True)
class DqPolicy:
    """How much of the streams is validated, how often, and the suites' bounds.

    Attributes:
        batch_rows: validate a suite when it has this many rows waiting.
        interval_s: or when its oldest waiting row is this old (wall time).
        sample_share: the share of micro-batches offered for validation (1.0: all).
        budget_share: the validator's CPU time may not exceed this share of wall time;
            micro-batches offered beyond it are skipped (and counted as not covered).
        live: event times are judged against the wall clock with `max_ahead_s` of skew (else
            against the batch median, `max_age_s` either way).
    """

    batch_rows: int = 5_000
    interval_s: float = 1.0
    sample_share: float = 1.0
    budget_share: float = 0.05
    max_age_s: float = 86_400.0
    max_ahead_s: float = 5.0
    px_band_bps: float = 500.0
    symbols: frozenset[str] | None = None
    live: bool = False

    def suites(self) -> list[Suite]:
        return [
            # Replayed, a micro-batch spans minutes of event time around its median: only a
            # timestamp a whole max_age away from it on either side is implausible there.
            quote_suite(
                self.symbols, self.max_age_s, self.max_ahead_s if self.live else self.max_age_s
            ),
            fill_suite(self.px_band_bps),
        ]


Count = Callable[[str, int], None]
Write = Callable[[Sequence[DqRecord]], object]


class DataQualityRunner:
    """One worker's sampling in front of a validator child process."""

    def __init__(
        self,
        policy: DqPolicy,
        count: Count,
        dsn: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._count = count
        self._clock = clock
        # spawn, not fork: the worker process runs Bytewax's and chdb's threads.
        context = multiprocessing.get_context("spawn")
        self._inbox: Any = context.Queue(QUEUE_ITEMS)
        self._outbox: Any = context.Queue()
        self._process = context.Process(
            target=_child_main, args=(policy, dsn, self._inbox, self._outbox, os.getpid()),
            name="data-quality", daemon=True,
        )  # fmt: skip
        self._receiver = threading.Thread(target=self._receive, name="dq-results", daemon=True)
        self._credit = 0.0
        self._cpu_s = 0.0  # the child's CPU, as last reported
        self._started = clock()
        self._seen = {QUOTES: 0, FILLS: 0}
        self.error: BaseException | None = None

    # -- hot path (the Bytewax worker) --------------------------------------------------------

    def start(self) -> None:
        self._started = self._clock()
        with _main_module_hidden(), interrupts_blocked():
            self._process.start()
        self._receiver.start()

    def offer_quotes(self, quotes: list[Quote]) -> None:
        self._offer(QUOTES, quotes, len(quotes))

    def offer_events(self, events: list) -> None:
        self._offer(FILLS, events, len(events))

    def _offer(self, suite: str, payload: list, n: int) -> None:
        if not n:
            return
        self._seen[suite] += n
        self._count("dq_seen." + suite, n)
        policy = self._policy
        self._credit += policy.sample_share
        if self._credit < 1.0:
            return
        self._credit -= 1.0
        allowed_s = policy.budget_share * (self._clock() - self._started) + GRACE_S
        if self._cpu_s > allowed_s:
            return
        if suite == FILLS:
            payload = fills_of(payload)  # only fills cross to the child
        try:
            self._inbox.put_nowait((suite, payload, self._seen[suite]))
        except queue.Full:
            return
        self._count("dq_covered." + suite, n)

    def close(self, timeout_s: float = 60.0) -> None:
        """Validate what is waiting, stop the child, and raise what it raised."""
        if self._process.is_alive():
            self._inbox.put(_STOP)
            self._receiver.join(timeout_s)
            self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
        # Items the dead child never read: do not wait for them at exit (the queue's feeder
        # thread would block the interpreter's exit on a full pipe).
        self._inbox.cancel_join_thread()
        if self.error is not None:
            raise self.error

    def _receive(self) -> None:
        """Hand the child's counters to `count`, until it says it is done (or dies)."""
        while True:
            try:
                kind, value, cpu_s = self._outbox.get(timeout=1.0)
            except queue.Empty:
                if not self._process.is_alive():
                    self.error = self.error or RuntimeError("the data-quality process died")
                    return
                continue
            self._cpu_s = cpu_s
            if kind == "counts":
                for name, n in value.items():
                    self._count(name, n)
            elif kind == "error":
                self.error = RuntimeError(f"data quality: {value}")
                return
            else:  # done
                return


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start a spawned child without importing the parent's `__main__` in it.

    The validator needs nothing from `__main__`, and importing it would run a script's top
    level again in the child (a script calling `replay()` without an `if __name__ ==
    "__main__"` guard would replay twice); with neither `__file__` nor `__spec__`,
    multiprocessing treats the parent as interactive and imports nothing.
    """
    main = sys.modules["__main__"]
    names = ("__file__", "__spec__")
    saved = {name: main.__dict__[name] for name in names if name in main.__dict__}
    for name in saved:
        if name == "__spec__":
            main.__spec__ = None
        else:
            del main.__file__
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the thread that started it ends (the run killed);
    SIGKILL, as the child ignores SIGTERM (`sinks.child_signals.ignore_interrupts`)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere the loop's parent check does it, within ORPHAN_CHECK_S


ORPHAN_CHECK_S = 1.0
"""How often the validator looks whether its run is still there (a killed run's child would
otherwise live on, holding its pipes open)."""


def _child_main(policy: DqPolicy, dsn: str, inbox: Any, outbox: Any, parent: int) -> None:
    """The validator process: validate what arrives, store results, report counters."""
    _die_with_parent()
    ignore_interrupts()  # the run stops this child in order (`close`)
    if os.getppid() != parent:
        return  # the run was gone before this process got here
    # Best effort by design: below the flows and the stores' servers when cores are scarce.
    os.nice(10)
    counts: Counter[str] = Counter()
    writer = dq_writer(dsn)
    cpu_s = 0.0
    try:
        validating = _Validating(policy, lambda name, n: counts.update({name: n}), writer.write)
        while True:
            try:
                item = inbox.get(timeout=min(validating._wait_s(), ORPHAN_CHECK_S))
            except queue.Empty:
                item = None
            if os.getppid() != parent:
                return  # the run was killed (SIGTERM, SIGKILL): nobody is left to report to
            started = time.process_time()
            if item == _STOP:
                validating._flush(force=True)
                cpu_s += time.process_time() - started
                outbox.put(("counts", dict(counts), cpu_s))
                outbox.put(("done", None, cpu_s))
                return
            if item is not None:
                suite, payload, seen = item
                validating.seen[suite] = seen
                validating._take(suite, payload)
            validating._flush(force=False)
            spent = time.process_time() - started
            cpu_s += spent
            counts["dq_cpu_us"] += round(spent * 1e6)
            if counts:
                outbox.put(("counts", dict(counts), cpu_s))
                counts.clear()
    except BaseException as exc:  # noqa: BLE001 - reported to the worker, raised at close()
        log.exception("dq_process_failed")
        outbox.put(("error", f"{type(exc).__name__}: {exc}", cpu_s))
    finally:
        writer.close()


class _Validating:
    """The child's side: micro-batches per suite, GX validation, results and dead letters."""

    def __init__(self, policy: DqPolicy, count: Count, write: Write) -> None:
        self._policy = policy
        self._count = count
        self._write = write
        self._clock = time.monotonic
        self.seen = {QUOTES: 0, FILLS: 0}  # items seen by the worker, as of the last offer
        self._reported_seen = {QUOTES: 0, FILLS: 0}
        self._pending: dict[str, list] = {QUOTES: [], FILLS: []}
        self._pending_since: dict[str, float] = {}
        self._market = MarketReference()
        self._validator = GxValidator(policy.suites())

    def _wait_s(self) -> float:
        if not self._pending_since:
            return self._policy.interval_s
        oldest = min(self._pending_since.values())
        return max(0.01, oldest + self._policy.interval_s - self._clock())

    def _take(self, suite: str, payload: list) -> None:
        if suite == QUOTES:
            self._market.update(payload)
        rows = payload  # fills were picked out by the worker
        if rows:
            self._pending[suite].extend(rows)
            self._pending_since.setdefault(suite, self._clock())

    def _flush(self, force: bool) -> None:
        policy = self._policy
        now = self._clock()
        for suite, rows in self._pending.items():
            if not rows:
                continue
            due = now - self._pending_since[suite] >= policy.interval_s
            if force or due or len(rows) >= policy.batch_rows:
                self._pending[suite] = []
                del self._pending_since[suite]
                self._validate(suite, rows)

    def _frame(self, suite: str, rows: list) -> Frame:
        if suite == QUOTES:
            return quote_frame(rows, time.time_ns() if self._policy.live else None)
        return fill_frame(rows, self._market)

    def _validate(self, suite: str, rows: list) -> None:
        assert self._validator is not None
        frame = self._frame(suite, rows)
        validation = self._validator.validate(suite, frame)
        letters = self._dead_letters(validation, frame)
        seen_total = self.seen[suite]
        seen = seen_total - self._reported_seen[suite]
        self._reported_seen[suite] = seen_total
        self._write([DqRecord(validation, seen, letters)])
        self._report(validation, letters)

    def _dead_letters(self, validation: Validation, frame: Frame) -> tuple[DeadLetter, ...]:
        ts_init = time.time_ns()
        letters = []
        for index, checks in sorted(validation.failed.items()):
            item = frame.items[index]
            if validation.suite == QUOTES:
                source, raw = quote_source(item), quote_raw(item)
            else:
                source, raw = item.source or f"exec:{item.exec_id}", item.raw
            reason = f"data quality {validation.suite}: failed " + ", ".join(
                check.describe() for check in checks
            )
            letters.append(DeadLetter(source, reason, raw, STEP_ID, ERROR, checks[0].tag, ts_init))
        return tuple(letters)

    def _report(self, validation: Validation, letters: tuple[DeadLetter, ...]) -> None:
        suite, count = validation.suite, self._count
        count("dq_validations." + suite, 1)
        count("dq_rows." + suite, validation.rows)
        if validation.success:
            return
        count("dq_validations_failed." + suite, 1)
        count("dq_rows_failed." + suite, validation.rows_failed)
        count("dead_letters", len(letters))
        count("dead_letters_by." + ERROR, len(letters))
        failed = {r["check"]: r["unexpected_count"] for r in validation.results if not r["success"]}
        for check, n in failed.items():
            count(f"dq_failed.{suite}.{check}", n or 0)
        log.warning(
            "dq_failure",
            extra={
                "fields": {
                    "suite": suite,
                    "rows": validation.rows,
                    "rows_failed": validation.rows_failed,
                    "failed": failed,
                }
            },
        )
