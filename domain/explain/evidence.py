"""Domain layer, alerts in words: reading an alert's details leniently (`_Evidence`), what the
explainers know of the alert (`_Context`), and the headline of a kind no explainer knows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


class _Evidence:
    """The details, read leniently: a getter returns None for a missing or malformed value.
    `use` marks what the headline and findings said, so that `fields` shows only the rest.
    Paths may name a key of a nested mapping: "thresholds.rise"."""

    __slots__ = ("details", "used")

    def __init__(self, details: Mapping[str, Any]) -> None:
        self.details = details
        self.used: set[str] = set()

    def raw(self, path: str) -> Any:
        value: Any = self.details
        for part in path.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    def num(self, path: str) -> Decimal | None:
        return _decimal(self.raw(path))

    def integer(self, path: str) -> int | None:
        value = self.raw(path)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def price(self, path: str) -> str | None:
        """A price as given (JSON keeps a Decimal's digits in a string)."""
        value = self.raw(path)
        if isinstance(value, str):
            return value or None
        return str(value) if _decimal(value) is not None else None

    def text(self, path: str) -> str | None:
        value = self.raw(path)
        return value if isinstance(value, str) and value else None

    def texts(self, path: str) -> list[str]:
        value = self.raw(path)
        if not isinstance(value, list | tuple):
            return []
        return [str(v) for v in value if isinstance(v, str | int | Decimal) and v != ""]

    def use(self, *paths: str) -> None:
        self.used.update(paths)


@dataclass(frozen=True, slots=True)
class _Context:
    kind: str
    who: str
    symbol: str | None
    ts_ns: int | None  # when the finding was made, if the details say (its occurrence)

    @property
    def shares(self) -> str:
        """What was traded: the symbol, or "shares" when the alert names none."""
        return self.symbol or "shares"


def _decimal(value: Any) -> Decimal | None:
    """A finite Decimal from JSON (str, int, float) or a Decimal; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float | str):
        try:
            number = Decimal(repr(value) if isinstance(value, float) else value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def _finding_ts(details: Mapping[str, Any]) -> int | None:
    """The event time of the finding the top-level evidence is about: its occurrence's
    `ts_ns` (the alert's details name the finding's key in `model_key`)."""
    occurrences = details.get("occurrences")
    key = details.get("model_key")
    if not isinstance(occurrences, Mapping) or not isinstance(key, str):
        return None
    entry = occurrences.get(key)
    ts = entry.get("ts_ns") if isinstance(entry, Mapping) else None
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


def _generic_headline(c: _Context) -> str:
    on = f" in {c.symbol}" if c.symbol else ""
    return f"{c.kind or 'Alert'} for {c.who}{on}"


Explainer = Callable[[_Evidence, _Context], tuple[str, list[str]]]
