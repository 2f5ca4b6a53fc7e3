"""Domain layer: the error hierarchy. Errors carry data (tag, reason), not prose alone."""

from __future__ import annotations


class BrokerflowError(Exception):
    """Base of every error this project raises on purpose."""


class DecodeError(BrokerflowError):
    """A message could not be framed or decoded (BodyLength, CheckSum, garbled tag).

    Attributes:
        reason: one line saying what was wrong, naming the tag
            ("CheckSum(10) was 000, computed 187").
        tag: the FIX tag at fault, when there is one.
    """

    def __init__(self, reason: str, tag: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tag = tag


class FieldError(BrokerflowError):
    """A decoded message has a missing, malformed or unsupported field.

    Attributes:
        tag: the FIX tag at fault (35 for an unsupported MsgType).
        reason: one line naming the problem ("Symbol(55) missing").
    """

    def __init__(self, tag: int, reason: str) -> None:
        super().__init__(reason)
        self.tag = tag
        self.reason = reason


class InvalidTransition(BrokerflowError):
    """An input asked for a state change the state machine does not allow."""

    def __init__(self, state: str, trigger: str) -> None:
        super().__init__(f"no transition from {state} on {trigger}")
        self.state = state
        self.trigger = trigger


class InvariantViolation(BrokerflowError):
    """Our own state is inconsistent: a bug, never bad input. Crash and let recovery replay."""


class ConfigError(BrokerflowError):
    """The configuration is unusable; raised at start-up only."""
