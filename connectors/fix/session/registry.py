"""Connectors layer: the FIX sessions of this process, as the metrics read them.

The engine `track`s every `SessionState` it makes (one per connection: a reconnect makes a
new one); `figures()` gives each session's latest state and its counts summed over all its
connections, so a reconnect does not reset a counter. Read at scrape time only.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from connectors.fix.session.state import SessionState

COUNTS = ("resend_requests_sent", "resend_requests_received", "rejects_sent", "rejects_received")

_lock = threading.Lock()
_current: dict[str, SessionState] = {}
_earlier: dict[str, Counter[str]] = {}  # counts of the states a reconnect replaced


@dataclass(frozen=True, slots=True)
class SessionFigures:
    """One session as the metrics show it."""

    name: str
    logged_on: bool
    next_sender_seq: int
    next_target_seq: int
    counts: dict[str, int]


def track(state: SessionState) -> SessionState:
    """Record `state` as its session's current one; return it."""
    name = state.config.name
    with _lock:
        old = _current.get(name)
        if old is not None and old is not state:
            earlier = _earlier.setdefault(name, Counter())
            for key in COUNTS:
                earlier[key] += getattr(old, key)
        _current[name] = state
    return state


def figures() -> list[SessionFigures]:
    """Every session this process has run, by name."""
    with _lock:
        states = sorted(_current.items())
        earlier = {name: Counter(c) for name, c in _earlier.items()}
    return [
        SessionFigures(
            name, state.logged_on, state.store.next_sender, state.store.next_target,
            {key: earlier.get(name, Counter())[key] + getattr(state, key) for key in COUNTS},
        )
        for name, state in states
    ]  # fmt: skip
