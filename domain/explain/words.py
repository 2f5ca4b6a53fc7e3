"""Domain layer, alerts in words: numbers, times and FIX codes as an analyst reads them, and a
rule checked against its threshold ("5.5 % > 5 %")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)


def quantity(value: Decimal | None) -> str:
    """A quantity or an amount with thousands separators and every digit it was given.

    >>> quantity(Decimal("61900.0")), quantity(Decimal("42000.00")), quantity(Decimal("-3.5"))
    ('61,900', '42,000.00', '-3.5')
    """
    if value is None:
        return "?"
    if value == value.to_integral_value() and value.as_tuple().exponent in (-1, 0):
        value = value.to_integral_value()  # a whole volume that came as a float: "61900.0"
    return f"{value:,f}"


def percent(fraction: Decimal | None) -> str:
    """A measured fraction as a percentage with one decimal: `percent(Decimal("0.0549"))` is
    "5.5 %"."""
    return "?" if fraction is None else f"{fraction * 100:.1f} %"


def limit(fraction: Decimal | None) -> str:
    """A configured fraction as a percentage, as exact as it was set: 0.05 is "5 %", 0.025
    is "2.5 %"."""
    if fraction is None:
        return "?"
    return f"{_trim(fraction * 100)} %"


def _trim(number: Decimal) -> str:
    return f"{number.normalize():f}"


def duration(ns: int | None) -> str:
    """A duration in words, to its two largest units (truncated).

    >>> duration(15 * NS_PER_S), duration(1800 * NS_PER_S), duration(48 * 3600 * NS_PER_S)
    ('15 s', '30 min', '48 h')
    >>> duration(11_561 * NS_PER_S), duration(1_500_000_000), duration(250)
    ('3 h 12 min', '1 s 500 ms', '250 ns')
    """
    if ns is None:
        return "?"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    units = ((3600 * NS_PER_S, "h"), (60 * NS_PER_S, "min"), (NS_PER_S, "s"), (NS_PER_MS, "ms"))
    for i, (size, name) in enumerate(units):
        if ns >= size:
            whole, rest = divmod(ns, size)
            text = f"{whole} {name}"
            if i + 1 < len(units) and rest >= units[i + 1][0]:
                text += f" {rest // units[i + 1][0]} {units[i + 1][1]}"
            return sign + text
    return f"{sign}{ns} ns"


def instant(ns: int | None) -> str:
    """An epoch-ns instant in ISO 8601 UTC, to the millisecond.

    >>> instant(1_795_617_041_170_000_000)
    '2026-11-25T14:30:41.170Z'
    """
    if ns is None:
        return "?"
    moment = _moment(ns)
    if moment is None:
        return str(ns)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ns % NS_PER_S // NS_PER_MS:03d}Z"


def _moment(ns: int | None) -> datetime | None:
    if ns is None:
        return None
    try:
        return _EPOCH + timedelta(seconds=ns // NS_PER_S)
    except OverflowError:  # not an instant a venue could send: shown as the number it is
        return None


def day_text(day: int | None) -> str:
    """A UTC day number (days since 1970-01-01, the models' `day`) as an ISO date."""
    if day is None:
        return "?"
    try:
        return (_EPOCH_DAY + timedelta(days=day)).isoformat()
    except OverflowError:
        return str(day)


def _count(n: int | None, one: str, many: str) -> str:
    return f"{'?' if n is None else f'{n:,}'} {one if n == 1 else many}"


SIDES = {"1": "buy", "2": "sell", "5": "sell short", "6": "sell short exempt"}
"""Side (54), in words."""
ORD_TYPES = {"1": "market", "2": "limit", "3": "stop", "4": "stop-limit", "P": "trailing stop"}
"""OrdType (40), in words (P, pegged, is how a trailing stop is sent)."""


_RULES: dict[str, tuple[Callable[[Decimal, Decimal], bool], str]] = {
    ">": (lambda a, b: a > b, "≤"),
    "≥": (lambda a, b: a >= b, "<"),
    "≤": (lambda a, b: a <= b, ">"),
}


def _compare(measured: Decimal | None, rule: str, threshold: Decimal | None) -> str:
    """The rule's operator (">", "≥", "≤") when `measured` meets it, else its negation: the
    finding reads as the rule checked ("5.5 % > 5 %", "0.4 % < 1 %")."""
    if measured is None or threshold is None:
        return "vs"
    holds, negation = _RULES[rule]
    return rule if holds(measured, threshold) else negation


def _share(part: Decimal | None, whole: Decimal | None) -> Decimal | None:
    return part / whole if part is not None and whole else None
