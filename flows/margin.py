"""Flows layer: margin monitoring. Marks and fills -> account figures, calls, cures, liquidation.

Steps (ids are recovery keys; renaming one orphans its state):
    margin_route_quotes / margin_route_fills
                     published quotes (`flows.quotes`) keyed by symbol shard ("m{n}"), fills
                     (35=8 ExecType F with Account) keyed by account shard ("a{n}")
    margin_marks     per symbol shard: marks (last trade, else mid), published at most once per
                     `margin_mark_ms` of event time per symbol (leading edge, the latest at the
                     interval's end), to every account shard
    margin_accounts  per account shard: cash, holdings and state of each account (opening
                     state read before the run, then fills) and a trigger index per symbol
                     (`domain.margin.excess_triggers`): an account is re-evaluated only when a
                     mark crosses one of its holdings' trigger prices, when it is watched
                     (called, unmarked, no excess to share), or on its own fills; the grace
                     deadlines are checked against the shard's event-time watermark
    write_margin / write_margin_alerts   `account_margin` upserts (on every evaluation);
                     MARGIN_CALL, MARGIN_CALL_CURED, LIQUIDATION and CONCENTRATION alerts
A mark costs a heap peek per account shard plus the accounts it really puts at risk: the
triggers guarantee that an account none of whose triggers was crossed is not in deficit
(property-tested), so `account_margin` holds each account's figures as of its last
evaluation, not of every tick. Fills of a report without Account (1)
are not seen here (the ledger resolves those); trade busts (H/G) are not reversed here either:
the next start reads the corrected holdings from the ledger.
"""

from __future__ import annotations

import heapq
import pickle
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.fix import DecodedBatch
from domain.alerts import CONCENTRATION, Alert, make_alert
from domain.events import ExecutionReport
from domain.ledger import side_sign
from domain.margin import (
    MarginFigures,
    MarginMonitor,
    MarginPolicy,
    MarginState,
    MarginTransition,
    excess_triggers,
    margin_figures,
)
from domain.quotes import NS_PER_MS, Quote
from flows.context import FlowContext
from flows.operators import alert_sink
from sinks.margin import AccountMarginSink, MarginRow, OpeningAccount

SHARDS = 8
SEVERITY = {"MARGIN_CALL": "HIGH", "MARGIN_CALL_CURED": "INFO", "LIQUIDATION": "CRITICAL"}


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


def _mark(q: Quote) -> Decimal | None:
    """Last trade; mid when there is no trade yet."""
    if q.ltp is not None:
        return Decimal(repr(q.ltp))
    if q.bid is not None and q.ask is not None:
        return (Decimal(repr(q.bid)) + Decimal(repr(q.ask))) / 2
    return None


# -- routing ------------------------------------------------------------------------------------


def route_quotes(quotes: list[Quote]) -> list[tuple[str, tuple[str, list]]]:
    groups: dict[str, list] = {}
    for q in quotes:
        groups.setdefault(f"m{shard_of(q.symbol)}", []).append(q)
    return [(key, ("quotes", items, int(key[1:]))) for key, items in groups.items()]


def route_fills(batch: DecodedBatch) -> list[tuple[str, tuple[str, list]]]:
    groups: dict[str, list] = {}
    for e in batch.events:
        if type(e) is ExecutionReport and e.exec_type == "F" and e.account and e.last_qty:
            groups.setdefault(f"a{shard_of(e.account)}", []).append(e)
    return [(key, ("fills", items, int(key[1:]))) for key, items in groups.items()]


# -- marks: symbol shards -----------------------------------------------------------------------


@dataclass
class MarkShard:
    marks: dict[str, tuple[Decimal, int]] = field(default_factory=dict)  # published
    pending: dict[str, tuple[Decimal, int]] = field(default_factory=dict)
    watermark: int = 0


Routed = tuple[str, list, int]  # (kind, items, shard number)


class MarkLogic(op.StatefulBatchLogic[Routed, tuple[str, list], bytes]):
    """One symbol shard: its marks, published at most once per interval of event time per
    symbol (leading edge, the latest at the interval's end), to every account shard."""

    def __init__(self, resume: bytes | None, ctx: FlowContext) -> None:
        self.state: MarkShard = pickle.loads(resume) if resume is not None else MarkShard()
        self.recovery = ctx.recovery
        self.interval_ns = ctx.settings.margin_mark_ms * NS_PER_MS

    def _publish(self, symbol: str, mark: Decimal, ts: int, out: list) -> None:
        self.state.marks[symbol] = (mark, ts)
        out.append((symbol, mark, ts))

    def _emit(self, out: list) -> tuple[list[tuple[str, list]], bool]:
        # Every account shard gets every mark: each keeps its own trigger index per symbol,
        # so a mark costs a heap peek per shard, not a message per holder.
        return ([(f"a{n}", out) for n in range(SHARDS)] if out else []), self.RETAIN

    def on_batch(self, values: list[Routed]) -> tuple[list[tuple[str, list]], bool]:
        state, out = self.state, []
        for _, items, _ in values:
            for q in items:
                mark = _mark(q)
                ts = q.ts * NS_PER_MS
                state.watermark = max(state.watermark, ts)
                if mark is None:
                    continue
                last = state.marks.get(q.symbol)
                if last is None or ts - last[1] >= self.interval_ns:
                    state.pending.pop(q.symbol, None)
                    self._publish(q.symbol, mark, ts, out)  # leading edge
                else:
                    state.pending[q.symbol] = (mark, ts)
        self._flush(state.watermark, out)
        return self._emit(out)

    def _flush(self, upto: int | None, out: list) -> None:
        state = self.state
        for symbol, (mark, ts) in list(state.pending.items()):
            last = state.marks.get(symbol)
            if upto is None or last is None or last[1] + self.interval_ns <= upto:
                del state.pending[symbol]
                self._publish(symbol, mark, ts, out)

    def on_eof(self) -> tuple[list[tuple[str, list]], bool]:
        out: list = []
        self._flush(None, out)
        return self._emit(out)

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None  # Bytewax asks at every epoch end; without recovery nobody reads it
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


# -- accounts: account shards -------------------------------------------------------------------


@dataclass
class AccountState:
    owner: str
    cash: Decimal
    initial: Decimal
    maintenance: Decimal
    holdings: dict[str, Decimal]
    marks: dict[str, Decimal] = field(default_factory=dict)
    monitor: MarginMonitor = field(default_factory=MarginMonitor)
    concentrated: set[str] = field(default_factory=set)
    as_of_ns: int = 0  # events at or before this are already in the opening state (a replay)


@dataclass
class SymbolTriggers:
    """One symbol's triggers in one account shard: longs fire when the mark falls to their
    price (a max-heap), shorts when it rises to theirs (a min-heap); `watch` holds accounts
    re-evaluated on every mark (called, unmarked, or no excess to share). Entries carry the
    account's arming version: re-arming makes older entries dead (lazy deletion)."""

    longs: list[tuple[Decimal, str, int]] = field(default_factory=list)  # (-price, acct, ver)
    shorts: list[tuple[Decimal, str, int]] = field(default_factory=list)  # (price, acct, ver)
    watch: set[str] = field(default_factory=set)
    compacted: int = 0  # entries left by the last compaction

    def push(self, long: bool, price: Decimal, account: str, version: int,
             versions: dict[str, int]) -> None:  # fmt: skip
        if long:
            heapq.heappush(self.longs, (-price, account, version))
        else:
            heapq.heappush(self.shorts, (price, account, version))
        if len(self.longs) + len(self.shorts) > 2 * self.compacted + 1024:
            # Re-arming leaves dead entries behind: drop them once they outnumber the live.
            self.longs = [e for e in self.longs if versions.get(e[1]) == e[2]]
            self.shorts = [e for e in self.shorts if versions.get(e[1]) == e[2]]
            heapq.heapify(self.longs)
            heapq.heapify(self.shorts)
            self.compacted = len(self.longs) + len(self.shorts)

    def fired(self, mark: Decimal, versions: dict[str, int]) -> set[str]:
        out = set(self.watch)
        longs, shorts = self.longs, self.shorts
        while longs and -longs[0][0] >= mark:
            _, account, version = heapq.heappop(longs)
            if versions.get(account) == version:
                out.add(account)
        while shorts and shorts[0][0] <= mark:
            _, account, version = heapq.heappop(shorts)
            if versions.get(account) == version:
                out.add(account)
        return out


@dataclass
class AccountShard:
    accounts: dict[str, AccountState]
    marks: dict[str, Decimal] = field(default_factory=dict)  # the latest mark of each symbol
    triggers: dict[str, SymbolTriggers] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # arming version per account
    watched: dict[str, set[str]] = field(default_factory=dict)  # account -> its watch sets
    due: list[tuple[int, str]] = field(default_factory=list)  # (liquidation due, account)
    watermark: int = 0


@dataclass
class MarginEffects:
    rows: list[MarginRow] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class AccountLogic(op.StatefulBatchLogic[Routed, MarginEffects, bytes]):
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
        )
        self.alert_share = Decimal(repr(settings.margin_concentration_share))
        self.opening: dict[str, OpeningAccount] = ctx.margin_opening or {}
        self.marks: dict[str, Decimal] = ctx.margin_marks or {}
        self.stats = ctx.stats
        self.state: AccountShard | None = pickle.loads(resume) if resume is not None else None
        self.recovery = ctx.recovery

    def _load(self, n: int) -> AccountShard:
        opening = [a for a in self.opening.values() if shard_of(a.account) == n]
        shard = AccountShard(
            {
                a.account: AccountState(
                    a.owner, a.cash, a.initial_margin, a.maintenance_margin, dict(a.holdings),
                    monitor=MarginMonitor(
                        MarginState(a.margin_state), a.call_since_ns or 0, self.policy.grace_ns
                    ),
                    as_of_ns=a.as_of_ns,
                )
                for a in opening
            },
            marks=dict(self.marks),
        )  # fmt: skip
        self.state = shard
        for account, acct in shard.accounts.items():
            due = acct.monitor.due_ns()
            if due is not None:  # a call that stood when the flow last stopped
                heapq.heappush(shard.due, (due, account))
            self._arm(account, self.figures(account))
        return shard

    def on_batch(self, values: list[Routed]) -> tuple[list[MarginEffects], bool]:
        if self.state is None:
            self.state = self._load(values[0][2])
        state, effects = self.state, MarginEffects()
        # Marks and fills in event-time order (a batch may hold many of both), each account
        # re-evaluated after each of its events: a call between two prices is not missed.
        events: list[tuple[int, int, Any]] = []
        for kind, items, _ in values:
            if kind == "fills":
                events += [(r.ts_event, len(events) + i, r) for i, r in enumerate(items)]
            else:
                events += [(item[2], len(events) + i, item) for i, item in enumerate(items)]
        events.sort(key=lambda e: (e[0], e[1]))
        for ts, _, item in events:
            state.watermark = max(state.watermark, ts)
            self._check_grace(effects)  # a deadline that passed before this event fires first
            if type(item) is ExecutionReport:
                account = item.account
                acct = state.accounts.get(account)
                if acct is None or ts <= acct.as_of_ns:
                    continue  # unknown account (the ledger dead-letters it), or already in
                signed = side_sign(item.side) * item.last_qty
                acct.holdings[item.symbol] = acct.holdings.get(item.symbol, Decimal(0)) + signed
                acct.cash -= signed * item.last_px
                acct.marks.setdefault(item.symbol, item.last_px)  # until a mark comes
                self._evaluate(account, ts, effects)
                continue
            symbol, mark, _ = item
            state.marks[symbol] = mark
            triggers = state.triggers.get(symbol)
            if triggers is None:
                continue
            for account in sorted(triggers.fired(mark, state.versions)):
                if ts >= state.accounts[account].as_of_ns:
                    self._evaluate(account, ts, effects)
        self._check_grace(effects)
        return ([effects] if effects.rows or effects.alerts else []), self.RETAIN

    def figures(self, account: str) -> MarginFigures:
        state = self.state
        acct = state.accounts[account]
        marks = {s: state.marks.get(s, acct.marks.get(s)) for s in acct.holdings}
        return margin_figures(
            acct.cash, acct.holdings, marks, acct.initial, acct.maintenance, self.policy
        )

    def _arm(self, account: str, figures: MarginFigures) -> None:
        """Index the account under the prices that would make it worth a look again."""
        state = self.state
        version = state.versions.get(account, 0) + 1
        state.versions[account] = version
        for symbol in state.watched.pop(account, ()):
            state.triggers[symbol].watch.discard(account)
        acct = state.accounts[account]
        watch = acct.monitor.state is not MarginState.NORMAL
        triggers, must_watch = excess_triggers(figures)
        if watch or must_watch:
            held = {s for s, q in acct.holdings.items() if q}
            for symbol in held:
                state.triggers.setdefault(symbol, SymbolTriggers()).watch.add(account)
            state.watched[account] = held
            self.stats.add("margin_watched_arms", 1)
            return
        for t in triggers:
            index = state.triggers.setdefault(t.symbol, SymbolTriggers())
            index.push(t.long, t.price, account, version, state.versions)

    def _evaluate(self, account: str, ts: int, effects: MarginEffects) -> None:
        acct = self.state.accounts[account]
        figures = self.figures(account)
        self.stats.add("margin_evaluations", 1)
        if figures.unmarked:
            # A held symbol has no mark yet: no verdict and no row (valuing it at 0 would
            # invent a loss); watched, so its first mark evaluates it again.
            self._arm(account, figures)
            return
        was_call = acct.monitor.due_ns()
        for t in acct.monitor.update(figures, ts):
            effects.alerts.append(_alert(account, acct, t))
        due = acct.monitor.due_ns()
        if due is not None and due != was_call:
            heapq.heappush(self.state.due, (due, account))
        self._concentration(account, acct, figures, ts, effects)
        effects.rows.append(_row(account, acct, figures, ts))
        self._arm(account, figures)

    def _concentration(
        self, account: str, acct: AccountState, f: MarginFigures, ts: int, effects: MarginEffects
    ) -> None:
        over = set()
        if f.gross_value and not f.unmarked:
            for p in f.positions:
                share = abs(p.value) / f.gross_value
                if share > self.alert_share and len(f.positions) > 1:
                    over.add(p.symbol)
                    if p.symbol not in acct.concentrated:
                        effects.alerts.append(
                            make_alert(
                                CONCENTRATION, f"{account}:{p.symbol}:{ts}", "MEDIUM", ts,
                                account=account, owner=acct.owner, symbol=p.symbol,
                                details={"share": share.quantize(Decimal("0.0001")),
                                         "threshold": self.alert_share, "value": abs(p.value),
                                         "gross_value": f.gross_value, "mark": p.mark},
                            )
                        )  # fmt: skip
        acct.concentrated = over

    def _check_grace(self, effects: MarginEffects) -> None:
        state = self.state
        while state.due and state.due[0][0] <= state.watermark:
            due, account = heapq.heappop(state.due)
            acct = state.accounts[account]
            if acct.monitor.due_ns() != due:
                continue  # cured (or a newer episode) since
            figures = self.figures(account)
            for t in acct.monitor.check_grace(figures, due):
                effects.alerts.append(_alert(account, acct, t))
            effects.rows.append(_row(account, acct, figures, due))

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None  # Bytewax asks at every epoch end; without recovery nobody reads it
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


def _row(account: str, acct: AccountState, f: MarginFigures, ts: int) -> MarginRow:
    monitor = acct.monitor
    call_since = None if monitor.state is MarginState.NORMAL else monitor.episode_ns
    return MarginRow(
        account, f.equity, f.gross_value, f.ratio, monitor.state.value, ts, call_since
    )


def _alert(account: str, acct: AccountState, t: MarginTransition) -> Alert:
    f, s = t.figures, t.shortfall
    details: dict[str, Any] = {
        "episode_start_ns": t.episode_ns,
        "equity": f.equity,
        "gross_value": f.gross_value,
        "long_value": f.long_value,
        "short_value": f.short_value,
        "ratio": None if f.ratio is None else f.ratio.quantize(Decimal("0.000001")),
        "maintenance_requirement": f.maintenance_requirement,
        "initial_requirement": f.initial_requirement,
        "excess": f.excess,
        "marks": {p.symbol: p.mark for p in f.positions},
        "cash": f.cash,
    }
    if t.kind != "MARGIN_CALL_CURED":
        details |= {
            "cash_to_maintenance": s.cash_to_maintenance,
            "cash_to_initial": s.cash_to_initial,
            "reduction_to_maintenance": s.reduction_to_maintenance,
            "reduction_to_initial": s.reduction_to_initial,
        }
    if t.liquidation:
        details["liquidation"] = [
            {"symbol": x.symbol, "side": x.side, "quantity": x.quantity, "mark": x.mark,
             "value": x.value}
            for x in t.liquidation
        ]  # fmt: skip
    return make_alert(
        t.kind, f"{account}:{t.episode_ns}", SEVERITY[t.kind], t.ts_ns,
        account=account, owner=acct.owner, details=details,
    )  # fmt: skip


def attach(quotes: Stream[list[Quote]], decoded: Stream[DecodedBatch], ctx: FlowContext) -> None:
    """Add margin monitoring, fed by the published quotes and the decoded fills."""
    to_marks = op.flat_map("margin_route_quotes", quotes, route_quotes)
    to_accounts = op.flat_map("margin_route_fills", decoded, route_fills)
    marks = op.stateful_batch("margin_marks", to_marks, lambda resume: MarkLogic(resume, ctx))
    marks = op.map(
        "margin_mark_items", marks, lambda kv: (kv[1][0], ("marks", kv[1][1], int(kv[1][0][1:])))
    )
    accounts_in = op.merge("margin_accounts_in", marks, to_accounts)
    effects = op.stateful_batch(
        "margin_accounts", accounts_in, lambda resume: AccountLogic(resume, ctx)
    )
    effects = op.key_rm("unkey_margin", effects)
    rows = op.filter_map("margin_rows", effects, lambda e: e.rows or None)
    op.output("write_margin", rows, AccountMarginSink(ctx.postgres_dsn, ctx.retry))
    alerts = op.filter_map("margin_alerts", effects, lambda e: e.alerts or None)
    op.output(
        "write_margin_alerts",
        alerts,
        alert_sink(ctx),
    )
