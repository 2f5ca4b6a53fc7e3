"""A partitioned source that ends its input when asked to: the orderly stop of a run.

`brokerflow` turns Ctrl-C and SIGTERM into a stop request (`brokerflow.interrupts`). A run
stopped that way must end as one that reached the end of its input: every partition raises
StopIteration, the dataflow completes, and the sinks flush and close as they do at a normal
end. `StoppableSource` wraps any `FixedPartitionedSource` so (files, Kafka) without changing
it; its snapshots are the wrapped partitions', so a run with a recovery directory resumes
where the stopped one left off.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition


class _StoppablePartition(StatefulSourcePartition[Any, Any]):
    def __init__(self, inner: StatefulSourcePartition[Any, Any], stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop

    def next_batch(self) -> Iterable[Any]:
        if self._stop.is_set():
            raise StopIteration
        return self._inner.next_batch()

    def next_awake(self) -> datetime | None:
        # Once stopped, wake at once: the next call ends the partition.
        return None if self._stop.is_set() else self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class StoppableSource(FixedPartitionedSource[Any, Any]):
    """`inner`'s partitions, each ending (StopIteration) once `stop` is set."""

    def __init__(self, inner: FixedPartitionedSource[Any, Any], stop: threading.Event) -> None:
        self.inner = inner
        self._stop = stop

    def list_parts(self) -> list[str]:
        return self.inner.list_parts()

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _StoppablePartition:
        inner = self.inner.build_part(step_id, for_part, resume_state)
        return _StoppablePartition(inner, self._stop)
