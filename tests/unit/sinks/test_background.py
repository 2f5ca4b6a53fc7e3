"""The background writer behind the pipelined ledger and audit sinks: order, drain, errors."""

from __future__ import annotations

import threading

import pytest

from sinks.background import BackgroundWriter


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
    with pytest.raises(ConnectionError):
        writer.close()
    assert written == [1]


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
