"""The writer process behind the fired price alerts: order, drain, counts, and a failed write or
a dead child stopping the flow with a clear error rather than losing batches."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.outputs import FixedPartitionedSink
from bytewax.testing import TestingSource

from brokerflow.runner import FlowStopped, run_dataflow
from sinks.background import BackgroundPartition, take_failures
from sinks.writer_process import ProcessWriter, WriterProcessError
from tests.eventually import eventually


class LineWriter:
    """Appends each item as a line to `path` (what a store would hold), one write per batch;
    fails on the item `fail_on`; counts the items written as "lines"."""

    def __init__(self, path: str, fail_on: int | None, count: Callable[[str, int], None]) -> None:
        self.path, self.fail_on, self.count = path, fail_on, count

    def connect(self) -> None:
        Path(self.path).touch()

    def write(self, items: Sequence[int]) -> int:
        if self.fail_on in items:
            msg = f"refused item {self.fail_on}"
            raise ValueError(msg)
        with open(self.path, "a") as out:
            out.write("".join(f"{i}\n" for i in items))
        self.count("lines", len(items))
        return len(items)

    def close(self) -> None:
        pass


def lines(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def make(path: Path, fail_on: int | None = None) -> functools.partial:
    return functools.partial(LineWriter, str(path), fail_on)


def test_batches_are_written_in_order_counted_and_drained(tmp_path: Path) -> None:
    path, counted = tmp_path / "store", {}
    writer = ProcessWriter(make(path), "test-writer",
                           lambda k, n: counted.update({k: counted.get(k, 0) + n}))  # fmt: skip
    try:
        for start in range(0, 5_000, 50):
            writer.submit(list(range(start, start + 50)))
        writer.drain()
        assert lines(path) == list(range(5_000))  # all of them, in order, before drain returns
        assert counted == {"lines": 5_000}  # the child's counts reach the parent's counter
    finally:
        writer.close()


def test_a_run_that_writes_nothing_starts_no_process(tmp_path: Path) -> None:
    writer = ProcessWriter(make(tmp_path / "store"), "test-writer")
    writer.submit([])
    writer.drain()
    writer.close()
    assert not (tmp_path / "store").exists()


def test_a_failed_write_is_raised_and_nothing_after_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "store"
    writer = ProcessWriter(make(path, fail_on=7), "test-writer")
    writer.submit([1, 2])
    writer.submit([7])
    with pytest.raises(WriterProcessError, match="ValueError: refused item 7"):
        writer.drain()
    with pytest.raises(WriterProcessError, match="refused item 7"):  # stays failed
        writer.submit([8])
    writer.close()
    assert lines(path) in ([1, 2], [])  # [1, 2] and [7] may be joined into one refused write
    assert take_failures() == []  # raised to the caller already: not reported twice


def test_a_writer_process_that_dies_stops_the_flow(tmp_path: Path) -> None:
    writer = ProcessWriter(make(tmp_path / "store"), "test-writer")
    writer.submit([1])
    writer.drain()
    os.kill(writer._process.pid, signal.SIGKILL)  # noqa: SLF001 - the child, as an OOM kill would
    writer._process.join(5)  # noqa: SLF001
    with pytest.raises(WriterProcessError, match="test-writer"):
        writer.submit([2])
        writer.drain()
    writer.close()


def test_a_failure_found_only_at_close_goes_to_the_runner(tmp_path: Path) -> None:
    writer = ProcessWriter(make(tmp_path / "store", fail_on=3), "test-writer")
    writer.close([3])  # a partition's close never raises (Bytewax would abort the process)
    failures = take_failures()
    assert [str(f) for f in failures] == [
        "in the writer process test-writer: ValueError: refused item 3"
    ]


def test_the_child_ends_when_its_parent_closes_the_pipe(tmp_path: Path) -> None:
    writer = ProcessWriter(make(tmp_path / "store"), "test-writer")
    writer.submit([1])
    writer.drain()
    process = writer._process  # noqa: SLF001
    writer._conn.close()  # noqa: SLF001 - what a killed parent leaves the child
    eventually(lambda: not process.is_alive(), 10, 0.05, "the writer process ended")


class _ProcessSink(FixedPartitionedSink[int, None]):
    def __init__(self, path: Path, fail_on: int | None) -> None:
        self.path, self.fail_on = path, fail_on

    def list_parts(self) -> list[str]:
        return ["p"]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> BackgroundPartition:
        return BackgroundPartition(ProcessWriter(make(self.path, self.fail_on), step_id))


@pytest.mark.parametrize("fail_on", [None, 3])
def test_a_flow_writes_through_the_process_or_stops_with_its_error(
    tmp_path: Path, fail_on: int | None
) -> None:
    flow = Dataflow("process_sink")
    items = op.input("inp", flow, TestingSource([[i] for i in range(10)]))
    op.output(
        "out", op.map("key", items, lambda x: ("p", x)), _ProcessSink(tmp_path / "s", fail_on)
    )
    if fail_on is None:
        run_dataflow(flow)
        assert lines(tmp_path / "s") == list(range(10))
        return
    with pytest.raises(FlowStopped, match="refused item 3"):  # not a Rust abort in cleanup
        run_dataflow(flow)
    assert 3 not in lines(tmp_path / "s")
