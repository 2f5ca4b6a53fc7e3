"""Python values to and from what chdb reads and writes, by column type: JSON in
(`encode_json_columns`, `JSONCompactColumns`), JSON out (`decode_json_compact`), and Arrow
arrays for `INSERT … SELECT * FROM Python(table)` (`_arrow_columns`)."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from sinks.clickhouse.errors import ClickHouseError


def _unwrap(type_name: str) -> str:
    while True:
        for wrapper in ("Nullable(", "LowCardinality("):
            if type_name.startswith(wrapper):
                type_name = type_name[len(wrapper) : -1]
                break
        else:
            return type_name


def _datetime_scale(type_name: str) -> int:
    match = re.match(r"DateTime64\((\d+)", type_name)
    return int(match[1]) if match else 0


def _json_encoder(type_name: str) -> Callable[[Any], Any] | None:
    """Return how to turn a row value into JSON for a column type (None: as it is)."""
    base = _unwrap(type_name)
    if base.startswith("DateTime"):
        scale = _datetime_scale(base)
        unit = 10**scale
        template = f"%d.%0{scale}d" if scale else "%d"

        def encode_datetime(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, int):
                return template % divmod(value, unit) if scale else "%d" % value
            if isinstance(value, dt.datetime):
                return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return str(value)

        return encode_datetime
    if base.startswith(("Decimal", "UUID", "Int128", "Int256", "UInt128", "UInt256")):
        return _str_or_none
    if base.startswith("Date"):
        return _str_or_none
    return None


def _str_or_none(value: Any) -> Any:
    return None if value is None else str(value)


def _json_decoder(type_name: str) -> Callable[[Any], Any] | None:
    """Return how to turn a JSONCompact value into a Python value for a column type."""
    base = _unwrap(type_name)
    if base.startswith("Decimal"):
        return _decimal_or_none
    if base.startswith("DateTime"):
        return _datetime_or_none
    if base.startswith("Date"):
        return _date_or_none
    if base == "UUID":
        return _uuid_or_none
    if base.startswith("Float"):
        return _float_or_none
    return None


def _decimal_or_none(value: Any) -> Any:
    return None if value is None else Decimal(value)


def _datetime_or_none(value: Any) -> Any:
    # Our DateTime columns are all in UTC ('UTC' in the type, and chdb runs with UTC).
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def _date_or_none(value: Any) -> Any:
    return None if value is None else dt.date.fromisoformat(value)


def _uuid_or_none(value: Any) -> Any:
    return None if value is None else uuid.UUID(value)


def _float_or_none(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value


def decode_json_compact(payload: bytes) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Parse a `FORMAT JSONCompact` result into column names and typed rows."""
    if not payload.strip():
        return [], []
    try:
        doc = json.loads(payload)
        meta = doc["meta"]
    except (ValueError, KeyError, TypeError):
        msg = "the result was not JSONCompact: leave out FORMAT (use --format)"
        raise ClickHouseError(msg) from None
    columns = [column["name"] for column in meta]
    decoders = [_json_decoder(column["type"]) for column in meta]
    if not any(decoders):
        return columns, [tuple(row) for row in doc["data"]]
    rows = [
        tuple(v if f is None else f(v) for f, v in zip(decoders, row, strict=True))
        for row in doc["data"]
    ]
    return columns, rows


def _column_encoder(type_name: str) -> Callable[[Sequence[Any]], list[Any]] | None:
    """Return how to turn a whole column into JSON values (None: as it is).

    Same values as `_json_encoder` per value, with the common cases inlined.
    """
    encode = _json_encoder(type_name)
    if encode is None:
        return None
    if encode is _str_or_none:
        return _str_or_none_column
    base = _unwrap(type_name)
    if base.startswith("DateTime") and _datetime_scale(base):
        scale = _datetime_scale(base)
        unit = 10**scale
        template = f"%d.%0{scale}d"

        def encode_ticks(column: Sequence[Any]) -> list[Any]:
            return [template % divmod(v, unit) if v.__class__ is int else encode(v) for v in column]

        return encode_ticks
    return lambda column: [encode(v) for v in column]


def _str_or_none_column(column: Sequence[Any]) -> list[Any]:
    return [None if v is None else str(v) for v in column]


def encode_json_columns(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return rows as one `JSONCompactColumns` document: a JSON array of column arrays.

    Columns whose type needs no conversion go in as the transposed tuples (JSON arrays too).
    Non-ASCII is written as `\\u` escapes: the C encoder's ASCII path is the faster one, and
    ClickHouse reads the escapes (surrogate pairs included) back to the same UTF-8.
    """
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for index, type_name in enumerate(types):
        encoder = _column_encoder(type_name)
        if encoder is not None:
            columns[index] = encoder(columns[index])
    return json.dumps(columns)


# -- Arrow input (chdb) ---------------------------------------------------------------------------
#
# chdb reads an Arrow table in place through its Python() table function, and INSERT ... SELECT
# converts each column to the table's type (strings to UUID or Decimal, NULL to the default of a
# non-Nullable column, as JSON input does). For 390,517 audit rows this cost ~20 % less Python
# than one json.dumps of the columns, and less of chdb's CPU than parsing that JSON.
# (pyarrow comes with chdb, which requires it.)

_ARROW_TIME_UNITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}
_ARROW_AS_TEXT = ("Decimal", "UUID", "Date", "Int128", "Int256", "UInt128", "UInt256")


def _arrow_array(type_name: str, column: Sequence[Any]) -> Any:
    """Return `column` (Python values as `audit_rows` makes them) as an Arrow array that
    INSERT ... SELECT converts to `type_name`, or None for a type taken only as JSON.

    Raises:
        pyarrow.ArrowException, TypeError, OverflowError: a value does not fit the array type.
    """
    import pyarrow as pa

    base = _unwrap(type_name)
    if base.startswith("DateTime64"):
        unit = _ARROW_TIME_UNITS.get(_datetime_scale(base))
        if unit is None:
            return None
        ticks = pa.array(column, pa.int64())  # int ticks only: a datetime raises, JSON takes it
        return ticks.cast(pa.timestamp(unit, tz="UTC"))
    if base == "String" or base.startswith("FixedString"):
        return pa.array(column, pa.string())
    if base.startswith(_ARROW_AS_TEXT) and not base.startswith("DateTime"):
        return pa.array(_str_or_none_column(column), pa.string())
    if base in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32"):
        return pa.array(column, pa.int64())
    if base == "UInt64":
        return pa.array(column, pa.uint64())
    if base in ("Float32", "Float64"):
        return pa.array(column, pa.float64())
    if base == "Bool":
        return pa.array(column, pa.bool_())
    return None


def _arrow_table(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    """Return rows as an Arrow table (columns `c0`, `c1`...), or None if any column's type or
    value needs the JSON path."""
    return _arrow_columns(types, list(zip(*rows, strict=True)))


def _arrow_columns(types: Sequence[str], columns: Sequence[Sequence[Any]]) -> Any:
    """`_arrow_table` of values given one sequence per column."""
    import pyarrow as pa

    arrays = []
    try:
        for type_name, column in zip(types, columns, strict=True):
            array = _arrow_array(type_name, column)
            if array is None:
                return None
            arrays.append(array)
    except (pa.ArrowException, TypeError, OverflowError):
        return None
    return pa.Table.from_arrays(arrays, names=[f"c{i}" for i in range(len(arrays))])
