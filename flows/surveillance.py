"""Flows layer: trade surveillance. Execution reports and market trades -> findings -> alerts.

Steps (ids are recovery keys; renaming one orphans its state):
    surveil_route    per decoded batch, in input order: execution reports (35=8: ExecType 0
                     new and 5 replaced are orders, 4 a cancel, F a fill), the market's trades
                     (35=X 269=2) and the venue's day volume (269=B of 35=W and 35=X) by symbol
                     shard ("s{n}"); fills and orders also by account shard ("a{n}")
    surveil_symbols  per symbol shard: `SelfMatchModel`, `RoundTripModel`, `SpoofingModel`,
                     `MarkingTheCloseModel`, `PumpAndDumpModel`
    surveil_accounts per account shard: `OrderToTradeModel`, `OwnershipMissingModel`
    surveil_alerts   the findings as alerts (severity is the model's score 0..100, the
                     evidence is `details`): to ClickHouse here, and returned to the pipeline
                     for PostgreSQL `alerts` and `stream:alerts` (`write_alerts`)
Owners come from `accounts.owner`, read before the run, and from the accounts opened or
changed during it (35=UA), each shard learning them at their place in its input. Day-based
judgements (order-to-trade, marking the close) are made when event time passes the day's end
or close, and at the end of the input (a back-test of one day is judged when the file ends).
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.fix import DecodedBatch
from domain.alerts import Alert, make_alert
from domain.dead_letters import DeadLetter
from domain.events import (
    MD_CHANGE,
    MD_NEW,
    MD_OVERLAY,
    MD_TRADE,
    MD_VOLUME,
    AccountChanged,
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
)
from domain.sharding import SYMBOL_SHARDS, symbol_shard
from domain.surveillance import (
    NS_PER_S,
    Fill,
    Finding,
    MarkingTheCloseModel,
    OrderChains,
    OrderToTradeModel,
    OwnershipMissingModel,
    PumpAndDumpModel,
    RoundTripModel,
    SelfMatchModel,
    SpoofingModel,
)
from domain.triage import Episodes, occurrence
from domain.watermarks import WatermarkMerge
from flows.context import FlowContext
from flows.operators import FlowBatch, merged
from flows.surveillance_parameters import model_parameters
from sinks.clickhouse import LIVE_MAX_DELAY_S, PipelinedAlertsSink, alerts_partition_key
from sinks.postgres import DeadLetterSink

ACCOUNT_SHARDS = 8

EPISODE_GAP_NS = 60 * 60 * NS_PER_S


def _shard(key: str) -> int:
    return zlib.crc32(key.encode()) % ACCOUNT_SHARDS


class AccountPart(NamedTuple):
    """What one account shard gets from one decoded batch: its execution reports with their
    sequence numbers, and how far the batch's input partition has got (`Progress`), which
    every account shard gets, reports or not: its merge waits on every partition."""

    source: str
    sources: int
    items: list[tuple[int, ExecutionReport]]
    watermark: int
    ordered: bool
    done: bool = False
    idle: bool = False


def _fill(r: ExecutionReport, order: str | None = None) -> Fill:
    """The fill of report `r`; `order`: the ClOrdID the models know its order by."""
    return Fill(
        r.exec_id, r.account or "", r.symbol, r.side, r.last_qty, r.last_px, r.ts_event,
        r.cl_ord_id or "" if order is None else order, r.trd_match_id,
    )  # fmt: skip


# New (0), replaced (5), cancelled (4), filled (F); and expired (C), rejected (8), done for the
# day (3), which only take an order off the book.
_ROUTED = frozenset(("0", "4", "5", "F", "C", "8", "3"))
_DONE = frozenset(("C", "8", "3"))
# MDUpdateAction (279) of a 269=B entry that gives a volume: new, change, overlay (not a delete).
_VOLUME_ACTIONS = frozenset((MD_NEW, MD_CHANGE, MD_OVERLAY))
_MAX_SHARD_KEYS = 1_000_000  # the memo is cleared past this (symbols and accounts are far fewer)
_SYMBOL_KEYS = tuple(f"s{n}" for n in range(SYMBOL_SHARDS))
_ACCOUNT_KEYS = tuple(f"a{n}" for n in range(ACCOUNT_SHARDS))


def _market_items(e: MarketDataIncrement | MarketDataSnapshot) -> list[tuple]:
    """The trades (269=2 new) and the venue's day volume (269=B) of a market-data event, as
    `(symbol, traded, ts, day_volume)` items in entry order: `traded` shares printed, then
    `day_volume` (None: not reported), which counts them. Trades printed after the last 269=B
    make a second item. A snapshot's trade entry is the last trade, already in its volume."""
    incremental = type(e) is MarketDataIncrement
    items: list[tuple] = []
    traded = 0.0
    for x in e.entries:
        entry_type = x.entry_type
        if entry_type == MD_TRADE:
            if incremental and x.action == MD_NEW and x.size:
                traded += x.size
        elif entry_type == MD_VOLUME and x.size is not None and x.action in _VOLUME_ACTIONS:
            items.append((e.symbol, traded, e.ts_event, x.size))
            traded = 0.0
    if traded:
        items.append((e.symbol, traded, e.ts_event, None))
    return items


def make_route(
    symbol_keys: tuple[str, ...] = _SYMBOL_KEYS, account_keys: tuple[str, ...] = _ACCOUNT_KEYS
):
    """`route` with the shards' key names of `FlowContext.placement`."""
    memo: dict[str, tuple[str, str]] = {}  # name -> (symbol shard key, account shard key)

    def keys_of(name: str) -> tuple[str, str]:
        if len(memo) >= _MAX_SHARD_KEYS:
            memo.clear()
        keys = memo[name] = (symbol_keys[symbol_shard(name)], account_keys[_shard(name)])
        return keys

    def route(batch: FlowBatch | DecodedBatch) -> list[tuple[str, Any]]:
        return _route(batch, memo, keys_of, account_keys, symbol_keys)

    return route


def _route(
    batch: FlowBatch | DecodedBatch,
    memo: dict[str, tuple[str, str]],
    keys_of: Callable[[str], tuple[str, str]],
    account_keys: tuple[str, ...],
    symbol_keys: tuple[str, ...] = (),
) -> list[tuple[str, Any]]:
    """Group the batch's surveillance inputs by shard, keeping their order within a shard.

    An account opened or changed (35=UA) goes to the symbol shards (`symbol_keys`) of its input
    partition and to its account shard, in its place: the models know its owner from there on
    (issue 20).

    Symbol shards get execution reports and market items (`_market_items`); account shards
    get the execution reports with their sequence numbers (`AccountPart`). Most market data
    is quotes, and most of the rest lone trade prints: an increment is read entry by entry
    only until its first trade or volume entry, and a lone print becomes its item without
    more ado.
    """
    groups: dict[str, list] = {}
    accounts: dict[str, list[tuple[int, ExecutionReport]]] = {}
    p = getattr(batch, "progress", None)  # None: a plain `DecodedBatch`, in arrival order
    seqs = batch.seqs if p is not None else [0] * len(batch.events)
    for e, seq in zip(batch.events, seqs, strict=True):
        kind = type(e)
        if kind is MarketDataIncrement:
            entries = e.entries
            if len(entries) == 1:
                x = entries[0]
                entry_type = x.entry_type
                if entry_type == MD_TRADE:
                    if x.action != MD_NEW or not x.size:
                        continue
                    items = [(e.symbol, x.size, e.ts_event, None)]
                elif entry_type == MD_VOLUME:
                    items = _market_items(e)
                else:
                    continue  # a quote
            else:
                for x in entries:
                    entry_type = x.entry_type
                    if entry_type == MD_TRADE or entry_type == MD_VOLUME:
                        break
                else:
                    continue  # quotes only
                items = _market_items(e)
            if items:
                symbol_key = (memo.get(e.symbol) or keys_of(e.symbol))[0]
                group = groups.get(symbol_key)
                if group is None:
                    groups[symbol_key] = items
                else:
                    group += items
        elif kind is ExecutionReport:
            if e.exec_type not in _ROUTED or not e.account:
                continue
            symbol_key = (memo.get(e.symbol) or keys_of(e.symbol))[0]
            account_key = (memo.get(e.account) or keys_of(e.account))[1]
            groups.setdefault(symbol_key, []).append(e)
            accounts.setdefault(account_key, []).append((seq, e))
        elif kind is MarketDataSnapshot:
            items = _market_items(e)
            if items:
                groups.setdefault((memo.get(e.symbol) or keys_of(e.symbol))[0], []).extend(items)
        elif kind is AccountChanged:
            # Every Kafka partition has a copy at its place: each goes to the symbol shards of
            # its partition, and the account's own partition's to the account's shard.
            shards = p.shards if p is not None else range(len(symbol_keys))
            for symbol_key in dict.fromkeys(symbol_keys[n] for n in shards):
                groups.setdefault(symbol_key, []).append(e)
            if p is None or symbol_shard(e.account) in p.shards:
                account_key = (memo.get(e.account) or keys_of(e.account))[1]
                accounts.setdefault(account_key, []).append((seq, e))
    out: list[tuple[str, Any]] = list(groups.items())
    if p is None or not p.ordered:  # arrival order: only the shards with reports
        out += [(key, AccountPart("", 0, items, 0, False)) for key, items in accounts.items()]
    else:
        out += [
            (key, AccountPart(p.source, p.sources, accounts.get(key, []), p.last, True, p.done,
                              p.idle))
            for key in account_keys
        ]  # fmt: skip
    return out


route = make_route()
"""`route` with the plain shard names (tests, benchmarks)."""


def inputs_of(routed: list | AccountPart) -> list:
    """What a shard's models take from one `route` item, in order (for driving the models
    without a dataflow: tests, benchmarks)."""
    return [report for _, report in routed.items] if type(routed) is AccountPart else routed


class SymbolModels:
    """The symbol-keyed models of one shard."""

    def __init__(
        self, owners: Mapping[str, str], params: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        p = params or model_parameters({})
        self.self_match = SelfMatchModel(owners, **p["self_match"])
        self.round_trips = RoundTripModel(owners, **p["round_trips"])
        self.spoofing = SpoofingModel(**p["spoofing"])
        self.close = MarkingTheCloseModel(**p["marking_the_close"])
        self.pump = PumpAndDumpModel(**p["pump_and_dump"])
        self.chains = OrderChains()
        self.owners = owners  # the run's, shared, until an account changes here (`learn`)

    def learn(self, change: AccountChanged) -> None:
        """An account opened or changed owner (35=UA): its owner from this point on. The
        shard takes a copy of the run's mapping first (the other shards learn in their own
        order)."""
        if not self.__dict__.get("own_owners"):
            self.owners = dict(self.self_match.owners)
            self.self_match.owners = self.round_trips.owners = self.owners
            self.own_owners = True
        self.owners[change.account] = change.owner

    def on(self, item: Any) -> list[Finding]:
        if type(item) is tuple:  # the market: (symbol, traded, ts, day volume or None)
            found = self.close.on_market(*item)
            self.pump.on_market(*item)  # never finds anything on its own
            return found
        if type(item) is AccountChanged:
            self.learn(item)
            return []
        r: ExecutionReport = item
        exec_type = r.exec_type
        # The order this report is about, by OrderID (37) and OrigClOrdID (41) as well as 11:
        # the ClOrdID it was placed with, however the venue reports cancels and replaces.
        order = self.chains.known(r.order_id, r.cl_ord_id or "", r.orig_cl_ord_id, exec_type)
        if exec_type == "F":
            if not r.leaves_qty:
                self.chains.ended(r.order_id)  # filled: nothing more will come for it
            f = _fill(r, order)
            out = self.self_match.on_fill(f) + self.round_trips.on_fill(f)
            out += self.spoofing.on_fill(f) + self.close.on_fill(f) + self.pump.on_fill(f)
            return out
        if exec_type == "4":
            self.chains.ended(r.order_id)
            return self.spoofing.on_cancel(r.account or "", r.symbol, order, r.ts_event)
        if exec_type in _DONE:
            self.chains.ended(r.order_id)
            self.spoofing.on_done(r.account or "", r.symbol, order, r.ts_event)
            return []
        # New (0) or replaced (5): the order rests, with its new terms on a replace.
        self.chains.placed(r.order_id, order, r.ts_event)
        qty = r.leaves_qty if r.leaves_qty else (r.order_qty or Decimal(0))
        rest = self.spoofing.on_replace if exec_type == "5" else self.spoofing.on_order
        return rest(r.account or "", r.symbol, order, r.side, qty, r.price, r.ts_event)

    def close_input(self) -> list[Finding]:
        return self.close.judge()


class AccountModels:
    """The account-keyed models of one shard."""

    def __init__(
        self, owners: Mapping[str, str], params: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        p = params or model_parameters({})
        self.otr = OrderToTradeModel(**p["order_to_trade"])
        self.ownership = OwnershipMissingModel(owners)
        self.owners = owners  # the run's, shared, until an account changes here (`learn`)

    def learn(self, change: AccountChanged) -> None:
        """As `SymbolModels.learn`."""
        if not self.__dict__.get("own_owners"):
            self.owners = self.ownership.owners = dict(self.ownership.owners)
            self.own_owners = True
        self.owners[change.account] = change.owner

    def on(self, r: ExecutionReport) -> list[Finding]:
        if type(r) is AccountChanged:
            self.learn(r)
            return []
        if r.exec_type == "F":
            f = _fill(r)
            return self.otr.on_fill(f) + self.ownership.on_fill(f)
        if r.exec_type in ("0", "5"):
            return self.otr.on_order(r.account or "", r.cl_ord_id or "", r.ts_event)
        return []

    def close_input(self) -> list[Finding]:
        return self.otr.close_day()


def _severity(score: int) -> str:
    return str(max(0, min(100, score)))


def _alert(finding: Finding, owners: Mapping[str, str], episodes: Episodes) -> Alert:
    """The subject is an account (then its owner is looked up) or, for owner-level wash
    trades, an owner. A finding that continues an episode gets the episode's alert id and
    carries its own evidence as an occurrence, which the alert sink adds to that alert."""
    is_owner = finding.subject_is_owner
    account = None if is_owner else finding.subject
    owner = finding.subject if is_owner else owners.get(finding.subject)
    key, opens = episodes.assign(
        finding.kind, finding.subject, finding.symbol, finding.key, finding.ts_ns
    )
    evidence = None if opens else finding.evidence
    details = {
        **finding.evidence, "score": finding.score, "model_key": finding.key,
        "occurrences": {finding.key: occurrence(finding.ts_ns, finding.score, evidence)},
    }  # fmt: skip
    return make_alert(
        finding.kind, key, _severity(finding.score), finding.ts_ns,
        account=account, owner=owner, symbol=finding.symbol, details=details,
    )  # fmt: skip


class SurveillanceLogic(op.StatefulBatchLogic[list, tuple[str, list], bytes]):
    """One shard's models (symbol or account models, by the shard key's letter).

    Emits `("alerts", [Alert…])` and, from symbol shards, `("late", [DeadLetter…])` for execution
    reports older than the shard's latest event time by more than `surveillance_late_s`: within
    that bound events are taken out of order (the models' windows absorb it); beyond it they
    would judge windows already judged, so they become dead letters with the reason.
    """

    def __init__(
        self, resume: bytes | None, ctx: FlowContext, episode_gap_ns: int = EPISODE_GAP_NS
    ) -> None:
        self.owners: Mapping[str, str] = ctx.owners or {}
        self.recovery = ctx.recovery
        self.late_ns = int(ctx.settings.surveillance_late_s * NS_PER_S)
        self.models: SymbolModels | AccountModels | None = None
        self.watermark = 0
        # An account shard's reports of every partition, put in sequence order.
        self.merge: WatermarkMerge | None = None
        self.episodes = Episodes(episode_gap_ns)
        if resume is not None:
            state = pickle.loads(resume)
            self.models, self.watermark = state[0], state[1]
            self.merge = state[2] if len(state) > 2 else None
            if len(state) > 3:
                self.episodes = state[3]
            if type(self.models) is SymbolModels and "chains" not in self.models.__dict__:
                self.models.chains = OrderChains()  # a snapshot of an earlier release
        self.stats = ctx.stats

    def _merged(self, parts: list[AccountPart]) -> list[list]:
        """An account shard's parts -> its reports in sequence order, as far as every input
        partition has passed."""
        out: list[list] = []
        for part in parts:
            if self.merge is None and part.ordered:
                self.merge = WatermarkMerge(part.sources)
            released = merged(self.merge, part, self.stats.add)
            if released:
                out.append([report for _, report in released])
        return out

    def on_batch(self, values: list) -> tuple[list[tuple[str, list]], bool]:
        models = self.models
        assert models is not None  # set by the step's builder
        is_symbol_shard = type(models) is SymbolModels
        return self._judge(values if is_symbol_shard else self._merged(values))

    def _judge(self, values: list[list]) -> tuple[list[tuple[str, list]], bool]:
        models = self.models
        assert models is not None
        findings: list[Finding] = []
        late: list[DeadLetter] = []
        is_symbol_shard = type(models) is SymbolModels
        on = models.on
        late_ns = self.late_ns
        watermark = self.watermark
        for items in values:
            for item in items:
                if type(item) is AccountChanged:  # never late: the owner holds from here on
                    on(item)
                    continue
                ts = item[2] if type(item) is tuple else item.ts_event  # market item or report
                if ts < watermark - late_ns:
                    if is_symbol_shard and type(item) is ExecutionReport:
                        self.watermark = watermark
                        late.append(self._late_letter(item, ts))
                    continue
                if ts > watermark:
                    watermark = ts
                found = on(item)
                if found:
                    findings += found
        self.watermark = watermark
        out = self._emit(findings)[0]
        if late:
            self.stats.add("dead_letters", len(late))
            out.append(("late", late))
        return out, self.RETAIN

    def _late_letter(self, report: ExecutionReport, ts: int) -> DeadLetter:
        behind = (self.watermark - ts) / NS_PER_S
        return DeadLetter(
            source=report.source,
            reason=(
                f"execution report {report.exec_id} is {behind:.3f} s older than the latest "
                f"event of its symbol shard (bound {self.late_ns / NS_PER_S:g} s): too late "
                "for surveillance windows already judged"
            ),
            raw=bytes(report.raw),
            step_id="surveil_symbols",
            error="LateEvent",
            tag=60,
            ts_init=ts,
        )

    def _emit(self, findings: list[Finding]) -> tuple[list[tuple[str, list]], bool]:
        if not findings:
            return [], self.RETAIN
        self.stats.add("surveillance_findings", len(findings))
        episodes = self.episodes
        owners = getattr(self.models, "owners", None) or self.owners  # as the shard knows them
        return [("alerts", [_alert(f, owners, episodes) for f in findings])], self.RETAIN

    def on_eof(self) -> tuple[list[tuple[str, list]], bool]:
        if self.models is None:
            return [], self.RETAIN
        out: list[tuple[str, list]] = []
        if self.merge is not None:
            held = self.merge.flush()
            if held:
                out = self._judge([[report for _, report in held]])[0]
        return out + self._emit(self.models.close_input())[0], self.RETAIN

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None
        state = (self.models, self.watermark, self.merge, self.episodes)
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def attach(decoded: Stream[FlowBatch], ctx: FlowContext) -> Stream[list[Alert]]:
    """Add the surveillance models to a dataflow whose decoded FIX stream is `decoded`; return
    the alerts, for the pipeline's one alert sink."""
    placed = ctx.placement
    router = route if placed is None else make_route(placed.surveil_symbol, placed.surveil_account)
    routed = op.flat_map("surveil_route", decoded, router)
    by_symbol = op.filter("surveil_by_symbol", routed, lambda kv: kv[0][0] == "s")
    by_account = op.filter("surveil_by_account", routed, lambda kv: kv[0][0] == "a")
    owners = ctx.owners or {}
    params = ctx.settings.surveillance_parameters()
    gap_ns = params["episodes"].get("gap_ns", EPISODE_GAP_NS)

    def symbol_logic(resume: bytes | None) -> SurveillanceLogic:
        logic = SurveillanceLogic(resume, ctx, gap_ns)
        if logic.models is None:
            logic.models = SymbolModels(owners, params)
        return logic

    def account_logic(resume: bytes | None) -> SurveillanceLogic:
        logic = SurveillanceLogic(resume, ctx, gap_ns)
        if logic.models is None:
            logic.models = AccountModels(owners, params)
        return logic

    symbol_out = op.stateful_batch("surveil_symbols", by_symbol, symbol_logic)
    account_out = op.stateful_batch("surveil_accounts", by_account, account_logic)
    tagged = op.merge(
        "surveil_out",
        op.key_rm("unkey_surveil_symbols", symbol_out),
        op.key_rm("unkey_surveil_accounts", account_out),
    )
    alerts = op.filter_map("surveil_alerts", tagged, lambda t: t[1] if t[0] == "alerts" else None)
    late = op.flat_map("surveil_late", tagged, lambda t: t[1] if t[0] == "late" else [])
    op.output("write_surveillance_letters", late, DeadLetterSink(ctx.postgres_dsn, ctx.retry))
    sink = PipelinedAlertsSink(
        ctx.settings.clickhouse_url, ctx.settings.data_dir, ctx.stats.add, ctx.retry,
        max_delay_s=LIVE_MAX_DELAY_S if ctx.live else None, recovery=ctx.recovery,
        local=ctx.clickhouse_here,
    )  # fmt: skip
    keyed = op.map("key_surveillance_alerts", alerts, alerts_partition_key)
    op.output("write_surveillance_alerts_clickhouse", keyed, sink)
    return alerts
