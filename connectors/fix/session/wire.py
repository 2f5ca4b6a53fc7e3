"""Session wire format: framing inbound bytes, tolerant field parsing, encoding outbound messages.

No sockets. Framing follows QuickFIX's parser so that the acceptance suite's garbled cases behave
as there: find `8=`, read BodyLength (9), then look for `<SOH>10=` starting one byte before the
announced end of the body. A frame whose `<SOH>10=` is not exactly there, whose CheckSum (10) is
wrong, or whose first three fields are not 8, 9, 35 is *garbled*: the session ignores it (no
reject, no sequence number used) and recovers the gap with a ResendRequest later.

Fields are parsed tolerantly (`0=x`, `-1=x`, `56=` are kept) because those are session-level
Rejects with a reason, not garbled frames; only a field without `=` or with a non-numeric tag is
garbled. Length-prefixed data fields (95/96, 212/213, ...) are read by their length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from connectors.fix.tags import DATA_LENGTH_TAGS
from connectors.fix.timefmt import parse_utc_timestamp

SOH = b"\x01"
_CHECKSUM_MARK = b"\x0110="
# Header tags in QuickFIX's sense (FIX 4.2/4.4/FIXT): they must all come before the body.
HEADER_TAGS = frozenset(
    (8, 9, 35, 49, 56, 115, 128, 90, 91, 34, 50, 142, 57, 143, 116, 144, 129, 145, 43, 97, 52,
     122, 212, 213, 347, 369, 627, 628, 629, 630, 1128, 1129)
)
TRAILER_TAGS = frozenset((93, 89, 10))
# Tags the session fills in itself on every outbound message.
SESSION_HEADER_TAGS = frozenset((8, 9, 35, 34, 49, 52, 56, 43, 122, 10))


class Frame:
    """One framed message as received.

    Attributes:
        raw: the bytes from `8=` through the SOH after CheckSum (10).
        garbled: why the frame cannot be trusted (BodyLength, CheckSum, field order), or "".
    """

    __slots__ = ("raw", "garbled")

    def __init__(self, raw: bytes, garbled: str = "") -> None:
        self.raw = raw
        self.garbled = garbled

    def __repr__(self) -> str:
        return f"Frame({show(self.raw)!r}, garbled={self.garbled!r})"


def show(raw: bytes, limit: int = 120) -> str:
    """Wire bytes for a log line: SOH as `|`, non-ASCII escaped, truncated."""
    text = raw[:limit].replace(SOH, b"|").decode("ascii", "backslashreplace")
    return text + "..." if len(raw) > limit else text


class Framer:
    """Cut a byte stream into `Frame`s, many per `feed` (the inbound path is batch-oriented).

    Args:
        max_message_size: a frame (or a BodyLength) larger than this is dropped as oversize,
            so a peer cannot make us buffer without bound.
    """

    def __init__(self, max_message_size: int = 1 << 20) -> None:
        self.max_message_size = max_message_size
        self._buffer = b""
        self.skipped = 0  # bytes of garbage dropped before an `8=` (reported by the caller)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every complete frame now available, in order."""
        buf = self._buffer + data if self._buffer else data
        frames: list[Frame] = []
        append = frames.append
        pos = 0
        size = len(buf)
        limit = self.max_message_size
        find = buf.find
        while pos < size:
            if buf.startswith(b"8=", pos):
                start = pos
            else:
                start = find(b"8=", pos)
                if start < 0:
                    # Keep a trailing "8" that may be the start of the next message.
                    keep = 1 if buf.endswith(b"8") else 0
                    self.skipped += size - pos - keep
                    pos = size - keep
                    break
                self.skipped += start - pos
            length_at = find(b"\x019=", start)
            if length_at < 0 or length_at - start > 64:
                if length_at < 0 and size - start < 64:
                    pos = start
                    break  # wait for the rest of the header
                # No BodyLength near the BeginString: garbage, resynchronise after this "8=".
                self.skipped += 2
                pos = start + 2
                continue
            length_end = find(SOH, length_at + 3)
            if length_end < 0:
                if size - length_at > 16:
                    self.skipped += length_at + 3 - start
                    pos = length_at + 3
                    continue
                pos = start
                break
            length_text = buf[length_at + 3 : length_end]
            if not length_text.isdigit():
                append(Frame(buf[start:length_end + 1], "BodyLength(9) is not a number"))
                pos = length_end + 1
                continue
            body_start = length_end + 1
            body_length = int(length_text)
            if body_length > limit:
                append(Frame(buf[start:length_end + 1], f"BodyLength(9) {body_length} is over "
                             f"the {limit}-byte limit"))
                pos = body_start
                continue
            announced = body_start + body_length
            if announced > size:
                pos = start
                break
            mark = find(_CHECKSUM_MARK, announced - 1)
            if mark < 0:
                if size - start > limit:
                    append(Frame(buf[start:start + 200], f"no CheckSum(10) within {limit} bytes"))
                    pos = announced
                    continue
                pos = start
                break
            end = find(SOH, mark + 4)
            if end < 0:
                pos = start
                break
            end += 1
            if mark != announced - 1:
                counted = mark + 1 - body_start
                append(Frame(buf[start:end], f"BodyLength(9) was {body_length}, counted {counted}"))
            else:
                checksum = buf[mark + 4 : end - 1]
                computed = sum(buf[start : mark + 1]) & 0xFF
                if len(checksum) != 3 or not checksum.isdigit() or int(checksum) != computed:
                    shown = checksum.decode("ascii", "replace")
                    reason = f"CheckSum(10) was {shown}, computed {computed:03d}"
                    append(Frame(buf[start:end], reason))
                elif not buf.startswith(b"35=", body_start):
                    append(Frame(buf[start:end], "MsgType(35) is not the third field"))
                else:
                    append(Frame(buf[start:end]))
            pos = end
        rest = buf[pos:]
        if len(rest) > self.max_message_size:
            self.skipped += len(rest)
            rest = b""
        self._buffer = rest
        return frames


class Garbled(Exception):  # noqa: N818 - a condition of the input, named as QuickFIX does
    """A frame whose fields cannot be parsed (no `=`, non-numeric tag, short data field)."""


class Message:
    """A parsed inbound message: fields in wire order (8, 9 and 10 left out).

    Attributes:
        raw: the frame's bytes.
        begin_string: BeginString (8).
        msg_type: MsgType (35).
        fields: (tag, value) pairs in wire order from 35 up to CheckSum (10), repeats kept.
    """

    __slots__ = ("raw", "begin_string", "msg_type", "fields", "tags", "_first")

    def __init__(self, raw: bytes, begin_string: bytes, fields: list[tuple[int, bytes]]) -> None:
        self.raw = raw
        self.begin_string = begin_string
        self.fields = fields
        self.msg_type = fields[0][1]
        self.tags: tuple[int, ...] = ()  # every tag in order, when the parser had them at hand
        self._first: dict[int, bytes] | None = None

    def get(self, tag: int) -> bytes | None:
        """The value of the first occurrence of `tag`, or None."""
        first = self._first
        if first is None:
            first = self._first = dict(reversed(self.fields))
        return first.get(tag)

    @property
    def seq(self) -> int:
        """MsgSeqNum (34), or 0 when missing or not a number."""
        value = self.get(34)
        return int(value) if value is not None and value.isdigit() else 0

    def body(self) -> list[tuple[int, bytes]]:
        """Fields that are neither header nor trailer, in wire order."""
        return [(t, v) for t, v in self.fields if t not in HEADER_TAGS and t not in TRAILER_TAGS]

    def header_extras(self) -> list[tuple[int, bytes]]:
        """Header fields the session does not fill in itself (routing, PossResend...)."""
        return [(t, v) for t, v in self.fields if t in HEADER_TAGS and t not in SESSION_HEADER_TAGS]

    def __repr__(self) -> str:
        return f"Message({show(self.raw)!r})"


def parse(raw: bytes) -> Message:
    """Parse a framed message (`Frame.raw` of a frame that is not garbled).

    Raises:
        Garbled: a field has no `=` or its tag is not an integer.
    """
    first_soh = raw.find(SOH)
    length_end = raw.find(SOH, first_soh + 1)
    mark = raw.rfind(_CHECKSUM_MARK)
    begin_string = raw[2:first_soh]
    body = raw[length_end + 1 : mark]
    if body.count(b"=") == body.count(SOH) + 1:
        # Fast path: one "=" per field, so one split gives tag, value, tag, value...
        tokens = body.replace(b"=", SOH).split(SOH)
        try:
            tags = tuple(map(int, tokens[0::2]))
        except ValueError:
            tags = ()  # a tag that is not a number: the slow path says which
        if tags and _DATA_LENGTH_TAGS.isdisjoint(tags):
            message = Message(raw, begin_string, list(zip(tags, tokens[1::2], strict=True)))
            message.tags = tags
            return message
    fields: list[tuple[int, bytes]] = []
    append = fields.append
    # Slow path: a data field may hold SOH, so walk field by field.
    pos = 0
    end = len(body)
    data_tag = 0
    data_length = 0
    while pos < end:
        equals = body.find(b"=", pos)
        soh = body.find(SOH, pos)
        if equals < 0 or (0 <= soh < equals):
            msg = f'field "{show(body[pos:soh if soh >= 0 else end], 40)}" has no "="'
            raise Garbled(msg)
        try:
            tag = int(body[pos:equals])
        except ValueError:
            msg = f'tag "{show(body[pos:equals], 40)}" is not a number'
            raise Garbled(msg) from None
        if tag == data_tag:
            value_end = equals + 1 + data_length
            if value_end > end:
                msg = f"data field {tag} is shorter than its length field says"
                raise Garbled(msg)
        else:
            value_end = body.find(SOH, equals)
            if value_end < 0:
                value_end = end
        value = body[equals + 1 : value_end]
        append((tag, value))
        data_tag = DATA_LENGTH_TAGS.get(tag, 0)
        if data_tag:
            data_length = int(value) if value.isdigit() else 0
        pos = value_end + 1
    return Message(raw, begin_string, fields)


_DATA_LENGTH_TAGS = frozenset(DATA_LENGTH_TAGS)


class Clock:
    """SendingTime text for `now`, cached per second (one strftime per second, not per message)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def stamp(self, now: float) -> bytes:
        """`YYYYMMDD-HH:MM:SS.sss` (UTC) for epoch seconds `now`."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(second)).encode()
        return b"%s.%03d" % (self._prefix, int((now - second) * 1000))


def parse_timestamp(value: bytes) -> float | None:
    """Epoch seconds of a UTCTimestamp `YYYYMMDD-HH:MM:SS[.fff]`, or None if malformed."""
    try:
        return parse_utc_timestamp(value) / 1e9
    except (ValueError, IndexError):
        return None


def encode(
    begin_string: bytes,
    msg_type: bytes,
    header: Iterable[tuple[int, bytes]],
    body: Iterable[tuple[int, bytes]],
) -> bytes:
    """Encode a message: 8, 9, 35, the header sorted by tag (as QuickFIX writes it), the body
    in the order given, CheckSum (10).

    Args:
        begin_string: BeginString (8).
        msg_type: MsgType (35).
        header: header fields other than 8, 9, 35 (34, 49, 52, 56 and any extras).
        body: body fields in wire order.
    """
    parts = [b"35=" + msg_type]
    parts.extend(b"%d=%s" % field for field in sorted(header, key=_tag))
    parts.extend(b"%d=%s" % field for field in body)
    payload = SOH.join(parts) + SOH
    head = b"8=%s\x019=%d\x01" % (begin_string, len(payload))
    message = head + payload
    return message + b"10=%03d\x01" % (sum(message) & 0xFF)


def _tag(field: tuple[int, bytes]) -> int:
    return field[0]
