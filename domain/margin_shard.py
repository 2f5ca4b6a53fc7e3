"""One account shard's margin state and logic, without the stream engine around it.

`MarginShard` holds the accounts of one shard in a `domain.margin_book.MarginBook` and judges
them as events come, one method per kind of event: marks (`marks`), fills (`fill`), cash
movements (`cash`), account changes (`account`), venue and breaker statuses (`status`), stale
books (`stale`), event time passing (`advance`) and the end of the input (`end`). Each appends
the `account_margin` rows and alerts it produces to a `MarginEffects`, and reports its counts
("margin_screened", "margin_evaluations") through the `count` callback.

Marks are applied as they come and judged per window of `window_ns` of event time (aligned to
multiples of it): when event time passes the window's end, one float screen of every account
(sparse matrix-vector products) picks the accounts whose verdict may have changed, and only
those are evaluated exactly (`domain.margin.margin_figures_sorted`, Decimal); the grace
deadlines fire in event-time order with the window ends. `flows.margin.AccountLogic` is the
Bytewax step around it (loading, merging, dispatching, snapshots); `bench.margin_engine`
drives it directly.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import Any

import numpy as np

from domain.alerts import Alert
from domain.events import OPEN, AccountChanged, CashMoved, ExecutionReport
from domain.ledger import side_sign
from domain.margin import (
    ConcentrationRule,
    MarginFigures,
    MarginMonitor,
    MarginPolicy,
    MarginState,
    WrittenFigures,
    margin_figures_sorted,
    row_is_material,
)
from domain.margin_alerts import judge_concentration, margin_alert
from domain.margin_book import MarginBook, OpeningRow
from domain.margin_marks import Mark, StaleMark
from domain.margin_rows import MarginRow
from domain.market_status import MarketStatusBook
from domain.quotes import NS_PER_MS
from domain.sharding import SYMBOL_SHARDS
from domain.watermarks import WatermarkMerge

SHARDS = 8  # the default account shard count (tests and benchmarks that shard accounts themselves)


def shard_of(key: str, shards: int = SHARDS) -> int:
    """The account shard of account `key`."""
    return zlib.crc32(key.encode()) % shards


_symbol_mark, _mark_ts, _symbol_mark_f = itemgetter(0, 1), itemgetter(2), itemgetter(0, 3)


@dataclass
class AccountShard:
    """One account shard's state: its accounts in a `MarginBook`, plus what the book does not hold.
    Pickled in the flow's snapshots (also by its old name `flows.margin.AccountShard`)."""

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


class MarginShard:
    """One account shard's margin logic over its `AccountShard` state (`state`: None until
    `load` or a resumed state is set)."""

    def __init__(
        self,
        policy: MarginPolicy,
        concentration: ConcentrationRule,
        row_change: Decimal,
        window_ns: int,
        cure_band: float,
        top_rate: float | None,
        count: Callable[[str, int], None],
        state: AccountShard | None = None,
    ) -> None:
        self.policy = policy
        self.concentration = concentration
        self.row_change = row_change
        self.window_ns = window_ns
        self.cure_band = cure_band
        self.top_rate = top_rate
        self.count = count
        self.state = state

    @classmethod
    def configured(
        cls, settings: Any, count: Callable[[str, int], None], state: AccountShard | None = None
    ) -> MarginShard:
        """A shard with the rules of `settings`' `margin_*` values (a `brokerflow.settings.
        Settings`, or any object with them)."""
        addon = settings.margin_concentration_rate
        policy = MarginPolicy(
            concentration=()
            if addon is None
            else ((Decimal(repr(settings.margin_concentration_share)), Decimal(repr(addon))),),
            grace_ns=settings.margin_grace_s * 1_000_000_000,
            cure_band=Decimal(repr(settings.margin_cure_band)),
        )
        concentration = ConcentrationRule(
            Decimal(repr(settings.margin_concentration_share)),
            Decimal(repr(settings.margin_concentration_rearm)),
            int(settings.margin_concentration_rearm_after_s * 1_000_000_000),
        )
        return cls(
            policy, concentration, Decimal(repr(settings.margin_row_change)),
            settings.margin_mark_ms * NS_PER_MS, settings.margin_cure_band,
            None if addon is None else float(addon), count, state,
        )  # fmt: skip

    def load(
        self, opening: Sequence[Any], marks: dict[str, Decimal], shards: int = SHARDS
    ) -> AccountShard:
        """The shard's state at the opening: `opening`, its accounts (`sinks.margin.
        OpeningAccount`s, in account order), at the opening `marks`."""
        book = MarginBook.build(
            OpeningRow(a.account, a.cash, a.initial_margin, a.maintenance_margin, a.holdings)
            for a in opening
        )
        shard = self.state = AccountShard(
            book, [a.owner for a in opening], dict(marks), shards=shards
        )
        book.set_marks(marks)
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

    def stale(self, item: StaleMark, effects: MarginEffects) -> None:
        """A symbol's book went stale (or sound again): its rows flag it from here on."""
        self.advance(item.ts_ns, effects)  # what came before is judged before it
        if item.reason is None:
            self.state.stale.pop(item.symbol, None)
        else:
            self.state.stale[item.symbol] = item.ts_ns

    def end(self, ts: int, effects: MarginEffects) -> None:
        """The end of the input at event time `ts`: the deadlines up to it, the last window."""
        self.advance(ts, effects)
        if self.state.window_end is not None:
            self.close_window(effects)

    def advance(self, ts: int, effects: MarginEffects) -> None:
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
                self.close_window(effects)
            else:
                self._grace(effects)

    def marks(self, marks: list[Mark], start: int, stop: int, effects: MarginEffects) -> None:
        # The hot loop (every shard gets every mark): the book's float columns get the marks
        # once per window, in one assignment (`close_window`).
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
                self.advance(ts, effects)
            latest[symbol] = mark
            pending[symbol] = mark_f
            if ts > state.applied_ns:
                state.applied_ns = ts
            if state.window_end is None:
                state.window_end = (ts // self.window_ns + 1) * self.window_ns

    def close_window(self, effects: MarginEffects) -> None:
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
        self.count("margin_screened", len(state.book.names))
        as_of, filled, evaluated = state.as_of, state.filled_ns, 0
        for i in candidates.tolist():
            if ts >= as_of.get(i, 0):
                last_fill = filled.get(i, 0)
                at = last_fill if last_fill > ts else ts
                self._evaluate(i, at, effects, concentration=concentration is not None)
                evaluated += 1
        self.count("margin_evaluations", evaluated)  # once per window: the stats lock

    def status(self, event: Any, effects: MarginEffects) -> None:
        """A venue or breaker status (issue 19): grace periods do not run while the market, or
        a symbol the account holds, is halted. Event time first reaches the status (deadlines
        due before it fire, as on a mark); then every called account is paused or resumed as
        its halted state now says (calls are few; halts rare)."""
        self.advance(event.ts_event, effects)
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

    def fill(self, report: ExecutionReport, effects: MarginEffects) -> None:
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
        self.count("margin_evaluations", 1)

    def cash(self, moved: CashMoved, effects: MarginEffects) -> None:
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
        self.count("margin_evaluations", 1)

    def account(self, change: AccountChanged, effects: MarginEffects) -> None:
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
            self.count("margin_evaluations", 1)

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


def _row(
    account: str, monitor: MarginMonitor, f: MarginFigures, ts: int, stale: tuple[str, ...] = ()
) -> MarginRow:
    call_since = None if monitor.state is MarginState.NORMAL else monitor.episode_ns
    return MarginRow(
        account, f.equity, f.gross_value, f.ratio, monitor.state.value, ts, call_since, f.excess,
        stale,
    )  # fmt: skip
