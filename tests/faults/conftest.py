"""Fixtures of the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import pg_dsn as _pg_dsn

# A second fresh database in the same test (the crashed run's, beside the reference's).
second_pg_dsn = pytest.fixture(_pg_dsn.__wrapped__, name="second_pg_dsn")  # type: ignore[attr-defined]

__all__ = ["second_pg_dsn", "Iterator"]
