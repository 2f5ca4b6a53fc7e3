"""One replay of the pipeline benchmark, in a process of its own: `python -m bench.pipeline_run`.

`bench/pipeline.py` prepares fresh stores, starts this process (sampling it with py-spy, or
not) and reads the JSON it writes. Here: `brokerflow.commands.replay.replay` over the day, what
`brokerflow replay FILE` runs, with the stores and settings the parent wrote, and the latency
probes of `Probe`. A process per replay: chdb serves one path per process, and no run inherits
another's warm state.

The parent and this process speak over stdin/stdout so that a profile covers the replay only:
this prints "ready" once imported and waits for a line; replays; prints "done" and waits for a
line again; then writes its result and exits.

Latency (`Probe`): the wall time each chunk is read (the file source's `next_batch`) and the
newest event time it holds (its decoded events); the wall time each batch of quotes is committed
to Redis (after `QuoteWriter.write`, one EVAL: the quotes and `stream:quotes` entries) with its
quotes' event times, and each batch of alerts is in `stream:alerts` (after `AlertWriter.write`,
PostgreSQL then the stream) with their event times. Event times are non-decreasing in a day, so
the chunk that holds an event is the first whose newest event time (running max) is at or past
it: a quote batch gives one sample per chunk its quotes came from, an alert one sample. Alerts
judged only at the end of the input (an event time past the last chunk, e.g. the order-to-trade
ratio of the day) have no chunk and are counted apart. The probes wrap functions the flows call
(no product code changes) and cost a few hundred ms in a two-minute run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path

from bench.common import percentile

_ts_event = attrgetter("ts_event")


class Probe:
    """Wall times of chunk reads, quote commits and alert commits during one replay."""

    def __init__(self) -> None:
        self.reads: dict[int, int] = {}  # first line of a chunk -> wall ns when read
        self.newest: dict[int, int] = {}  # first line of a chunk -> newest event time, ns
        self.quotes: list[tuple[int, int, int]] = []  # (oldest, newest event ns, wall ns)
        self.alerts: list[tuple[int, int, str]] = []  # (event ns, wall ns, kind)

    @contextmanager
    def installed(self) -> Iterator[Probe]:
        """Wrap the source, the decoder, the quote writer and the alert writer while inside."""
        import flows.pipeline
        from connectors.file import _FilePartition
        from sinks.alerts import AlertWriter
        from sinks.redis import QuoteWriter

        clock = time.perf_counter_ns
        reads, newest, quotes, alerts = self.reads, self.newest, self.quotes, self.alerts
        next_batch, make_decoder = _FilePartition.next_batch, flows.pipeline.make_decoder
        write_quotes, write_alerts = QuoteWriter.write, AlertWriter.write

        def read(part: _FilePartition) -> list:
            chunks = next_batch(part)
            now = clock()
            for chunk in chunks:
                reads[chunk.first_line_no] = now
            return chunks

        def decoder(*args: object, **kwargs: object):  # noqa: ANN202
            decode = make_decoder(*args, **kwargs)

            def probed(chunk):  # noqa: ANN001, ANN202
                batch = decode(chunk)
                if batch.events:
                    newest[chunk.first_line_no] = max(map(_ts_event, batch.events))
                return batch

            return probed

        def quotes_written(writer: QuoteWriter, batch: list) -> int:
            n = write_quotes(writer, batch)
            if batch:
                stamps = [q.ts for q in batch]
                quotes.append((min(stamps) * 1_000_000, max(stamps) * 1_000_000, clock()))
            return n

        def alerts_written(writer: AlertWriter, batch) -> int:  # noqa: ANN001
            n = write_alerts(writer, batch)
            now = clock()
            alerts.extend((a.event_time, now, a.kind) for a in batch)
            return n

        _FilePartition.next_batch = read  # type: ignore[method-assign]
        flows.pipeline.make_decoder = decoder
        QuoteWriter.write = quotes_written  # type: ignore[method-assign]
        AlertWriter.write = alerts_written  # type: ignore[method-assign]
        try:
            yield self
        finally:
            _FilePartition.next_batch = next_batch  # type: ignore[method-assign]
            flows.pipeline.make_decoder = make_decoder
            QuoteWriter.write = write_quotes  # type: ignore[method-assign]
            AlertWriter.write = write_alerts  # type: ignore[method-assign]

    def latencies(self) -> dict:
        """Quote and alert latency samples (ms), summarised; see the module docstring."""
        return latencies(self.reads, self.newest, self.quotes, self.alerts)


def latencies(
    reads: dict[int, int],
    newest: dict[int, int],
    quotes: list[tuple[int, int, int]],
    alerts: list[tuple[int, int, str]],
) -> dict:
    """Match commits to the chunks they came from (by event time); return p50/p99 in ms."""
    lines = sorted(set(reads) & set(newest))
    read_ns, upto = [], []
    high = -1
    for line in lines:
        high = max(high, newest[line])  # running max: robust to an out-of-order line
        upto.append(high)
        read_ns.append(reads[line])
    n = len(upto)
    quote_ms: list[float] = []
    for oldest, latest, wall in quotes:
        first = bisect_left(upto, oldest)
        last = min(bisect_left(upto, latest), n - 1)
        quote_ms += [(wall - read_ns[i]) / 1e6 for i in range(first, last + 1)]
    alert_ms: list[float] = []
    by_kind: dict[str, list[float]] = {}
    end_of_input = 0
    for event_ns, wall, kind in alerts:
        i = bisect_left(upto, event_ns)
        if i == n:
            end_of_input += 1
            continue
        ms = (wall - read_ns[i]) / 1e6
        alert_ms.append(ms)
        by_kind.setdefault(kind, []).append(ms)

    def summary(samples: list[float]) -> dict:
        ordered = sorted(samples)
        return {"p50_ms": round(percentile(ordered, 50), 1),
                "p99_ms": round(percentile(ordered, 99), 1), "samples": len(ordered)}  # fmt: skip

    return {
        "chunks": n,
        "quote": summary(quote_ms),
        "alert": {**summary(alert_ms), "judged_at_end_of_input": end_of_input},
        "alert_by_kind": {kind: summary(v) for kind, v in sorted(by_kind.items())},
    }


def _handshake(word: str) -> None:
    print(word, flush=True)
    sys.stdin.readline()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline_run")
    p.add_argument("--settings", type=Path, required=True, help="the settings as JSON")
    p.add_argument("--day", type=Path, required=True)
    p.add_argument("--flows", required=True, help="comma-separated")
    p.add_argument("--orders-out", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the result, JSON")
    args = p.parse_args(argv)

    from brokerflow.commands.replay import replay
    from brokerflow.settings import Settings

    settings = Settings(**json.loads(args.settings.read_text()))
    flows = tuple(f for f in args.flows.split(",") if f)
    probe = Probe()
    _handshake("ready")
    before = resource.getrusage(resource.RUSAGE_SELF)
    with probe.installed():
        summary = replay([args.day], settings, progress=True, flows=flows,
                         orders_out=args.orders_out)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_SELF)
    _handshake("done")
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {"summary": summary.as_dict(), "cpu_s": round(cpu_s, 2),
              "latency": probe.latencies()}  # fmt: skip
    args.out.write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
