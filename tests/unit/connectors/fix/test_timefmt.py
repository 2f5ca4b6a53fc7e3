from datetime import UTC, datetime

import pytest

from connectors.fix.timefmt import (
    format_utc_timestamp,
    parse_utc_date,
    parse_utc_time_only,
    parse_utc_timestamp,
)


def _ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000_000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"20240102-14:30:05", _ns(2024, 1, 2, 14, 30, 5)),
        (b"20240102-14:30:05.123", _ns(2024, 1, 2, 14, 30, 5) + 123_000_000),
        (b"20240102-14:30:05.123456", _ns(2024, 1, 2, 14, 30, 5) + 123_456_000),
        (b"20240102-14:30:05.123456789", _ns(2024, 1, 2, 14, 30, 5) + 123_456_789),
        (b"19000101-00:00:00", _ns(1900, 1, 1, 0, 0, 0)),
        (b"20161231-23:59:60", _ns(2017, 1, 1, 0, 0, 0)),
    ],
)
def test_parse_utc_timestamp_formats(raw: bytes, expected: int) -> None:
    assert parse_utc_timestamp(raw) == expected
    assert parse_utc_timestamp(raw) == expected  # cached path gives the same


@pytest.mark.parametrize(
    "raw",
    [
        b"TODAY",
        b"20110909",
        b"00000000-00:00:00",
        b"20240230-10:00:00",
        b"20240102-24:00:00",
        b"20240102-14:60:00",
        b"20240102 14:30:05",
        b"20240102-14:30:05.12",
        b"20240102-14:30:05.1234",
        b"20240102-14:30:05,123",
        b"20240102-14:30:05.12a",
        b"2024010a-14:30:05",
        b"20240102-1+:30:05",
        b"",
    ],
)
def test_parse_utc_timestamp_malformed_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_utc_timestamp(raw)


def test_parse_utc_date_and_time_only() -> None:
    assert parse_utc_date(b"20080724") == _ns(2008, 7, 24, 0, 0, 0)
    assert parse_utc_time_only(b"13:42:27.208") == ((13 * 60 + 42) * 60 + 27) * 10**9 + 208 * 10**6
    assert parse_utc_time_only(b"07:30:47") == ((7 * 60 + 30) * 60 + 47) * 10**9
    for bad in (b"2011101", b"20111012-22:15:30.444", b"20111312"):
        with pytest.raises(ValueError):
            parse_utc_date(bad)
    for bad in (b"20111012-22:15:30.444", b"7:30:47", b"07:30:47.1", b"25:00:00"):
        with pytest.raises(ValueError):
            parse_utc_time_only(bad)


@pytest.mark.parametrize("digits", [0, 3, 6, 9])
def test_format_utc_timestamp_round_trips(digits: int) -> None:
    ns = _ns(2024, 6, 10, 6, 13, 20) + 123_456_789
    text = format_utc_timestamp(ns, digits)
    assert len(text) == 17 + (digits + 1 if digits else 0)
    assert parse_utc_timestamp(text.encode()) == ns - ns % 10 ** (9 - digits)


def test_format_utc_timestamp_before_1970_and_bad_digits() -> None:
    assert format_utc_timestamp(_ns(1900, 1, 1, 0, 0, 0)) == "19000101-00:00:00.000"
    with pytest.raises(ValueError):
        format_utc_timestamp(0, 2)
