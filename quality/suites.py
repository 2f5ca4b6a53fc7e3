"""Data quality: the expectation suites, as plain data kept in the repository.

Each `Check` names a Great Expectations expectation class and its arguments; `quality.validator`
turns them into a GX `ExpectationSuite`. Nothing here imports GX, so the suites can be read,
listed and tested without its multi-second import.

Columns the suites expect are built by `quality.frames`:
    quotes  symbol, bid, ask, bid_size, ask_size, ltp, age_s (reference time - event time)
    fills   exec_id, symbol, last_qty, order_qty, cum_qty, leaves_qty, open_qty
            (OrderQty - CumQty), last_px, px_dev_bps (|LastPx - market| / market, in bp)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

QUOTES = "quotes"
FILLS = "fills"
SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9./:_-]{0,31}$"
"""A symbol when no instrument list is configured: upper-case ticker characters, 1-32 long."""


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation of a suite.

    Attributes:
        name: short stable name, used in dead-letter reasons and metrics labels.
        expectation: the GX expectation class in `great_expectations.expectations`.
        kwargs: its arguments (columns, bounds).
        tag: the FIX tag a failing row is blamed on in its dead letter.
    """

    name: str
    expectation: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    tag: int | None = None

    def describe(self) -> str:
        """Return `name (expectation)` for a dead letter's reason."""
        return f"{self.name} ({self.expectation})"


@dataclass(frozen=True, slots=True)
class Suite:
    """A named set of checks over the columns of one stream."""

    name: str
    checks: tuple[Check, ...]

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        msg = f"suite {self.name} has no check {name!r}"
        raise KeyError(msg)


def _between(name: str, column: str, tag: int, **bounds: Any) -> Check:
    return Check(name, "ExpectColumnValuesToBeBetween", {"column": column, **bounds}, tag)


def _a_at_least_b(name: str, column_a: str, column_b: str, tag: int) -> Check:
    kwargs = {
        "column_A": column_a,
        "column_B": column_b,
        "or_equal": True,
        "ignore_row_if": "either_value_is_missing",
    }
    return Check(name, "ExpectColumnPairValuesAToBeGreaterThanB", kwargs, tag)


def quote_suite(symbols: Iterable[str] | None, max_age_s: float, max_ahead_s: float) -> Suite:
    """Expectations of normalised L1 quotes (what goes to Redis `quote:{SYMBOL}`).

    Args:
        symbols: the known instruments; None checks the symbol's shape only.
        max_age_s: how far behind the reference time an event time may be.
        max_ahead_s: how far ahead of it (clock skew allowed).
    """
    if symbols is not None:
        known = Check(
            "known_symbol", "ExpectColumnValuesToBeInSet",
            {"column": "symbol", "value_set": sorted(symbols)}, 55,
        )  # fmt: skip
    else:
        known = Check(
            "known_symbol", "ExpectColumnValuesToMatchRegex",
            {"column": "symbol", "regex": SYMBOL_PATTERN}, 55,
        )  # fmt: skip
    return Suite(
        QUOTES,
        (
            _a_at_least_b("bid_le_ask", "ask", "bid", 270),
            _between("bid_positive", "bid", 270, min_value=0, strict_min=True),
            _between("ask_positive", "ask", 270, min_value=0, strict_min=True),
            _between("last_positive", "ltp", 270, min_value=0, strict_min=True),
            _between("bid_size_non_negative", "bid_size", 271, min_value=0),
            _between("ask_size_non_negative", "ask_size", 271, min_value=0),
            known,
            _between(
                "event_time_plausible", "age_s", 60, min_value=-max_ahead_s, max_value=max_age_s
            ),  # fmt: skip
        ),
    )


def fill_suite(px_band_bps: float) -> Suite:
    """Expectations of fills (execution reports with LastQty (32) set).

    Args:
        px_band_bps: how far LastPx (31) may be from the market (last trade, else mid), in basis
            points.
    """
    return Suite(
        FILLS,
        (
            Check("exec_id_unique", "ExpectColumnValuesToBeUnique", {"column": "exec_id"}, 17),
            _between("last_qty_positive", "last_qty", 32, min_value=0, strict_min=True),
            _a_at_least_b("last_qty_le_order_qty", "order_qty", "last_qty", 32),
            _a_at_least_b("cum_qty_le_order_qty", "order_qty", "cum_qty", 14),
            Check(
                "leaves_qty_is_order_qty_minus_cum_qty",
                "ExpectColumnPairValuesToBeEqual",
                {
                    "column_A": "leaves_qty",
                    "column_B": "open_qty",
                    "ignore_row_if": "either_value_is_missing",
                },
                151,
            ),  # fmt: skip
            _between("last_px_near_market", "px_dev_bps", 31, max_value=px_band_bps),
        ),
    )
