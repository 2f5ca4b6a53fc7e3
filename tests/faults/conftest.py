"""Fixtures of the fault tests."""

from __future__ import annotations

import pytest

from tests.faults.reference import ReferenceDay, replay_reference


@pytest.fixture(scope="session")
def reference_day(
    tmp_path_factory: pytest.TempPathFactory, postgres_dsn: str, redis_url: str
) -> ReferenceDay:
    """The fault tests' day and its uninterrupted replay, made once per session: every test
    compares its disturbed runs with the same reference."""
    return replay_reference(tmp_path_factory.mktemp("fault-day"), postgres_dsn, redis_url)
