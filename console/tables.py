"""Console layer: rows as people and programs read them — an aligned text table, CSV with a
header, or JSON — shared by `brokerflow sql`, `brokerflow report`, `brokerflow alerts` and the
console's HTTP API, so a report downloaded from the browser is the one the CLI prints.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")


def _text(value: Any) -> str:
    """Render one value for the table and CSV formats."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", "replace")
        return text.replace("\x01", "|").replace("\x00", "\\x00")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _json_value(value: Any) -> Any:
    """Render one value for the JSON format."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value() and abs(value) < 2**53:
            return int(value)
        as_float = float(value)
        # A number when a float shows it exactly, else a string so no digit is lost.
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview | dt.datetime | dt.date | dt.time):
        return _text(value)
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    if isinstance(value, dict | list):
        return json.loads(json.dumps(value, default=_json_default))
    return value


def _json_default(value: Any) -> Any:
    converted = _json_value(value)
    return converted if converted is not value else str(value)


def write_result(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: TextIO
) -> None:
    """Print rows as an aligned text table, CSV with a header, or one JSON array of objects."""
    if fmt == "json":
        records = [dict(zip(columns, map(_json_value, row), strict=True)) for row in rows]
        out.write(json.dumps(records, default=_json_default, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_text(v) for v in row] for row in rows)
        return
    if not columns:
        out.write("(no result set)\n")
        return
    cells = [[_text(v).replace("\n", "\\n") for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    numeric = [
        bool(rows)
        and all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return " | ".join(parts).rstrip()

    out.write(line(columns) + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")
    out.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")


def json_value(value: Any) -> Any:
    """One value as JSON carries it (decimals as numbers when exact, else strings)."""
    return _json_value(value)


def records(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as JSON-ready objects, as the `json` format writes them."""
    return [dict(zip(columns, map(_json_value, row), strict=True)) for row in rows]


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as CSV text with a header, as the `csv` format writes them."""
    out = io.StringIO()
    write_result(columns, rows, "csv", out)
    return out.getvalue()
