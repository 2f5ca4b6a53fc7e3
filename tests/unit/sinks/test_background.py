"""The background writer behind the pipelined ledger and audit sinks: order, drain, errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)
from bytewax.testing import TestingSource

from brokerflow.runner import FlowStopped, run_dataflow
from sinks.background import BackgroundPartition, BackgroundWriter, take_failures


def test_background_writer_writes_in_order_and_drain_waits_for_all() -> None:
    written: list[int] = []
    gate = threading.Event()

    def write(items: list[int]) -> None:
        gate.wait(5)
        written.extend(items)

    writer = BackgroundWriter(write, "test", max_items=100)
    try:
        for start in range(0, 50, 5):
            writer.submit(list(range(start, start + 5)))
        gate.set()
        writer.drain()
        assert written == list(range(50))
    finally:
        writer.close()


def test_background_writer_joins_queued_batches_up_to_max_items() -> None:
    sizes: list[int] = []
    gate, started = threading.Event(), threading.Event()

    def write(items: list[int]) -> None:
        started.set()
        gate.wait(5)
        sizes.append(len(items))

    writer = BackgroundWriter(write, "test", max_items=10)
    try:
        writer.submit([0])
        started.wait(5)  # the first batch is being written, alone
        for _ in range(6):
            writer.submit([1, 2, 3])  # queued meanwhile
        gate.set()
        writer.drain()
        assert sizes[0] == 1 and sum(sizes) == 19 and max(sizes) <= 10 and len(sizes) < 7
    finally:
        writer.close()


def test_background_writer_failure_stops_later_writes_and_is_raised() -> None:
    written: list[int] = []
    gate = threading.Event()

    def write(items: list[int]) -> None:
        gate.wait(5)
        if 3 in items:
            msg = "store down"
            raise ConnectionError(msg)
        written.extend(items)

    writer = BackgroundWriter(write, "test", max_items=1)
    writer.submit([1])
    writer.submit([3])
    writer.submit([4])  # queued behind the write that fails
    gate.set()
    with pytest.raises(ConnectionError, match="store down"):
        writer.drain()
    with pytest.raises(ConnectionError):
        writer.submit([5])
    writer.close()  # raised already: closing a failed flow's partition must not raise again
    assert written == [1]


def test_background_writer_close_keeps_an_error_not_raised_before_for_the_runner() -> None:
    def write(items: list[int]) -> None:
        msg = "store down"
        raise ConnectionError(msg)

    take_failures()
    writer = BackgroundWriter(write, "test")
    writer.submit([1])
    writer.close()  # never raises: Bytewax may be closing a flow that failed elsewhere
    [error] = take_failures()
    assert isinstance(error, ConnectionError) and "store down" in str(error)
    assert take_failures() == []


class _BackgroundPart(StatefulSinkPartition[int, None]):
    """A partition built like the pipelined sinks: submit, drain at snapshots, close."""

    def __init__(self, write: Callable[[list[int]], None], max_items: int) -> None:
        self.writer = BackgroundWriter(write, "test", max_items=max_items)

    def write_batch(self, values: list[int]) -> None:
        self.writer.submit(values)

    def snapshot(self) -> None:
        self.writer.drain()

    def close(self) -> None:
        self.writer.close()


class _BackgroundSink(FixedPartitionedSink[int, None]):
    def __init__(self, write: Callable[[list[int]], None], max_items: int = 20_000) -> None:
        self._write = write
        self._max_items = max_items

    def list_parts(self) -> list[str]:
        return ["p"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _BackgroundPart:
        return _BackgroundPart(self._write, self._max_items)


def test_failed_background_write_stops_the_flow_with_its_error() -> None:
    def write(items: list[int]) -> None:
        if 3 in items:
            msg = "store down"
            raise ConnectionError(msg)

    flow = Dataflow("background_failure")
    items = op.map("key", op.input("inp", flow, TestingSource(list(range(10)))), lambda x: ("p", x))
    op.output("out", items, _BackgroundSink(write, max_items=1))
    with pytest.raises(FlowStopped, match="store down"):  # not a Rust abort in cleanup
        run_dataflow(flow)


def test_a_background_write_failing_while_another_sink_stops_the_flow_does_not_abort() -> None:
    # The other sink's error stops the flow; Bytewax then closes this partition, whose write
    # failed unseen: raising there aborted the process with a Rust backtrace (seen in CI).
    def write(items: list[int]) -> None:
        msg = "B down"
        raise ConnectionError(msg)

    class Failing(StatelessSinkPartition[int]):
        def write_batch(self, values: list[int]) -> None:
            time.sleep(0.2)  # B's background write fails meanwhile
            msg = "A down"
            raise ConnectionError(msg)

    class FailingSink(DynamicSink[int]):
        def build(self, step_id: str, worker_index: int, worker_count: int) -> Failing:
            return Failing()

    flow = Dataflow("two_failures")
    items = op.input("inp", flow, TestingSource(list(range(10))))
    op.output("b", op.map("key", items, lambda x: ("p", x)), _BackgroundSink(write))
    op.output("a", items, FailingSink())
    with pytest.raises(FlowStopped, match="A down"):
        run_dataflow(flow)
    assert take_failures() == []  # the runner cleared what it did not show


def test_background_writer_submit_waits_when_the_queue_is_full() -> None:
    gate = threading.Event()
    writer = BackgroundWriter(lambda items: gate.wait(5), "test", max_items=1, max_pending=2)
    try:
        writer.submit([1])  # running
        writer.submit([2])
        writer.submit([3])  # queue full now
        blocked = threading.Thread(target=writer.submit, args=([4],))
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive()
        gate.set()
        blocked.join(5)
        assert not blocked.is_alive()
    finally:
        gate.set()
        writer.close()


@pytest.mark.parametrize("recovery", [True, False])
def test_partition_snapshot_waits_for_the_writes_only_when_the_run_recovers(
    recovery: bool,
) -> None:
    written: list[int] = []
    gate = threading.Event()

    def write(items: list[int]) -> None:
        gate.wait(5)
        written.extend(items)

    part = BackgroundPartition.threaded(write, lambda: None, "test", 100, recovery)
    part.write_batch([[1, 2], [3]])
    waited = threading.Thread(target=part.snapshot)
    waited.start()
    waited.join(0.5)
    # With recovery, the epoch's snapshot waits for its writes (Bytewax commits after it);
    # without, nothing is committed and the worker goes on.
    assert waited.is_alive() is recovery
    gate.set()
    waited.join(5)
    part.close()  # every write is done when the partition closes, either way
    assert written == [1, 2, 3]
