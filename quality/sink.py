"""Data quality: the Bytewax sink that hands stream items to a `DataQualityRunner`.

Items are `("quotes", [Quote…])` or `("events", [decoded event…])`. Each worker gets its own
runner (a child process with its GX context and PostgreSQL connection); `close` at the end of
the stream validates what is still waiting, so a replay's last rows are checked too.
"""

from __future__ import annotations

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from quality.runner import Count, DataQualityRunner, DqPolicy

QUOTES_ITEM = "quotes"
EVENTS_ITEM = "events"


class DataQualitySink(DynamicSink[tuple[str, list]]):
    """Feed sampled micro-batches to a background validator; results go to `dsn`."""

    def __init__(self, dsn: str, policy: DqPolicy, count: Count) -> None:
        self._dsn = dsn
        self._policy = policy
        self._count = count

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[tuple[str, list]]:
        runner = DataQualityRunner(self._policy, self._count, self._dsn)
        runner.start()
        return _DataQualityPartition(runner)


class _DataQualityPartition(StatelessSinkPartition[tuple[str, list]]):
    def __init__(self, runner: DataQualityRunner) -> None:
        self._runner = runner

    def write_batch(self, items: list[tuple[str, list]]) -> None:
        runner = self._runner
        for kind, payload in items:
            if kind == QUOTES_ITEM:
                runner.offer_quotes(payload)
            else:
                runner.offer_events(payload)

    def close(self) -> None:
        self._runner.close()
