"""Flows layer: margin monitoring. Marks and fills -> account figures, calls, cures, liquidation.

Steps (ids are recovery keys; renaming one orphans its state):
    margin_route     published quotes (`flows.quotes`) and fills (35=8 ExecType F) keyed by
                     symbol shard ("m{n}") and fills keyed by account shard ("a{n}")
    margin_marks     per symbol shard: the symbol -> holders index (opening holdings from
                     PostgreSQL, then fills) and the marks (last trade, else mid), published at
                     most once per `margin_mark_ms` of event time per symbol (leading edge, the
                     latest at the interval's end); each mark fans out to the symbol's holders
    margin_accounts  per account shard: cash, holdings and marks of each account (opening state
                     from PostgreSQL, then fills), `domain.margin` figures on every mark or fill
                     that touches the account, a `MarginMonitor` per account, and the grace
                     deadlines, checked against the shard's event-time watermark
    write_margin / write_margin_alerts   `account_margin` upserts; MARGIN_CALL,
                     MARGIN_CALL_CURED, LIQUIDATION and CONCENTRATION alerts
A quote touches only the accounts that hold its symbol. Fills of a report without Account (1)
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
    margin_figures,
)
from domain.quotes import NS_PER_MS, Quote
from flows.context import FlowContext
from sinks.alerts import AlertSink
from sinks.margin import AccountMarginSink, MarginRow, OpeningAccount, holders_of

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
            groups.setdefault(f"m{shard_of(e.symbol)}", []).append(e)
            groups.setdefault(f"a{shard_of(e.account)}", []).append(e)
    return [(key, ("fills", items, int(key[1:]))) for key, items in groups.items()]


# -- marks: symbol shards -----------------------------------------------------------------------


@dataclass
class MarkShard:
    holders: dict[str, dict[str, Decimal]]
    marks: dict[str, tuple[Decimal, int]] = field(default_factory=dict)  # published
    pending: dict[str, tuple[Decimal, int]] = field(default_factory=dict)
    watermark: int = 0


Routed = tuple[str, list, int]  # (kind, items, shard number)


class MarkLogic(op.StatefulBatchLogic[Routed, tuple[str, list], bytes]):
    """One symbol shard: its holders index and marks. The opening holders are read from
    PostgreSQL on the shard's first batch (the builder is not told its key; the items are)."""

    def __init__(self, resume: bytes | None, ctx: FlowContext) -> None:
        self.state: MarkShard | None = pickle.loads(resume) if resume is not None else None
        self.recovery = ctx.recovery
        self.opening: dict[str, OpeningAccount] = ctx.margin_opening or {}
        self.interval_ns = ctx.settings.margin_mark_ms * NS_PER_MS

    def _publish(self, symbol: str, mark: Decimal, ts: int, out: dict[str, list]) -> None:
        self.state.marks[symbol] = (mark, ts)
        for account in self.state.holders.get(symbol, ()):
            out.setdefault(f"a{shard_of(account)}", []).append((account, symbol, mark, ts))

    def on_batch(self, values: list[Routed]) -> tuple[list[tuple[str, list]], bool]:
        if self.state is None:
            n = values[0][2]
            holders = holders_of(self.opening)
            self.state = MarkShard({s: h for s, h in holders.items() if shard_of(s) == n})
        state, out = self.state, {}
        for kind, items, _ in values:
            if kind == "fills":
                for report in items:
                    self._fill(report, out)
                continue
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
        return [(k, v) for k, v in out.items()], self.RETAIN

    def _fill(self, report: ExecutionReport, out: dict[str, list]) -> None:
        by_account = self.state.holders.setdefault(report.symbol, {})
        qty = by_account.get(report.account, Decimal(0)) + side_sign(report.side) * report.last_qty
        if qty:
            new = report.account not in by_account
            by_account[report.account] = qty
            mark = self.state.marks.get(report.symbol)
            if new and mark is not None:  # a new holder gets the current mark
                key = f"a{shard_of(report.account)}"
                out.setdefault(key, []).append((report.account, report.symbol, *mark))
        else:
            by_account.pop(report.account, None)

    def _flush(self, upto: int | None, out: dict[str, list]) -> None:
        state = self.state
        for symbol, (mark, ts) in list(state.pending.items()):
            last = state.marks.get(symbol)
            if upto is None or last is None or last[1] + self.interval_ns <= upto:
                del state.pending[symbol]
                self._publish(symbol, mark, ts, out)

    def on_eof(self) -> tuple[list[tuple[str, list]], bool]:
        out: dict[str, list] = {}
        if self.state is not None:
            self._flush(None, out)
        return [(k, v) for k, v in out.items()], self.RETAIN

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
class AccountShard:
    accounts: dict[str, AccountState]
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
                    marks={s: self.marks[s] for s in a.holdings if s in self.marks},
                )
                for a in opening
            }
        )  # fmt: skip
        for account, acct in shard.accounts.items():
            due = acct.monitor.due_ns()
            if due is not None:  # a call that stood when the flow last stopped
                heapq.heappush(shard.due, (due, account))
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
                events += [(item[3], len(events) + i, item) for i, item in enumerate(items)]
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
            else:
                account, symbol, mark, _ = item
                acct = state.accounts.get(account)
                if acct is None or ts < acct.as_of_ns:
                    continue
                acct.marks[symbol] = mark
            self._evaluate(account, ts, effects)
        self._check_grace(effects)
        return ([effects] if effects.rows or effects.alerts else []), self.RETAIN

    def figures(self, account: str) -> MarginFigures:
        acct = self.state.accounts[account]
        return margin_figures(
            acct.cash, acct.holdings, acct.marks, acct.initial, acct.maintenance, self.policy
        )

    def _evaluate(self, account: str, ts: int, effects: MarginEffects) -> None:
        acct = self.state.accounts[account]
        figures = self.figures(account)
        if figures.unmarked:
            # A held symbol has no mark yet: no verdict and no row (valuing it at 0 would
            # invent a loss); counted, and evaluated again when its first mark arrives.
            self.stats.add("margin_unmarked_evaluations", 1)
            return
        was_call = acct.monitor.due_ns()
        for t in acct.monitor.update(figures, ts):
            effects.alerts.append(_alert(account, acct, t))
        due = acct.monitor.due_ns()
        if due is not None and due != was_call:
            heapq.heappush(self.state.due, (due, account))
        self._concentration(account, acct, figures, ts, effects)
        effects.rows.append(_row(account, acct, figures, ts))

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


def _key_of(item: tuple[str, Any]) -> str:
    return item[0]


def attach(quotes: Stream[list[Quote]], decoded: Stream[DecodedBatch], ctx: FlowContext) -> None:
    """Add margin monitoring, fed by the published quotes and the decoded fills."""
    quote_items = op.flat_map("margin_route_quotes", quotes, route_quotes)
    fill_items = op.flat_map("margin_route_fills", decoded, route_fills)
    routed = op.merge("margin_route", quote_items, fill_items)
    to_marks = op.filter("margin_to_marks", routed, lambda kv: kv[0][0] == "m")
    to_accounts = op.filter("margin_fills_to_accounts", routed, lambda kv: kv[0][0] == "a")
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
    op.output("write_margin", rows, AccountMarginSink(ctx.postgres_dsn))
    alerts = op.filter_map("margin_alerts", effects, lambda e: e.alerts or None)
    op.output(
        "write_margin_alerts",
        alerts,
        AlertSink(
            ctx.postgres_dsn, ctx.redis_url, ctx.settings.redis_stream_maxlen, ctx.stats.add
        ),
    )
