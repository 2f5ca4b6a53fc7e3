"""The batch decoder the dataflow calls (`decode_lines`), its careful line-by-line path
(`_decode_lines_careful`), the token path for order messages (`_parse_tokens`), and the
instrument-list filter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connectors.fix.codec import (
    SOH,
    ChunkTokens,
    FixMessage,
    decode,
    frame_lines,
    tokenize_chunk,
)
from connectors.fix.parse.damage import (
    _crossed_letter,
    _damaged_books,
    _date_damaged,
    _unknown_symbol_letters,
)
from connectors.fix.parse.exec_plans import (
    _EXEC_PLANS,
    _OLD_BEGIN_STRINGS,
    _compile_exec_plan,
    _run_exec_plan,
)
from connectors.fix.parse.market_data import _fast_market_data
from connectors.fix.parse.md_plans import _NO_PLAN, _PLAN_CACHE_LIMIT, _decode_market_data
from connectors.fix.parse.messages import ADMIN_MSG_TYPES, Event, parse_message
from connectors.fix.tags import DATA_LENGTH_TAGS, DATA_TAGS
from domain.dead_letters import DeadLetter
from domain.errors import DecodeError, FieldError
from domain.events import (
    REFERENCE_TYPES,
    MarketDataSnapshot,
    OrderList,
    TradingSessionStatus,
)


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """What `decode_lines` made of a batch of log lines.

    Attributes:
        events: domain events, in input order; a 35=W/X line that became a dead letter but
            still names its symbols adds a `BookDamaged` per symbol in its place.
        dead_letters: one per line that failed to decode or parse, in input order; also one
            naming each crossed 35=W (whose snapshot is among the events, flagged), and one
            per symbol outside the instrument list.
        admin: session-level messages (35=0,1,2,3,4,5,A) decoded and skipped.
        messages: lines that were not blank or `#` comments (each became events, an admin
            count or a dead letter; an X with 268=0 becomes nothing).
        lines: for each event, the index of its line in the batch (a Kafka run orders events
            of different partitions by the sequence number of their line).
    """

    events: list[Event]
    dead_letters: list[DeadLetter]
    admin: int
    messages: int
    lines: list[int] = dataclasses.field(default_factory=list)


_TOKEN_PARSED_TYPES = frozenset((b"8", b"D", b"F", b"G", b"E"))
_SLOW_PATH_TAG_INTS = frozenset((*DATA_LENGTH_TAGS, *DATA_TAGS, 8, 9, 10, 35))


def _parse_tokens(
    tokens: list[bytes], first: int, last: int, line: bytes, source: str
) -> list[Event] | None:
    """Parse one plainly framed order message (35=8/D/F/G/E) straight from its chunk tokens.

    Returns None, for the careful path to judge, when a tag is not a plain positive number,
    a header or data field appears in the body, or the message does not parse (the careful
    path then gives the same dead letter it always gives).
    """
    tags = tokens[first + 6 : last - 2 : 2]
    joined = SOH.join(tags)
    if not joined.replace(SOH, b"").isdigit() or b"\x010" in joined or joined[:1] == b"0":
        return None
    numbers = list(map(int, tags))
    if not _SLOW_PATH_TAG_INTS.isdisjoint(numbers):
        return None
    msg_type = tokens[first + 5]
    fields = [(8, tokens[first + 1]), (9, tokens[first + 3]), (35, msg_type)]
    fields += zip(numbers, tokens[first + 7 : last - 2 : 2], strict=True)
    fields.append((10, tokens[last - 1]))
    raw = line[:-1]  # the newline; a plain line has no "\r"
    message = FixMessage(
        tokens[first + 1].decode("ascii", "backslashreplace"), msg_type.decode(), fields, raw
    )
    try:
        return parse_message(message, source=source, raw=raw)
    except FieldError:
        return None


def decode_lines(
    lines: list[bytes],
    source: str,
    first_line_no: int | Sequence[int],
    step_id: str = "decode_fix",
    ts_init: int = 0,
    instruments: frozenset[str] | None = None,
) -> DecodedBatch:
    """Decode and parse a batch of FIX log lines (the hot path of the dataflow).

    A chunk of plain lines (see `tokenize_chunk`) is cut into tokens, and the framing of all
    its lines judged, at once. The 35=W/X lines plainly framed are parsed by plans compiled
    once per tag sequence (`_compile_md_plan`), the lines of each plan built together in
    columns (`_run_md_columns`); each such 35=8 (FIX 4.2 and later) by a plan of its own
    (`_compile_exec_plan`); other order messages, and 35=8 a plan declines, are parsed from the
    tokens by `_parse_tokens`. Every other line, and every line these decline (any error
    included), goes through the careful path, line by line: the same events and the same dead
    letters either way (tested).

    Args:
        lines: consecutive lines of a log file, with or without their newline.
        source: where they come from, e.g. "file:day.fix"; dead letters get `{source}:{line_no}`.
        first_line_no: the line number of `lines[0]`, or each line's number (a Kafka
            partition's messages carry the gateway's sparse sequence numbers).
        step_id: the dataflow step recorded on dead letters.
        ts_init: the time recorded on dead letters (int UTC ns, chosen by the caller).
        instruments: the configured instrument list; events of other symbols become dead
            letters (one per symbol and line), the line's other events go on. An `OrderList`
            is kept only when every one of its orders is on a configured symbol.

    Returns:
        The events, dead letters and counts of the batch.
    """
    line_nos = _line_numbers(first_line_no, len(lines))
    chunk = tokenize_chunk(lines)
    if chunk is None:
        return _decode_lines_careful(lines, source, line_nos, step_id, ts_init, instruments)
    # parsed[i] is what line i gave: one event (a market-data line built in columns), a list
    # of events, or None for the careful path. `irregular`: the lines not holding one event.
    parsed: list = [None] * len(lines)
    framed = chunk.framed
    type_bytes = chunk.msg_type_bytes
    market_x = framed & (type_bytes == 0x58)
    market_w = framed & (type_bytes == 0x57)
    irregular = np.flatnonzero(~(market_x | market_w)).tolist()
    for market, incremental in ((market_x, True), (market_w, False)):
        indexes = np.flatnonzero(market)
        if len(indexes):
            irregular += _decode_market_data(chunk, indexes, incremental, parsed)
    irregular.sort()
    others = np.flatnonzero(framed & ~(market_x | market_w)).tolist()
    if others:
        _decode_order_lines(chunk, others, lines, source, line_nos, parsed)
    batch = _gather(parsed, irregular, lines, source, line_nos, step_id, ts_init, instruments)
    if batch.dead_letters:
        _date_damaged(batch.events, ts_init)
    return batch


def _line_numbers(first_line_no: int | Sequence[int], count: int) -> Sequence[int]:
    if isinstance(first_line_no, int):
        return range(first_line_no, first_line_no + count)
    return first_line_no


def _decode_order_lines(
    chunk: ChunkTokens,
    indexes: list[int],
    lines: list[bytes],
    source: str,
    line_nos: Sequence[int],
    parsed: list,
) -> None:
    """Parse the plainly framed lines `indexes` that are not market data into `parsed`."""
    tokens = chunk.tokens
    firsts = chunk.firsts
    plans_8 = _EXEC_PLANS
    old_begin_strings = _OLD_BEGIN_STRINGS
    for index in indexes:
        first = firsts[index]
        last = firsts[index + 1] - 1  # the empty token of the "\n"
        msg_type = tokens[first + 5]
        line = lines[index]
        result = None
        if msg_type == b"8" and tokens[first + 1] not in old_begin_strings:
            tags = tokens[first + 6 : last - 2 : 2]
            key = SOH.join(tags)
            plan = plans_8.get(key, _NO_PLAN)
            if plan is _NO_PLAN:
                if len(plans_8) >= _PLAN_CACHE_LIMIT:
                    plans_8.clear()
                plan = plans_8[key] = _compile_exec_plan(tags)
            if plan is not None:
                result = _run_exec_plan(
                    plan,
                    tokens[first + 7 : last - 2 : 2],
                    line[:-1],
                    f"{source}:{line_nos[index]}",
                )
            if result is None:
                result = _parse_tokens(tokens, first, last, line, f"{source}:{line_nos[index]}")
        elif msg_type in _TOKEN_PARSED_TYPES:
            result = _parse_tokens(tokens, first, last, line, f"{source}:{line_nos[index]}")
        parsed[index] = result


def _gather(
    parsed: list,
    irregular: list[int],
    lines: list[bytes],
    source: str,
    line_nos: Sequence[int],
    step_id: str,
    ts_init: int,
    instruments: frozenset[str] | None,
) -> DecodedBatch:
    """The batch of `decode_lines`: `parsed` in line order, the declined lines decoded by the
    careful path in runs of consecutive lines (one framing pass per run, not per line)."""
    events: list[Event] = []
    lines_of: list[int] = []  # each event's line
    dead_letters: list[DeadLetter] = []
    admin = messages = 0
    unknown: list[str] = []
    declined_from = -1

    def flush_declined(stop: int) -> None:
        nonlocal admin, messages
        careful = _careful_lines(
            lines[declined_from:stop],
            source,
            line_nos[declined_from:stop],
            step_id,
            ts_init,
            instruments,
        )
        events.extend(careful.events)
        lines_of.extend([declined_from + line for line in careful.lines])
        dead_letters.extend(careful.dead_letters)
        admin += careful.admin
        messages += careful.messages

    def keep(index: int, found: list[Event]) -> None:  # the instrument list
        before = len(events)
        _keep_instruments(found, instruments, events, unknown)
        lines_of.extend([index] * (len(events) - before))
        if unknown:
            _unknown_symbol_letters(
                unknown,
                lines[index][:-1],
                f"{source}:{line_nos[index]}",
                step_id,
                ts_init,
                dead_letters,
            )

    position = 0  # lines before it are gathered
    for index in [*irregular, len(parsed)]:
        if index > position:  # lines position .. index - 1 hold one event each
            if declined_from >= 0:
                flush_declined(position)
                declined_from = -1
            messages += index - position
            if instruments is None:
                events += parsed[position:index]
                lines_of += range(position, index)
            else:
                for single in range(position, index):
                    keep(single, [parsed[single]])
        if index == len(parsed):
            break
        found = parsed[index]
        if found is None:
            if declined_from < 0:
                declined_from = index
        else:
            if declined_from >= 0:
                flush_declined(index)
                declined_from = -1
            messages += 1
            if instruments is None:
                events += found
                lines_of += [index] * len(found)
            else:
                keep(index, found)
        position = index + 1
    if declined_from >= 0:
        flush_declined(len(parsed))
    return DecodedBatch(events, dead_letters, admin, messages, lines_of)


def _decode_lines_careful(
    lines: list[bytes],
    source: str,
    first_line_no: int | Sequence[int],
    step_id: str,
    ts_init: int,
    instruments: frozenset[str] | None,
) -> DecodedBatch:
    """`decode_lines` line by line: any framing, delimiter, log prefix or message type."""
    batch = _careful_lines(lines, source, first_line_no, step_id, ts_init, instruments)
    if batch.dead_letters:
        _date_damaged(batch.events, ts_init)
    return batch


def _careful_lines(
    lines: list[bytes],
    source: str,
    first_line_no: int | Sequence[int],
    step_id: str,
    ts_init: int,
    instruments: frozenset[str] | None,
) -> DecodedBatch:
    """`_decode_lines_careful`, its BookDamaged events left undated (`_date_damaged` dates
    them once the whole batch is known)."""
    line_nos = _line_numbers(first_line_no, len(lines))
    framed = frame_lines(lines)
    events: list[Event] = []
    extend = events.extend
    lines_of: list[int] = []  # each event's line
    dead_letters: list[DeadLetter] = []
    admin = 0
    unknown: list[str] = []  # symbols of the current line outside the instrument list
    fast_market_data = _fast_market_data
    for index, message, checksum, received in zip(
        framed.line_indexes, framed.messages, framed.checksums, framed.received, strict=True
    ):
        try:
            if message is None:
                reason = "no BeginString (8=) on the line"
                raise DecodeError(reason, 8)
            begin_end = message.find(SOH)
            length_end = message.find(SOH, begin_end + 1)
            msg_type = message[length_end + 1 : length_end + 6]
            parsed = None
            if msg_type == b"35=X\x01" or msg_type == b"35=W\x01":
                parsed = fast_market_data(
                    message, checksum, begin_end, length_end, msg_type == b"35=X\x01"
                )
            if parsed is None:
                decoded = decode(message, checksum)
                if decoded.msg_type in ADMIN_MSG_TYPES:
                    admin += 1
                    continue
                parsed = parse_message(decoded, source=f"{source}:{line_nos[index]}", raw=received)
            before = len(events)
            if instruments is None:
                extend(parsed)
            else:
                # Not `continue` on the market-data path: the unknown symbols are flushed below.
                _keep_instruments(parsed, instruments, events, unknown)
            lines_of += [index] * (len(events) - before)
            if parsed and type(parsed[0]) is MarketDataSnapshot and parsed[0].crossed:
                snapshot = parsed[0]
                if instruments is None or snapshot.symbol in instruments:
                    dead_letters.append(
                        _crossed_letter(
                            snapshot, received, f"{source}:{line_nos[index]}", step_id, ts_init
                        )
                    )
        except (DecodeError, FieldError) as error:
            dead_letters.append(
                DeadLetter(
                    source=f"{source}:{line_nos[index]}",
                    reason=error.reason,
                    raw=received,
                    step_id=step_id,
                    error=type(error).__name__,
                    tag=error.tag,
                    ts_init=ts_init,
                )
            )
            # the whole line: what framing kept of a damaged one may have lost its symbols
            damaged = _damaged_books(lines[index], error.reason, instruments)
            if damaged:
                extend(damaged)
                lines_of += [index] * len(damaged)
        if unknown:
            _unknown_symbol_letters(
                unknown,
                received,
                f"{source}:{line_nos[index]}",
                step_id,
                ts_init,
                dead_letters,
            )
    return DecodedBatch(events, dead_letters, admin, len(framed.messages), lines_of)


def _keep_instruments(
    parsed: list[Event], instruments: frozenset[str], events: list[Event], unknown: list[str]
) -> None:
    order_list = OrderList
    for event in parsed:
        if event.symbol in instruments:
            if type(event) is order_list and not _list_known(event, instruments, unknown):
                continue
            events.append(event)
        elif type(event) is TradingSessionStatus or type(event) in REFERENCE_TYPES:
            events.append(event)  # market-wide, or an account's: no symbol to check
        elif event.symbol not in unknown:
            unknown.append(event.symbol)


def _list_known(orders: OrderList, instruments: frozenset[str], unknown: list[str]) -> bool:
    """Whether every order of a list is on a configured instrument; note those that are not.

    A list is kept or refused whole: half a contingent list would change what the client asked.
    """
    known = True
    for order in orders.orders:
        if order.symbol not in instruments:
            known = False
            if order.symbol not in unknown:
                unknown.append(order.symbol)
    return known
