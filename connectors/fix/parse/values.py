"""Reading single field values: timestamps, numbers, required and optional fields, and the
markers of what the fast paths hand back to the careful path (`_SlowPath`, `_SLOW_PATH_TAGS`).
"""

from __future__ import annotations

import re
from decimal import Decimal

from connectors.fix.codec import (
    SOH,
    show,
)
from connectors.fix.parse.caches import _text
from connectors.fix.tags import DATA_LENGTH_TAGS, DATA_TAGS, label
from connectors.fix.timefmt import (
    NS_PER_DAY,
    parse_utc_date,
    parse_utc_time_only,
    parse_utc_timestamp,
)
from domain.errors import FieldError

# Tags the fast market-data path hands to the generic decoder: data fields (their values may
# hold SOH, which `bytes.split` would cut) and header tags that must not repeat in the body.
_SLOW_PATH_TAGS = frozenset(b"%d" % tag for tag in (*DATA_LENGTH_TAGS, *DATA_TAGS, 8, 9, 10, 35))
_NO_SLOW_PATH_TAGS: frozenset[bytes] = frozenset()
_CHECKSUM_FIELDS = [b"10=%03d" % total for total in range(256)]
_CHECKSUM_TAILS = [field + SOH for field in _CHECKSUM_FIELDS]
_DECIMAL = re.compile(rb"-?(?:\d+(?:\.\d*)?|\.\d+)")


class _SlowPath(Exception):  # noqa: N818 - control flow, never leaves this module
    """The fast market-data path met something only `decode` judges precisely."""


def _timestamp(raw: bytes, tag: int) -> int:
    try:
        return parse_utc_timestamp(raw)
    except ValueError:
        msg = f"{label(tag)} was '{show(raw)}', not a UTCTimestamp"
        raise FieldError(tag, msg) from None


def _entry_time(time_raw: bytes, date_raw: bytes | None, sending_raw: bytes | None) -> int:
    """Event time of MDEntryTime (273) on MDEntryDate (272), else on the date of SendingTime."""
    try:
        time_of_day = parse_utc_time_only(time_raw)
    except ValueError:
        msg = f"MDEntryTime(273) was '{show(time_raw)}', not a UTCTimeOnly"
        raise FieldError(273, msg) from None
    if date_raw is not None:
        try:
            return parse_utc_date(date_raw) + time_of_day
        except ValueError:
            msg = f"MDEntryDate(272) was '{show(date_raw)}', not a UTCDateOnly (YYYYMMDD)"
            raise FieldError(272, msg) from None
    if sending_raw is None:
        msg = "MDEntryTime(273) has neither MDEntryDate(272) nor SendingTime(52) to date it"
        raise FieldError(272, msg)
    sending = _timestamp(sending_raw, 52)
    event = sending - sending % NS_PER_DAY + time_of_day
    if event - sending > NS_PER_DAY // 2:  # stamped before midnight, sent after it
        event -= NS_PER_DAY
    return event


def _md_number(raw: bytes, tag: int) -> float:
    try:
        number = float(raw)
    except ValueError:
        number = float("nan")
    if number - number:  # NaN and +-inf leave NaN (truthy); finite numbers leave 0.0
        msg = f"{label(tag)} was '{show(raw)}', not a number"
        raise FieldError(tag, msg)
    return number


def _not_positive(raw: bytes) -> None:
    # An equity price of zero or less is a feed error, not a market state (docs/decisions.md).
    msg = f"MDEntryPx(270) was {show(raw)}, not positive"
    raise FieldError(270, msg)


def _check_md_numbers(entries: list[tuple]) -> None:
    """Raise the FieldError for the first bad MDEntryPx (270) or MDEntrySize (271), if any."""
    for _, _, price, size, _, _, _ in entries:
        if price is not None:
            _md_number(price, 270)
        if size is not None:
            _md_number(size, 271)


def _rpt_seq(raw: bytes) -> int:
    if not raw.isdigit():
        msg = f"RptSeq(83) was '{show(raw)}', not a sequence number"
        raise FieldError(83, msg)
    return int(raw)


def _required(values: dict[int, bytes], tag: int) -> bytes:
    raw = values.get(tag)
    if raw is None:
        msg = f"{label(tag)} missing"
        raise FieldError(tag, msg)
    return raw


def _optional_text(values: dict[int, bytes], tag: int) -> str | None:
    raw = values.get(tag)
    return None if raw is None else _text(raw)


def _decimal(raw: bytes, tag: int) -> Decimal:
    if not _DECIMAL.fullmatch(raw):
        msg = f"{label(tag)} was '{show(raw)}', not a number"
        raise FieldError(tag, msg)
    return Decimal(raw.decode("ascii"))


def _optional_decimal(values: dict[int, bytes], tag: int) -> Decimal | None:
    raw = values.get(tag)
    return None if raw is None else _decimal(raw, tag)


def _event_time(values: dict[int, bytes]) -> int:
    """TransactTime (60), else SendingTime (52)."""
    raw = values.get(60)
    if raw is not None:
        return _timestamp(raw, 60)
    raw = values.get(52)
    if raw is None:
        msg = "SendingTime(52) missing, and no TransactTime(60)"
        raise FieldError(52, msg)
    return _timestamp(raw, 52)
