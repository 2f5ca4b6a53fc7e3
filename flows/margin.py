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
    margin_accounts  per account shard: the accounts in a `domain.margin_book.MarginBook`
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
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Stream

from domain.alerts import Alert
from domain.errors import ConfigError
from domain.events import OPEN, AccountChanged, CashMoved, ExecutionReport
from domain.ledger import side_sign
from domain.margin import (
    ConcentrationFinding,
    ConcentrationRule,
    MarginFigures,
    MarginMonitor,
    MarginPolicy,
    MarginState,
    WrittenFigures,
    margin_figures_sorted,
    row_is_material,
)
from domain.margin_alerts import concentration_alert, judge_concentration, margin_alert
from domain.margin_book import MarginBook, OpeningRow
from domain.margin_marks import Mark, MarkPublisher, StaleMark
from domain.margin_marks import SymbolMark as DomainSymbolMark
from domain.market_status import MarketStatusBook
from domain.quotes import NS_PER_MS, SymbolBook
from domain.sharding import SYMBOL_SHARDS
from domain.watermarks import END_SEQ, WatermarkMerge
from flows.context import FlowContext
from flows.operators import OnLastProcess, merged
from flows.quotes import ShardBatch
from sinks.margin import AccountMarginSink, MarginRow, OpeningAccount, margin_partition_key

SHARDS = 8  # the default of `shard_of` (tests and benchmarks that shard accounts themselves)


def shard_of(key: str, shards: int = SHARDS) -> int:
    return zlib.crc32(key.encode()) % shards


def shard_count(ctx: FlowContext) -> int:
    """Account shards of this run: as configured, else one per worker. Each shard screens
    its accounts once per window and takes every mark, so fewer, larger shards cost less;
    `flows.placement` deals one to each worker."""
    configured = ctx.settings.margin_shards
    if configured:
        return configured
    return max(1, ctx.workers)


_seq_of = itemgetter(0)
_symbol_mark, _mark_ts, _symbol_mark_f = itemgetter(0, 1), itemgetter(2), itemgetter(0, 3)


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




@dataclass
class AccountShard:
    """One account shard: its accounts in a `MarginBook`, plus what the book does not hold."""

    book: MarginBook
    owners: list[str]
    marks: dict[str, Decimal] = field(default_factory=dict)  # the latest mark of each symbol
    pending: dict[str, float] = field(default_factory=dict)  # marks the book has not got yet
    monitors: dict[int, MarginMonitor] = field(default_factory=dict)  # accounts not NORMAL
    written: dict[int, WrittenFigures] = field(default_factory=dict)  # last account_margin row
    flags: dict[int, dict[str, int]] = field(default_factory=dict)  # concentrated: since when
    as_of: dict[int, int] = field(default_factory=dict)  # opening state includes events to it
    due: list[tuple[int, int]] = field(default_factory=list)  # (liquidation due, account)
    window_end: int | None = None  # end of the open screening window (marks since a screen)
    # The latest event time among the marks applied: the same in every shard, so rows and
    # alerts do not depend on how the accounts are sharded. An account's own fills raise
    # its rows' time (`filled_ns`): rows never go back in time.
    applied_ns: int = 0
    filled_ns: dict[int, int] = field(default_factory=dict)
    next_concentration_ns: int = 0
    shards: int = SHARDS  # how many shards the accounts were split into
    # Marks and fills of every symbol shard, put in sequence order (`FeedPart`).
    merge: WatermarkMerge = field(default_factory=lambda: WatermarkMerge(SYMBOL_SHARDS))
    end_ns: int | None = None  # the latest event time a symbol shard reached at its end
    # the venue's and the index breaker's statuses: halts pause the grace periods (issue 19)
    status: MarketStatusBook = field(default_factory=MarketStatusBook)
    # the cash movements (35=UC) the book holds: in the opening cash, or applied since
    movements: set[str] = field(default_factory=set)
    # symbols whose book is stale now (issue 21): their mark is the last sound one, flagged in
    # the rows' documents (`stale_marks`); no mark of a stale book ever reaches this step
    stale: dict[str, int] = field(default_factory=dict)  # symbol -> since (event time)


@dataclass
class MarginEffects:
    rows: list[MarginRow] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class AccountLogic(op.StatefulBatchLogic[FeedPart, MarginEffects, bytes]):
    """One account shard: its accounts' state and monitors. The opening state is read from
    PostgreSQL on the shard's first batch."""

    def __init__(self, resume: bytes | None, ctx: FlowContext) -> None:
        settings = ctx.settings
        addon = settings.margin_concentration_rate
        self.policy = MarginPolicy(
            concentration=()
            if addon is None
            else ((Decimal(repr(settings.margin_concentration_share)), Decimal(repr(addon))),),
            grace_ns=settings.margin_grace_s * 1_000_000_000,
            cure_band=Decimal(repr(settings.margin_cure_band)),
        )
        self.cure_band = settings.margin_cure_band
        self.top_rate = None if addon is None else float(addon)
        self.concentration = ConcentrationRule(
            Decimal(repr(settings.margin_concentration_share)),
            Decimal(repr(settings.margin_concentration_rearm)),
            int(settings.margin_concentration_rearm_after_s * 1_000_000_000),
        )
        self.row_change = Decimal(repr(settings.margin_row_change))
        self.window_ns = settings.margin_mark_ms * NS_PER_MS
        self.opening: dict[str, OpeningAccount] = ctx.margin_opening or {}
        self.marks: dict[str, Decimal] = ctx.margin_marks or {}
        self.stats = ctx.stats
        self.shards = shard_count(ctx)
        self.state: AccountShard | None = pickle.loads(resume) if resume is not None else None
        if self.state is not None and self.state.shards != self.shards:
            msg = (
                f"the margin state was snapshotted with {self.state.shards} account shards and "
                f"this run has {self.shards}: resume with BROKERFLOW_MARGIN_SHARDS="
                f"{self.state.shards}"
            )
            raise ConfigError(msg)
        if self.state is not None and "written" not in self.state.__dict__:
            # A snapshot of an earlier release: per-account concentration flags re-arm.
            self.state.__dict__.pop("concentrated", None)
            self.state.written = {}
            self.state.filled_ns = {}
            self.state.flags = {}
            self.state.book.upgrade()
        if self.state is not None and "status" not in self.state.__dict__:
            self.state.status = MarketStatusBook()  # a snapshot from before issue 19
        if self.state is not None and "movements" not in self.state.__dict__:
            self.state.movements = set()  # a snapshot from before issue 20
        if self.state is not None and "stale" not in self.state.__dict__:
            self.state.stale = {}  # a snapshot from before issue 21
        if self.state is not None and "merge" not in self.state.__dict__:
            self.state.merge = WatermarkMerge(SYMBOL_SHARDS)  # a snapshot before the merge
            self.state.end_ns = None
        self.recovery = ctx.recovery

    def _load(self, n: int) -> AccountShard:
        opening = sorted(
            (a for a in self.opening.values() if shard_of(a.account, self.shards) == n),
            key=lambda a: a.account,
        )
        book = MarginBook.build(
            OpeningRow(a.account, a.cash, a.initial_margin, a.maintenance_margin, a.holdings)
            for a in opening
        )
        shard = self.state = AccountShard(
            book, [a.owner for a in opening], dict(self.marks), shards=self.shards
        )
        book.set_marks(self.marks)
        book.judged[:] = book.marked()  # known at the opening marks: the screen compares
        book.set_baseline()
        for i, a in enumerate(opening):
            shard.movements.update(a.movements)
            if a.as_of_ns:
                shard.as_of[i] = a.as_of_ns
            if a.equity is not None and a.gross_value is not None:  # the last row written
                call_since = a.call_since_ns if a.margin_state != MarginState.NORMAL else None
                shard.written[i] = WrittenFigures(
                    a.margin_state, call_since, a.equity, a.gross_value
                )
                book.written_equity[i] = float(a.equity)
                book.written_gross[i] = float(a.gross_value)
            if a.margin_state != MarginState.NORMAL:  # a call that stood when it last stopped
                monitor = MarginMonitor(
                    MarginState(a.margin_state), a.call_since_ns or 0, self.policy.grace_ns
                )
                shard.monitors[i] = monitor
                book.called[i] = True
                due = monitor.due_ns()
                if due is not None:
                    heapq.heappush(shard.due, (due, i))
        return shard

    def on_batch(self, values: list[FeedPart]) -> tuple[list[MarginEffects], bool]:
        if self.state is None:
            self.state = self._load(values[0].shard)
        state = self.state
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
        marks: list[Mark] = []
        for _, item in released:
            if type(item) is tuple:
                marks.append(item)
                continue
            if marks:
                self._marks(marks, 0, len(marks), effects)
                marks = []
            kind = type(item)
            if kind is ExecutionReport:
                self._fill(item, effects)
            elif kind is CashMoved:
                self._cash(item, effects)
            elif kind is AccountChanged:
                self._account(item, effects)
            elif kind is StaleMark:
                self._advance(item.ts_ns, effects)  # what came before is judged before it
                if item.reason is None:
                    self.state.stale.pop(item.symbol, None)
                else:
                    self.state.stale[item.symbol] = item.ts_ns
            else:
                self._status(item, effects)
        if marks:
            self._marks(marks, 0, len(marks), effects)

    def on_eof(self) -> tuple[list[MarginEffects], bool]:
        state = self.state
        if state is None:
            return [], self.RETAIN
        effects = MarginEffects()
        released = state.merge.flush()
        if released:
            self._apply(released, effects)
        if state.end_ns is not None:  # the end of the input: deadlines up to it, the last window
            self._advance(state.end_ns, effects)
            if state.window_end is not None:
                self._close_window(effects)
        return ([effects] if effects.rows or effects.alerts else []), self.RETAIN

    def _advance(self, ts: int, effects: MarginEffects) -> None:
        """Event time reached `ts`: close the window and fire the deadlines before it, in
        time order."""
        state = self.state
        while True:
            end = state.window_end
            window = end is not None and end <= ts
            due = state.due[0][0] if state.due and state.due[0][0] <= ts else None
            if not window and due is None:
                return
            if window and (due is None or end <= due):
                self._close_window(effects)
            else:
                self._grace(effects)

    def _marks(self, marks: list[Mark], start: int, stop: int, effects: MarginEffects) -> None:
        # The hot loop (every shard gets every mark): the book's float columns get the marks
        # once per window, in one assignment (`_close_window`).
        state = self.state
        latest, pending, due = state.marks, state.pending, state.due
        if state.window_end is not None and start < stop:
            # The usual batch closes no window and reaches no deadline: its marks go in at
            # once, as the loop below would leave them (the latest mark of a symbol wins).
            run = marks[start:stop]
            last = max(map(_mark_ts, run))
            if last < state.window_end and not (due and due[0][0] <= last):
                latest.update(map(_symbol_mark, run))
                pending.update(map(_symbol_mark_f, run))
                if last > state.applied_ns:
                    state.applied_ns = last
                return
        for i in range(start, stop):
            symbol, mark, ts, mark_f = marks[i]
            end = state.window_end
            if (end is not None and end <= ts) or (due and due[0][0] <= ts):
                self._advance(ts, effects)
            latest[symbol] = mark
            pending[symbol] = mark_f
            if ts > state.applied_ns:
                state.applied_ns = ts
            if state.window_end is None:
                state.window_end = (ts // self.window_ns + 1) * self.window_ns

    def _close_window(self, effects: MarginEffects) -> None:
        """Screen every account of the shard at the window's marks; judge the candidates."""
        state = self.state
        state.window_end = None
        ts = state.applied_ns  # the marks judged
        until = state.status.market.until_ns
        if until is not None and ts >= until and state.status.expire(ts) is not None:
            self._halts_changed(until)  # the breaker's reopening never came (a resumed run)
        state.book.set_marks(state.pending)
        state.pending.clear()
        concentration = None
        if ts >= state.next_concentration_ns:
            concentration = self.concentration.screen_at(ts)
            state.next_concentration_ns = ts + self.concentration.screen_ns
        candidates = state.book.screen(
            self.top_rate, concentration, float(self.row_change), self.cure_band
        )
        self.stats.add("margin_screened", len(state.book.names))
        as_of, filled, evaluated = state.as_of, state.filled_ns, 0
        for i in candidates.tolist():
            if ts >= as_of.get(i, 0):
                last_fill = filled.get(i, 0)
                at = last_fill if last_fill > ts else ts
                self._evaluate(i, at, effects, concentration=concentration is not None)
                evaluated += 1
        self.stats.add("margin_evaluations", evaluated)  # once per window: the stats lock

    def _status(self, event: Any, effects: MarginEffects) -> None:
        """A venue or breaker status (issue 19): grace periods do not run while the market, or
        a symbol the account holds, is halted. Event time first reaches the status (deadlines
        due before it fire, as on a mark); then every called account is paused or resumed as
        its halted state now says (calls are few; halts rare)."""
        self._advance(event.ts_event, effects)
        if self.state.status.apply(event) is not None:
            self._halts_changed(event.ts_event)

    def _halts_changed(self, ts: int) -> None:
        state = self.state
        for i, monitor in state.monitors.items():
            if self._halted(i):
                monitor.pause(ts)
            elif monitor.resume(ts):
                due = monitor.due_ns()
                if due is not None:
                    heapq.heappush(state.due, (due, i))

    def _halted(self, i: int) -> bool:
        """Whether the market, or a symbol account i holds, does not trade."""
        status = self.state.status
        if not status.any_halt:
            return False
        if status.market.state != OPEN:
            return True
        stopped = status.stopped
        return any(symbol in stopped for symbol, _ in self.state.book.holding_items(i))

    def _fill(self, report: ExecutionReport, effects: MarginEffects) -> None:
        # A fill does not move the shard's clock: windows close and deadlines fire on the
        # marks, which every shard sees, so that nothing depends on which accounts share a
        # shard (a fill's TransactTime may run ahead of the market data after it). Only the
        # account's own standing deadline is settled first.
        state, ts = self.state, report.ts_event
        book = state.book
        i = book.index.get(report.account)
        if i is None or ts <= state.as_of.get(i, 0):
            return  # unknown account (the ledger dead-letters it), or already in
        monitor = state.monitors.get(i)
        due = None if monitor is None else monitor.due_ns()
        if due is not None and due <= ts:
            self._grace_of(i, due, effects)
        if ts > state.filled_ns.get(i, 0):
            state.filled_ns[i] = ts
        signed = side_sign(report.side) * report.last_qty
        book.apply_fill(i, report.symbol, signed, report.last_px)
        mark = state.marks.get(report.symbol)
        if mark is not None:
            book.set_mark(report.symbol, float(mark))  # a column the fill may have added
        self._evaluate(i, ts, effects, fill=True)
        self.stats.add("margin_evaluations", 1)

    def _cash(self, moved: CashMoved, effects: MarginEffects) -> None:
        """A deposit or withdrawal (35=UC), at its place among the marks and fills: the account
        is judged at once with its new cash, as after a fill (a deposit may cure a call, a
        withdrawal make one). Once per movement id, as the ledger books it."""
        state, ts = self.state, moved.ts_event
        i = state.book.index.get(moved.account)
        if i is None or moved.movement_id in state.movements:
            return  # unknown account (the ledger dead-letters it), or already in
        state.movements.add(moved.movement_id)
        self._settle(i, ts, effects)
        if ts > state.filled_ns.get(i, 0):
            state.filled_ns[i] = ts  # the account's rows never go back in time
        state.book.set_cash(i, state.book.cash[i] + moved.amount)
        self._evaluate(i, state.filled_ns[i], effects, fill=True)
        self.stats.add("margin_evaluations", 1)

    def _account(self, change: AccountChanged, effects: MarginEffects) -> None:
        """An account opened (35=UA): into the book with its opening cash, so that its fills
        are monitored from here on; or an account's owner and margin rates changed (its cash
        stays: cash moves by fills and movements)."""
        state = self.state
        book = state.book
        i = book.index.get(change.account)
        if i is None:
            book.add_account(
                change.account, change.opening_cash, change.initial_margin,
                change.maintenance_margin,
            )  # fmt: skip
            state.owners.append(change.owner)
            return
        state.owners[i] = change.owner
        book.set_rates(i, change.initial_margin, change.maintenance_margin)
        self._settle(i, change.ts_event, effects)
        if book.holding_items(i):
            self._evaluate(i, max(change.ts_event, state.filled_ns.get(i, 0)), effects)
            self.stats.add("margin_evaluations", 1)

    def _settle(self, i: int, ts: int, effects: MarginEffects) -> None:
        """The account's own standing deadline, if due by `ts`, before a change of it."""
        monitor = self.state.monitors.get(i)
        due = None if monitor is None else monitor.due_ns()
        if due is not None and due <= ts:
            self._grace_of(i, due, effects)

    def figures(self, i: int) -> MarginFigures:
        state = self.state
        book = state.book
        items = book.holding_items(i)
        fallback = book.fallback_marks(i)
        marks = state.marks  # the figures only look up the held symbols
        if fallback:
            marks = {s: marks.get(s, fallback.get(s)) for s, _ in items}
        return margin_figures_sorted(
            book.cash[i], items, marks, book.initial[i], book.maintenance[i], self.policy
        )

    def _evaluate(
        self,
        i: int,
        ts: int,
        effects: MarginEffects,
        fill: bool = False,
        concentration: bool = False,
    ) -> None:
        """Judge account i exactly: its margin state, its row (after a fill, or when it says
        something new) and, in a concentration window, its concentration flags. Concentration
        is judged once per event-time second and nowhere else, so that alerts do not depend on
        which accounts an evaluation happened to look at."""
        state = self.state
        book = state.book
        figures = self.figures(i)  # counted in "margin_evaluations" by the caller
        monitor = state.monitors.get(i) or MarginMonitor(grace_ns=self.policy.grace_ns)
        flagged = state.flags.get(i, {})
        if figures.unmarked:
            # A held symbol has no mark yet: no verdict and no row (valuing it at 0 would
            # invent a loss); the screen looks again once every held symbol has a mark.
            book.note(
                i, called=monitor.state is not MarginState.NORMAL, judged=False,
                flagged=book.flagged.get(i, frozenset()), rearm_at=book.rearm_at.get(i, 0),
            )  # fmt: skip
            return
        was_call = monitor.due_ns()
        account, owner = book.names[i], state.owners[i]
        for t in monitor.update(figures, ts):
            effects.alerts.append(margin_alert(account, owner, t))
        if monitor.state is MarginState.NORMAL:
            state.monitors.pop(i, None)
        else:
            state.monitors[i] = monitor
        due = monitor.due_ns()
        if due is not None and due != was_call:
            if state.status.any_halt and self._halted(i):
                monitor.pause(ts)  # called during a halt: the grace starts at the reopening
            else:
                heapq.heappush(state.due, (due, i))
        if concentration:
            alerts, rule = effects.alerts, self.concentration
            flagged = judge_concentration(account, owner, figures, flagged, rule, ts, alerts)
            if flagged:
                state.flags[i] = flagged
            else:
                state.flags.pop(i, None)
        written = self._write(i, monitor, figures, ts, effects, always=fill)
        book.note(
            i, called=monitor.state is not MarginState.NORMAL, judged=True,
            flagged=frozenset(flagged),
            rearm_at=self.concentration.rearm_at(flagged),
            written=written,
        )  # fmt: skip

    def _write(
        self,
        i: int,
        monitor: MarginMonitor,
        figures: MarginFigures,
        ts: int,
        effects: MarginEffects,
        always: bool,
    ) -> tuple[float, float] | None:
        """Append the account's row if it says something new (always after a fill: a restart
        reads its event time as "fills up to here are in"); return what it wrote."""
        call_since = None if monitor.state is MarginState.NORMAL else monitor.episode_ns
        new = WrittenFigures(monitor.state.value, call_since, figures.equity, figures.gross_value)
        state = self.state
        last = state.written.get(i)
        if last is None and not np.isnan(state.book.written_equity[i]):
            # Marked at the opening: the opening figures (the book's floats) stand for a row.
            book = state.book
            last = WrittenFigures(
                MarginState.NORMAL.value, None,
                Decimal(repr(float(book.written_equity[i]))),
                Decimal(repr(float(book.written_gross[i]))),
            )  # fmt: skip
        if not always and not row_is_material(last, new, self.row_change):
            return None
        state.written[i] = new
        stale = state.stale
        held = tuple(s for s in figures.symbols if s in stale) if stale else ()
        effects.rows.append(_row(state.book.names[i], monitor, figures, ts, held))
        return float(figures.equity), float(figures.gross_value)

    def _concentration_alert(
        self, account: str, owner: str, x: ConcentrationFinding, f: MarginFigures, ts: int
    ) -> Alert:  # the name tests/unit/domain/test_explain.py calls
        return concentration_alert(account, owner, x, f, self.concentration, ts)

    def _grace(self, effects: MarginEffects) -> None:
        """The earliest standing deadline: LIQUIDATION if the call still stands."""
        due, i = heapq.heappop(self.state.due)
        self._grace_of(i, due, effects)

    def _grace_of(self, i: int, due: int, effects: MarginEffects) -> None:
        state = self.state
        monitor = state.monitors.get(i)
        if monitor is None or monitor.due_ns() != due:
            return  # cured, liquidating already, or a newer episode since
        figures = self.figures(i)
        for t in monitor.check_grace(figures, due):
            effects.alerts.append(margin_alert(state.book.names[i], state.owners[i], t))
        written = self._write(i, monitor, figures, due, effects, always=False)
        if written is not None:
            state.book.written_equity[i], state.book.written_gross[i] = written

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None  # Bytewax asks at every epoch end; without recovery nobody reads it
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


def _row(
    account: str, monitor: MarginMonitor, f: MarginFigures, ts: int, stale: tuple[str, ...] = ()
) -> MarginRow:
    call_since = None if monitor.state is MarginState.NORMAL else monitor.episode_ns
    return MarginRow(
        account, f.equity, f.gross_value, f.ratio, monitor.state.value, ts, call_since, f.excess,
        stale,
    )  # fmt: skip


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
