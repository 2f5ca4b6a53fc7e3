"""Connectors layer: FIX tag=value framing and decoding (wire bytes -> `FixMessage`). No sockets.

Framing is by BodyLength (9), not by searching for "10=": the body is the bytes after the
`9=...<SOH>` field up to and including the SOH before `10=`. Length-prefixed data fields
(XmlDataLen (212) -> XmlData (213), RawDataLength (95) -> RawData (96), ...) are read by their
length, because their values may contain SOH and even a whole embedded FIX message.

Log lines (one message per line) are normalised by `extract_message`/`frame_lines`: text before
the first `8=` is a log prefix and dropped, `|` becomes SOH when the line has no SOH, blank lines
and `#` comments are skipped. `frame_lines` also computes the CheckSum (10) of a whole batch at
once with numpy. `tokenize_chunk` is the faster front end for chunks of plain lines (what the
simulator and a FIX engine's message log write): one translate and one split for the whole chunk.
`connectors.fix.parse.decode_lines` is the hot path built on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

import numpy as np

from connectors.fix.tags import DATA_LENGTH_TAGS, DATA_TAGS, label
from domain.errors import DecodeError

SOH = b"\x01"
CHECKSUM_MARK = b"\x0110="
# Below this many messages a Python `sum()` per message beats numpy's fixed overhead.
_NUMPY_MIN_BATCH = 16
_HEADER_TAGS = frozenset((8, 9, 10, 35))
# "=" and "\n" become SOH, so one split cuts a chunk into tags and values.
_TO_SOH = bytes(range(256)).replace(b"=", SOH).replace(b"\n", SOH)
# Shortest line `tokenize_chunk` accepts: 8=, 9=, 35=, 10=ddd fields need more.
_MIN_PLAIN_LINE = 20


def show(raw: bytes, limit: int = 40) -> str:
    """Render wire bytes for a one-line reason: ASCII with escapes, SOH as `|`, truncated."""
    text = raw[:limit].replace(SOH, b"|").decode("ascii", "backslashreplace")
    return text + "..." if len(raw) > limit else text


class FixMessage:
    """A decoded FIX message: its fields in wire order, repeats kept, values as raw bytes.

    Attributes:
        begin_string: BeginString (8), e.g. "FIX.4.4".
        msg_type: MsgType (35), e.g. "X".
        fields: every field as (tag, value) in wire order, from 8 to CheckSum (10) inclusive.
        raw: the SOH-delimited message the fields were decoded from.
    """

    __slots__ = ("begin_string", "msg_type", "fields", "raw", "_first")

    def __init__(
        self, begin_string: str, msg_type: str, fields: list[tuple[int, bytes]], raw: bytes
    ) -> None:
        self.begin_string = begin_string
        self.msg_type = msg_type
        self.fields = fields
        self.raw = raw
        self._first: dict[int, bytes] | None = None

    def get(self, tag: int) -> bytes | None:
        """Return the value of the first occurrence of `tag`, or None."""
        first = self._first
        if first is None:
            first = {}
            for field_tag, value in self.fields:
                first.setdefault(field_tag, value)
            self._first = first
        return first.get(tag)

    def get_all(self, tag: int) -> list[bytes]:
        """Return the values of every occurrence of `tag`, in wire order."""
        return [value for field_tag, value in self.fields if field_tag == tag]

    def first_values(self) -> dict[int, bytes]:
        """Return {tag: value of its first occurrence} (built once, shared: do not mutate)."""
        self.get(0)
        assert self._first is not None
        return self._first

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __repr__(self) -> str:
        return f"FixMessage({show(self.raw, 80)!r})"


def decode(raw: bytes, computed_checksum: int = -1) -> FixMessage:
    """Decode one SOH-delimited FIX message, verifying its framing.

    Checks, in this order: BeginString (8) first, BodyLength (9) second and numeric (zero
    padding allowed), MsgType (35) third, BodyLength equal to the counted body, CheckSum (10)
    last, exactly 3 digits and equal to the byte sum mod 256, then every field: a positive
    integer tag without leading zeros, `=`, a non-empty value; data fields by their length.
    A missing SOH after the checksum at the very end is tolerated.

    Args:
        raw: the message, starting at `8=`.
        computed_checksum: the byte sum mod 256 before `10=` if already known (batch path).

    Returns:
        The decoded message.

    Raises:
        DecodeError: with a one-line reason naming the tag at fault.
    """
    if not raw.startswith(b"8="):
        msg = "BeginString(8) missing or not first"
        raise DecodeError(msg, 8)
    end_begin = raw.find(SOH)
    if end_begin < 0:
        msg = "no SOH delimiter after BeginString(8)"
        raise DecodeError(msg, 8)
    begin_string = raw[2:end_begin]
    if not begin_string:
        msg = "BeginString(8) has an empty value"
        raise DecodeError(msg, 8)
    if not raw.startswith(b"9=", end_begin + 1):
        msg = "BodyLength(9) missing or not second"
        raise DecodeError(msg, 9)
    end_length = raw.find(SOH, end_begin + 3)
    if end_length < 0:
        msg = "message ends inside BodyLength(9)"
        raise DecodeError(msg, 9)
    length_text = raw[end_begin + 3 : end_length]
    if not length_text.isdigit():
        msg = f"BodyLength(9) was '{show(length_text)}', not a number"
        raise DecodeError(msg, 9)
    body_start = end_length + 1
    if not raw.startswith(b"35=", body_start):
        msg = "MsgType(35) missing or not third"
        raise DecodeError(msg, 35)
    checksum_at = body_start + int(length_text)
    if not (raw.startswith(b"10=", checksum_at) and raw[checksum_at - 1] == 1):
        mark = raw.rfind(CHECKSUM_MARK, body_start - 1)
        if mark < 0:
            msg = "CheckSum(10) missing"
            raise DecodeError(msg, 10)
        counted = mark + 1 - body_start
        reason = f"BodyLength(9) was {length_text.decode()}, counted {counted}"
        raise DecodeError(reason, 9)

    value_start = checksum_at + 3
    value_end = raw.find(SOH, value_start)
    if value_end < 0:
        value_end = len(raw)
    elif value_end != len(raw) - 1:
        trailing = len(raw) - 1 - value_end
        msg = f"CheckSum(10) is not the last field: {trailing} bytes follow it"
        raise DecodeError(msg, 10)
    checksum_text = raw[value_start:value_end]
    if computed_checksum < 0:
        computed_checksum = sum(raw[:checksum_at]) & 0xFF
    if len(checksum_text) != 3 or not checksum_text.isdigit():
        reason = (
            f"CheckSum(10) was '{show(checksum_text)}', not 3 digits "
            f"(computed {computed_checksum:03d})"
        )
        raise DecodeError(reason, 10)
    if int(checksum_text) != computed_checksum:
        reason = f"CheckSum(10) was {checksum_text.decode()}, computed {computed_checksum:03d}"
        raise DecodeError(reason, 10)

    fields = [(8, begin_string), (9, length_text)]
    append = fields.append
    pos = body_start
    data_tag = 0  # the data field announced by the previous length field, if any
    data_length = 0
    msg_type = ""
    while pos < checksum_at:
        # raw[checksum_at - 1] is SOH, so every field in the body finds its SOH.
        field_end = raw.find(SOH, pos, checksum_at)
        equals = raw.find(b"=", pos, field_end)
        if equals < 0:
            msg = f'field "{show(raw[pos:field_end])}" has no "="'
            raise DecodeError(msg, None)
        tag_text = raw[pos:equals]
        if not tag_text.isdigit():
            msg = f'tag "{show(tag_text)}" is not a number'
            raise DecodeError(msg, None)
        if tag_text[0] == 0x30:
            msg = f'tag "{show(tag_text)}" is not a positive number without a leading 0'
            raise DecodeError(msg, None)
        tag = int(tag_text)
        if tag == data_tag:
            field_end = equals + 1 + data_length
            if field_end >= checksum_at or raw[field_end] != 1:
                reason = (
                    f"{label(tag)} is not the {data_length} bytes {label(DATA_TAGS[tag])} announced"
                )
                raise DecodeError(reason, tag)
        elif tag in DATA_TAGS:
            msg = f"{label(tag)} without {label(DATA_TAGS[tag])} before it"
            raise DecodeError(msg, tag)
        value = raw[equals + 1 : field_end]
        if not value:
            msg = f"{label(tag)} has an empty value"
            raise DecodeError(msg, tag)
        if tag in _HEADER_TAGS:
            if tag != 35 or msg_type:
                msg = f"{label(tag)} appears again inside the body"
                raise DecodeError(msg, tag)
            msg_type = value.decode("ascii", "backslashreplace")
        data_tag = DATA_LENGTH_TAGS.get(tag, 0)
        if data_tag:
            if not value.isdigit():
                msg = f"{label(tag)} was '{show(value)}', not a number"
                raise DecodeError(msg, tag)
            data_length = int(value)
        append((tag, value))
        pos = field_end + 1
    append((10, checksum_text))
    return FixMessage(begin_string.decode("ascii", "backslashreplace"), msg_type, fields, raw)


def extract_message(line: bytes) -> tuple[bytes, bytes] | None:
    """Turn one log line into a SOH-delimited message.

    Text before the first `8=FIX` (else the first `8=`) is a log prefix and dropped; a line
    without SOH has its `|` turned into SOH; trailing whitespace (the newline) is dropped.

    Args:
        line: one line of a FIX log file.

    Returns:
        (message with SOH delimiters, message as received) or None for a blank or `#` line.

    Raises:
        DecodeError: the line has no `8=` at all.
    """
    line = line.rstrip()
    if not line:
        return None
    if not line.startswith(b"8="):
        if line.lstrip().startswith(b"#"):
            return None
        start = line.find(b"8=FIX")
        if start < 0:
            start = line.find(b"8=")
            if start < 0:
                msg = "no BeginString (8=) on the line"
                raise DecodeError(msg, 8)
        line = line[start:]
    if SOH in line:
        return line, line
    return line.replace(b"|", SOH), line


class FramedLines:
    """The messages of a batch of log lines, normalised, with their CheckSum (10) computed.

    Parallel lists, one item per non-blank, non-comment line, in input order.

    Attributes:
        line_indexes: index of the line in the input batch.
        messages: the SOH-delimited message, or None when the line has no `8=`.
        received: the message as received (prefix dropped, delimiter as on the line).
        checksums: byte sum mod 256 up to the last `<SOH>10=`, or -1 when there is none.
    """

    __slots__ = ("line_indexes", "messages", "received", "checksums")

    def __init__(self) -> None:
        self.line_indexes: list[int] = []
        self.messages: list[bytes | None] = []
        self.received: list[bytes] = []
        self.checksums: list[int] = []


def frame_lines(lines: list[bytes]) -> FramedLines:
    """Normalise a batch of log lines (see `extract_message`) and checksum them all at once.

    Args:
        lines: raw lines of a FIX log, with or without their newline.

    Returns:
        The framed messages; garbage lines keep their place with `messages[i] is None`.
    """
    framed = FramedLines()
    indexes = framed.line_indexes
    messages = framed.messages
    received = framed.received
    ends: list[int] = []
    for index, line in enumerate(lines):
        if line.startswith(b"8="):  # the common case, inlined
            line = line.rstrip()
            message = line if SOH in line else line.replace(b"|", SOH)
        else:
            try:
                pair = extract_message(line)
            except DecodeError:
                indexes.append(index)
                messages.append(None)
                received.append(line.rstrip())
                ends.append(-1)
                continue
            if pair is None:
                continue
            message, line = pair
        indexes.append(index)
        messages.append(message)
        received.append(line)
        ends.append(message.rfind(CHECKSUM_MARK))
    framed.checksums = _checksums(messages, ends)
    return framed


def _checksums(messages: list[bytes | None], marks: list[int]) -> list[int]:
    """Byte sums mod 256 of each message up to and including the SOH at `marks[i]`."""
    count = len(messages)
    if count < _NUMPY_MIN_BATCH:
        return [
            sum(message[: mark + 1]) & 0xFF if message is not None and mark >= 0 else -1
            for message, mark in zip(messages, marks, strict=True)
        ]
    chunks = [message if message is not None else b"\x00" for message in messages]
    starts = [0, *accumulate(len(chunk) for chunk in chunks)][:-1]
    # reduceat over [start0, end0, start1, end1, ...]: even slots sum a message's checksummed
    # prefix, odd slots the checksum field plus any gap; a mark of -1 gives an empty prefix.
    bounds = np.empty(2 * count, dtype=np.int64)
    bounds[0::2] = starts
    bounds[1::2] = np.asarray(starts, dtype=np.int64) + np.asarray(marks, dtype=np.int64) + 1
    data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    sums = (np.add.reduceat(data, bounds, dtype=np.uint64)[0::2] & 0xFF).tolist()
    return [total if mark >= 0 else -1 for total, mark in zip(sums, marks, strict=True)]


class ChunkTokens:
    """A chunk of plain log lines cut into tokens at once (see `tokenize_chunk`).

    Attributes:
        tokens: tag, value, tag, value, ... of every line, each line followed by one empty
            token (the "\n"): line i is `tokens[firsts[i] : firsts[i + 1] - 1]`.
        firsts: index of each line's first token, plus one sentinel (len(lines) + 1 items).
        checksums: byte sum mod 256 of each line up to the SOH 9 bytes before its end, which is
            the SOH before `10=` when the line ends with a 3-digit CheckSum (10) field.
        framed: numpy bool per line: its framing is plainly right, i.e. it has at least 5
            fields, BeginString (8), BodyLength (9) and MsgType (35) come first, BodyLength is
            a decimal without a leading 0 equal to the bytes counted from MsgType to the SOH
            before CheckSum (10), and CheckSum is last, 3 digits, equal to `checksums`. The
            tags of the body are not judged.
        msg_type_bytes: numpy uint8 per line: the byte of a one-byte MsgType (35) value
            (e.g. ord("X")), 0 for a longer one; meaningful where `framed`.
        firsts_array: `firsts` as a numpy int64 array.
    """

    __slots__ = ("tokens", "firsts", "checksums", "framed", "msg_type_bytes", "firsts_array")

    def __init__(
        self,
        tokens: list[bytes],
        firsts: list[int],
        checksums: list[int],
        framed: np.ndarray,
        msg_type_bytes: np.ndarray,
        firsts_array: np.ndarray,
    ) -> None:
        self.tokens = tokens
        self.firsts = firsts
        self.checksums = checksums
        self.framed = framed
        self.msg_type_bytes = msg_type_bytes
        self.firsts_array = firsts_array


def tokenize_chunk(lines: list[bytes]) -> ChunkTokens | None:
    """Cut a chunk of plain log lines into tokens at once, or return None if it is not plain.

    Plain means: every line ends with SOH + "\n", holds no other "\n", is at least 20 bytes
    long, has no empty value (`=<SOH>`), and its "=" and SOH alternate (=, SOH, =, SOH, ...),
    so that every field holds exactly one "=". Then splitting at SOH, "=" and "\n" gives each
    line's fields as tag/value tokens with no per-line work. Nothing else is checked: the
    tokens still have to be judged (tags, BodyLength (9), CheckSum (10)) by the caller.

    Args:
        lines: raw lines of a FIX log, with their newline.

    Returns:
        The tokens, or None (the caller then frames line by line with `frame_lines`).
    """
    count = len(lines)
    if not count:
        return None
    blob = b"".join(lines)
    if blob.count(b"\n") != count or blob.find(b"=\x01") >= 0:
        return None
    lengths = np.fromiter(map(len, lines), dtype=np.int64, count=count)
    if int(lengths.min()) < _MIN_PLAIN_LINE:
        return None
    data = np.frombuffer(blob, dtype=np.uint8)
    ends = np.cumsum(lengths)
    if not ((data[ends - 1] == 0x0A).all() and (data[ends - 2] == 1).all()):
        return None
    delimiters = np.flatnonzero((data == 1) | (data == 0x3D))
    kinds = data[delimiters]
    if len(kinds) % 2 or not ((kinds[0::2] == 0x3D).all() and (kinds[1::2] == 1).all()):
        return None
    # reduceat over [start0, end0 - 8, start1, end1 - 8, ...]: even slots sum a line up to the
    # SOH 9 bytes before its end (lines are >= 20 bytes, so the bounds increase).
    starts = ends - lengths
    bounds = np.empty(2 * count, dtype=np.int64)
    bounds[0::2] = starts
    bounds[1::2] = ends - 8
    checksums = np.add.reduceat(data, bounds, dtype=np.uint32)[0::2] & 0xFF
    tokens = blob.translate(_TO_SOH).split(SOH)
    # Delimiters before line i ("=" and SOH alternate, so a line's first one is its first "=").
    first_delimiters = np.searchsorted(delimiters, starts)
    framed, msg_type_bytes = _plain_framing(data, delimiters, starts, first_delimiters, checksums)
    # Tokens before line i: its "=" and SOH delimiters before it, plus one "\n" per line.
    firsts_array = np.empty(count + 1, dtype=np.int64)
    firsts_array[:count] = first_delimiters + np.arange(count)
    firsts_array[count] = len(tokens) - 1
    return ChunkTokens(
        tokens, firsts_array.tolist(), checksums.tolist(), framed, msg_type_bytes, firsts_array
    )


def _plain_framing(
    data: np.ndarray,
    delimiters: np.ndarray,
    starts: np.ndarray,
    first_delimiters: np.ndarray,
    checksums: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`ChunkTokens.framed` and `.msg_type_bytes` for every line at once (see ChunkTokens).

    Field k of line i has its "=" at `delimiters[first_delimiters[i] + 2k]` and its SOH just
    after, at `+ 2k + 1`; its tag starts after the previous SOH (at the line start for k = 0).
    """
    next_delimiters = np.empty_like(first_delimiters)
    next_delimiters[:-1] = first_delimiters[1:]
    next_delimiters[-1] = len(delimiters)
    # Padded so that the offsets of a line with fewer than 5 fields stay inside the arrays
    # (a negative one wraps around): what they read is masked out by the field count.
    delimiters = np.concatenate((delimiters, np.zeros(6, dtype=delimiters.dtype)))
    data = np.concatenate((data, np.zeros(8, dtype=np.uint8)))
    at = delimiters.__getitem__
    byte = data.__getitem__

    equals_8, soh_8 = at(first_delimiters), at(first_delimiters + 1)
    equals_9, soh_9 = at(first_delimiters + 2), at(first_delimiters + 3)
    equals_35, soh_35 = at(first_delimiters + 4), at(first_delimiters + 5)
    soh_before_10 = at(next_delimiters - 3)
    equals_10, soh_10 = at(next_delimiters - 2), at(next_delimiters - 1)
    ok = next_delimiters - first_delimiters >= 10  # at least 5 fields
    ok &= (equals_8 - starts == 1) & (byte(starts) == 0x38)  # "8="
    ok &= (equals_9 - soh_8 == 2) & (byte(soh_8 + 1) == 0x39)  # "9="
    ok &= (equals_35 - soh_9 == 3) & (byte(soh_9 + 1) == 0x33) & (byte(soh_9 + 2) == 0x35)
    ok &= (equals_10 - soh_before_10 == 3) & (byte(soh_before_10 + 1) == 0x31)  # "10="
    ok &= (byte(soh_before_10 + 2) == 0x30) & (soh_10 - equals_10 == 4)  # 3 digits
    checksum = np.zeros(len(starts), dtype=np.int64)
    for offset in (1, 2, 3):
        digit = byte(equals_10 + offset) - 48  # uint8: a non-digit wraps above 9
        ok &= digit <= 9
        checksum = checksum * 10 + digit
    ok &= checksum == checksums
    # BodyLength (9): 1-6 digits, no leading 0, equal to the body counted.
    length_digits = soh_9 - equals_9 - 1
    ok &= (length_digits >= 1) & (length_digits <= 6) & (byte(equals_9 + 1) != 0x30)
    body_length = np.zeros(len(starts), dtype=np.int64)
    for offset in range(1, 7):
        inside = offset <= length_digits
        digit = byte(equals_9 + offset) - 48
        ok &= ~inside | (digit <= 9)
        body_length = np.where(inside, body_length * 10 + digit, body_length)
    ok &= body_length == soh_before_10 - soh_9
    msg_type_bytes = np.where(soh_35 - equals_35 == 2, byte(equals_35 + 1), 0).astype(np.uint8)
    return ok, msg_type_bytes
