"""Ctrl-C and SIGTERM as a stop request, so that a command ends as it does at its normal end.

A terminal's Ctrl-C sends SIGINT to the whole process group: the command and its children
(the data-quality validator, writer processes, edge workers). The children ignore it (each
sets SIGINT to SIG_IGN as it starts) and end when the parent closes their pipe or stops
them; the parent turns the first SIGINT or SIGTERM into `on_stop()` (its input ends, the
flows complete, the sinks flush, the summary is printed, exit 0). A second signal means
"now": KeyboardInterrupt, which the command line reports in one line (exit 130).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(on_stop: Callable[[], object]) -> Iterator[None]:
    """While inside, the first SIGINT/SIGTERM calls `on_stop()`; a second raises
    KeyboardInterrupt. Does nothing off the main thread (signals reach only that one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        on_stop()

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so `finally` blocks run
    (embedded servers stopped, files closed) instead of the process dying where it stands."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
