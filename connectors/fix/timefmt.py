"""Connectors layer: FIX time fields <-> int UTC nanoseconds, fast enough for the decode loop.

Formats: UTCTimestamp `YYYYMMDD-HH:MM:SS[.sss|.ssssss|.sssssssss]` (e.g. SendingTime (52)),
UTCDateOnly `YYYYMMDD` and UTCTimeOnly `HH:MM:SS[.fraction]`. Dates are validated once per
distinct string and cached (the only place `datetime` is used); per message the work is a dict
look-up, a slice and an `int()` of the fraction. Parse errors are `ValueError`; callers turn them
into a `FieldError` naming their tag.

`parse_utc_timestamps` and `parse_utc_times_only` parse a whole column of values at once with
numpy (the batch decoder's market-data path): same formats, same results, and instead of an
error a mask of the values that parse.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from operator import itemgetter

import numpy as np

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CACHE_LIMIT = 65_536

# Multiplier of the fraction digits by total length of a UTCTimestamp (17 = no fraction).
_TIMESTAMP_FRACTION_SCALE = {21: 1_000_000, 24: 1_000, 27: 1}
# Same for UTCTimeOnly (8 = no fraction).
_TIME_FRACTION_SCALE = {12: 1_000_000, 15: 1_000, 18: 1}

_date_ns: dict[bytes, int] = {}  # b"YYYYMMDD" -> ns at midnight UTC
_second_ns: dict[bytes, int] = {}  # b"YYYYMMDD-HH:MM:SS" -> ns
_time_ns: dict[bytes, int] = {}  # b"HH:MM:SS" -> ns after midnight
_date_text: dict[int, str] = {}  # days since epoch -> "YYYYMMDD"


def _two_digits(raw: bytes, at: int, limit: int) -> int:
    pair = raw[at : at + 2]
    if len(pair) != 2 or not pair.isdigit():
        msg = "not two digits"
        raise ValueError(msg)
    value = int(pair)
    if value > limit:
        msg = "out of range"
        raise ValueError(msg)
    return value


def parse_utc_date(raw: bytes) -> int:
    """Parse a UTCDateOnly `YYYYMMDD`, e.g. MDEntryDate (272).

    Args:
        raw: the field value.

    Returns:
        Nanoseconds since the epoch at midnight UTC of that date.

    Raises:
        ValueError: the value is not a valid date in that format.
    """
    ns = _date_ns.get(raw)
    if ns is not None:
        return ns
    if len(raw) != 8 or not raw.isdigit():
        msg = "not YYYYMMDD"
        raise ValueError(msg)
    days = date(int(raw[:4]), int(raw[4:6]), int(raw[6:])).toordinal() - _EPOCH_ORDINAL
    if len(_date_ns) >= _CACHE_LIMIT:
        _date_ns.clear()
    ns = _date_ns[raw] = days * NS_PER_DAY
    return ns


def _time_of_day(raw: bytes) -> int:
    """Nanoseconds after midnight of `HH:MM:SS` (leap second 60 allowed), cached."""
    ns = _time_ns.get(raw)
    if ns is not None:
        return ns
    if len(raw) != 8 or raw[2] != 0x3A or raw[5] != 0x3A:
        msg = "not HH:MM:SS"
        raise ValueError(msg)
    hours = _two_digits(raw, 0, 23)
    minutes = _two_digits(raw, 3, 59)
    seconds = _two_digits(raw, 6, 60)
    if len(_time_ns) >= _CACHE_LIMIT:
        _time_ns.clear()
    ns = _time_ns[raw] = ((hours * 60 + minutes) * 60 + seconds) * NS_PER_SECOND
    return ns


def parse_utc_timestamp(raw: bytes) -> int:
    """Parse a UTCTimestamp, e.g. SendingTime (52) or TransactTime (60).

    Accepts `YYYYMMDD-HH:MM:SS` optionally followed by `.` and 3, 6 or 9 fraction digits.

    Args:
        raw: the field value.

    Returns:
        Nanoseconds since the epoch, UTC.

    Raises:
        ValueError: the value is not a UTCTimestamp.
    """
    head = raw[:17]
    base = _second_ns.get(head)
    if base is None:
        if len(head) != 17 or head[8] != 0x2D:
            msg = "not YYYYMMDD-HH:MM:SS"
            raise ValueError(msg)
        base = parse_utc_date(head[:8]) + _time_of_day(head[9:])
        if len(_second_ns) >= _CACHE_LIMIT:
            _second_ns.clear()
        _second_ns[head] = base
    size = len(raw)
    if size == 17:
        return base
    scale = _TIMESTAMP_FRACTION_SCALE.get(size)
    fraction = raw[18:]
    if scale is None or raw[17] != 0x2E or not fraction.isdigit():
        msg = "bad fraction of a second (3, 6 or 9 digits after '.')"
        raise ValueError(msg)
    return base + int(fraction) * scale


def parse_utc_time_only(raw: bytes) -> int:
    """Parse a UTCTimeOnly `HH:MM:SS[.sss|.ssssss|.sssssssss]`, e.g. MDEntryTime (273).

    Args:
        raw: the field value.

    Returns:
        Nanoseconds after midnight UTC.

    Raises:
        ValueError: the value is not a UTCTimeOnly.
    """
    base = _time_of_day(raw[:8])
    size = len(raw)
    if size == 8:
        return base
    scale = _TIME_FRACTION_SCALE.get(size)
    fraction = raw[9:]
    if scale is None or raw[8] != 0x2E or not fraction.isdigit():
        msg = "bad fraction of a second (3, 6 or 9 digits after '.')"
        raise ValueError(msg)
    return base + int(fraction) * scale


# Fraction digits -> multiplier to nanoseconds, by total length of the value.
_TIMESTAMP_SCALES = {17: 0, **_TIMESTAMP_FRACTION_SCALE}
_TIME_SCALES = {8: 0, **_TIME_FRACTION_SCALE}
# Dates whose nanoseconds fit an int64 with room for a day (years 1678-2261).
_NS_LIMIT = 2**63 - 2 * NS_PER_DAY


def _same_size_groups(raws: Sequence[bytes]) -> list[tuple[int, np.ndarray | None, bytes]]:
    """[(size, row indexes or None for all rows, the values of that size joined)]."""
    if not raws:
        return []
    sizes = np.fromiter(map(len, raws), dtype=np.intp, count=len(raws))
    first = int(sizes[0])
    if (sizes == first).all():
        return [(first, None, b"".join(raws))]
    groups = []
    for size in np.unique(sizes).tolist():
        rows = np.flatnonzero(sizes == size)
        picked = itemgetter(*rows.tolist())(raws) if len(rows) > 1 else (raws[int(rows[0])],)
        groups.append((size, rows, b"".join(picked)))
    return groups


def _clock(table: np.ndarray, at: int, size: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Nanoseconds after midnight of `HH:MM:SS[.fraction]` starting at column `at`, and a mask
    of the rows where it is well formed (hours <= 23, minutes <= 59, seconds <= 60)."""
    digits = table - 48  # uint8: anything but "0"-"9" wraps above 9
    columns = [at, at + 1, at + 3, at + 4, at + 6, at + 7, *range(at + 9, size)]
    ok = (digits[:, columns] <= 9).all(axis=1)
    ok &= (table[:, at + 2] == 0x3A) & (table[:, at + 5] == 0x3A)
    wide = digits[:, columns].astype(np.int64)
    hours = wide[:, 0] * 10 + wide[:, 1]
    minutes = wide[:, 2] * 10 + wide[:, 3]
    seconds = wide[:, 4] * 10 + wide[:, 5]
    ok &= (hours <= 23) & (minutes <= 59) & (seconds <= 60)
    ns = ((hours * 60 + minutes) * 60 + seconds) * NS_PER_SECOND
    if scale:
        ok &= table[:, at + 8] == 0x2E
        fraction = wide[:, 6:] @ (10 ** np.arange(size - at - 10, -1, -1, dtype=np.int64))
        ns += fraction * scale
    return ns, ok


def parse_utc_timestamps(raws: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column of UTCTimestamps at once, as `parse_utc_timestamp` parses each.

    Args:
        raws: the values (at least one).

    Returns:
        (nanoseconds since the epoch as int64, mask): where the mask is True the nanoseconds
        are what `parse_utc_timestamp` returns; where it is False they mean nothing: the value
        does not parse, or its date is outside the years 1678-2261 that int64 holds (ask
        `parse_utc_timestamp` about those).
    """
    count = len(raws)
    ns = np.zeros(count, dtype=np.int64)
    ok = np.zeros(count, dtype=bool)
    for size, rows, joined in _same_size_groups(raws):
        scale = _TIMESTAMP_SCALES.get(size)
        if scale is None:
            continue
        table = np.frombuffer(joined, dtype=np.uint8).reshape(-1, size)
        clock, good = _clock(table, 9, size, scale)
        good &= ((table[:, :8] - 48) <= 9).all(axis=1) & (table[:, 8] == 0x2D)
        days = np.ascontiguousarray(table[:, :8]).view(np.uint64).ravel()
        if (days == days[0]).all():
            day_ns, day_ok = _day_ns(days[:1].tobytes())
            ns_part = clock + day_ns
            good &= day_ok
        else:
            distinct, which = np.unique(days, return_inverse=True)
            pairs = [_day_ns(day.tobytes()) for day in distinct]
            ns_part = clock + np.array([n for n, _ in pairs], dtype=np.int64)[which]
            good &= np.array([g for _, g in pairs], dtype=bool)[which]
        if rows is None:
            ns, ok = ns_part, good
        else:
            ns[rows] = ns_part
            ok[rows] = good
    return ns, ok


def _day_ns(raw: bytes) -> tuple[int, bool]:
    try:
        ns = parse_utc_date(raw)
    except ValueError:
        return 0, False
    if -_NS_LIMIT < ns < _NS_LIMIT:
        return ns, True
    return 0, False


def parse_utc_times_only(raws: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column of UTCTimeOnly values at once, as `parse_utc_time_only` parses each.

    Returns:
        (nanoseconds after midnight as int64, mask of the values that parse).
    """
    count = len(raws)
    ns = np.zeros(count, dtype=np.int64)
    ok = np.zeros(count, dtype=bool)
    for size, rows, joined in _same_size_groups(raws):
        scale = _TIME_SCALES.get(size)
        if scale is None:
            continue
        table = np.frombuffer(joined, dtype=np.uint8).reshape(-1, size)
        clock, good = _clock(table, 0, size, scale)
        if rows is None:
            ns, ok = clock, good
        else:
            ns[rows] = clock
            ok[rows] = good
    return ns, ok


def format_utc_timestamp(ns: int, digits: int = 3) -> str:
    """Format int UTC nanoseconds as a UTCTimestamp for encoders.

    Args:
        ns: nanoseconds since the epoch, UTC.
        digits: fraction digits: 0, 3 (milliseconds), 6 or 9. Extra precision is truncated.

    Returns:
        `YYYYMMDD-HH:MM:SS[.fraction]`.

    Raises:
        ValueError: `digits` is not 0, 3, 6 or 9.
    """
    if digits not in (0, 3, 6, 9):
        msg = f"digits was {digits}, must be 0, 3, 6 or 9"
        raise ValueError(msg)
    days, rest = divmod(ns, NS_PER_DAY)
    day_text = _date_text.get(days)
    if day_text is None:
        if len(_date_text) >= _CACHE_LIMIT:
            _date_text.clear()
        day = date.fromordinal(days + _EPOCH_ORDINAL)
        day_text = f"{day.year:04d}{day.month:02d}{day.day:02d}"
        _date_text[days] = day_text
    seconds, fraction = divmod(rest, NS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    text = f"{day_text}-{hour:02d}:{minute:02d}:{second:02d}"
    if digits:
        text += f".{fraction // 10 ** (9 - digits):0{digits}d}"
    return text
