"""FIX data-dictionary validation of inbound messages (QuickFIX's XML dictionaries).

`load_dictionary(path)` parses a QuickFIX XML dictionary (FIX42.xml, FIX44.xml) once into lookup
tables (cached per path); `DataDictionary.validate(message)` raises `MessageRejected` with the
SessionRejectReason (373) and RefTagID (371) a session-level Reject (35=3) carries. Checks, in
QuickFIX's order: header fields after body fields (14), unknown MsgType (11), required tags (1),
then field by field: repeated (13), empty value (4), data format (6), enum value (5), unknown tag
number (0), tag not defined for the message type (2), NumInGroup count (16).

QuickFIX's FIX 4.2 and 4.4 dictionaries ship with the package (`connectors/fix/dictionaries/`,
with QuickFIX's licence): `dictionary_path(begin_string, ...)` resolves the session's
`dictionary` setting, else `BROKERFLOW_FIX_DICTIONARY_DIR` (a venue's customised dictionaries),
else those shipped ones.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import Any

from connectors.fix.session.wire import HEADER_TAGS, TRAILER_TAGS, Message
from connectors.fix.timefmt import parse_utc_timestamp
from domain.errors import ConfigError, FieldError

DICTIONARY_DIR_ENV = "BROKERFLOW_FIX_DICTIONARY_DIR"
# Package data (pyproject.toml): in a clone, a pip install and the Docker image alike.
DEFAULT_DICTIONARY_DIR = Path(__file__).resolve().parents[1] / "dictionaries"
# BeginString (or DefaultApplVerID (1137) for FIXT.1.1) -> QuickFIX dictionary file name.
DICTIONARY_FILES = {
    "FIX.4.2": "FIX42.xml",
    "FIX.4.4": "FIX44.xml",
    "FIX.5.0SP2": "FIX50SP2.xml",
    "9": "FIX50SP2.xml",
    "8": "FIX50SP1.xml",
    "7": "FIX50.xml",
    "6": "FIX44.xml",
    "4": "FIX42.xml",
}


class RejectReason(IntEnum):
    """SessionRejectReason (373) values, with the Text (58) QuickFIX sends for each."""

    INVALID_TAG_NUMBER = 0
    REQUIRED_TAG_MISSING = 1
    TAG_NOT_DEFINED_FOR_MESSAGE_TYPE = 2
    TAG_SPECIFIED_WITHOUT_A_VALUE = 4
    VALUE_IS_INCORRECT = 5
    INCORRECT_DATA_FORMAT = 6
    COMPID_PROBLEM = 9
    SENDINGTIME_ACCURACY_PROBLEM = 10
    INVALID_MSGTYPE = 11
    TAG_APPEARS_MORE_THAN_ONCE = 13
    TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER = 14
    INCORRECT_NUMINGROUP_COUNT = 16

    @property
    def text(self) -> str:
        return _REJECT_TEXTS[self]


_REJECT_TEXTS = {
    RejectReason.INVALID_TAG_NUMBER: "Invalid tag number",
    RejectReason.REQUIRED_TAG_MISSING: "Required tag missing",
    RejectReason.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE: "Tag not defined for this message type",
    RejectReason.TAG_SPECIFIED_WITHOUT_A_VALUE: "Tag specified without a value",
    RejectReason.VALUE_IS_INCORRECT: "Value is incorrect (out of range) for this tag",
    RejectReason.INCORRECT_DATA_FORMAT: "Incorrect data format for value",
    RejectReason.COMPID_PROBLEM: "CompID problem",
    RejectReason.SENDINGTIME_ACCURACY_PROBLEM: "SendingTime accuracy problem",
    RejectReason.INVALID_MSGTYPE: "Invalid MsgType",
    RejectReason.TAG_APPEARS_MORE_THAN_ONCE: "Tag appears more than once",
    RejectReason.TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER: "Tag specified out of required order",
    RejectReason.INCORRECT_NUMINGROUP_COUNT: "Incorrect NumInGroup count for repeating group",
}


class MessageRejected(FieldError):
    """An inbound message fails a session-level check: answer with a Reject (35=3).

    Attributes:
        code: the SessionRejectReason (373).
        tag: the RefTagID (371), 0 when the reason names no tag.
        reason: one line for the log ("Required tag missing: 56").
    """

    def __init__(self, code: RejectReason, tag: int = 0) -> None:
        super().__init__(tag, f"{code.text}: {tag}" if tag else code.text)
        self.code = code


class GroupDef:
    """A repeating group: its NumInGroup tag, delimiter (first field) and member fields."""

    __slots__ = ("count_tag", "delimiter", "fields", "required")

    def __init__(self, count_tag: int) -> None:
        self.count_tag = count_tag
        self.delimiter = 0
        self.fields: dict[int, GroupDef | None] = {}
        self.required: set[int] = set()


class MessageDef:
    """A message type: its allowed body fields (groups by their count tag) and required tags."""

    __slots__ = ("msg_type", "name", "admin", "fields", "required")

    def __init__(self, msg_type: bytes, name: str, admin: bool) -> None:
        self.msg_type = msg_type
        self.name = name
        self.admin = admin
        self.fields: dict[int, GroupDef | None] = {}
        self.required: set[int] = set()


_INT_TYPES = frozenset(("INT", "LENGTH", "SEQNUM", "NUMINGROUP", "DAYOFMONTH", "TAGNUM"))
_FLOAT_TYPES = frozenset(("FLOAT", "PRICE", "QTY", "AMT", "PRICEOFFSET", "PERCENTAGE"))
_MULTI_TYPES = frozenset(("MULTIPLEVALUESTRING", "MULTIPLECHARVALUE", "MULTIPLESTRINGVALUE"))


_INT = re.compile(rb"-?[0-9]+")
_FLOAT = re.compile(rb"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def _is_int(value: bytes) -> bool:
    return _INT.fullmatch(value) is not None


def _is_float(value: bytes) -> bool:
    # QuickFIX's double: optional "-", digits with an optional "." (no "+", no exponent)
    return _FLOAT.fullmatch(value) is not None


def _is_timestamp(value: bytes) -> bool:
    try:
        parse_utc_timestamp(value)
    except (ValueError, IndexError):
        return False
    return True


def _is_time_only(value: bytes) -> bool:
    if len(value) < 8 or value[2:3] != b":" or value[5:6] != b":":
        return False
    head = value[0:2] + value[3:5] + value[6:8]
    tail = value[8:]
    return head.isdigit() and (not tail or (tail[:1] == b"." and tail[1:].isdigit()))


def _format_check(field_type: str):  # -> Callable[[bytes], bool] | None
    if field_type in _INT_TYPES:
        return _is_int
    if field_type in _FLOAT_TYPES:
        return _is_float
    if field_type == "CHAR":
        return lambda value: len(value) == 1
    if field_type == "BOOLEAN":
        return lambda value: value in (b"Y", b"N")
    if field_type == "UTCTIMESTAMP":
        return _is_timestamp
    if field_type == "UTCTIMEONLY":
        return _is_time_only
    if field_type in ("UTCDATE", "UTCDATEONLY"):
        return lambda value: len(value) == 8 and value.isdigit()
    return None


class DataDictionary:
    """Lookup tables built once from a QuickFIX XML dictionary.

    Attributes:
        begin_string: e.g. b"FIX.4.4" (b"FIXT.1.1" for a transport dictionary).
        names: tag -> field name.
        types: tag -> FIX type name.
        enums: tag -> allowed values (only for fields with enumerated values).
        header_required / header_fields: the standard header.
        messages: MsgType (35) -> `MessageDef`.
    """

    def __init__(self, path: Path) -> None:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            msg = f"FIX dictionary {path} cannot be read: {exc}"
            raise ConfigError(msg) from exc
        self.path = path
        kind = root.get("type", "FIX")
        self.begin_string = f"{kind}.{root.get('major')}.{root.get('minor')}".encode()
        self.names: dict[int, str] = {}
        self.types: dict[int, str] = {}
        self.enums: dict[int, frozenset[bytes]] = {}
        self._checks: dict[int, object] = {}
        numbers: dict[str, int] = {}
        for field in root.iterfind("fields/field"):
            number = int(field.get("number", "0"))
            name = field.get("name", "")
            field_type = field.get("type", "STRING").upper()
            numbers[name] = number
            self.names[number] = name
            self.types[number] = field_type
            values = [v.get("enum", "").encode() for v in field.iterfind("value")]
            if values:
                self.enums[number] = frozenset(values)
            check = _format_check(field_type)
            if check is not None:
                self._checks[number] = check
        self._multi = frozenset(t for t, ft in self.types.items() if ft in _MULTI_TYPES)
        components = {c.get("name", ""): c for c in root.iterfind("components/component")}
        self._numbers = numbers
        self._components = components
        header = MessageDef(b"", "Header", True)
        header_node = root.find("header")
        if header_node is not None:
            self._add_children(header_node, header.fields, header.required, parent_required=True)
        self.header_fields = header.fields
        self.header_required = sorted(header.required - {8, 9, 35})
        self._plans: dict[tuple[object, ...], _Plan] = {}
        self.messages: dict[bytes, MessageDef] = {}
        for node in root.iterfind("messages/message"):
            msg_type = node.get("msgtype", "").encode()
            mdef = MessageDef(msg_type, node.get("name", ""), node.get("msgcat") == "admin")
            self._add_children(node, mdef.fields, mdef.required, parent_required=True)
            self.messages[msg_type] = mdef
        del self._components
        self._allow_rpt_seq()

    def _allow_rpt_seq(self) -> None:
        """RptSeq (83) where market-data venues send it: in each MDIncGrp entry of a 35=X and in
        the body of a 35=W (FIX 5.0 defines both; CME MDP and others send them over FIX 4.x).
        QuickFIX's FIX 4.2/4.4 dictionaries list neither, so a validating session would reject
        every sequenced incremental, and book integrity (docs/book-integrity.md) needs them."""
        if 83 not in self.names:
            return
        snapshot = self.messages.get(b"W")
        if snapshot is not None:
            snapshot.fields.setdefault(83, None)
        incremental = self.messages.get(b"X")
        group = incremental.fields.get(268) if incremental is not None else None
        if group is not None:
            group.fields.setdefault(83, None)

    def _add_children(
        self,
        node: ET.Element,
        fields: dict[int, GroupDef | None],
        required_tags: set[int],
        *,
        parent_required: bool,
    ) -> None:
        """Flatten a message/component/group node: a component's fields join its parent, and
        are required only when the component itself is required."""
        for child in node:
            is_required = parent_required and child.get("required", "N") == "Y"
            name = child.get("name", "")
            if child.tag == "component":
                component = self._components.get(name)
                if component is not None:
                    self._add_children(
                        component, fields, required_tags, parent_required=is_required
                    )
                continue
            tag = self._numbers.get(name)
            if tag is None:
                continue
            if child.tag == "group":
                group = GroupDef(tag)
                self._add_children(child, group.fields, group.required, parent_required=True)
                group.delimiter = next(iter(group.fields), 0)
                fields[tag] = group
            else:
                fields[tag] = None
            if is_required:
                required_tags.add(tag)

    def name(self, tag: int) -> str:
        """`Name(tag)` for a log line."""
        return f"{self.names.get(tag, 'tag')}({tag})"

    def is_admin(self, msg_type: bytes) -> bool:
        mdef = self.messages.get(msg_type)
        return mdef.admin if mdef is not None else msg_type in _ADMIN_TYPES

    def validate(self, message: Message) -> None:
        """Check a parsed inbound message; raise `MessageRejected` at the first problem.

        The structural checks (order, required tags, repeats, tags allowed, group counts)
        depend only on the sequence of tags and the NumInGroup values, so a message whose tag
        sequence passed before is checked by a plan compiled then: its NumInGroup values and
        the values of its typed or enumerated fields. Any doubt falls back to the full check.
        """
        fields = message.fields
        key = (message.msg_type, message.tags or tuple(map(_first, fields)))
        plan = self._plans.get(key)
        if plan is not None and self._passes(plan, fields, message.raw):
            return
        self._validate(message)
        if len(self._plans) >= _PLAN_LIMIT:
            self._plans.clear()
        self._plans[key] = self._compile(fields)

    def _compile(self, fields: list[tuple[int, bytes]]) -> _Plan:
        counts = []
        checks = []
        for index, (tag, value) in enumerate(fields):
            if self.types.get(tag) == "NUMINGROUP":
                counts.append((index, value))
            check = self._checks.get(tag)
            allowed = self.enums.get(tag)
            if check is not None or allowed is not None:
                checks.append(
                    (
                        index,
                        check,
                        allowed if tag not in self._multi else None,
                        allowed if tag in self._multi else None,
                    )
                )
        return counts, checks

    @staticmethod
    def _passes(plan: _Plan, fields: list[tuple[int, bytes]], raw: bytes) -> bool:
        if b"=\x01" in raw:
            return False  # an empty value somewhere
        counts, checks = plan
        for index, value in counts:
            if fields[index][1] != value:
                return False
        for index, check, allowed, multi_allowed in checks:
            value = fields[index][1]
            if check is not None and not check(value):  # type: ignore[operator]
                return False
            if allowed is not None and value not in allowed:
                return False
            if multi_allowed is not None and any(
                part not in multi_allowed for part in value.split(b" ")
            ):
                return False
        return True

    def _validate(self, message: Message) -> None:
        fields = message.fields
        header_fields = self.header_fields
        in_body = False
        for tag, _value in fields:
            if tag in HEADER_TAGS or tag in header_fields:
                if in_body:
                    raise MessageRejected(RejectReason.TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER, tag)
            elif tag not in TRAILER_TAGS:
                in_body = True
        mdef = self.messages.get(message.msg_type)
        if mdef is None:
            raise MessageRejected(RejectReason.INVALID_MSGTYPE)
        present = {tag for tag, _ in fields}
        for tag in self.header_required:
            if tag not in present:
                raise MessageRejected(RejectReason.REQUIRED_TAG_MISSING, tag)
        for tag in sorted(mdef.required):
            if tag not in present:
                raise MessageRejected(RejectReason.REQUIRED_TAG_MISSING, tag)
        body_start = 1
        seen: set[int] = set()
        for index in range(1, len(fields)):
            tag, value = fields[index]
            if tag not in HEADER_TAGS and tag not in header_fields:
                body_start = index
                break
            if tag in seen:
                raise MessageRejected(RejectReason.TAG_APPEARS_MORE_THAN_ONCE, tag)
            seen.add(tag)
            self._check_value(tag, value)
        else:
            body_start = len(fields)
        self._check_level(fields, body_start, mdef.fields, None)

    def _check_value(self, tag: int, value: bytes) -> None:
        if not value:
            raise MessageRejected(RejectReason.TAG_SPECIFIED_WITHOUT_A_VALUE, tag)
        check = self._checks.get(tag)
        if check is not None and not check(value):  # type: ignore[operator]
            raise MessageRejected(RejectReason.INCORRECT_DATA_FORMAT, tag)
        allowed = self.enums.get(tag)
        if allowed is not None:
            if tag in self._multi:
                if any(part not in allowed for part in value.split(b" ")):
                    raise MessageRejected(RejectReason.VALUE_IS_INCORRECT, tag)
            elif value not in allowed:
                raise MessageRejected(RejectReason.VALUE_IS_INCORRECT, tag)
        if tag not in self.names:
            raise MessageRejected(RejectReason.INVALID_TAG_NUMBER, tag)

    def _check_level(
        self,
        fields: list[tuple[int, bytes]],
        index: int,
        allowed: dict[int, GroupDef | None],
        group: GroupDef | None,
    ) -> int:
        """Check fields from `index` at one level (the body, or one group instance); return
        the index of the first field that does not belong to it."""
        seen: set[int] = set()
        count = len(fields)
        while index < count:
            tag, value = fields[index]
            if group is not None:
                if tag not in allowed:
                    return index
                if tag in seen and tag == group.delimiter:
                    return index
            if tag in seen:
                raise MessageRejected(RejectReason.TAG_APPEARS_MORE_THAN_ONCE, tag)
            seen.add(tag)
            self._check_value(tag, value)
            if tag not in allowed:
                if tag in HEADER_TAGS or tag in self.header_fields:
                    raise MessageRejected(RejectReason.TAG_SPECIFIED_OUT_OF_REQUIRED_ORDER, tag)
                raise MessageRejected(RejectReason.TAG_NOT_DEFINED_FOR_MESSAGE_TYPE, tag)
            index += 1
            sub = allowed[tag]
            if sub is None:
                continue
            declared = int(value)
            instances = 0
            while index < count and fields[index][0] == sub.delimiter:
                instances += 1
                first = index
                index = self._check_level(fields, index, sub.fields, sub)
                members = {member for member, _ in fields[first:index]}
                for required in sorted(sub.required):
                    if required not in members:
                        raise MessageRejected(RejectReason.REQUIRED_TAG_MISSING, required)
            if instances != declared:
                raise MessageRejected(RejectReason.INCORRECT_NUMINGROUP_COUNT, tag)
        return index


_ADMIN_TYPES = frozenset((b"0", b"1", b"2", b"3", b"4", b"5", b"A"))
_PLAN_LIMIT = 4096
# (NumInGroup positions with their values, typed/enumerated positions with their checks)
_Plan = tuple[list[tuple[int, bytes]], list[tuple[int, Any, Any, Any]]]


def _first(field: tuple[int, bytes]) -> int:
    return field[0]


@cache
def load_dictionary(path: Path) -> DataDictionary:
    """The dictionary at `path`, parsed once per process."""
    return DataDictionary(path)


def dictionary_path(
    begin_string: str, default_appl_ver_id: str = "", configured: str | Path | None = None
) -> Path | None:
    """Where the dictionary for a session is, or None when there is none to validate with.

    Args:
        begin_string: the session's BeginString (8).
        default_appl_ver_id: DefaultApplVerID (1137) for FIXT.1.1 sessions.
        configured: a file or directory from the session configuration, if any.

    Raises:
        ConfigError: a configured file or directory does not exist.
    """
    key = default_appl_ver_id if begin_string == "FIXT.1.1" else begin_string
    file_name = DICTIONARY_FILES.get(key)
    if configured:
        path = Path(configured)
        if path.is_file():
            return path
        if not path.is_dir():
            msg = f"FIX dictionary path {path} does not exist"
            raise ConfigError(msg)
        candidate = path / file_name if file_name else None
        return candidate if candidate is not None and candidate.is_file() else None
    env = os.environ.get(DICTIONARY_DIR_ENV)
    directory = Path(env) if env else DEFAULT_DICTIONARY_DIR
    if env and not directory.is_dir():
        msg = f"{DICTIONARY_DIR_ENV}={env} is not a directory"
        raise ConfigError(msg)
    if file_name and (directory / file_name).is_file():
        return directory / file_name
    return None
