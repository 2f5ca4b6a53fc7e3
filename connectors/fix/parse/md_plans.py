"""The market-data fast path: the grouping of a 35=W/X compiled once per tag sequence
(`_compile_md_plan`), run per line (`_run_md_plan`) or over the lines of a chunk that share a
plan, in columns (`_run_md_columns`, `_decode_market_data`).
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Iterable
from itertools import compress, repeat

import numpy as np

from connectors.fix.codec import (
    SOH,
    ChunkTokens,
)
from connectors.fix.parse.caches import _INFINITY, _decode_texts, _float_cache, _text, _text_cache
from connectors.fix.parse.factories import _make_increment, _make_md_entry, _make_snapshot
from connectors.fix.parse.market_data import _crossed_top, _md_layout
from connectors.fix.parse.values import _SLOW_PATH_TAGS, _entry_time
from connectors.fix.timefmt import (
    NS_PER_DAY,
    parse_utc_times_only,
    parse_utc_timestamp,
    parse_utc_timestamps,
)
from domain.errors import FieldError
from domain.events import MdEntry

# -- market-data plans: the grouping of a 35=W/X decided once per tag sequence -------------
#
# Which field opens which NoMDEntries (268) entry, which Symbol (55) an entry inherits and which
# field dates the event depend on the tags alone, so they are worked out once per distinct tag
# sequence (a venue sends a few hundred) by `_compile_md_plan`, from the grouping `_parse_md`
# reads too (`_md_layout`). `_run_md_plan` then only reads values. A plan is None when
# `_parse_md` would decline or fail on the tags alone, and `_run_md_plan` returns None on any
# value it does not like: the careful path then gives the event or the precise dead letter.

_NO_PLAN = object()
_PLAN_CACHE_LIMIT = 4_096
_MD_PLANS_X: dict[bytes, tuple | None] = {}
_MD_PLANS_W: dict[bytes, tuple | None] = {}
_CHECKSUM_TEXTS = [b"%03d" % total for total in range(256)]
_LENGTH_TEXTS = [b"%d" % length for length in range(8_192)]
# How a plan finds the event time (see the module docstring).
_TIME_STAMP = 0  # a UTCTimestamp: TransactTime (60) or SendingTime (52)
_TIME_ENTRY = 1  # MDEntryTime (273), on MDEntryDate (272) or on the date of SendingTime (52)


def _compile_md_plan(tags: list[bytes], incremental: bool) -> tuple | None:
    """Work out where each value of a 35=W/X with these body tags goes (`_md_layout`, as
    `_parse_md` reads them), and what `_parse_md` would then decide from the tags alone.

    Args:
        tags: the tags after MsgType (35) and before CheckSum (10), in wire order.
        incremental: True for 35=X.

    Returns:
        (count_at, count_text, time, single_symbol_at, entries, rpt_ats) with indexes into
        the values (-1 for absent): `count_at` NoMDEntries (268), `count_text` the count it
        must read, `time` (_TIME_STAMP, at) or (_TIME_ENTRY, time_at, date_at, sending_at),
        `single_symbol_at` the Symbol (55) of every entry if they all read the same field,
        `entries` one (type, action, price, size, id, symbol, rpt_seq) per entry, symbol
        resolved by inheritance in 35=X (the message-level one in 35=W, whose action is always
        "0"), `rpt_ats` the RptSeq (83) fields the events read, in wire order: the entries'
        in 35=X, the message's in 35=W (empty when there are none).
        None where `_parse_md` would not parse these tags, or would fail on them whatever
        the values, or finds no entries.
    """
    layout = _md_layout(tags, _SLOW_PATH_TAGS)  # the grouping `_parse_md` reads too
    if layout is None:
        return None
    (sending_at, count_at, symbol_at, transact_at, rpt_at), entries, first = layout
    time_at, date_at, group_transact_at = first
    if not entries or count_at < 0:
        return None

    if transact_at >= 0:
        time: tuple[int, ...] = (_TIME_STAMP, transact_at)
    elif time_at >= 0:
        if date_at < 0 and sending_at < 0:
            return None
        time = (_TIME_ENTRY, time_at, date_at, sending_at)
    elif group_transact_at >= 0:
        time = (_TIME_STAMP, group_transact_at)
    elif sending_at >= 0:
        time = (_TIME_STAMP, sending_at)
    else:
        return None
    current = symbol_at
    for entry in entries:
        if entry[0] < 0:
            return None
        if incremental:
            if entry[5] >= 0:
                current = entry[5]
            elif current < 0:
                return None
            entry[5] = current
        else:
            entry[1] = -1  # MDUpdateAction is "0" in a full refresh
            entry[5] = symbol_at
    if not incremental and symbol_at < 0:
        return None
    # One event when every entry reads the same Symbol (55) field; else grouped by value.
    symbol_ats = {entry[5] for entry in entries}
    single_symbol_at = entries[0][5] if len(symbol_ats) == 1 else -1
    if incremental:
        rpt_ats = tuple(entry[6] for entry in entries if entry[6] >= 0)
    else:
        rpt_ats = (rpt_at,) if rpt_at >= 0 else ()
    return (
        count_at,
        b"%d" % len(entries),
        time,
        single_symbol_at,
        tuple(tuple(entry) for entry in entries),
        rpt_ats,
    )


def _remember_plan(
    plans: dict[bytes, tuple | None], key: bytes, tags: list[bytes], incremental: bool
) -> tuple | None:
    if len(plans) >= _PLAN_CACHE_LIMIT:
        plans.clear()
    plan = plans[key] = _compile_md_plan(tags, incremental)
    return plan


def _run_md_plan(plan: tuple, values: list[bytes], incremental: bool) -> list | None:
    """Build the events of a 35=W/X from its values by `plan`, or None to take the careful path.

    Args:
        plan: from `_compile_md_plan` for the message's tags.
        values: the values after MsgType (35) and before CheckSum (10), in wire order.
        incremental: True for 35=X.
    """
    count_at, count_text, time, single_symbol_at, entries, rpt_ats = plan
    if values[count_at] != count_text:
        return None
    try:
        if time[0] == _TIME_STAMP:
            ts_event = parse_utc_timestamp(values[time[1]])
        else:
            _, time_at, date_at, sending_at = time
            entry_time = values[time_at]
            if date_at < 0:
                sending = values[sending_at]
                if sending[9:] == entry_time:
                    # 273 is the time of 52 (the usual case): the event time is 52 itself.
                    ts_event = parse_utc_timestamp(sending)
                else:
                    ts_event = _entry_time(entry_time, None, sending)
            else:
                ts_event = _entry_time(
                    entry_time, values[date_at], None if sending_at < 0 else values[sending_at]
                )
    except (ValueError, FieldError):
        return None

    make_entry = _make_md_entry
    text_of = _text_cache.get
    built = []
    append = built.append
    total = 0.0  # NaN or infinity anywhere makes it non-finite
    try:
        for type_at, action_at, price_at, size_at, id_at, _, _ in entries:
            entry_type = values[type_at]
            price = None if price_at < 0 else float(values[price_at])
            size = None if size_at < 0 else float(values[size_at])
            total += (price or 0.0) + (size or 0.0)
            if price is not None and price <= 0.0:
                return None
            if action_at < 0:
                action = "0"
            else:
                action = values[action_at]
                action = text_of(action) or _text(action)
            append(
                make_entry(
                    text_of(entry_type) or _text(entry_type),
                    action,
                    price,
                    size,
                    None if id_at < 0 else values[id_at].decode("utf-8", "backslashreplace"),
                )
            )
    except ValueError:
        return None
    if total - total:
        return None
    if rpt_ats:
        rpt_values = [values[at] for at in rpt_ats]
        if not all(map(bytes.isdigit, rpt_values)):
            return None
    if not incremental:
        if _crossed_top(built) is not None:
            return None  # the careful path adds the dead letter naming it
        symbol = values[single_symbol_at]
        rpt_seq = int(rpt_values[0]) if rpt_ats else None
        return [_make_snapshot(text_of(symbol) or _text(symbol), ts_event, tuple(built), rpt_seq)]
    if single_symbol_at >= 0:
        symbol = values[single_symbol_at]
        rpt = (int(rpt_values[0]), int(rpt_values[-1])) if rpt_ats else None
        return [_make_increment(text_of(symbol) or _text(symbol), ts_event, tuple(built), rpt)]
    by_symbol: dict[bytes, list[MdEntry]] = {}
    rpt_seqs: dict[bytes, tuple[int, int]] = {}
    for entry, plan_entry in zip(built, entries, strict=True):
        symbol = values[plan_entry[5]]
        group = by_symbol.get(symbol)
        if group is None:
            by_symbol[symbol] = [entry]
        else:
            group.append(entry)
        if plan_entry[6] >= 0:
            number = int(values[plan_entry[6]])
            seen = rpt_seqs.get(symbol)
            rpt_seqs[symbol] = (number, number) if seen is None else (seen[0], number)
    make_increment = _make_increment
    return [
        make_increment(
            text_of(symbol) or _text(symbol), ts_event, tuple(group), rpt_seqs.get(symbol)
        )
        for symbol, group in by_symbol.items()
    ]


# -- market-data columns: the lines of a chunk that share a plan, built together ---------------
#
# Lines with the same plan hold the same fields in the same places, so each field the events
# need is read for all of them at once, as a column of tokens (`map` over the token list, no
# Python code per line), and converted at once: texts and prices through caches read with
# `map` (no Python call per hit), MdEntry and event objects built by `map` over the columns.
# The times of every market-data line of the chunk are parsed in one numpy pass
# (`parse_utc_timestamps`): numpy pays per call, so it works on whole chunks, never per plan.
# A row the columns would have to judge (a value `_run_md_plan` refuses, a time outside
# int64's years, an entry whose Symbol (55) differs from the first entry's) is left to
# `_run_md_plan` alone, which takes it or sends it to the careful path.


def _finite(numbers: list[float]) -> bool:
    total = sum(numbers)
    return total - total == 0.0  # NaN or infinity anywhere (or an overflow) leaves NaN


def _positive(price: float) -> bool:
    return 0.0 < price < _INFINITY  # False for NaN


def _finite_number(number: float) -> bool:
    return number - number == 0.0


def _both(fits: list[bool] | None, more: Iterable[bool]) -> list[bool]:
    return list(more) if fits is None else list(map(operator.and_, fits, more))


class _MdGroup:
    """The lines of a chunk that share a market-data plan, in line order.

    Attributes:
        plan: from `_compile_md_plan`.
        lines: their indexes in the chunk.
        firsts: the index in the chunk's tokens of each line's first value after MsgType (35).
        width: how many values each line has after MsgType (35), before CheckSum (10).
        at: the group's first line in the chunk's time arrays (see `_md_times`).
    """

    __slots__ = ("plan", "lines", "firsts", "width", "at")

    def __init__(self, plan: tuple, lines: list[int], firsts: list[int], width: int, at: int):
        self.plan = plan
        self.lines = lines
        self.firsts = firsts
        self.width = width
        self.at = at

    def column(self, tokens: list[bytes], at: int) -> list[bytes]:
        """Value `at` (after MsgType (35)) of every line."""
        return list(map(tokens.__getitem__, map(operator.add, self.firsts, repeat(2 * at))))

    def rows(self, tokens: list[bytes]) -> list[list[bytes]]:
        """Every line's values after MsgType (35), as `_run_md_plan` takes them."""
        stops = map(operator.add, self.firsts, repeat(2 * self.width))
        return list(map(tokens.__getitem__, map(slice, self.firsts, stops, repeat(2))))


def _md_times(tokens: list[bytes], groups: list[_MdGroup]) -> tuple[list[int], list[int]]:
    """The event time of every line of the groups (in group order), and the lines whose time
    the columns leave to `_run_md_plan` (a time that does not parse or fit an int64, or one
    on an MDEntryDate (272)); both indexed from 0 at the first group's first line."""
    stamps: list[bytes] = []  # TransactTime (60) or SendingTime (52), a UTCTimestamp per line
    clocks: list[bytes] = []  # MDEntryTime (273) of the lines dated by SendingTime
    clock_rows: list[int] = []
    doubtful: list[int] = []
    for group in groups:
        time = group.plan[2]
        count = len(group.lines)
        if time[0] == _TIME_STAMP:
            stamps += group.column(tokens, time[1])
            continue
        _, time_at, date_at, sending_at = time
        if date_at < 0:
            stamps += group.column(tokens, sending_at)
            clocks += group.column(tokens, time_at)
            clock_rows += range(group.at, group.at + count)
        else:  # rare: left to _run_md_plan
            stamps += repeat(b"", count)
            doubtful += range(group.at, group.at + count)
    ns, ok = parse_utc_timestamps(stamps)
    if clocks:
        rows = np.array(clock_rows, dtype=np.intp)
        clock, clock_ok = parse_utc_times_only(clocks)
        sending = ns[rows]
        # As `_entry_time`: MDEntryTime on SendingTime's date, the day before if that puts it
        # more than half a day after SendingTime (stamped before midnight, sent after it).
        event = sending - sending % NS_PER_DAY + clock
        event -= np.where(event - sending > NS_PER_DAY // 2, NS_PER_DAY, 0)
        ns[rows] = event
        ok[rows] &= clock_ok
    if not ok.all():
        doubtful = sorted({*doubtful, *np.flatnonzero(~ok).tolist()})
    return ns.tolist(), doubtful


def _run_md_columns(
    tokens: list[bytes],
    group: _MdGroup,
    ts_event: list[int],
    doubtful: list[int],
    incremental: bool,
) -> tuple[list, bool]:
    """Build the events of the lines of one plan, as `_run_md_plan` builds each line's.

    Args:
        tokens: the chunk's tokens.
        group: the lines.
        ts_event: the event time of each line.
        doubtful: lines (indexes into the group) to leave to `_run_md_plan` whatever they hold.
        incremental: True for 35=X.

    Returns:
        One item per line: its event (the columns make one per line), or what `_run_md_plan`
        returns for a line the columns leave to it (a list of events, or None); and whether
        every item is an event.
    """
    count = len(group.lines)
    count_at, count_text, _, _, entries, rpt_ats = group.plan
    float_of = _float_cache.__getitem__
    # fits[j]: line j is one the columns take; None while all lines are.
    fits: list[bool] | None = None
    if doubtful:
        fits = [True] * count
        for row in doubtful:
            fits[row] = False
    counts = group.column(tokens, count_at)
    if counts.count(count_text) != count:
        fits = _both(fits, map(count_text.__eq__, counts))
    numbers = []  # (prices, sizes) of each entry: a list, or None for a field absent
    for _, _, price_at, size_at, _, _, _ in entries:
        prices = sizes = None
        if price_at >= 0:
            prices = list(map(float_of, group.column(tokens, price_at)))
            if not (_finite(prices) and min(prices) > 0.0):
                fits = _both(fits, map(_positive, prices))
        if size_at >= 0:
            sizes = list(map(float_of, group.column(tokens, size_at)))
            if not _finite(sizes):
                fits = _both(fits, map(_finite_number, sizes))
        numbers.append((prices, sizes))
    symbol_at = entries[0][5]
    symbols = group.column(tokens, symbol_at)
    for entry in entries[1:]:  # in 35=X each entry may name its own Symbol (55)
        if entry[5] != symbol_at:
            other = group.column(tokens, entry[5])
            if other != symbols:  # some lines have more than one: one event per symbol
                fits = _both(fits, map(operator.eq, symbols, other))
    # RptSeq (83): every one must be a number; the events take the first and last of 35=X,
    # the message's of 35=W. (Values are never empty here: joined, all digits or not.)
    rpt_columns = [group.column(tokens, at) for at in rpt_ats]
    for column in rpt_columns:
        if not b"".join(column).isdigit():
            fits = _both(fits, map(bytes.isdigit, column))
    if fits is not None:
        return _run_md_rows_split(tokens, group, ts_event, fits, incremental), False

    text_of = _text_cache.__getitem__
    entry_objects = []
    for (type_at, action_at, _, _, id_at, _, _), (prices, sizes) in zip(
        entries, numbers, strict=True
    ):
        entry_objects.append(
            list(
                map(
                    _make_md_entry,
                    map(text_of, group.column(tokens, type_at)),
                    repeat("0") if action_at < 0 else map(text_of, group.column(tokens, action_at)),
                    repeat(None) if prices is None else prices,
                    repeat(None) if sizes is None else sizes,
                    repeat(None) if id_at < 0 else _decode_texts(group.column(tokens, id_at)),
                )
            )
        )
    make_event = _make_increment if incremental else _make_snapshot
    columns = [map(text_of, symbols), ts_event, zip(*entry_objects, strict=True)]
    if not rpt_columns:
        pass
    elif incremental:
        firsts = list(map(int, rpt_columns[0]))
        lasts = firsts if len(rpt_columns) == 1 else list(map(int, rpt_columns[-1]))
        columns.append(zip(firsts, lasts, strict=True))
    else:
        columns.append(map(int, rpt_columns[0]))
    events = list(map(make_event, *columns))
    if incremental:
        return events, True
    # A crossed snapshot goes to the careful path, which adds the dead letter naming it.
    crossed = [row for row, event in enumerate(events) if _crossed_top(event.entries)]
    for row in crossed:
        events[row] = None
    return events, not crossed


def _run_md_rows_split(
    tokens: list[bytes], group: _MdGroup, ts_event: list[int], fits: list[bool], incremental: bool
) -> list:
    """`_run_md_columns` for the lines that `fits` marks, `_run_md_plan` for the others."""
    count = len(group.lines)
    results: list = [None] * count
    good = list(compress(range(count), fits))
    if good:
        part = _MdGroup(
            group.plan,
            list(map(group.lines.__getitem__, good)),
            list(map(group.firsts.__getitem__, good)),
            group.width,
            0,
        )
        built, _ = _run_md_columns(
            tokens, part, list(map(ts_event.__getitem__, good)), [], incremental
        )
        deque(map(results.__setitem__, good, built), 0)
    if len(good) < count:
        rows = group.rows(tokens)
        for j in compress(range(count), map(operator.not_, fits)):
            results[j] = _run_md_plan(group.plan, rows[j], incremental)
    return results


def _decode_market_data(
    chunk: ChunkTokens, indexes: np.ndarray, incremental: bool, parsed: list
) -> list[int]:
    """Parse the plainly framed 35=X (or 35=W) lines `indexes` of a chunk into `parsed`.

    Each line's tags after MsgType (35) and before CheckSum (10), joined, are the key of its
    plan (compiled once per key); the lines are grouped by key and each group is built in
    columns. `parsed[i]` gets line i's event, a list of events, or None for the careful path.

    Returns:
        The lines given a list or None rather than one event, in no particular order.
    """
    tokens = chunk.tokens
    firsts = chunk.firsts_array
    # Line i's tags are tokens[firsts[i] + 6 : firsts[i + 1] - 3 : 2], its values the same + 1.
    starts = firsts[indexes] + 6
    stops = firsts[indexes + 1] - 3
    tag_slices = map(slice, starts.tolist(), stops.tolist(), repeat(2))
    keys = list(map(SOH.join, map(tokens.__getitem__, tag_slices)))
    plans = _MD_PLANS_X if incremental else _MD_PLANS_W
    distinct = list(dict.fromkeys(keys))
    if len(distinct) == 1:
        sizes = [len(keys)]
    else:  # sort the lines by key, keeping line order within a key
        number = {key: at for at, key in enumerate(distinct)}
        codes = np.fromiter(map(number.__getitem__, keys), dtype=np.intp, count=len(keys))
        order = np.argsort(codes, kind="stable")
        indexes, starts, stops = indexes[order], starts[order], stops[order]
        sizes = np.bincount(codes).tolist()
    lines = indexes.tolist()
    value_firsts = (starts + 1).tolist()
    widths = ((stops - starts) // 2).tolist()  # tags (and values) after MsgType (35)
    irregular: list[int] = []
    groups: list[_MdGroup] = []
    at = 0  # the group's first line in the sorted lines
    time_at = 0  # ... in the time arrays (lines without a plan have no time)
    for key, size in zip(distinct, sizes, strict=True):
        plan = plans.get(key, _NO_PLAN)
        if plan is _NO_PLAN:
            tags = tokens[value_firsts[at] - 1 : value_firsts[at] - 1 + 2 * widths[at] : 2]
            plan = _remember_plan(plans, key, tags, incremental)
        if plan is None:
            irregular += lines[at : at + size]  # parsed stays None: the careful path
        else:
            group_lines = lines[at : at + size]
            group_firsts = value_firsts[at : at + size]
            groups.append(_MdGroup(plan, group_lines, group_firsts, widths[at], time_at))
            time_at += size
        at += size
    if not groups:
        return irregular
    ts_event, doubtful = _md_times(tokens, groups)
    store = parsed.__setitem__
    for group in groups:
        end = group.at + len(group.lines)
        left_out = [row - group.at for row in doubtful if group.at <= row < end]
        results, regular = _run_md_columns(
            tokens, group, ts_event[group.at : end], left_out, incremental
        )
        deque(map(store, group.lines, results), 0)
        if not regular:
            irregular += [
                line
                for line, result in zip(group.lines, results, strict=True)
                if type(result) is list or result is None
            ]
    return irregular
