"""ClickHouse's errors: one line from the engine, and the read-only refusal."""

from __future__ import annotations

from domain.errors import BrokerflowError


class ClickHouseError(BrokerflowError):
    """The ClickHouse store refused or failed a statement; one line from the engine."""


class ReadOnlyError(ClickHouseError):
    """A statement that could write was given where only reads are allowed."""
