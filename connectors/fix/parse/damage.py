"""Dead letters a decoded batch adds beside its events: the one naming a crossed 35=W, those for
symbols outside the instrument list, and the `BookDamaged` events of a 35=W/X line that became a
dead letter.

Book damage (issue 21): a 35=W/X line that `decode_lines` makes a dead letter, whose Symbol
(55) can still be read from the raw line, also gives one `BookDamaged` per distinct readable
symbol (reason "dead_letter", detail the dead letter's reason), in the line's place among the
events (see `_damaged_books` for what is read and how it is dated).
"""

from __future__ import annotations

import dataclasses
import re

from connectors.fix.parse.market_data import _crossed_top
from connectors.fix.parse.messages import Event
from connectors.fix.timefmt import (
    parse_utc_timestamp,
)
from domain.book_integrity import DEAD_LETTER
from domain.dead_letters import DeadLetter
from domain.events import (
    BookDamaged,
    MarketDataSnapshot,
)


def _crossed_letter(
    snapshot: MarketDataSnapshot, received: bytes, where: str, step_id: str, ts_init: int
) -> DeadLetter:
    """The dead letter naming a crossed 35=W (the snapshot itself still goes on, flagged)."""
    bid, ask = _crossed_top(snapshot.entries) or (0.0, 0.0)
    kind = "crossed" if bid > ask else "locked"
    return DeadLetter(
        source=where,
        reason=f"35=W of {snapshot.symbol} is {kind}: bid {bid} >= ask {ask}",
        raw=received,
        step_id=step_id,
        error="FieldError",
        tag=270,
        ts_init=ts_init,
    )


# -- the books a dead letter damages (issue 21) -----------------------------------------------
#
# A 35=W/X that becomes a dead letter is an update of its symbols' books that was lost. What of
# it can still be read is read from the raw text, best effort, with either delimiter: whether
# it is market data (MsgType (35) W or X, or a NoMDEntries (268) field when 35 is unreadable),
# its symbols (each complete Symbol (55) field: a value cut by a truncation is not a symbol),
# and its time (TransactTime (60), else SendingTime (52), when it parses). A line with no time,
# or one more than a minute away from the stream's, takes the previous event's in the batch
# (the books' clocks stay in step with the stream), else the next event's; a line alone in
# its batch keeps its own, else takes the batch's ts_init (`_date_damaged`).

_UNDATED = -(2**80)  # no UTCTimestamp (years 0-9999) is this far from the epoch
_MD_DAMAGED = re.compile(rb"(?:^|[\x01|])(?:35=[WX][\x01|]|268=)")
_SYMBOL_FIELD = re.compile(rb"(?:^|[\x01|])55=([!-{}~]+)(?=[\x01|])")  # printable, not "|"
_TIME_FIELD = re.compile(rb"(?:^|[\x01|])(60|52)=([^\x01|]+)(?=[\x01|])")
_DETAIL_LIMIT = 120
_TIME_TOLERANCE_NS = 60 * 1_000_000_000


def _damaged_books(
    line: bytes, reason: str, instruments: frozenset[str] | None
) -> list[BookDamaged]:
    """One `BookDamaged` per distinct symbol a dead 35=W/X still names (see above); none for
    other messages, or symbols outside the instrument list."""
    if _MD_DAMAGED.search(line) is None:
        return []
    symbols = dict.fromkeys(match[1] for match in _SYMBOL_FIELD.finditer(line))
    if not symbols:
        return []
    ts_event = _UNDATED
    times = dict(reversed(_TIME_FIELD.findall(line)))  # the first of each tag
    for tag in (b"60", b"52"):
        raw = times.get(tag)
        if raw is not None:
            try:
                ts_event = parse_utc_timestamp(raw)
                break
            except ValueError:
                continue
    detail = reason if len(reason) <= _DETAIL_LIMIT else reason[: _DETAIL_LIMIT - 3] + "..."
    damaged = []
    for raw_symbol in symbols:
        symbol = raw_symbol.decode("ascii")
        if instruments is None or symbol in instruments:
            damaged.append(BookDamaged(symbol, ts_event, DEAD_LETTER, detail))
    return damaged


def _date_damaged(events: list[Event], ts_init: int) -> None:
    """Date each `BookDamaged` of a batch (in place) by its neighbour in the stream: the
    previous event that is not damage, else the next one. Its line's own time stands when it is
    within `_TIME_TOLERANCE_NS` of the neighbour's; else (unreadable, or a flipped digit that
    still parses: 2 years off, 40 years ahead, seen in a damaged simulated day) it takes the
    neighbour's. With no neighbour (its line alone in the batch): its own time, else `ts_init`.
    """
    previous = None
    waiting: list[int] = []
    for at, event in enumerate(events):
        if type(event) is BookDamaged:
            if previous is None:
                waiting.append(at)
            else:
                events[at] = _near(event, previous)
            continue
        previous = event.ts_event
        if waiting:
            for early in waiting:
                events[early] = _near(events[early], previous)
            waiting.clear()
    for early in waiting:
        if events[early].ts_event == _UNDATED:
            events[early] = dataclasses.replace(events[early], ts_event=ts_init)


def _near(damaged: BookDamaged, neighbour_ns: int) -> BookDamaged:
    if damaged.ts_event != _UNDATED and abs(damaged.ts_event - neighbour_ns) <= _TIME_TOLERANCE_NS:
        return damaged
    return dataclasses.replace(damaged, ts_event=neighbour_ns)


def _unknown_symbol_letters(
    unknown: list[str],
    received: bytes,
    where: str,
    step_id: str,
    ts_init: int,
    dead_letters: list[DeadLetter],
) -> None:
    for symbol in unknown:
        dead_letters.append(
            DeadLetter(
                source=where,
                reason=f"Symbol(55) {symbol!r} is not in the configured instrument list",
                raw=received,
                step_id=step_id,
                error="FieldError",
                tag=55,
                ts_init=ts_init,
            )
        )
    unknown.clear()
