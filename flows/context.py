"""Flows layer: what every flow of one run shares (settings, store endpoints, counters)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from domain.circuit_breaker import BreakerOpening
from flows.settings import Settings
from flows.stats import FlowStats
from sinks.clickhouse import opens_store
from sinks.retry import RetryPolicy


@dataclass(frozen=True)
class Placement:
    """Key names per shard: `symbol` (quotes, stops, margin marks), `surveil_symbol`,
    `margin_account`, `surveil_account`."""

    symbol: tuple[str, ...]
    surveil_symbol: tuple[str, ...]
    margin_account: tuple[str, ...]
    surveil_account: tuple[str, ...]


@dataclass(frozen=True)
class FlowContext:
    """Settings and resolved endpoints of one run.

    Attributes:
        margin_opening: the accounts' opening state for the margin flow (`sinks.margin.
            load_accounts`), read before the run starts; `margin_marks` the marks it starts with
            (`sinks.margin.opening_marks`, from the latest Redis quotes).
        breaker_opening: what the stores hold for the index circuit breaker (`sinks.
            market_status.load_breaker_opening`), read when the run starts (every start, not
            once per recovery directory: a resumed run needs the trips of the runs before it);
            None: the breaker starts empty.
        owners: account -> owner (`accounts.owner`) for the surveillance models, read before
            the run.
        recovery: state is snapshotted for Bytewax recovery; off, the stateful steps answer
            Bytewax's per-epoch snapshot calls with None instead of pickling their state.
        orders_out: where the stop engine's child orders go (a FIX file), or None.
        order_writers: more places for the child orders, each a factory the stop sink calls in
            its partition as `factory(encode, count)` (`sinks.stops.StopOutputSink`): an
            order-entry FIX session (`sinks.fix_orders.FixOrderWriter`), `orders.outbound`.
        live: the input is live (FIX session, Kafka, paced simulator): held quotes are also
            flushed by a wall-clock timer when the market goes quiet. Replays leave it off, so
            that their output depends on the input alone.
        workers: Bytewax workers of the whole run (all processes): how many keyed shards a
            step needs to keep every worker busy (`flows.margin.shard_count`).
        process_id: this process's index in a cluster (`run -i`); 0 alone. processes: how
            many processes the cluster has.
        ordered_inputs: a replay of one file (1): its line numbers order the events for the
            steps that combine symbol shards, as `bf-seq` does on Kafka. 0: several files or
            FIX sessions, whose interleaving is not defined (those steps take arrival order).
        placement: the key names of the keyed steps' shards (`flows.placement`), chosen so
            that each runs where its data is read; None: the plain names.
        request_snapshot: called by the quotes flow, after each batch of a shard, with the
            symbols whose books just turned stale (docs/book-integrity.md), from a worker
            thread: a live run asks the venue for their snapshots (35=V); None (replays): the
            books stay stale until the input's next 35=W.
    """

    settings: Settings
    redis_url: str
    postgres_dsn: str
    stats: FlowStats = field(default_factory=FlowStats)
    live: bool = False
    orders_out: Path | None = None
    order_writers: tuple = ()
    margin_opening: dict | None = None
    margin_marks: dict | None = None
    breaker_opening: BreakerOpening | None = None
    recovery: bool = False
    owners: dict | None = None
    workers: int = 1
    process_id: int = 0
    processes: int = 1
    ordered_inputs: int = 0
    placement: Placement | None = None
    request_snapshot: Callable[[list[str]], None] | None = None

    @property
    def clickhouse_here(self) -> bool:
        """This process may write ClickHouse (`sinks.clickhouse.opens_store`)."""
        return opens_store(self.settings.clickhouse_url, self.process_id)

    @property
    def data_quality(self) -> bool:
        """Validate with Great Expectations: as configured, else on live runs only."""
        dq = self.settings.dq
        return self.live if dq is None else dq

    @property
    def retry(self) -> RetryPolicy:
        """How every sink retries a store that fails: with backoff for `sink_retry_s`, then the
        flow stops with the error (nothing is dropped; a restart resumes from recovery)."""
        return RetryPolicy.lasting(self.settings.sink_retry_s)
