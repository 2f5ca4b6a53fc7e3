"""The execution-report fast path: where each field of a 35=8 sits, compiled once per tag
sequence (`_compile_exec_plan`) and read per line (`_run_exec_plan`).
"""

from __future__ import annotations

from decimal import Decimal

from connectors.fix.parse.caches import _text, _text_cache
from connectors.fix.parse.factories import _make_execution_report
from connectors.fix.parse.messages import (
    _EXEC_TYPE_BY_ORD_STATUS,
    _EXEC_TYPE_BY_TRANS_TYPE,
    _ZERO,
    Event,
)
from connectors.fix.parse.values import _DECIMAL, _SLOW_PATH_TAGS, _SlowPath
from connectors.fix.timefmt import (
    parse_utc_timestamp,
)
from domain.execution_reports import execution_report_problem

# -- execution-report plans: where each field of a 35=8 sits, decided once per tag sequence --
#
# `parse_execution_report` reads the first value of a fixed set of tags. Which position holds
# each of them depends on the tags alone, so `_compile_exec_plan` works it out once per distinct
# tag sequence (an engine sends a handful) and `_run_exec_plan` only reads and converts values.
# A plan is None for tags the plain path would not judge the same way (a tag that is not a plain
# positive number, a header or data field, any repeated tag, a required field missing), and
# `_run_exec_plan` returns None on any value it does not like: `_parse_tokens` then gives the
# event or, through the careful path, the precise dead letter.

_EXEC_PLANS: dict[bytes, tuple | None] = {}
_DECIMAL_CACHE_LIMIT = 65_536
_decimal_cache: dict[bytes, Decimal] = {}
# The tags a plan locates, in the order of the plan's indexes; the first 7 are required (the
# time is 60 if present, else 52).
_EXEC_PLAN_TAGS = (17, 37, 39, 55, 54, 14, 151, 6, 38, 32, 31, 150, 20, 44, 99, 11, 41, 1, 40)
_EXEC_PLAN_TAIL_TAGS = (880, 19, 58, 43)
_EXEC_PLAN_REQUIRED = 7
_OLD_BEGIN_STRINGS = frozenset((b"FIX.4.0", b"FIX.4.1"))


def _compile_exec_plan(tags: list[bytes]) -> tuple | None:
    """Locate the fields `parse_execution_report` reads in a 35=8 with these body tags.

    Args:
        tags: the tags after MsgType (35) and before CheckSum (10), in wire order.

    Returns:
        The index of each tag of `_EXEC_PLAN_TAGS` (-1 for absent), then the index of the
        event time (TransactTime (60), else SendingTime (52)), then those of
        `_EXEC_PLAN_TAIL_TAGS`. None when a tag is not a plain positive number, is a header
        or data field, or repeats, or when a required field or both times are missing.
    """
    slow_tags = _SLOW_PATH_TAGS
    at_of: dict[bytes, int] = {}
    for at, tag in enumerate(tags):
        if not tag.isdigit() or tag[0] == 0x30 or tag in slow_tags or tag in at_of:
            return None
        at_of[tag] = at
    ats = [at_of.get(b"%d" % tag, -1) for tag in _EXEC_PLAN_TAGS]
    if min(ats[:_EXEC_PLAN_REQUIRED]) < 0:
        return None
    time_at = at_of.get(b"60", at_of.get(b"52", -1))
    if time_at < 0:
        return None
    ats.append(time_at)
    ats.extend(at_of.get(b"%d" % tag, -1) for tag in _EXEC_PLAN_TAIL_TAGS)
    return tuple(ats)


def _plan_decimal(raw: bytes) -> Decimal:
    """`_decimal` without the tag, cached per value; _SlowPath where `_decimal` would fail."""
    value = _decimal_cache.get(raw)
    if value is None:
        if not _DECIMAL.fullmatch(raw):
            raise _SlowPath
        if len(_decimal_cache) >= _DECIMAL_CACHE_LIMIT:
            _decimal_cache.clear()
        value = _decimal_cache[raw] = Decimal(raw.decode("ascii"))
    return value


def _run_exec_plan(plan: tuple, values: list[bytes], raw: bytes, source: str) -> list[Event] | None:
    """Build the report of a 35=8 (FIX 4.2+) by `plan` as `parse_execution_report` does, or None.

    None sends the line to `_parse_tokens`, and from there to the careful path on any error.

    Args:
        plan: from `_compile_exec_plan` for the message's tags.
        values: the values after MsgType (35) and before CheckSum (10), in wire order.
        raw: the message as received.
        source: where it came from.
    """
    (
        exec_id_at,
        order_id_at,
        ord_status_at,
        symbol_at,
        side_at,
        cum_qty_at,
        leaves_qty_at,
        avg_px_at,
        order_qty_at,
        last_qty_at,
        last_px_at,
        exec_type_at,
        trans_type_at,
        price_at,
        stop_px_at,
        cl_ord_id_at,
        orig_cl_ord_id_at,
        account_at,
        ord_type_at,
        time_at,
        trd_match_id_at,
        exec_ref_id_at,
        text_at,
        poss_dup_at,
    ) = plan
    number = _plan_decimal
    text_of = _text_cache.get
    try:
        cum_qty = number(values[cum_qty_at])
        if avg_px_at >= 0:
            avg_px = number(values[avg_px_at])
        elif cum_qty:
            return None
        else:
            avg_px = _ZERO
        order_qty = None if order_qty_at < 0 else number(values[order_qty_at])
        last_qty = None if last_qty_at < 0 else number(values[last_qty_at])
        last_px = None if last_px_at < 0 else number(values[last_px_at])
        leaves_qty = number(values[leaves_qty_at])
        price = None if price_at < 0 else number(values[price_at])
        stop_px = None if stop_px_at < 0 else number(values[stop_px_at])
        ts_event = parse_utc_timestamp(values[time_at])
    except (_SlowPath, ValueError):
        return None
    value = values[ord_status_at]
    ord_status = text_of(value) or _text(value)
    if exec_type_at >= 0:
        value = values[exec_type_at]
        exec_type = text_of(value) or _text(value)
        if exec_type == "1" or exec_type == "2":
            if last_qty is None:
                return None
            if last_qty > 0:
                exec_type = "F"
            else:
                exec_type = _EXEC_TYPE_BY_ORD_STATUS.get(ord_status, "I")
    else:
        by_trans_type = _EXEC_TYPE_BY_TRANS_TYPE.get(
            b"0" if trans_type_at < 0 else values[trans_type_at]
        )
        if by_trans_type is not None:
            exec_type = by_trans_type
        elif last_qty is not None and last_qty > 0:
            exec_type = "F"
        else:
            exec_type = _EXEC_TYPE_BY_ORD_STATUS.get(ord_status, "I")
    if exec_type == "F" and (last_qty is None or last_px is None):
        return None  # the careful path names the field missing
    if (
        execution_report_problem(
            exec_type,
            ord_status,
            order_qty,
            cum_qty,
            leaves_qty,
            _ZERO if last_qty is None else last_qty,
            _ZERO if last_px is None else last_px,
            avg_px,
            price,
            stop_px,
        )
        is not None
    ):
        return None  # the careful path gives the dead letter
    symbol = values[symbol_at]
    side = values[side_at]
    account = None if account_at < 0 else values[account_at]
    ord_type = None if ord_type_at < 0 else values[ord_type_at]
    return [
        _make_execution_report(
            values[exec_id_at].decode("utf-8", "backslashreplace"),
            values[order_id_at].decode("utf-8", "backslashreplace"),
            None if cl_ord_id_at < 0 else values[cl_ord_id_at].decode("utf-8", "backslashreplace"),
            None
            if orig_cl_ord_id_at < 0
            else values[orig_cl_ord_id_at].decode("utf-8", "backslashreplace"),
            exec_type,
            ord_status,
            None if account is None else text_of(account) or _text(account),
            text_of(symbol) or _text(symbol),
            text_of(side) or _text(side),
            order_qty,
            None if ord_type is None else text_of(ord_type) or _text(ord_type),
            price,
            stop_px,
            _ZERO if last_qty is None else last_qty,
            _ZERO if last_px is None else last_px,
            cum_qty,
            leaves_qty,
            avg_px,
            ts_event,
            None
            if trd_match_id_at < 0
            else values[trd_match_id_at].decode("utf-8", "backslashreplace"),
            None
            if exec_ref_id_at < 0
            else values[exec_ref_id_at].decode("utf-8", "backslashreplace"),
            None if text_at < 0 else values[text_at].decode("utf-8", "backslashreplace"),
            poss_dup_at >= 0 and values[poss_dup_at] == b"Y",
            raw,
            source,
        )
    ]
