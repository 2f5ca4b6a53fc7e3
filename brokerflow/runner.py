"""Running a dataflow in this process, with a progress line and a summary in numbers.

Bytewax wiring stays in `flows/`; this module only starts the engine (so it could be swapped),
watches the counters and reports.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from bytewax.dataflow import Dataflow
from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main, run_main

from brokerflow.metrics import FlowStats
from brokerflow.peers import watch_peers
from domain.errors import BrokerflowError
from sinks.background import take_failures


@dataclass
class RunSummary:
    """What a run did, in numbers (the `replay` summary and its `--json` line)."""

    counts: dict[str, int]
    seconds: float
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        c = self.counts
        messages = c.get("messages", 0)
        return {
            "files": self.files,
            "messages": messages,
            "dead_letters": c.get("dead_letters", 0),
            "admin_messages": c.get("admin", 0),
            "symbols": c.get("symbols", 0),
            "quotes": c.get("quotes_published", 0),
            "stale_quotes_skipped": c.get("quotes_stale", 0),
            # published with bid > ask: all of them, and those without the stale flag (a bug)
            "crossed_quotes": c.get("crossed_quotes", 0),
            "crossed_quotes_unflagged": c.get("crossed_quotes_unflagged", 0),
            "stale_books": stale_books(c),
            "executions": c.get("executions", 0),
            "stops": {k[6:]: v for k, v in sorted(c.items()) if k.startswith("stops_") and v},
            "orders_out": c.get("orders_out", 0),
            "alerts": {k[7:]: v for k, v in sorted(c.items()) if k.startswith("alerts.")},
            # traders' price alerts (flows.price_alerts): rested from PostgreSQL, and how long
            # that took (summed over the shards), fired by the book
            "price_alerts": {
                "loaded": c.get("price_alerts_loaded", 0),
                "load_ms": c.get("price_alerts_load_ms", 0),
                "fired": c.get("price_alerts_fired", 0),
            },  # fmt: skip
            "data_quality": data_quality(c),
            "seconds": round(self.seconds, 3),
            "messages_per_s": round(messages / self.seconds) if self.seconds > 0 else 0,
        }

    def lines(self) -> list[str]:
        d = self.as_dict()
        alerts = ", ".join(f"{k} {v:,}" for k, v in d["alerts"].items()) or "none"
        return [
            f"messages      {d['messages']:>12,}  "
            f"({d['messages_per_s']:,}/s over {d['seconds']:.2f} s)",
            f"dead letters  {d['dead_letters']:>12,}",
            f"admin msgs    {d['admin_messages']:>12,}  (session-level, not used by the flows)",
            f"symbols       {d['symbols']:>12,}",
            f"quotes        {d['quotes']:>12,}  published to Redis "
            f"({d['stale_quotes_skipped']:,} already there, skipped)",
            f"crossed       {d['crossed_quotes']:>12,}  quotes with bid > ask published: "
            f"{d['crossed_quotes'] - d['crossed_quotes_unflagged']:,} flagged stale, "
            f"{d['crossed_quotes_unflagged']:,} unflagged",
            stale_books_line(d["stale_books"]),
            f"executions    {d['executions']:>12,}",
            "stops         "
            + (", ".join(f"{v:,} {k}" for k, v in d["stops"].items()) or "none")
            + (f"; {d['orders_out']:,} child orders sent" if d["orders_out"] else ""),
            f"alerts        {alerts}",
        ] + data_quality_lines(d["data_quality"])


def stale_books(c: dict[str, int]) -> dict:
    """The book-integrity counters of a run (`flows.quotes`, docs/book-integrity.md): symbols
    whose quotes went stale, sound -> stale transitions by reason, event-time seconds stale
    (summed over the symbols), increments ignored as duplicates, symbols stale at the end."""
    return {
        "symbols": c.get("book_stale_symbols", 0),
        "reasons": {k[11:]: v for k, v in sorted(c.items()) if k.startswith("book_stale.") and v},
        "seconds": round(sum(v for k, v in c.items() if k.startswith("book_stale_ns.")) / 1e9, 3),
        "duplicates": c.get("book_duplicates", 0),
        "stale_at_end": c.get("books_stale", 0),
    }


def stale_books_line(d: dict) -> str:
    """`stale books   N  (reasons: rptseq_gap 3, crossed 2; 41.2 s stale; ...)`."""
    reasons = ", ".join(f"{k} {v:,}" for k, v in d["reasons"].items()) or "none"
    return (
        f"stale books   {d['symbols']:>12,}  (reasons: {reasons}; {d['seconds']:,.1f} s stale; "
        f"{d['stale_at_end']:,} stale at the end; {d['duplicates']:,} duplicates ignored)"
    )


def data_quality(c: dict[str, int]) -> dict:
    """The data-quality counters of a run (`quality.runner`) per suite, with coverage."""
    suites = sorted({k.split(".", 1)[1] for k in c if k.startswith("dq_seen.")})

    def per(prefix: str) -> dict[str, int]:
        return {s: c.get(f"{prefix}.{s}", 0) for s in suites}

    seen, covered = per("dq_seen"), per("dq_covered")
    return {
        "validations": per("dq_validations"),
        "failed_validations": per("dq_validations_failed"),
        "rows_validated": per("dq_rows"),
        "rows_failed": per("dq_rows_failed"),
        "coverage": {s: round(covered[s] / seen[s], 4) if seen[s] else 0.0 for s in suites},
        "cpu_s": round(c.get("dq_cpu_us", 0) / 1e6, 3),
    }


def data_quality_lines(dq: dict) -> list[str]:
    if not dq["coverage"]:
        return []
    parts = [
        f"{suite} {dq['rows_validated'][suite]:,} rows, {dq['rows_failed'][suite]:,} failed, "
        f"{dq['coverage'][suite]:.0%} covered"
        for suite in dq["coverage"]
    ]
    return [f"data quality  {'; '.join(parts)} ({dq['cpu_s']:.2f} s validating)"]


class Progress:
    """Prints one status line per interval to a stream while a run goes on."""

    def __init__(
        self,
        stats: FlowStats,
        label: str,
        out: TextIO = sys.stderr,
        interval_s: float = 1.0,
        extra: Callable[[], str] | None = None,
    ) -> None:
        self._stats = stats
        self._label = label
        self._out = out
        self._interval_s = interval_s
        self._extra = extra
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self) -> Progress:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        last_n, last_t = 0, self._t0
        while not self._stop.wait(self._interval_s):
            c = self._stats.snapshot()
            now = time.monotonic()
            n = c.get("messages", 0)
            rate = (n - last_n) / (now - last_t) if now > last_t else 0.0
            last_n, last_t = n, now
            line = (
                f"{self._label}: {n:,} messages ({rate:,.0f}/s), "
                f"{c.get('dead_letters', 0):,} dead letters, "
                f"{c.get('quotes_published', 0):,} quotes, {now - self._t0:.0f} s"
            )
            if self._extra:
                line += self._extra()
            print(line, file=self._out, flush=True)


# The flows allocate many short-lived objects per message and build no reference cycles on the
# hot path: CPython's default gen-0 threshold (700) made the collector cost ~6 % of a replay.
# 1,000,000 rather than 100,000: with the ledger and audit writers holding batches on their
# threads, objects lived long enough to be scanned; `bench executions` spent 1.2-1.3 s in 15-19
# young collections at 100,000 and 0.12 s in 7 at 1,000,000 (most objects die unscanned).
GC_THRESHOLD = (1_000_000, 50, 100)


@contextmanager
def tuned_gc() -> Iterator[None]:
    """The collector settings of a run (`GC_THRESHOLD`, start-up objects frozen), then back."""
    gc.collect()
    gc.freeze()  # start-up objects (modules, settings) are never garbage: stop scanning them
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def recovery_config(recovery_dir: Path) -> RecoveryConfig:
    """Bytewax recovery in `recovery_dir`, created with one partition on first use.

    An existing directory resumes where the last run stopped (its snapshots); a run that is
    meant to start from the beginning needs a fresh directory.
    """
    recovery_dir.mkdir(parents=True, exist_ok=True)
    if not any(recovery_dir.glob("*.sqlite3")):
        init_db_dir(recovery_dir, 1)
    return RecoveryConfig(recovery_dir)


def run_dataflow(
    flow: Dataflow,
    workers: int = 1,
    recovery_dir: Path | None = None,
    snapshot_s: float = 1.0,
    process_id: int = 0,
    addresses: list[str] | None = None,
) -> None:
    """Run `flow` to completion in this process (`workers` threads).

    With `addresses` ("host:port" of every process, this one at `process_id`), this process is
    one of a Bytewax cluster; each process runs the same command with its own `process_id`.

    With `recovery_dir`, state is snapshotted every `snapshot_s` seconds (one epoch) and a
    killed run resumes from its last snapshot; Bytewax then replays at most one epoch of input,
    which the sinks absorb because every write is keyed by the input.
    """
    options: dict = {}
    if recovery_dir is not None:
        options["recovery_config"] = recovery_config(recovery_dir)
        options["epoch_interval"] = timedelta(seconds=snapshot_s)
    if not os.environ.get("BROKERFLOW_DEBUG"):
        # A step that fails makes Bytewax's Rust core panic; its backtrace helps no operator.
        os.environ["RUST_BACKTRACE"] = "0"
    take_failures()  # a previous run's, in this process
    try:
        with tuned_gc():
            if workers <= 1 and not addresses:
                run_main(flow, **options)
            else:
                # A lost peer stops this process too; say which (PeerLost), in one line.
                with watch_peers(addresses, process_id):
                    cluster_main(
                        flow, addresses or [], process_id, worker_count_per_proc=workers, **options
                    )
    except BrokerflowError:
        take_failures()
        raise  # already says what is wrong, in one line
    except BaseException as exc:
        # Bytewax raises a step's error wrapped (BytewaxRuntimeError), or as it was when the
        # step ran in the calling thread (run_main): either way the flow stopped for it. A
        # cluster's worker failure comes as PanicException, a BaseException.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit
        take_failures()  # found while the flow stopped for `exc`: that is the error to show
        raise FlowStopped.from_error(exc) from exc
    failures = take_failures()  # a background write that failed as its partition closed
    if failures:
        raise FlowStopped.from_error(failures[0]) from failures[0]


class FlowStopped(BrokerflowError):
    """The flow stopped because a step failed for good (e.g. a store down for longer than its
    sink retries); what was written stays written, and a restart with the same recovery
    directory resumes."""

    @classmethod
    def from_error(cls, exc: BaseException) -> FlowStopped:
        # The chain runs Bytewax error -> the step's exception -> its low-level causes; the
        # step's own exception says what failed (e.g. "redis ConnectionError: Error 111
        # connecting to ...", noted "gave up after 8 attempts").
        error, seen = exc, {id(exc)}
        while isinstance(error, BytewaxRuntimeError) or type(error).__name__ == "PanicException":
            nxt = error.__cause__ or error.__context__
            if nxt is None or id(nxt) in seen:
                break
            error, seen = nxt, seen | {id(nxt)}
        kind = type(error)
        package = kind.__module__.split(".")[0]
        name = kind.__name__ if package == "builtins" else f"{package} {kind.__name__}"
        detail = " ".join(str(error).split()) or kind.__name__
        notes = "; ".join(getattr(error, "__notes__", ()))
        return cls(f"the flow stopped: {name}: {detail}" + (f" ({notes})" if notes else ""))
