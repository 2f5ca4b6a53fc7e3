"""Domain layer: a dead letter, the record of an input we could not use and why."""

from __future__ import annotations

from dataclasses import dataclass

from domain.pickling import tuple_pickled


@tuple_pickled
@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that failed to decode, parse or validate.

    Attributes:
        source: where it came from: "file:{path}:{line}", "kafka:{topic}/{partition}@{offset}",
            or "fix:{session}#{msg_seq_num}".
        reason: one line naming the tag and what was wrong.
        raw: the raw bytes as received (after the log-line prefix was stripped).
        step_id: the dataflow step that rejected it.
        error: the error type name (DecodeError, FieldError, ...).
        tag: the FIX tag at fault, when known.
        ts_init: when we built it, int UTC nanoseconds (set by the caller, never read here).
    """

    source: str
    reason: str
    raw: bytes
    step_id: str
    error: str
    tag: int | None = None
    ts_init: int = 0
