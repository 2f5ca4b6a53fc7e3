"""Application layer: Prometheus metrics of a run, read from its `FlowStats` at scrape time.

Nothing here runs on the hot path: the flows keep counting into `FlowStats` once per batch, and
`StatsCollector` turns a snapshot into metric families when Prometheus scrapes. Sinks are timed
by wrapping every output step of a copy of the built dataflow (`with_timed_sinks`): one
`perf_counter` pair per written batch, observed into prometheus_client histograms
(`brokerflow.metrics`).

Families (all prefixed `brokerflow_`): messages_in_total{source}, messages_out_total{flow,step},
dead_letters_total{reason} (the error class, a bounded set), alerts_total{kind},
batch_items{step} / sink_write_seconds{step} / end_to_end_latency_seconds{step} histograms
(latency from the event time of the batch's last item to its write), dq_* for data quality,
kafka_lag_messages{topic,partition} and kafka_lag_seconds{topic,partition} (`set_kafka_lag`,
for the Kafka source),
kafka_partition_idle{topic,partition} (`set_kafka_idle`), sink_retries_total{store} and
sink_gave_up_total{store} (`sinks.retry`: this process's writes; a fired-price-alert writer
process counts its own), and counter_total{name} for every other counter of the run.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from brokerflow.metrics import SINK_HISTOGRAMS, FlowStats, sink_histogram
from connectors.fix.session.registry import figures as session_figures
from domain.quotes import Quote
from sinks.retry import retry_counts

PREFIX = "brokerflow_"
# Output step -> the flow it belongs to (the `flow` label); other steps are named after
# themselves without the `write_` prefix.
FLOW_OF_STEP = {
    "write_quotes": "quotes",
    "write_ledger": "ledger",
    "write_audit": "audit",
    "write_ticks": "audit",
    "write_dead_letters": "dead_letters",
    "check_data_quality": "quality",
}

_lag_lock = threading.Lock()
_kafka_lag: dict[tuple[str, int], int] = {}
_kafka_lag_s: dict[tuple[str, int], float] = {}


def set_kafka_lag(topic: str, partition: int, lag: int, seconds: float = 0.0) -> None:
    """Record the consumer lag of a Kafka partition: messages behind the high watermark, and
    seconds since the last message read was produced.

    For the Kafka source: call it whenever it learns the lag (e.g. once per poll batch); the
    values are exposed as `brokerflow_kafka_lag_messages{topic,partition}` and
    `brokerflow_kafka_lag_seconds{topic,partition}`.
    """
    with _lag_lock:
        _kafka_lag[(topic, partition)] = lag
        _kafka_lag_s[(topic, partition)] = seconds


def kafka_lag() -> dict[tuple[str, int], int]:
    with _lag_lock:
        return dict(_kafka_lag)


def kafka_lag_seconds() -> dict[tuple[str, int], float]:
    with _lag_lock:
        return dict(_kafka_lag_s)


_kafka_idle: dict[tuple[str, int], bool] = {}
_idle_log = logging.getLogger("brokerflow.kafka")


def set_kafka_idle(name: str, idle: bool) -> None:
    """Record that a Kafka partition ("topic/partition") went idle or spoke again (the
    source's idle timeout, `connectors.kafka.IDLE_S`): exposed as
    `brokerflow_kafka_partition_idle{topic,partition}` and logged once per quiet spell."""
    topic, _, number = name.rpartition("/")
    with _lag_lock:
        _kafka_idle[(topic, int(number))] = idle
    if idle:
        _idle_log.warning("kafka_partition_idle", extra={"fields": {"partition": name}})
    else:
        _idle_log.info("kafka_partition_active", extra={"fields": {"partition": name}})


def kafka_idle() -> dict[tuple[str, int], bool]:
    with _lag_lock:
        return dict(_kafka_idle)


def flow_of(step: str) -> str:
    """The `flow` label of an output step id (its last component)."""
    if step in FLOW_OF_STEP:
        return FLOW_OF_STEP[step]
    for flow in ("stop", "margin", "surveillance", "alert"):
        if flow in step:
            return {"stop": "stops", "alert": "alerts"}.get(flow, flow)
    return step.removeprefix("write_")


# -- timing the sinks ----------------------------------------------------------------------------


def _event_ns(item: Any) -> int | None:
    """Event time (ns) of an item a sink writes: a Quote, an event with `ts_event`, or a list."""
    if type(item) is list:
        if not item:
            return None
        item = item[-1]
    if type(item) is Quote:
        return item.ts * 1_000_000
    ts = getattr(item, "ts_event", None)
    return ts if type(ts) is int and ts > 0 else None


class _BatchTimer:
    def __init__(self, stats: FlowStats, step: str) -> None:
        self._stats = stats
        self._step = step
        self._items = "sink_items." + step
        # The step's series, made on its first observation: a step that never wrote (or never
        # dated an item) has no series, as before prometheus_client kept them.
        self._series: dict[str, Any] = {}

    def _observe(self, kind: str, value: float) -> None:
        series = self._series.get(kind)
        if series is None:
            series = self._series[kind] = sink_histogram(self._stats, kind).labels(self._step)
        series.observe(value)

    def observe(self, items: list[Any], elapsed: float) -> None:
        n = sum(len(i) if type(i) is list else 1 for i in items)
        self._stats.add(self._items, n)
        self._observe("batch_items", n)
        self._observe("sink_seconds", elapsed)
        if items:
            event_ns = _event_ns(items[-1])
            if event_ns is not None:
                self._observe("e2e_seconds", (time.time_ns() - event_ns) / 1e9)


class _TimedPartition(StatelessSinkPartition[Any]):
    def __init__(self, inner: StatelessSinkPartition[Any], stats: FlowStats, step: str) -> None:
        self._inner = inner
        self._timer = _BatchTimer(stats, step)

    def write_batch(self, items: list[Any]) -> None:
        started = time.perf_counter()
        self._inner.write_batch(items)
        self._timer.observe(items, time.perf_counter() - started)

    def close(self) -> None:
        self._inner.close()


class _TimedStatefulPartition(StatefulSinkPartition[Any, Any]):
    def __init__(self, inner: StatefulSinkPartition[Any, Any], stats: FlowStats, step: str) -> None:
        self._inner = inner
        self._timer = _BatchTimer(stats, step)

    def write_batch(self, values: list[Any]) -> None:
        started = time.perf_counter()
        self._inner.write_batch(values)
        self._timer.observe(values, time.perf_counter() - started)

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class TimedSink(DynamicSink[Any]):
    """A sink that counts and times each batch its inner sink writes."""

    def __init__(self, inner: DynamicSink[Any], stats: FlowStats, step: str) -> None:
        self._inner = inner
        self._stats = stats
        self._step = step

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[Any]:
        inner = self._inner.build(step_id, worker_index, worker_count)
        return _TimedPartition(inner, self._stats, self._step)


class TimedPartitionedSink(FixedPartitionedSink[Any, Any]):
    """A partitioned sink that counts and times each batch its inner sink's partitions write
    (for a sink that writes on a background thread, the time to hand the batch over)."""

    def __init__(self, inner: FixedPartitionedSink[Any, Any], stats: FlowStats, step: str) -> None:
        self._inner = inner
        self._stats = stats
        self._step = step

    def list_parts(self) -> list[str]:
        return self._inner.list_parts()

    def part_fn(self, item_key: str) -> int:
        return self._inner.part_fn(item_key)

    def build_part(
        self, step_id: str, for_part: str, resume_state: Any
    ) -> StatefulSinkPartition[Any, Any]:
        inner = self._inner.build_part(step_id, for_part, resume_state)
        return _TimedStatefulPartition(inner, self._stats, self._step)


def _timed(step: Any, stats: FlowStats) -> Any:
    """`step` (a Dataflow or an operator) rebuilt with every output step below it timed.

    Bytewax's steps are frozen dataclasses: each one on the way to a sink is copied with
    `dataclasses.replace`, never changed, so the dataflow the caller built stays as it was.
    Steps refer to their streams by id, not by object, so the copies wire up the same.
    """
    sink = getattr(step, "sink", None)
    if type(step).__name__ == "output" and sink is not None:
        name = step.step_id.rsplit(".", 1)[-1]
        if isinstance(sink, DynamicSink) and not isinstance(sink, TimedSink):
            return dataclasses.replace(step, sink=TimedSink(sink, stats, name))
        if isinstance(sink, FixedPartitionedSink) and not isinstance(sink, TimedPartitionedSink):
            return dataclasses.replace(step, sink=TimedPartitionedSink(sink, stats, name))
        return step
    substeps = [_timed(sub, stats) for sub in step.substeps]
    if all(new is old for new, old in zip(substeps, step.substeps, strict=True)):
        return step
    if isinstance(step, Dataflow):  # a fresh scope: the copy's own substeps, not the original's
        return dataclasses.replace(step, substeps=substeps, _scope=None)
    return dataclasses.replace(step, substeps=substeps)


def with_timed_sinks(flow: Dataflow, stats: FlowStats) -> Dataflow:
    """A copy of `flow` whose sinks are each wrapped in a `TimedSink` (dynamic) or a
    `TimedPartitionedSink` (partitioned), counting and timing every batch into `stats`.

    Done on the built dataflow, so flows need not know about metrics; `flow` is not changed.
    """
    return _timed(flow, stats)


# -- the collector -------------------------------------------------------------------------------


def _sink_histograms(stats: FlowStats | None) -> Iterator[Metric]:
    """The run's sink histograms as prometheus_client collects them, series in step order and
    without the `_created` samples (these families never had them)."""
    for kind, (name, doc, _bounds) in SINK_HISTOGRAMS.items():
        if stats is None:
            yield HistogramMetricFamily(PREFIX + name, doc, labels=["step"])
            continue
        for family in sink_histogram(stats, kind).collect():
            samples = [s for s in family.samples if not s.name.endswith("_created")]
            family.samples = sorted(samples, key=lambda s: s.labels["step"])  # stable: le order
            yield family


class StatsCollector(Collector):
    """Prometheus collector over the `FlowStats` of the current run (`publish`)."""

    def __init__(self) -> None:
        self._stats: FlowStats | None = None

    def publish(self, stats: FlowStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        counts = stats.snapshot() if stats is not None else {}
        used: set[str] = set()

        def take(prefix: str) -> dict[str, int]:
            out = {}
            for key, value in counts.items():
                if key.startswith(prefix):
                    out[key[len(prefix) :]] = value
                    used.add(key)
            return out

        by_source = take("messages_in.")
        if not by_source and "messages" in counts:
            by_source = {"all": counts["messages"]}
        used.add("messages")
        yield _counter("messages_in", "FIX messages read, by source kind", ["source"],
                       [((k,), n) for k, n in sorted(by_source.items())])  # fmt: skip
        out = sorted(take("sink_items.").items())
        yield _counter("messages_out", "items written by each output step", ["flow", "step"],
                       [((flow_of(k), k), n) for k, n in out])  # fmt: skip

        by_reason = take("dead_letters_by.")
        total = counts.get("dead_letters", 0)
        used.add("dead_letters")
        other = total - sum(by_reason.values())
        if other > 0:
            by_reason["other"] = other
        yield _counter("dead_letters", "dead letters by error class", ["reason"],
                       [((k,), n) for k, n in sorted(by_reason.items())])  # fmt: skip
        yield _counter("alerts", "alerts raised, by kind", ["kind"],
                       [((k,), n) for k, n in sorted(take("alerts.").items())])  # fmt: skip

        yield from self._data_quality(take)

        # book integrity (flows.quotes, docs/book-integrity.md)
        used.add("books_stale")
        yield _gauge("books_stale", "symbols whose book is stale now (quotes flagged)", [],
                     [((), counts.get("books_stale", 0))])  # fmt: skip
        yield _counter("book_stale", "books turned stale (sound -> stale), by reason", ["reason"],
                       [((k,), n) for k, n in sorted(take("book_stale.").items())])  # fmt: skip
        yield _counter(
            "book_stale_seconds",
            "event-time seconds a symbol's book was stale (added when it turns sound again, "
            "and at the end of the input)",
            ["symbol"], [((k,), n / 1e9) for k, n in sorted(take("book_stale_ns.").items())],
        )  # fmt: skip

        yield from _sink_histograms(stats)

        by_partition = ["topic", "partition"]
        yield _gauge("kafka_lag_messages", "messages behind the partition's high watermark",
                     by_partition, _per_partition(kafka_lag()))  # fmt: skip
        yield _gauge(
            "kafka_lag_seconds",
            "seconds since the last message read was produced (0 when idle): how late the "
            "flows read their input",
            by_partition, _per_partition(kafka_lag_seconds()),
        )  # fmt: skip
        yield _gauge(
            "kafka_partition_idle",
            "1 while the partition is idle (nothing for the idle timeout, nothing left to read): "
            "the steps that merge partitions no longer wait for it",
            by_partition, _per_partition({k: int(v) for k, v in kafka_idle().items()}),
        )  # fmt: skip

        yield from _fix_session_families()

        retries, gave_up = retry_counts()
        for name, doc, by_store in (
            ("sink_retries", "store writes retried after a connection error", retries),
            ("sink_gave_up", "store writes that failed after every retry (the flow stops)",
             gave_up),
        ):  # fmt: skip
            yield _counter(name, doc, ["store"], [((k,), n) for k, n in by_store.items()])
        rest = [((k,), n) for k, n in sorted(counts.items()) if k not in used]
        yield _counter("counter", "every other counter of the run, by name", ["name"], rest)

    def _data_quality(self, take: Any) -> Iterator[Metric]:
        seen, covered = take("dq_seen."), take("dq_covered.")
        rows, failed = take("dq_rows."), take("dq_rows_failed.")
        validations, failures = take("dq_validations."), take("dq_validations_failed.")
        checks = take("dq_failed.")
        cpu_us = take("dq_cpu_us").get("", 0)
        fam = CounterMetricFamily(
            PREFIX + "dq_rows", "rows validated by data quality", labels=["suite", "outcome"]
        )
        for suite in sorted(rows):
            fam.add_metric([suite, "validated"], rows[suite])
            fam.add_metric([suite, "failed"], failed.get(suite, 0))
        yield fam
        fam = CounterMetricFamily(
            PREFIX + "dq_validations", "micro-batches validated", labels=["suite", "success"]
        )
        for suite in sorted(validations):
            bad = failures.get(suite, 0)
            fam.add_metric([suite, "true"], validations[suite] - bad)
            fam.add_metric([suite, "false"], bad)
        yield fam
        fam = CounterMetricFamily(
            PREFIX + "dq_expectation_failures",
            "rows failing each expectation",
            labels=["suite", "check"],
        )
        for key, n in sorted(checks.items()):
            suite, _, check = key.partition(".")
            fam.add_metric([suite, check], n)
        yield fam
        fam = GaugeMetricFamily(
            PREFIX + "dq_coverage_ratio",
            "share of stream items whose micro-batch was validated",
            labels=["suite"],
        )
        for suite, n in sorted(seen.items()):
            fam.add_metric([suite], covered.get(suite, 0) / n if n else 0.0)
        yield fam
        yield CounterMetricFamily(
            PREFIX + "dq_cpu_seconds", "CPU time of the validator threads", value=cpu_us / 1e6
        )


def _family(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    labels: list[str],
    samples: Iterable[tuple[tuple[str, ...], float]],
) -> CounterMetricFamily | GaugeMetricFamily:
    """A `kind` family `PREFIX + name` with one sample per (label values, value)."""
    fam = kind(PREFIX + name, doc, labels=labels)
    for values, n in samples:
        fam.add_metric(list(values), n)
    return fam


def _counter(
    name: str, doc: str, labels: list[str], samples: Iterable[tuple[tuple[str, ...], float]]
) -> CounterMetricFamily | GaugeMetricFamily:
    return _family(CounterMetricFamily, name, doc, labels, samples)


def _gauge(
    name: str, doc: str, labels: list[str], samples: Iterable[tuple[tuple[str, ...], float]]
) -> CounterMetricFamily | GaugeMetricFamily:
    return _family(GaugeMetricFamily, name, doc, labels, samples)


def _per_partition(values: dict[tuple[str, int], float]) -> list[tuple[tuple[str, ...], float]]:
    return [((topic, str(n)), v) for (topic, n), v in sorted(values.items())]


# -- the HTTP endpoint ---------------------------------------------------------------------------

_servers: dict[int, tuple[Any, StatsCollector]] = {}
_servers_lock = threading.Lock()


def _fix_session_families() -> Iterator[Metric]:
    """The FIX sessions of this process (`connectors.fix.session.registry`)."""
    sessions = session_figures()
    for name, doc, value_of in (
        ("fix_session_logged_on", "1 while the session is logged on", lambda f: f.logged_on),
        ("fix_session_next_sender_seq", "the next MsgSeqNum (34) we send",
         lambda f: f.next_sender_seq),
        ("fix_session_next_target_seq", "the next MsgSeqNum (34) we expect",
         lambda f: f.next_target_seq),
    ):  # fmt: skip
        fam = GaugeMetricFamily(PREFIX + name, doc, labels=["session"])
        for f in sessions:
            fam.add_metric([f.name], float(value_of(f)))
        yield fam
    for name, doc, kind in (
        ("fix_session_resend_requests", "ResendRequests (35=2), by direction", "resend_requests"),
        ("fix_session_rejects", "session-level Rejects (35=3), by direction", "rejects"),
    ):  # fmt: skip
        fam = CounterMetricFamily(PREFIX + name, doc, labels=["session", "direction"])
        for f in sessions:
            for direction in ("sent", "received"):
                fam.add_metric([f.name, direction], f.counts[f"{kind}_{direction}"])
        yield fam


def serve_metrics(port: int, stats: FlowStats, host: str = "0.0.0.0") -> int:
    """Serve `stats` on http://host:port/metrics (Prometheus text format); return the port.

    One server per port per process, kept until `stop_metrics` or the process ends, so the
    figures of a finished run can still be scraped; a later run on the same port replaces
    the stats it shows.
    """
    with _servers_lock:
        entry = _servers.get(port)
        if entry is None:
            collector = StatsCollector()
            registry = CollectorRegistry(auto_describe=False)
            registry.register(collector)
            server, _thread = start_http_server(port, addr=host, registry=registry)
            entry = _servers[port] = (server, collector)
        entry[1].publish(stats)
    return port


def stop_metrics(port: int) -> None:
    """Stop the server on `port` if this process runs one."""
    with _servers_lock:
        entry = _servers.pop(port, None)
    if entry is not None:
        entry[0].shutdown()
        entry[0].server_close()
