"""Flows layer: traders' price alerts, evaluated on the quotes the quotes flow publishes.

Steps (ids are recovery keys; renaming one orphans its state):
    evaluate_price_alerts  stateful per symbol shard (the key of `coalesce_quotes`, so it runs
                           on the same worker): each published quote's LTP and previous close
                           into the shard's `domain.price_alerts.PriceAlertBook`; emits the
                           alerts each batch fires (`PriceAlertHit`: id and level)
    write_price_alerts     `sinks.fired_price_alerts.FiredPriceAlertSink`, one partition:
                           the alerts' rows read, PRICE_ALERT on stream:alerts (the edge's
                           `price_alert` frames), then the `alerts` row and the `price_alerts`
                           row FIRED, in one transaction

The book is not Bytewax state. With 1,000,000 resting alerts, pickling it at every epoch's end
would take seconds; the store already holds what it needs, so `snapshot` returns None and the
book is rebuilt from PostgreSQL: a symbol's ACTIVE alerts are loaded (`PriceAlertReader.load`,
one query per batch for the symbols the shard sees for the first time) before its first quote
is evaluated, at the start of a run and after a resume alike. Exactly once across restarts
follows from the sink's order (see `sinks.fired_price_alerts`): a row leaves ACTIVE only once
its alert is out, and a FIRED row is never loaded again.

Alerts created or deleted while the flow runs: the step polls the table for rows whose
`change_seq` is past its cursor (`PriceAlertReader.changes`, sql/postgres/0012), at most once a
second per shard, when a batch of quotes comes (an alert can only fire on a quote, so a quiet
shard has no reason to look). The cursor is read before the first load, so nothing committed
after it is missed; a change the load already saw is applied again harmlessly (adding a
resting id or removing an absent one changes nothing).

Why a poll in the step, through a reader object built once per process in `attach` (as the
coalescer reads previous closes through `sinks.redis.PrevCloseReader`), rather than a source
in connectors/ merged into the stream: a replay ends when its files end, and a source that
polls a table never ends, so `brokerflow replay` would never finish; a source's position is
Bytewax state, snapshotted and resumed, while this cursor must start again with the book it
belongs to, which is rebuilt and not resumed; and the changes would still need a key to find
their shard's book. The poll reads the wall clock only to space the queries: which alerts
exist when a price comes decides what fires, as it does for a trader.

Fires on the published LTP (what the trader's quote shows): a trade price the coalescer folds
into the next publication within `coalesce_ms` does not fire an alert by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import bytewax.operators as op
from bytewax.dataflow import Stream

from domain.price_alerts import PriceAlertBook, PriceAlertHit
from domain.quotes import Quote
from flows.context import FlowContext
from flows.operators import OnLastProcess
from sinks.fired_price_alerts import FiredPriceAlertSink, fired_partition_key
from sinks.price_alerts import ACTIVE, PriceAlertReader

POLL_S = 1.0


class PriceAlertShardLogic(op.StatefulBatchLogic[list[Quote], list[PriceAlertHit], None]):
    """One symbol shard's book, loaded lazily per symbol and kept up with the table."""

    def __init__(self, reader: PriceAlertReader, count: Callable[[str, int], None]) -> None:
        self.reader = reader
        self.count = count
        self.poll_s = POLL_S
        self.book = PriceAlertBook()
        self.loaded: set[str] = set()
        self.cursor: int | None = None
        self.polled_at = 0.0

    def on_batch(self, values: list[list[Quote]]) -> tuple[list[list[PriceAlertHit]], bool]:
        now = time.monotonic()
        if self.cursor is None:
            self.cursor = self.reader.head()  # before any load: later changes are past it
            self.polled_at = now
        elif now - self.polled_at >= self.poll_s:
            self._poll()
            self.polled_at = now
        loaded = self.loaded
        new = {q.symbol for quotes in values for q in quotes if q.symbol not in loaded}
        if new:
            self._load(new)
        on_price = self.book.on_price
        fired: list[PriceAlertHit] = []
        for quotes in values:
            for q in quotes:
                out = on_price(q.symbol, q.ltp, q.prev_close, q.ts)
                if out:
                    fired += out
        if fired:
            self.count("price_alerts_fired", len(fired))
        return ([fired] if fired else []), self.RETAIN

    def _load(self, symbols: set[str]) -> None:
        started = time.perf_counter()
        alerts = self.reader.load(symbols)
        self.book.add_many(alerts)
        self.loaded |= symbols
        if alerts:
            self.count("price_alerts_loaded", len(alerts))
            self.count("price_alerts_load_ms", round((time.perf_counter() - started) * 1000))

    def _poll(self) -> None:
        assert self.cursor is not None
        changes, self.cursor = self.reader.changes(self.cursor)
        loaded, book = self.loaded, self.book
        for change in changes:
            alert = change.alert
            if alert.symbol not in loaded:
                continue  # loaded whole with the symbol's first quote
            if change.status == ACTIVE:
                book.add(alert)
            else:
                book.remove(alert)

    def snapshot(self) -> None:
        return None  # rebuilt from PostgreSQL on resume (module docstring)


def attach(quotes: Stream[tuple[str, list[Quote]]], ctx: FlowContext) -> None:
    """Evaluate the price alerts on each shard's published quotes, `(shard, [Quote])`."""
    # one connection and one poll a second for every shard of the process
    reader = PriceAlertReader(ctx.postgres_dsn, ctx.retry, max_age_s=POLL_S)
    count = ctx.stats.add
    fired = op.stateful_batch(
        "evaluate_price_alerts", quotes, lambda _resume: PriceAlertShardLogic(reader, count)
    )
    keyed = op.map("key_fired_price_alerts", op.key_rm("unkey_fired", fired), fired_partition_key)
    sink = FiredPriceAlertSink(
        ctx.postgres_dsn, ctx.redis_url, ctx.settings.redis_stream_maxlen, count, ctx.retry,
        recovery=ctx.recovery,
    )  # fmt: skip
    op.output("write_price_alerts", keyed, OnLastProcess(sink, ctx))
