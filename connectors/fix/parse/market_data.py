"""The careful market-data parser: 35=W and 35=X from their fields (`parse_market_data`,
`_parse_md`), and `_fast_market_data` that runs it straight on a plainly framed line.

Market-data rules:
- NoMDEntries (268) entries start at each MDUpdateAction (279), or at an MDEntryType (269) not
  preceded by a 279 in the same entry; fields before the first entry are message level. The 268
  count must match the entries found.
- In 35=X, Symbol (55) is inherited from the previous entry (or the message level) when omitted.
- Entries with MDEntryType values the book does not use are kept; the book ignores them.
- MDUpdateAction defaults to "0" (new) when an X entry omits it, and is always "0" in 35=W.
- Prices and sizes are parsed with `float()` (lenient about `1e3` or `1_000`; NaN and infinity
  are refused).
- Event time: TransactTime (60) before the group, else the first entry's MDEntryTime (273) on
  its MDEntryDate (272) or on the date of SendingTime (52), else the first entry's TransactTime
  (60, Binance puts it in the group), else SendingTime (52).
- RptSeq (83): in 35=X per entry (FIX 4.4 MDIncGrp); each symbol's increment carries the
  (first, last) of its entries' values in wire order, None when they carry none (an 83 before
  the group of a 35=X is not read). In 35=W the body's 83 (entries' are not read). A value
  that is not a plain sequence number (digits) makes the message a dead letter.
- A 35=W whose own best bid >= best ask (levels keyed as the book keys them) is `crossed`:
  the snapshot goes on flagged, and `decode_lines` adds a dead letter naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from connectors.fix.codec import (
    SOH,
    FixMessage,
    show,
)
from connectors.fix.parse.caches import _text, _text_cache
from connectors.fix.parse.factories import _make_md_entry
from connectors.fix.parse.values import (
    _CHECKSUM_FIELDS,
    _CHECKSUM_TAILS,
    _NO_SLOW_PATH_TAGS,
    _SLOW_PATH_TAGS,
    _check_md_numbers,
    _entry_time,
    _not_positive,
    _rpt_seq,
    _SlowPath,
    _timestamp,
)
from domain.errors import FieldError
from domain.events import (
    MarketDataIncrement,
    MarketDataSnapshot,
    MdEntry,
)


def _crossed_top(entries: Iterable[MdEntry]) -> tuple[float, float] | None:
    """(best bid, best ask) of a full refresh's entries when bid >= ask (crossed or locked),
    else None. Levels are keyed by MDEntryID, else price, as the book keys them
    (`domain.quotes`): a later entry of the same key replaces the earlier one."""
    bids: dict[object, float] = {}
    asks: dict[object, float] = {}
    for entry in entries:
        kind = entry.entry_type
        price = entry.price
        if price is None or (kind != "0" and kind != "1"):
            continue
        key = price if entry.entry_id is None else entry.entry_id
        (bids if kind == "0" else asks)[key] = price
    if not bids or not asks:
        return None
    bid, ask = max(bids.values()), min(asks.values())
    return (bid, ask) if bid >= ask else None


def _rpt_seqs_by_symbol(entries: list[tuple], symbol: bytes | None) -> dict[bytes, tuple[int, int]]:
    """(first, last) RptSeq (83) of each symbol's entries in a 35=X (Symbol (55) inherited as
    `_parse_md` does); every 83 must be a sequence number."""
    out: dict[bytes, tuple[int, int]] = {}
    current = symbol
    for _, _, _, _, _, entry_symbol, rpt in entries:
        if entry_symbol is not None:
            current = entry_symbol
        if rpt is None or current is None:
            continue
        number = _rpt_seq(rpt)
        seen = out.get(current)
        out[current] = (number, number) if seen is None else (seen[0], number)
    return out


def _field_tokens(region: bytes) -> list[bytes]:
    """Split `tag=value<SOH>tag=value...` into [tag, value, tag, value, ...]."""
    if region.count(b"=") == region.count(SOH) + 1:  # exactly one "=" in every field
        return region.replace(b"=", SOH).split(SOH)
    tokens = []
    for field in region.split(SOH):
        tag, _, value = field.partition(b"=")
        tokens += (tag, value)
    return tokens


# -- the grouping of a 35=W/X: one rule, read by this parser and by the plans (md_plans) ------
#
# Where each field goes depends on its tag alone: fields before the first entry are message
# level (`_MD_HEAD`); each MDUpdateAction (279), and each MDEntryType (269) not preceded by a
# 279 in the same entry, opens a NoMDEntries (268) entry; the entry's other fields fill its
# slots (`_MD_ENTRY_SLOTS`); the first entry's times (`_MD_FIRST_ENTRY`) may date the event.
# Any other tag that is a plain positive number is ignored, unless it is one of `slow_tags`.

# message level: SendingTime, NoMDEntries, Symbol, TransactTime, RptSeq (a 35=W's)
_MD_HEAD = {b"52": 0, b"268": 1, b"55": 2, b"60": 3, b"83": 4}
# entry slots: MDEntryType 0 and MDUpdateAction 1 (openers), MDEntryPx 2, MDEntrySize 3,
# MDEntryID 4, Symbol 5, RptSeq 6 (35=X's MDIncGrp)
_MD_ENTRY_SLOTS = {b"270": 2, b"271": 3, b"278": 4, b"55": 5, b"83": 6}
# the first entry's MDEntryTime, MDEntryDate, TransactTime (Binance puts 60 in the group)
_MD_FIRST_ENTRY = {b"273": 0, b"272": 1, b"60": 2}


def _md_layout(
    tags: Sequence[bytes], slow_tags: frozenset[bytes]
) -> tuple[list[int], list[list[int]], list[int]] | None:
    """Where each field of a 35=W/X with these tags (after MsgType (35), before CheckSum (10))
    goes, as indexes into its fields (-1 for absent).

    Returns:
        (head, entries, first): head by `_MD_HEAD`, one list per entry by slot (none when
        there is no group), the first entry's times by `_MD_FIRST_ENTRY`; None for a tag the
        generic decoder must judge (not a plain positive number, or one of `slow_tags`).
    """
    head = [-1, -1, -1, -1, -1]
    first = [-1, -1, -1]
    entries: list[list[int]] = []
    head_role = _MD_HEAD.get
    group_at = 0
    for group_at, tag in enumerate(tags):  # noqa: B007 - where the group starts, after the loop
        if tag == b"269" or tag == b"279":
            break
        role = head_role(tag)
        if role is not None:
            head[role] = group_at
        elif tag in slow_tags or not tag.isdigit() or tag[0] == 0x30:
            return None
    else:
        return head, entries, first  # no group
    by_action = tags[group_at] == b"279"
    entry = [-1] * 7
    entry[1 if by_action else 0] = group_at
    entry_slot = _MD_ENTRY_SLOTS.get
    first_role = _MD_FIRST_ENTRY.get
    for at in range(group_at + 1, len(tags)):
        tag = tags[at]
        slot = entry_slot(tag)
        if slot is not None:
            entry[slot] = at
        elif tag == b"269":
            # A 269 opens an entry unless a 279 opened the current one and no 269 came yet.
            if entry[0] >= 0 or not by_action:
                entries.append(entry)
                entry = [-1, -1, -1, -1, -1, -1, -1]
                by_action = False
            entry[0] = at
        elif tag == b"279":
            entries.append(entry)
            entry = [-1, at, -1, -1, -1, -1, -1]
            by_action = True
        else:
            role = first_role(tag)
            if role is not None:
                if not entries:
                    first[role] = at
            elif tag in slow_tags or not tag.isdigit() or tag[0] == 0x30:
                return None
    entries.append(entry)
    return head, entries, first


def _parse_md(tokens: list[bytes], incremental: bool, slow_path_tags: frozenset[bytes]) -> list:
    """Parse a 35=W or 35=X from the fields after MsgType (35) and before CheckSum (10).

    Args:
        tokens: the fields as [tag, value, tag, value, ...] (see `_field_tokens`).
        incremental: True for 35=X.
        slow_path_tags: tags (as bytes) to hand back to the generic decoder.

    Raises:
        FieldError: a missing or malformed market-data field.
        _SlowPath: a field the generic decoder must judge (garbled tag, empty value, data field).
    """
    fields = len(tokens) // 2
    values = tokens[1 : 2 * fields : 2]
    if b"" in values:
        raise _SlowPath
    layout = _md_layout(tokens[0 : 2 * fields : 2], slow_path_tags)
    if layout is None:
        raise _SlowPath
    head, positions, first = layout
    sending, count_text, symbol, transact, rpt_seq = [None if at < 0 else values[at] for at in head]
    first_time, first_date, first_transact = [None if at < 0 else values[at] for at in first]
    entries = [tuple([None if at < 0 else values[at] for at in entry]) for entry in positions]
    has_rpt = any(entry[6] >= 0 for entry in positions)

    if count_text is None:
        msg = "NoMDEntries(268) missing"
        raise FieldError(268, msg)
    if count_text != b"%d" % len(entries):
        if not count_text.isdigit():
            msg = f"NoMDEntries(268) was '{show(count_text)}', not a number"
            raise FieldError(268, msg)
        if int(count_text) != len(entries):
            msg = f"NoMDEntries(268) was {int(count_text)}, found {len(entries)} entries"
            raise FieldError(268, msg)
    if incremental and not entries:
        return []

    if transact is not None:
        ts_event = _timestamp(transact, 60)
    elif first_time is not None:
        ts_event = _entry_time(first_time, first_date, sending)
    elif first_transact is not None:
        ts_event = _timestamp(first_transact, 60)
    elif sending is not None:
        ts_event = _timestamp(sending, 52)
    else:
        msg = "SendingTime(52) missing, and no TransactTime(60) or MDEntryTime(273)"
        raise FieldError(52, msg)

    make_entry = _make_md_entry
    text_of = _text_cache.get
    # Sum of every price and size: NaN or infinity anywhere makes it non-finite (an overflow
    # of huge sizes can too; _check_md_numbers then finds nothing wrong and we go on).
    total = 0.0
    if not incremental and symbol is None:
        msg = "Symbol(55) missing"
        raise FieldError(55, msg)
    built: list[MdEntry] = []
    symbols: list[bytes] = []  # 35=X: each entry's Symbol (55), inherited when omitted
    current = symbol
    try:
        for entry_type, action, price, size, entry_id, entry_symbol, _ in entries:
            if incremental:
                if entry_symbol is not None:
                    current = entry_symbol
                elif current is None:
                    msg = "Symbol(55) missing"
                    raise FieldError(55, msg)
                symbols.append(current)
            if entry_type is None:
                msg = "MDEntryType(269) missing in a NoMDEntries(268) entry"
                raise FieldError(269, msg)
            price_value = None if price is None else float(price)
            size_value = None if size is None else float(size)
            total += (price_value or 0.0) + (size_value or 0.0)
            if price_value is not None and price_value <= 0.0:
                _not_positive(price)
            built.append(
                make_entry(
                    text_of(entry_type) or _text(entry_type),
                    # MDUpdateAction: "0" when an X entry omits it, and always in a W
                    "0" if action is None or not incremental else text_of(action) or _text(action),
                    price_value,
                    size_value,
                    None if entry_id is None else entry_id.decode("utf-8", "backslashreplace"),
                )
            )
    except ValueError:
        _check_md_numbers(entries)
    if total - total:
        _check_md_numbers(entries)
    if not incremental:
        return [
            MarketDataSnapshot(
                _text(symbol),
                ts_event,
                tuple(built),
                None if rpt_seq is None else _rpt_seq(rpt_seq),
                _crossed_top(built) is not None,
            )
        ]
    by_symbol: dict[bytes, list[MdEntry]] = {}
    for key, entry in zip(symbols, built, strict=True):
        group = by_symbol.get(key)
        if group is None:
            by_symbol[key] = [entry]
        else:
            group.append(entry)
    if has_rpt:
        rpt_seqs = _rpt_seqs_by_symbol(entries, symbol)
        return [
            MarketDataIncrement(
                text_of(key) or _text(key), ts_event, tuple(group), rpt_seqs.get(key)
            )
            for key, group in by_symbol.items()
        ]
    return [
        MarketDataIncrement(text_of(key) or _text(key), ts_event, tuple(group))
        for key, group in by_symbol.items()
    ]


def parse_market_data(msg: FixMessage) -> list[MarketDataSnapshot | MarketDataIncrement]:
    """Parse a MarketDataSnapshotFullRefresh (35=W) or MarketDataIncrementalRefresh (35=X).

    Args:
        msg: a decoded 35=W or 35=X.

    Returns:
        One `MarketDataSnapshot` for W; one `MarketDataIncrement` per symbol for X (none when
        the X has no entries).

    Raises:
        FieldError: a missing or malformed field, or a NoMDEntries (268) count that disagrees.
    """
    tokens = []
    for tag, value in msg.fields[3:-1]:
        tokens += (b"%d" % tag, value)
    try:
        return _parse_md(tokens, msg.msg_type == "X", _NO_SLOW_PATH_TAGS)
    except _SlowPath:
        # Only reachable for a FixMessage built by hand: decode() refuses these fields.
        msg_text = "a field has an empty value or a tag that is not a number"
        raise FieldError(35, msg_text) from None


def _fast_market_data(
    message: bytes, checksum: int, begin_end: int, length_end: int, incremental: bool
) -> list | None:
    """Parse a 35=W/X straight from its bytes if its framing is plainly right, else None.

    `begin_end` and `length_end` are the offsets of the SOH after 8 and after 9.
    """
    length_text = message[begin_end + 3 : length_end]
    if checksum < 0 or begin_end < 3 or not length_text.isdigit():
        return None
    if message[begin_end + 1 : begin_end + 3] != b"9=":
        return None
    start = length_end + 6  # first field after "35=X<SOH>"
    stop = length_end + 1 + int(length_text)  # offset of "10=", preceded by SOH
    tail = message[stop:]
    if tail != _CHECKSUM_TAILS[checksum] and tail != _CHECKSUM_FIELDS[checksum]:
        return None
    if stop <= start or message[stop - 1] != 1:
        return None
    try:
        return _parse_md(_field_tokens(message[start : stop - 1]), incremental, _SLOW_PATH_TAGS)
    except _SlowPath:
        return None
