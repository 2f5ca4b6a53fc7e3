"""Data quality: validate sampled micro-batches of the live streams in a background thread.

The hot path only offers items (`offer_quotes`, `offer_events`: a few comparisons and a
non-blocking `put`); it never waits. An item is taken when the sampling share lets it through,
the validator's CPU time is within its budget (a share of wall time) and the bounded queue has
room; otherwise it is skipped and counted, so coverage (items covered / items seen) is
reported next to the cost. The thread gathers taken items per suite and validates when a suite
has `batch_rows` rows or its oldest row waited `interval_s`; at `close` the rest is validated.

Counters (`count(name, n)`, per suite `quotes` or `fills`): dq_seen.S / dq_covered.S (stream
items: quotes; decoded events for fills), dq_rows.S, dq_rows_failed.S, dq_validations.S,
dq_validations_failed.S, dq_failed.S.CHECK (rows), dq_cpu_us, and dead_letters.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
from quality.store import DqRecord
from quality.suites import FILLS, QUOTES, Suite, fill_suite, quote_suite
from quality.validator import GxValidator, Validation

STEP_ID = "check_data_quality"
ERROR = "DataQualityError"
GRACE_S = 0.5  # CPU the validator may spend before the budget applies (its first frames)
QUEUE_ITEMS = 64
_STOP = object()

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
    """One worker's validator thread and the sampling in front of it."""

    def __init__(
        self,
        policy: DqPolicy,
        count: Count,
        write: Write,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._count = count
        self._write = write
        self._clock = clock
        self._queue: queue.Queue = queue.Queue(QUEUE_ITEMS)
        self._credit = 0.0
        self._cpu_s = 0.0  # written by the thread only; a float read is atomic
        self._started = clock()
        self._seen = {QUOTES: 0, FILLS: 0}  # written by the offering thread only
        self._reported_seen = {QUOTES: 0, FILLS: 0}  # read position of the validator thread
        self._pending: dict[str, list] = {QUOTES: [], FILLS: []}
        self._pending_since: dict[str, float] = {}
        self._market = MarketReference()
        self._validator: GxValidator | None = None
        self._thread = threading.Thread(target=self._loop, name="data-quality", daemon=True)
        self.error: BaseException | None = None

    # -- hot path (the Bytewax worker) --------------------------------------------------------

    def start(self) -> None:
        self._started = self._clock()
        self._thread.start()

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
        try:
            self._queue.put_nowait((suite, payload))
        except queue.Full:
            return
        self._count("dq_covered." + suite, n)

    def close(self, timeout_s: float = 60.0) -> None:
        """Validate what is waiting, stop the thread, and raise what it raised."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
        if self.error is not None:
            raise self.error

    # -- the validator thread -----------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._validator = GxValidator(self._policy.suites())
            get = self._queue.get
            while True:
                try:
                    item = get(timeout=self._wait_s())
                except queue.Empty:
                    item = None
                started = time.thread_time()
                if item is _STOP:
                    self._flush(force=True)
                    return
                if item is not None:
                    self._take(*item)
                self._flush(force=False)
                spent = time.thread_time() - started
                self._cpu_s += spent
                self._count("dq_cpu_us", round(spent * 1e6))
        except BaseException as exc:  # noqa: BLE001 - handed to close(), raised in the worker
            self.error = exc
            log.exception("dq_thread_failed")

    def _wait_s(self) -> float:
        if not self._pending_since:
            return self._policy.interval_s
        oldest = min(self._pending_since.values())
        return max(0.01, oldest + self._policy.interval_s - self._clock())

    def _take(self, suite: str, payload: list) -> None:
        if suite == QUOTES:
            self._market.update(payload)
            rows = payload
        else:
            rows = fills_of(payload)
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
        seen_total = self._seen[suite]
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
