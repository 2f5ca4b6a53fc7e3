"""Sinks layer: the signals of the child processes that write for a run (the writer processes,
the data-quality validator).

Ctrl-C in a terminal sends SIGINT to the whole process group, and a service manager may send
SIGTERM to it: the parent turns the first into an orderly stop (`brokerflow.interrupts`) and
stops its children itself, in order. A child must therefore not act on either: it is started
with both blocked (`interrupts_blocked`, around `Process.start`: the child inherits the mask,
so a signal during its start-up waits) and sets them aside first thing (`ignore_interrupts`).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker

GROUP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def interrupts_blocked() -> Iterator[None]:
    """Around a child's start: SIGINT and SIGTERM blocked in this thread, restored after."""
    # Started first: starting the resource tracker unblocks SIGINT and SIGTERM in this thread.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def ignore_interrupts() -> None:
    """In the child: drop SIGINT and SIGTERM (one sent during start-up too), then unblock."""
    for signum in GROUP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
