"""Domain layer: a time of day (UTC) as nanoseconds after midnight, the one conversion the stop
book's session close, the index circuit breaker's and the marking-the-close model's use.
Pure, stdlib only."""

from __future__ import annotations

from datetime import time

NS_PER_SECOND = 1_000_000_000


def time_of_day_ns(value: time | str) -> int:
    """Nanoseconds after midnight of a `datetime.time` or an "HH:MM" text.

    >>> time_of_day_ns("21:00")
    75600000000000
    >>> time_of_day_ns(time(16, 0, 30, 5))
    57630000005000
    >>> time_of_day_ns("9:30") == time_of_day_ns(time(9, 30))
    True
    """
    if isinstance(value, str):
        hours, minutes = (int(x) for x in value.split(":"))  # ValueError on anything else
        value = time(hours, minutes)
    seconds = value.hour * 3600 + value.minute * 60 + value.second
    return seconds * NS_PER_SECOND + value.microsecond * 1000
