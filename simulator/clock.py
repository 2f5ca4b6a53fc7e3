"""Simulator layer: event times as FIX timestamp text, formatted once a second.

Shared by the market and the order flow; nothing here reads the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """Formats event times (ms since the epoch) as FIX UTCTimestamp / UTCTimeOnly bytes."""

    __slots__ = ("_second", "_date_time", "_time")

    def __init__(self) -> None:
        self._second = -1
        self._date_time = b""
        self._time = b""

    def _load(self, second: int) -> None:
        stamp = datetime.fromtimestamp(second, tz=UTC).strftime("%Y%m%d-%H:%M:%S").encode()
        self._second, self._date_time, self._time = second, stamp, stamp[9:]

    def timestamp(self, ts_ms: int) -> bytes:
        second, ms = divmod(ts_ms, 1000)
        if second != self._second:
            self._load(second)
        return b"%s.%03d" % (self._date_time, ms)

    def time_only(self, ts_ms: int) -> bytes:
        second, ms = divmod(ts_ms, 1000)
        if second != self._second:
            self._load(second)
        return b"%s.%03d" % (self._time, ms)
