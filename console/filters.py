"""Console layer (pure): the alert queue's query parameters, checked, with one-line reasons.

A bad value is refused with the parameter's name and what was expected (HTTP 400), never
ignored: a filter silently dropped would show an analyst the wrong queue.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass

from domain.errors import BrokerflowError
from domain.triage import STATUSES
from edge.roles import ACCOUNT_KINDS, SURVEILLANCE_KINDS

KINDS = tuple(sorted(ACCOUNT_KINDS | SURVEILLANCE_KINDS))
SORTS = ("priority", "time")
SUPPRESSED = ("exclude", "include", "only")
MAX_LIMIT = 500


class BadRequest(BrokerflowError):
    """A query parameter or body field is not valid (HTTP 400); the message names it."""


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """The queue's filters. Time bounds are on the alert's event time, `[since, until)`."""

    kinds: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    severity_min: int | None = None
    account: str | None = None
    owner: str | None = None
    symbol: str | None = None
    assignee: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 50
    cursor: tuple | None = None
    sort: str = "priority"
    suppressed: str = "exclude"


def parse_time(name: str, text: str) -> dt.datetime:
    """An ISO 8601 date or date-time; without a zone it is UTC.

    >>> parse_time("from", "2026-11-25").isoformat()
    '2026-11-25T00:00:00+00:00'
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        msg = f"{name}: {text!r} is not an ISO 8601 date or time (e.g. 2026-11-25T14:30:00Z)"
        raise BadRequest(msg) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _choices(name: str, text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(v.strip().upper() for v in text.split(",") if v.strip())
    for value in values:
        if value not in allowed:
            msg = f"{name}: unknown value {value!r} (one of {', '.join(allowed)})"
            raise BadRequest(msg)
    return values


def _int(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        msg = f"{name}: {text!r} is not a whole number from {low} to {high}"
        raise BadRequest(msg)
    return value


def encode_cursor(key: tuple) -> str:
    """An opaque cursor for the row after which the next page starts."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(text: str, size: int) -> tuple:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != size:
        msg = "cursor: not a cursor this API gave out (take next_cursor of the previous page)"
        raise BadRequest(msg)
    return tuple(key)


KNOWN = {"kind", "status", "severity_min", "account", "owner", "symbol", "assignee", "from",
         "to", "limit", "cursor", "sort", "suppressed", "token"}  # fmt: skip


def parse_alert_filter(params: Mapping[str, str]) -> AlertFilter:
    """The queue's filters from query parameters.

    Raises:
        BadRequest: an unknown parameter or kind or status, a malformed time or number.
    """
    for name in params:
        if name not in KNOWN:
            msg = f"unknown parameter {name!r} (known: {', '.join(sorted(KNOWN - {'token'}))})"
            raise BadRequest(msg)

    def text(name: str) -> str | None:
        value = params.get(name)
        return value.strip() or None if value is not None else None

    sort = (text("sort") or "priority").lower()
    if sort not in SORTS:
        msg = f"sort: unknown value {sort!r} (one of {', '.join(SORTS)})"
        raise BadRequest(msg)
    suppressed = (text("suppressed") or "exclude").lower()
    if suppressed not in SUPPRESSED:
        msg = f"suppressed: unknown value {suppressed!r} (one of {', '.join(SUPPRESSED)})"
        raise BadRequest(msg)
    since = parse_time("from", params["from"]) if text("from") else None
    until = parse_time("to", params["to"]) if text("to") else None
    if since and until and until <= since:
        msg = "to: must be after from"
        raise BadRequest(msg)
    cursor_text = text("cursor")
    return AlertFilter(
        kinds=_choices("kind", params.get("kind", ""), KINDS),
        statuses=_choices("status", params.get("status", ""), STATUSES),
        severity_min=_int("severity_min", params["severity_min"], 0, 100)
        if text("severity_min") else None,
        account=text("account"), owner=text("owner"),
        symbol=(text("symbol") or "").upper() or None, assignee=text("assignee"),
        since=since, until=until,
        limit=_int("limit", params["limit"], 1, MAX_LIMIT) if text("limit") else 50,
        cursor=decode_cursor(cursor_text, 4 if sort == "priority" else 2)
        if cursor_text else None,
        sort=sort, suppressed=suppressed,
    )  # fmt: skip
