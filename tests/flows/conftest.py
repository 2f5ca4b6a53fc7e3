"""Fixtures of the flow tests: how a dataflow is run in this process.

`entry_point` runs a flow as Bytewax's own test suite does (its conftest's `entry_point`):
`run_main` (1 worker, in the calling thread) and `cluster_main` with 2 workers, so each test that
uses it shows the flows' output does not depend on how many workers share the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import cluster_main, run_main


@dataclass(frozen=True)
class EntryPoint:
    """How to run a flow: `run(flow)` with `workers` workers in this process."""

    workers: int
    run: Callable[[Dataflow], None]


def _two_workers(flow: Dataflow) -> None:
    cluster_main(flow, addresses=[], proc_id=0, worker_count_per_proc=2)


ENTRY_POINTS = {"1 worker": EntryPoint(1, run_main), "2 workers": EntryPoint(2, _two_workers)}


@pytest.fixture(params=list(ENTRY_POINTS))
def entry_point(request: pytest.FixtureRequest) -> EntryPoint:
    """Run a flow with 1 worker (`run_main`) and with 2 (`cluster_main`)."""
    return ENTRY_POINTS[request.param]
