"""One way for a test to wait for something to become true: poll it, with a deadline.

`eventually(condition)` calls `condition()` every `every` seconds until it returns something
truthy, and returns that; past `timeout` it fails the test naming `what` and the last value
seen (or the error it raised). `eventually_async` is the same inside an event loop, where a
blocking sleep would stop the very tasks being waited for.

A sleep that lets a duration pass on purpose (an idle session's heartbeats) is not a wait for
a condition and stays a sleep.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# What the last call returned, or raised, for the failure message.
_Seen = tuple[object, BaseException | None]


def _call(condition: Callable[[], T], ignore: tuple[type[BaseException], ...]) -> _Seen:
    try:
        return condition(), None
    except ignore as exc:  # e.g. a server not listening yet: not an answer, keep polling
        return None, exc


def _timed_out(what: str, timeout: float, seen: _Seen, describe: Callable[[], str] | None):
    value, error = seen
    last = f"last raised {type(error).__name__}: {error}" if error else f"last value {value!r}"
    extra = f"\n{describe()}" if describe is not None else ""
    return AssertionError(f"timed out after {timeout:g} s waiting for {what} ({last}){extra}")


def eventually(
    condition: Callable[[], T],
    timeout: float = 10.0,
    every: float = 0.02,
    what: str = "the condition",
    ignore: tuple[type[BaseException], ...] = (),
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll `condition()` until it is truthy and return its value.

    Fails with AssertionError after `timeout` seconds, naming `what` and the last value seen
    (or the last of the `ignore`d errors it raised), then `describe()` if given (say, a
    process's output).
    """
    deadline = time.monotonic() + timeout
    while True:
        seen = _call(condition, ignore)
        if seen[0]:
            return seen[0]  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, seen, describe)
        time.sleep(every)


async def eventually_async(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    every: float = 0.02,
    what: str = "the condition",
    ignore: tuple[type[BaseException], ...] = (),
    describe: Callable[[], str] | None = None,
) -> T:
    """`eventually` inside an event loop: the same polling, sleeping with `asyncio.sleep`.

    `condition` may be a coroutine function (the next frame of a websocket, a browser's
    answer): each call is awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        seen = _call(condition, ignore)
        if inspect.isawaitable(seen[0]):
            try:
                seen = await seen[0], None
            except ignore as exc:
                seen = None, exc
        if seen[0]:
            return seen[0]  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, seen, describe)
        await asyncio.sleep(every)
