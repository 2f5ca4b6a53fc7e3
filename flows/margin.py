"""Flows layer: margin monitoring. Marks and fills -> account figures, calls, cures, liquidation.

Steps (ids are recovery keys; renaming one orphans its state):
    margin_key_feed  every decoded batch to the one key "feed" (`unkey_feed` after the step)
    margin_feed      one ordered step (`FeedLogic`): the decoded events in input order, a mark
                     book per symbol (`domain.margin_marks.MarkPublisher`: last trade; the
                     mid of a full L1 book until the first trade) and the marks it publishes
                     by the coalescer's rule (`domain.throttle.IntervalThrottle`, per
                     `margin_mark_ms`) and only when the mark changed; every account
                     shard ("a{n}") gets every mark, and the fills (35=8 ExecType F with
                     Account) and reference changes (35=UA/UC, docs/reference-data.md) of its
                     own accounts, each at its place among the marks
    margin_accounts  per account shard (`domain.margin_shard.MarginShard`; the step loads,
                     merges, dispatches): the accounts in a `domain.margin_book.MarginBook`
                     (opening state read before the run, then fills, cash movements and the
                     accounts opened during the day). A fill or a movement is judged at
                     once. Marks are applied as they come and judged per window of
                     `margin_mark_ms` of event time (aligned to multiples of it): when event
                     time passes the window's end, one float screen of every account of the
                     shard (sparse matrix-vector products) picks the accounts whose
                     verdict may have changed, and only those are evaluated exactly
                     (`domain.margin.margin_figures_sorted`, Decimal); the grace deadlines fire in
                     event-time order with the window ends
    write_margin / margin_alerts   `account_margin` upserts (on a fill, a change of state or
                     a material move of the figures: `domain.margin.row_is_material`), each
                     also the trader's `margin:{account}` document (`sinks.positions`);
                     MARGIN_CALL, MARGIN_CALL_CURED, LIQUIDATION and CONCENTRATION alerts
                     (`domain.margin_alerts`; concentration one per episode:
                     `domain.margin.assess_concentration`), returned to the pipeline
                     (`write_alerts`)

Same input, same result: marks and fills reach an account shard by ONE path, in input order
(one sender per shard, and Bytewax keeps a sender's items in order per epoch and processes
epochs in order), and both steps act per event, never per batch: a held mark is published
when an event's time passes its interval, and a window is judged and a grace deadline
checked when an event's time passes them (and at the end). So rows and alerts do not
depend on how the input is chunked, on epochs and snapshots (a resumed run replays from a
snapshot of both steps), on sink retries or on the worker count. The order is the input's:
one file (one partition), or Kafka through `flows.align`; several files are read in
parallel, and their interleaving is not defined.
The cost: one worker applies every market-data event to a mark book (after a symbol's first
trade, a scan of the event's entries for a trade), instead of the 8 symbol shards that
coalesced the published quotes before.

A window costs ~1.5-3 ns per held position (the screen) plus the accounts whose verdict,
concentration flags or row may change: work in proportion to the accounts where something
can happen. `account_margin` holds each account's figures as of its last material change
(`margin_row_change`), its last fill or its last change of state, not of every tick. An account that
dips below maintenance and recovers within one window is not called (like a price move within
one coalescing interval). Concentration is judged once per event-time second, with hysteresis
(`domain.margin.ConcentrationRule`). Fills of a report without Account (1)
are not seen here (the ledger resolves those); trade busts (H/G) are not reversed here either:
the next start reads the corrected holdings from the ledger.
"""

from __future__ import annotations

import heapq
import pickle
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from domain.alerts import Alert
from domain.errors import ConfigError
from domain.events import AccountChanged, CashMoved, ExecutionReport
from domain.margin import (
    ConcentrationFinding,
    MarginFigures,
)
from domain.margin_alerts import concentration_alert, margin_alert
from domain.margin_marks import Mark, MarkPublisher, StaleMark
from domain.margin_marks import SymbolMark as DomainSymbolMark
from domain.margin_shard import AccountShard, MarginEffects, MarginShard, shard_of
from domain.market_status import MarketStatusBook
from domain.quotes import NS_PER_MS, SymbolBook
from domain.sharding import SYMBOL_SHARDS
from domain.watermarks import END_SEQ, WatermarkMerge
from flows.context import FlowContext
from flows.operators import OnLastProcess, merged
from flows.quotes import ShardBatch
from sinks.margin import AccountMarginSink, OpeningAccount, margin_partition_key

# `AccountShard` (the account shard's state, `domain.margin_shard`) stays importable from here:
# snapshots pickled before it moved name it `flows.margin.AccountShard`.


def shard_count(ctx: FlowContext) -> int:
    """Account shards of this run: as configured, else one per worker. Each shard screens
    its accounts once per window and takes every mark, so fewer, larger shards cost less;
    `flows.placement` deals one to each worker."""
    configured = ctx.settings.margin_shards
    if configured:
        return configured
    return max(1, ctx.workers)


_seq_of = itemgetter(0)


class FeedPart(NamedTuple):
    """What one account shard gets from one symbol shard's `FeedLogic.on_batch`.

    Attributes:
        source: the symbol shard it comes from (an input of the account shard's merge).
        items: `(sequence number, Mark or fill)` in sequence order: every mark the symbol shard
            published (the same for every account shard) and this account shard's fills.
        watermark: the symbol shard has passed every sequence number up to it.
        shard: the account shard's number.
        ordered: sequence numbers are one order across symbol shards (`Progress.ordered`);
            otherwise the account shard takes the items in arrival order.
        done, idle: the symbol shard's input ended or is idle (`Progress`).
        end_ns: at the end of the input only, the event time the symbol shard reached: the
            account shard's deadlines up to the latest of them fire.
    """

    source: str
    items: list[tuple[int, Any]]
    watermark: int
    shard: int
    ordered: bool
    done: bool = False
    idle: bool = False
    end_ns: int | None = None


# -- marks per symbol shard, fills among them -------------------------------------------------


@dataclass
class FeedState:
    publisher: MarkPublisher
    last_seq: int = 0  # the highest sequence number the shard has passed
    key: str = ""  # the symbol shard (Bytewax does not tell a logic its key)


@dataclass(slots=True)
class SymbolMark:
    """A symbol's mark as snapshots before issue 22 pickled it (`_upgrade_feed` reads it)."""

    book: SymbolBook | None  # None in a state resumed from before issue 21
    value: float | tuple[float, float] | None = None
    changed_ns: int = 0
    published: float | tuple[float, float] | None = None
    published_ns: int | None = None
    pending: bool = False
    held: bool = False
    sound_ltp: float | None = None


def _upgrade_feed(old: Any, interval_ns: int) -> FeedState:
    """A `FeedState` pickled before issue 22 (its marks' publishing times in `SymbolMark`s):
    the same state in a `MarkPublisher`."""
    d = old.__dict__
    publisher = MarkPublisher(interval_ns)
    publisher.watermark = d.get("watermark", 0)
    before_21 = "integrity" not in d
    if not before_21:
        publisher.integrity = d["integrity"]
    throttle = publisher.throttle
    for symbol, m in d.get("symbols", {}).items():
        publisher.symbols[symbol] = DomainSymbolMark(
            m.book if m.book is not None else SymbolBook(symbol), m.value, m.changed_ns,
            m.published, *((False, None) if before_21 else (m.held, m.sound_ltp)),
        )  # fmt: skip
        if m.published_ns is not None:
            throttle.last_ns[symbol] = m.published_ns
    for end, symbol in d.get("due", []):
        throttle.pending[symbol] = end
    throttle.heap = list(d.get("due", []))
    return FeedState(publisher, d.get("last_seq", 0), d.get("key", ""))


class FeedLogic(op.StatefulBatchLogic[ShardBatch, tuple[str, FeedPart], bytes]):
    """One symbol shard's events once, in its input order: the marks
    (`domain.margin_marks.MarkPublisher`), and the fills among them. Event time is the shard's
    own (its events'): what it publishes does not depend on other shards, so neither on how
    shards were spread over partitions and workers."""

    def __init__(self, resume: bytes | None, ctx: FlowContext) -> None:
        interval_ns = ctx.settings.margin_mark_ms * NS_PER_MS
        state = pickle.loads(resume) if resume is not None else None
        if state is None:
            state = FeedState(MarkPublisher(interval_ns))
        elif "publisher" not in state.__dict__:
            state = _upgrade_feed(state, interval_ns)
        state.publisher.throttle.interval_ns = interval_ns  # as configured now
        self.state: FeedState = state
        self.recovery = ctx.recovery
        self.shards = shard_count(ctx)
        placed = ctx.placement.margin_account if ctx.placement is not None else ()
        self.account_keys = (
            placed if len(placed) == self.shards else tuple(f"a{n}" for n in range(self.shards))
        )

    def on_batch(self, values: list[ShardBatch]) -> tuple[list[tuple[str, FeedPart]], bool]:
        state = self.state
        state.key = values[0].shard
        apply = state.publisher.apply
        marks: list[tuple[int, Any]] = []
        others: list[tuple[int, Any]] = []
        statuses: list[tuple[int, Any]] = []
        for events, _, seqs, *_ in values:
            found = getattr(events, "statuses", None)
            if found:  # halts pause the grace periods (issue 19); a market-wide one from one shard
                statuses += [(seq, event) for _, event, primary, seq in found if primary]
            apply(events, seqs, marks, others)
        # fills, cash movements and account changes to their account's shard, at their place
        fills: dict[int, list[tuple[int, Any]]] = {}
        shards = self.shards
        for seq, event in others:
            n = shard_of(event.account, shards)
            shard = fills.get(n)
            if shard is None:
                fills[n] = [(seq, event)]
            else:
                shard.append((seq, event))
        if statuses:  # every account shard gets them, among the marks
            marks = list(heapq.merge(statuses, marks, key=_seq_of))
        progress = values[-1].progress
        for batch in values:
            if batch.progress is not None and batch.progress.last > state.last_seq:
                state.last_seq = batch.progress.last
        if progress is None:  # not a decoded input (a test's): in arrival order
            return self._emit(marks, fills, False, False, False, None), self.RETAIN
        # Not `done` before the end of the whole input (`on_eof`): what the shard holds then
        # goes out after every event of every shard, in a replay and on Kafka alike.
        return (
            self._emit(marks, fills, progress.ordered, False, progress.idle, None),
            self.RETAIN,
        )

    def _emit(
        self,
        marks: list[tuple[int, Mark]],
        fills: dict[int, list[tuple[int, ExecutionReport]]],
        ordered: bool,
        done: bool,
        idle: bool,
        end_ns: int | None,
    ) -> list[tuple[str, FeedPart]]:
        # Every account shard gets every mark (each keeps its own trigger index per symbol, so
        # a mark costs a heap peek per shard, not a message per holder) and the shard's
        # watermark, even with nothing else: its merge waits on every symbol shard.
        last = self.state.last_seq
        out = []
        for n in range(self.shards):
            own = fills.get(n)
            if own and marks:  # both in sequence order; a mark flushed by a fill goes first
                items = list(heapq.merge(marks, own, key=_seq_of))
            else:
                items = own or marks
            if not ordered and not items and end_ns is None:
                continue  # arrival order: nobody waits on a watermark
            out.append((self.account_keys[n], FeedPart(self.state.key, items, last, n, ordered,
                                                       done, idle, end_ns)))  # fmt: skip
        return out

    def on_eof(self) -> tuple[list[tuple[str, FeedPart]], bool]:
        marks: list[tuple[int, Any]] = []
        publisher = self.state.publisher
        publisher.flush(None, marks, END_SEQ)
        self.state.last_seq = END_SEQ
        return self._emit(marks, {}, True, True, False, publisher.watermark), self.RETAIN

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None  # Bytewax asks at every epoch end; without recovery nobody reads it
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


# -- accounts: account shards -------------------------------------------------------------------


class AccountLogic(op.StatefulBatchLogic[FeedPart, MarginEffects, bytes]):
    """One account shard in the stream: its `domain.margin_shard.MarginShard` (the accounts'
    state and logic), fed the merged marks and events. The opening state is read from
    PostgreSQL on the shard's first batch."""

    def __init__(self, resume: bytes | None, ctx: FlowContext) -> None:
        self.shard = MarginShard.configured(ctx.settings, ctx.stats.add)
        self.concentration = self.shard.concentration  # `_concentration_alert` reads it
        self.opening: dict[str, OpeningAccount] = ctx.margin_opening or {}
        self.marks: dict[str, Decimal] = ctx.margin_marks or {}
        self.stats = ctx.stats
        self.shards = shard_count(ctx)

        state: AccountShard | None = pickle.loads(resume) if resume is not None else None
        if state is not None and state.shards != self.shards:
            msg = (
                f"the margin state was snapshotted with {state.shards} account shards and "
                f"this run has {self.shards}: resume with BROKERFLOW_MARGIN_SHARDS="
                f"{state.shards}"
            )
            raise ConfigError(msg)
        if state is not None and "written" not in state.__dict__:
            # A snapshot of an earlier release: per-account concentration flags re-arm.
            state.__dict__.pop("concentrated", None)
            state.written = {}
            state.filled_ns = {}
            state.flags = {}
            state.book.upgrade()
        if state is not None and "status" not in state.__dict__:
            state.status = MarketStatusBook()  # a snapshot from before issue 19
        if state is not None and "movements" not in state.__dict__:
            state.movements = set()  # a snapshot from before issue 20
        if state is not None and "stale" not in state.__dict__:
            state.stale = {}  # a snapshot from before issue 21
        if state is not None and "merge" not in state.__dict__:
            state.merge = WatermarkMerge(SYMBOL_SHARDS)  # a snapshot before the merge
            state.end_ns = None
        self.shard.state = state
        self.recovery = ctx.recovery

    @property
    def state(self) -> AccountShard | None:
        return self.shard.state

    def _load(self, n: int) -> AccountShard:
        opening = sorted(
            (a for a in self.opening.values() if shard_of(a.account, self.shards) == n),
            key=lambda a: a.account,
        )
        return self.shard.load(opening, self.marks, self.shards)

    def on_batch(self, values: list[FeedPart]) -> tuple[list[MarginEffects], bool]:
        if self.shard.state is None:
            self._load(values[0].shard)
        state = self.shard.state
        effects = MarginEffects()
        # Marks and fills in sequence order (each fill after the marks that preceded it),
        # released by the merge once every symbol shard has passed them: a fill is judged at
        # once, marks when event time closes their window. Neither depends on where the engine
        # cut the batches, nor on which worker ran which symbol shard.
        for part in values:
            released = merged(state.merge, part, self.stats.add)
            if released:
                self._apply(released, effects)
            if part.end_ns is not None and (state.end_ns is None or part.end_ns > state.end_ns):
                state.end_ns = part.end_ns
        return ([effects] if effects.rows or effects.alerts else []), self.RETAIN

    def _apply(self, released: list[tuple[int, Any]], effects: MarginEffects) -> None:
        shard = self.shard
        marks: list[Mark] = []
        for _, item in released:
            if type(item) is tuple:
                marks.append(item)
                continue
            if marks:
                shard.marks(marks, 0, len(marks), effects)
                marks = []
            kind = type(item)
            if kind is ExecutionReport:
                shard.fill(item, effects)
            elif kind is CashMoved:
                shard.cash(item, effects)
            elif kind is AccountChanged:
                shard.account(item, effects)
            elif kind is StaleMark:
                shard.stale(item, effects)
            else:
                shard.status(item, effects)
        if marks:
            shard.marks(marks, 0, len(marks), effects)

    def on_eof(self) -> tuple[list[MarginEffects], bool]:
        state = self.state
        if state is None:
            return [], self.RETAIN
        effects = MarginEffects()
        released = state.merge.flush()
        if released:
            self._apply(released, effects)
        if state.end_ns is not None:  # the end of the input: deadlines up to it, the last window
            self.shard.end(state.end_ns, effects)
        return ([effects] if effects.rows or effects.alerts else []), self.RETAIN

    def _concentration_alert(
        self, account: str, owner: str, x: ConcentrationFinding, f: MarginFigures, ts: int
    ) -> Alert:  # the name tests/unit/domain/test_explain.py calls
        return concentration_alert(account, owner, x, f, self.concentration, ts)

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None  # Bytewax asks at every epoch end; without recovery nobody reads it
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


_alert = margin_alert  # the name tests and docs know


def attach(shards: Stream[tuple[str, ShardBatch]], ctx: FlowContext) -> Stream[list[Alert]]:
    """Add margin monitoring, fed by the symbol shards' market data and fills
    (`flows.quotes.shard`, with orders); return its alerts, for the pipeline's one alert sink."""
    feeds = op.stateful_batch("margin_marks", shards, lambda resume: FeedLogic(resume, ctx))
    feeds = op.key_rm("unkey_feed", feeds)  # ("a{n}", FeedPart): keyed by account shard
    effects = op.stateful_batch("margin_accounts", feeds, lambda resume: AccountLogic(resume, ctx))
    effects = op.key_rm("unkey_margin", effects)
    rows = op.filter_map(
        "margin_rows", effects, lambda e: margin_partition_key(e.rows) if e.rows else None
    )
    sink = AccountMarginSink(ctx.postgres_dsn, ctx.retry, ctx.recovery, redis_url=ctx.redis_url)
    op.output("write_margin", rows, OnLastProcess(sink, ctx))
    return op.filter_map("margin_alerts", effects, lambda e: e.alerts or None)
