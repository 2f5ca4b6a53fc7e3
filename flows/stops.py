"""Flows layer: the stop engine. Stop orders + every price -> triggers, children, state, alerts.

Steps (ids are recovery keys; renaming one orphans its state):
    stop_book          stateful per shard (the market-data shards of `flows.quotes`, so a
                       symbol's prices and its orders meet in one place, in stream order):
                       an L1 `SymbolBook` per symbol for the reference prices and one
                       `domain.stops.StopBook`; emits `StopEffects` per batch
    write_stops        `StopOutputSink`, one partition: `stop_orders` rows first (and the
                       traders' TRIGGERED/HELD `order` frames on `stream:orders`), then the
                       children to `--orders-out FILE` (35=D built by simplefix)
    stop_alerts        STOP_TRIGGERED alerts, returned to the pipeline (`write_alerts`)
    write_stop_audit   `PipelinedAuditSink`, as the audit flow: ORDER_TRIGGERED with the quote then
    write_stop_letters `DeadLetterSink`: rejected stop requests with their reason

What the book sees, per shard and in stream order: every trade price of an incremental
(35=X, 269=2, new) one by one (so a gap fires at the first price past the stop; the audit
snapshot is the L1 state after the message), then the best bid and ask after the message;
full refreshes (35=W) give bid, ask and last after applying. Orders: 35=D with OrdType (40)
3, 4 or P; 35=F and 35=G whose OrigClOrdID (41) is a stop in the book (other orders belong to
the ledger alone); fills (35=8, ExecType F) of orders the book links (OCO legs, bracket entries).

Stale books (issue 21, docs/book-integrity.md): each shard keeps a `BookIntegrity` fed by the
W/X/BookDamaged events it sees. While a symbol's book is stale (an RptSeq gap, a lost update,
a crossed or locked top built by increments) its prices are held as during a halt: no stop
triggers, no trailing stop ratchets, no OCO or bracket leg fires. A trade print (269=2) in an
increment of a stale book is held too: the print itself may be real, but with updates lost we
cannot tell whether trades were lost before it or its order is right, and a stop fired on it is
a real order at a possibly wrong moment. The first sound 35=W is evaluated at once (bid, ask
and the snapshot's own last trade, if it carries one; else the last sound trade price stands),
and fires what it crosses, at its prices. Orders, cancels, replaces and fills are taken as
usual; a new stop's wrong-side check uses the last sound prices.

Exactly once: the book is Bytewax state (snapshotted), every sink is idempotent by ClOrdID
(rows, children, alert ids, audit event ids), and the state row is written before its child,
so a crash anywhere and a replay from the last snapshot neither lose a trigger nor send a child
twice.
"""

from __future__ import annotations

import pickle
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace
from datetime import time
from decimal import Decimal
from functools import partial

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.fix.encode import OutboundCancel, OutboundOrder, encode_outbound
from domain.alerts import CIRCUIT_BREAKER, STOP_TRIGGERED, Alert, make_alert
from domain.audit import AuditRecord, order_triggered
from domain.book_integrity import BookIntegrity
from domain.circuit_breaker import (
    NS_PER_DAY,
    BreakerPolicy,
    CircuitBreaker,
    CircuitBreakerStatus,
    evaluate_breaker,
)
from domain.dead_letters import DeadLetter
from domain.events import (
    MD_DELETE,
    MD_NEW,
    MD_TRADE,
    BookDamaged,
    ExecutionReport,
    MarketDataIncrement,
    MarketDataSnapshot,
    OrderList,
    OrderRequest,
    SecurityStatus,
    TradingSessionStatus,
)
from domain.market_status import MarketStatusBook, MarketStatusChanged
from domain.quotes import SymbolBook, apply_increment_top, apply_snapshot
from domain.sharding import symbol_shard
from domain.stops import (
    CHILD_SUFFIX,
    Accepted,
    Activated,
    Cancelled,
    ChildOrder,
    Expired,
    Outcome,
    Rejected,
    Replaced,
    StopBook,
    StopOrder,
    Triggered,
    order_from_request,
)
from domain.time_of_day import time_of_day_ns
from flows.context import FlowContext
from flows.quotes import QUOTE_SHARDS, ShardBatch, make_sharder
from sinks.clickhouse import (
    LIVE_MAX_DELAY_S,
    PipelinedAuditSink,
    audit_partition_key,
    is_embedded,
    open_store,
)
from sinks.market_status import MarketStatusSink
from sinks.postgres import DeadLetterSink
from sinks.stops import (
    ACTIVE,
    CANCELLED,
    EXPIRED,
    PARTITION,
    TRIGGERED,
    StopOutputSink,
    StopRow,
    StopWrites,
)

STOP_ORD_TYPES = frozenset(("3", "4", "P"))
STEP_ID = "stop_book"


@dataclass
class StopEffects:
    """What one batch of a shard decided."""

    rows: list[StopRow] = field(default_factory=list)
    children: list[tuple[str, OutboundOrder | OutboundCancel]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    statuses: list[MarketStatusChanged] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows or self.alerts or self.dead_letters or self.children or self.statuses)


def _row(order: StopOrder, status: str, stop_px: Decimal | None) -> StopRow:
    return StopRow(
        cl_ord_id=order.cl_ord_id,
        account=order.account or "",
        symbol=order.symbol,
        side=order.side,
        ord_type=order.ord_type or "",
        stop_px=stop_px if stop_px is not None else (order.stop_px or Decimal(0)),
        limit_px=order.price,
        quantity=order.order_qty or Decimal(0),
        peg_offset=order.peg_offset_value,
        status=status,
    )


@dataclass
class StopShardState:
    """One shard's books and stop book, and the rows of the stops it holds (for their exits)."""

    stops: StopBook
    books: dict[str, SymbolBook] = field(default_factory=dict)
    rows: dict[str, StopRow] = field(default_factory=dict)
    # limit/market legs sent to the venue and still working there: a cancel of one in the
    # book (its OCO sibling fired or filled) must reach the venue too
    sent_legs: dict[str, OutboundOrder] = field(default_factory=dict)
    # the venue's statuses (35=f of the shard's symbols, every 35=h): prices of a symbol that
    # does not trade are not evaluated (issue 19)
    status: MarketStatusBook = field(default_factory=MarketStatusBook)
    # the soundness of the shard's books (issue 21): a stale book's prices are not evaluated
    integrity: BookIntegrity = field(default_factory=BookIntegrity)
    # the last sound trade price of each stale symbol, the book's `ltp` again when it turns
    # sound (a trade print of the stale spell is not a last price to evaluate)
    held: dict[str, float | None] = field(default_factory=dict)


STATUS_TYPES = frozenset((SecurityStatus, TradingSessionStatus))


class StatusEvents(list):
    """A shard's events with the market-status events to see among them: `statuses` holds
    `(position, event, primary, seq)`, the event going before `self[position]`; `primary` is
    set on one shard only for a market-wide event, the one that publishes its change; `seq`
    the sequence number it has among the events (a breaker's status: its trade's).

    A list of the events alone to the steps that do not look for statuses (`getattr(events,
    "statuses", None)`): quotes take the bands, margin the halts, the rest never see them."""

    statuses: list[tuple[int, object, bool, int]]


def _with_statuses(events: list, statuses: list[tuple[int, object, bool, int]]) -> list:
    """The events and the statuses among them, in stream order; `(event, primary)` pairs for
    the statuses."""
    out: list = []
    start = 0
    for position, event, primary, _ in statuses:
        out += events[start:position]
        out.append((event, primary))
        start = position
    out += events[start:]
    return out


class StopShardLogic(op.StatefulBatchLogic[ShardBatch, StopEffects, bytes]):
    """The stop engine of one shard as Bytewax state."""

    def __init__(self, resume: bytes | None, ctx: FlowContext) -> None:
        self.recovery = ctx.recovery
        if resume is not None:
            self.state: StopShardState = pickle.loads(resume)
            if not hasattr(self.state, "status"):  # a snapshot from before issue 19
                self.state.status = MarketStatusBook()
            if not hasattr(self.state, "integrity"):  # a snapshot from before issue 21
                self.state.integrity = BookIntegrity()
                self.state.held = {}
        else:
            settings = ctx.settings
            close = time.fromisoformat(settings.session_close_utc)
            book = StopBook(default_reference=settings.stop_reference, session_close=close)
            self.state = StopShardState(book)
        self.stats = ctx.stats
        # the shard that publishes market-wide changes (`with_market_status`'s `primary`)
        self.primary_key = ctx.placement.symbol[0] if ctx.placement is not None else "0"

    # -- inputs -----------------------------------------------------------------------------

    def on_batch(self, values: list[ShardBatch]) -> tuple[list[StopEffects], bool]:
        effects = StopEffects()
        state = self.state
        stops, books, status = state.stops, state.books, state.status
        integrity, held = state.integrity, state.held
        is_stale = integrity.stale
        primary = values[0].shard == self.primary_key if values else False
        for events, *_ in values:
            statuses = getattr(events, "statuses", None)
            if statuses:
                events = _with_statuses(events, statuses)  # noqa: PLW2901
            for event in events:
                kind = type(event)
                if kind is MarketDataIncrement:
                    symbol = event.symbol
                    book = books.get(symbol)
                    if book is None:
                        book = books[symbol] = SymbolBook(symbol)
                    ts = event.ts_event
                    if event.rpt_seq is not None and not integrity.admit_increment(
                        symbol, ts, event.rpt_seq
                    ):
                        continue  # a duplicate: nothing new in it
                    # The book first, so a trigger's audit snapshot includes its trade; then
                    # every trade price in order, so a gap fires at the first price past; then
                    # the top of the book.
                    ltp = book.ltp
                    bid, ask = apply_increment_top(book, event)
                    if bid is not None and ask is not None and bid >= ask:
                        integrity.on_book(symbol, ts, bid, ask)
                    if is_stale(symbol) is not None:
                        # held: no trigger, no ratchet, not even on a trade print (see the
                        # module docstring); evaluated again at the next sound snapshot
                        if symbol not in held:
                            held[symbol] = ltp  # the last sound trade price
                        continue
                    if status.any_halt and not status.trading(symbol):
                        if not self._expired(ts, symbol, primary, effects):
                            continue  # held: evaluated again at the first price after the halt
                    for entry in event.entries:
                        if entry.entry_type == MD_TRADE and entry.action == MD_NEW and entry.price:
                            self._apply(stops.on_quote(symbol, ts, last=entry.price), effects)
                    outcomes = stops.on_quote(symbol, ts, bid=bid, ask=ask)
                    if outcomes:
                        self._apply(outcomes, effects)
                elif kind is MarketDataSnapshot:
                    symbol = event.symbol
                    book = books.get(symbol)
                    if book is None:
                        book = books[symbol] = SymbolBook(symbol)
                    ltp = book.ltp
                    apply_snapshot(book, event)
                    integrity.on_snapshot(symbol, event.ts_event, event.rpt_seq, event.crossed)
                    if is_stale(symbol) is not None:  # the snapshot is crossed itself
                        if symbol not in held:
                            held[symbol] = ltp
                        continue
                    if held and symbol in held:
                        # sound again: a trade price of the stale spell is no last price;
                        # the snapshot's own trade entry, if any, is
                        sound_ltp = held.pop(symbol)
                        if not _has_trade(event):
                            book.ltp = sound_ltp
                    if status.any_halt and not status.trading(symbol):
                        if not self._expired(event.ts_event, symbol, primary, effects):
                            continue
                    self._quote(book, event.ts_event, effects, last=True)
                elif kind is BookDamaged:
                    symbol = event.symbol
                    if is_stale(symbol) is None:
                        book = books.get(symbol)
                        held[symbol] = book.ltp if book is not None else None
                    integrity.on_damaged(symbol, event.ts_event, event.reason, event.detail)
                elif kind is tuple:  # a market status (`StatusEvents`) and whether to publish
                    self._status(*event, effects)
                elif kind is OrderRequest:
                    self._request(event, effects)
                elif kind is OrderList:
                    self._order_list(event, effects)
                elif kind is ExecutionReport:
                    self._fill(event, effects)
        return ([effects] if effects else []), self.RETAIN

    def _status(
        self, event: SecurityStatus | TradingSessionStatus, primary: bool, effects: StopEffects
    ) -> None:
        change = self.state.status.apply(event)
        if primary and type(event) is CircuitBreakerStatus and event.until_ns is not None:
            effects.alerts.append(_breaker_alert(event, change is not None))
        if change is None:
            return
        self.stats.add("market_status_changes", 1)
        if primary:
            effects.statuses.append(change)

    def _expired(self, ts: int, symbol: str, primary: bool, effects: StopEffects) -> bool:
        """Whether the breaker's halt ended by `ts` (its reopening then applied here): only
        when the sharder's reopening never came (a run resumed from a snapshot)."""
        status = self.state.status
        if status.market.until_ns is None or ts < status.market.until_ns:
            return False
        change = status.expire(ts)
        if change is not None and primary:
            effects.statuses.append(change)
        return status.trading(symbol)

    def _quote(self, book: SymbolBook, ts: int, effects: StopEffects, last: bool = False) -> None:
        bid, ask = book.best_bid(), book.best_ask()
        outcomes = self.state.stops.on_quote(
            book.symbol,
            ts,
            bid=bid[0] if bid else None,
            ask=ask[0] if ask else None,
            last=book.ltp if last else None,
        )
        if outcomes:
            self._apply(outcomes, effects)

    def _request(self, request: OrderRequest, effects: StopEffects) -> None:
        stops = self.state.stops
        if request.msg_type == "D":
            if request.ord_type not in STOP_ORD_TYPES:
                return
        elif request.orig_cl_ord_id is None or request.orig_cl_ord_id not in stops:
            return  # a cancel or replace of an order the ledger alone knows
        self._apply(stops.apply_request(request), effects, request)

    def _order_list(self, order_list: OrderList, effects: StopEffects) -> None:
        """OCO (1385=1) and OTO/bracket (1385=2) lists go to the book whole; the stop orders
        of a plain list are taken one by one, like 35=D."""
        if order_list.contingency_type is None:
            for request in order_list.orders:
                self._request(request, effects)
            return
        orders: list[StopOrder] = []
        for request in order_list.orders:
            order = _list_leg(request)
            if type(order) is Rejected:
                reason = f"{order.reason} (NewOrderList {order_list.list_id})"
                self._apply([Rejected(order.cl_ord_id, reason, order.ts_ns)], effects, request)
                return
            orders.append(order)
        outcomes = self.state.stops.submit_list(
            orders, int(order_list.contingency_type), order_list.list_id, order_list.ts_event
        )
        self._apply(outcomes, effects, order_list.orders[0])

    def _fill(self, report: ExecutionReport, effects: StopEffects) -> None:
        cl_ord_id = report.cl_ord_id
        if report.exec_type != "F" or cl_ord_id is None or report.order_qty is None:
            return
        stops = self.state.stops
        if report.cum_qty >= report.order_qty:
            self.state.sent_legs.pop(cl_ord_id, None)  # done at the venue: nothing to cancel
        if cl_ord_id in stops or cl_ord_id.endswith(CHILD_SUFFIX):
            outcomes = stops.on_fill(cl_ord_id, report.cum_qty, report.order_qty, report.ts_event)
            self._apply(outcomes, effects)

    # -- outcomes -----------------------------------------------------------------------------

    def _apply(
        self, outcomes: list[Outcome], effects: StopEffects, request: OrderRequest | None = None
    ) -> None:
        state = self.state
        stops, rows = state.stops, state.rows
        count = self.stats.add
        for outcome in outcomes:
            kind = type(outcome)
            if kind is Accepted:
                order = stops.get(outcome.cl_ord_id)
                if order is not None and order.ord_type in STOP_ORD_TYPES:
                    row = _row(order, ACTIVE, stops.stop_px(order.cl_ord_id))
                    rows[order.cl_ord_id] = row
                    effects.rows.append(row)
                count("stops_accepted", 1)
            elif kind is Triggered:
                self._triggered(outcome, effects)
            elif kind is Cancelled or kind is Expired:
                leg = state.sent_legs.pop(outcome.cl_ord_id, None)
                if leg is not None:
                    cancel = OutboundCancel(
                        f"{leg.cl_ord_id}.C", leg.cl_ord_id, leg.account, leg.symbol, leg.side,
                        leg.quantity, outcome.ts_ns,
                    )  # fmt: skip
                    effects.children.append((cancel.cl_ord_id, cancel))
                row = rows.pop(outcome.cl_ord_id, None)
                if row is not None:
                    status = CANCELLED if kind is Cancelled else EXPIRED
                    effects.rows.append(replace(row, status=status))
                count("stops_cancelled" if kind is Cancelled else "stops_expired", 1)
            elif kind is Replaced:
                old = rows.pop(outcome.orig_cl_ord_id, None)
                if old is not None:
                    effects.rows.append(replace(old, status=CANCELLED))
                order = stops.get(outcome.cl_ord_id)
                if order is not None:
                    row = _row(order, ACTIVE, stops.stop_px(order.cl_ord_id))
                    rows[order.cl_ord_id] = row
                    effects.rows.append(row)
            elif kind is Activated:
                child = outcome.child
                if child is not None:
                    order = _outbound(child, outcome.ts_ns)
                    state.sent_legs[child.cl_ord_id] = order
                    effects.children.append((child.cl_ord_id, order))
                else:
                    order = stops.get(outcome.cl_ord_id)
                    if order is not None and order.ord_type in STOP_ORD_TYPES:
                        row = _row(order, ACTIVE, stops.stop_px(order.cl_ord_id))
                        rows[order.cl_ord_id] = row
                        effects.rows.append(row)
            elif kind is Rejected:
                count("stops_rejected", 1)
                if request is not None:
                    count("dead_letters", 1)
                    effects.dead_letters.append(
                        DeadLetter(
                            source=request.source,
                            reason=f"stop order {outcome.cl_ord_id} rejected: {outcome.reason}",
                            raw=bytes(request.raw),
                            step_id=STEP_ID,
                            error="StopRejected",
                            tag=None,
                            ts_init=outcome.ts_ns,
                        )
                    )

    def _triggered(self, t: Triggered, effects: StopEffects) -> None:
        order, child = t.order, t.child
        row = self.state.rows.pop(order.cl_ord_id, None) or _row(order, ACTIVE, t.stop_px)
        effects.rows.append(
            replace(
                row, status=TRIGGERED, stop_px=t.stop_px, trigger_px=t.trigger_px,
                triggered_ns=t.ts_ns, child_cl_ord_id=child.cl_ord_id,
            )
        )  # fmt: skip
        effects.children.append((child.cl_ord_id, _outbound(child, t.ts_ns)))
        evidence = {
            "cl_ord_id": order.cl_ord_id,
            "ord_type": order.ord_type,
            "side": order.side,
            "quantity": order.order_qty,
            "stop_px": t.stop_px,
            "trigger_px": t.trigger_px,
            "reference": t.reference,
            "child_cl_ord_id": child.cl_ord_id,
            "child_ord_type": child.ord_type,
            "child_price": child.price,
        }
        effects.alerts.append(
            make_alert(
                STOP_TRIGGERED, f"stop:{order.cl_ord_id}", "INFO", t.ts_ns,
                account=order.account, symbol=order.symbol, details=evidence,
            )
        )  # fmt: skip
        book = self.state.books.get(order.symbol)
        effects.audit.append(
            order_triggered(
                cl_ord_id=order.cl_ord_id, account=order.account or "", symbol=order.symbol,
                side=order.side, ts_event=t.ts_ns,
                snapshot=book.to_quote() if book is not None and book.ts_event else None,
                quantity=order.order_qty, price=child.price, ord_type=child.ord_type,
                details=evidence, source="stop_engine",
            )
        )  # fmt: skip
        self.stats.add("stops_triggered", 1)

    def snapshot(self) -> bytes | None:
        if not self.recovery:
            return None  # Bytewax asks at every epoch end; without recovery nobody reads it
        return pickle.dumps(self.state, protocol=pickle.HIGHEST_PROTOCOL)


def _breaker_alert(trip: CircuitBreakerStatus, halted: bool) -> Alert:
    """CIRCUIT_BREAKER: one per level and UTC day (the id), whether or not the venue had the
    market halted already (`halted`: the trip halted it)."""
    day = trip.ts_event // NS_PER_DAY
    evidence = {
        "level": trip.level,
        "decline_pct": round(trip.decline * 100, 4) if trip.decline is not None else None,
        "index": trip.index_value,
        "previous_close": trip.reference,
        "until_ns": trip.until_ns,
        "halted_market": halted,
        "reason": trip.reason,
    }
    return make_alert(
        CIRCUIT_BREAKER, f"breaker:{day}:{trip.level}", "CRITICAL", trip.ts_event,
        details=evidence,
    )  # fmt: skip


def _has_trade(event: MarketDataSnapshot) -> bool:
    """Whether a full refresh carries a trade price (its last trade) of its own."""
    for entry in event.entries:
        if entry.entry_type == MD_TRADE and entry.price is not None and entry.action != MD_DELETE:
            return True
    return False


def _list_leg(request: OrderRequest) -> StopOrder | Rejected:
    """A leg of a contingent list: a stop order, or a limit/market order the book tracks."""
    if request.ord_type in STOP_ORD_TYPES:
        return order_from_request(request)
    return StopOrder(
        cl_ord_id=request.cl_ord_id,
        symbol=request.symbol,
        side=request.side,
        order_qty=request.order_qty,
        ord_type=request.ord_type,
        price=request.price,
        time_in_force=request.time_in_force or "0",
        expire_time=request.expire_time,
        account=request.account,
    )


def _outbound(child: ChildOrder, ts_ns: int) -> OutboundOrder:
    return OutboundOrder(
        cl_ord_id=child.cl_ord_id,
        account=child.account,
        symbol=child.symbol,
        side=child.side,
        quantity=child.order_qty,
        ord_type=child.ord_type,
        price=child.price,
        ts_event=ts_ns,
    )


def encode_child_order(message: OutboundOrder | OutboundCancel, seq: int) -> bytes:
    """The FIX line of a child order (or its cancel) that the stop sink writes and sends.

    `attach` reads this module attribute when the flow is built, so the stops benchmark may
    wrap it to time trigger latency (a quote's chunk decoded -> its child order encoded).
    """
    return encode_outbound(message, seq)


def shard(decoded: Stream, ctx: FlowContext, with_orders: bool) -> Stream:
    """`flows.quotes.shard` (same step id) with the market-status events among each shard's
    events for the stop engine (`StatusEvents`): a 35=f goes to its symbol's shard, a 35=h to
    every shard (the first shard's copy publishes the change), each in stream order with the
    market data and orders of the batch (placed by sequence number)."""
    keys = ctx.placement.symbol if ctx.placement is not None else None
    names = list(keys) if keys else [str(n) for n in range(QUOTE_SHARDS)]
    sharder = make_sharder(QUOTE_SHARDS, ctx.stats, with_orders, keys)
    policy = breaker_policy(ctx)
    breaker = CircuitBreaker(policy, opening=ctx.breaker_opening) if policy.enabled else None
    return op.flat_map("shard_market_data", decoded, with_market_status(sharder, names, breaker))


def breaker_policy(ctx: FlowContext) -> BreakerPolicy:
    """The index circuit breaker of the settings (`[market_status]`)."""
    config = ctx.settings.market_status
    return BreakerPolicy(
        index_symbol=config.index_symbol,
        basket=tuple(sorted(config.basket.items())),
        session_close_ns=time_of_day_ns(ctx.settings.session_close_utc),
    )


def with_market_status(sharder, names: list[str], breaker: CircuitBreaker | None = None):
    """Wrap a `make_sharder` function to route market-status events (see `shard`) and, with a
    `breaker`, the index circuit breaker's statuses: computed here, where the batches pass in
    stream order before they are split by shard, and sent to every shard like a 35=h (a trip
    after the trade that tripped it, the reopening before the first event at or after the
    halt's end)."""
    shard_of: dict[str, str] = {}
    primary = names[0]
    # the workers of a process share this function (and the breaker): one batch at a time
    lock = threading.Lock()

    def shard_events(batch) -> list[tuple[str, ShardBatch]]:
        out = sharder(batch)
        tripped = ()
        if breaker is not None:
            with lock:
                tripped = evaluate_breaker(breaker, batch.events, batch.seqs)
        if not tripped and STATUS_TYPES.isdisjoint(map(type, batch.events)):
            return out  # the usual batch: one pass in C
        by_shard = {key: index for index, (key, _) in enumerate(out)}
        found = [(seq, 0, event) for event, seq in zip(batch.events, batch.seqs, strict=True)
                 if type(event) in STATUS_TYPES]  # fmt: skip
        if tripped:
            found = sorted(found + list(tripped), key=_stream_order)
        for seq, side, event in found:
            kind = type(event)
            if kind is SecurityStatus:
                symbol = event.symbol
                target = shard_of.get(symbol)
                if target is None:
                    target = shard_of[symbol] = names[symbol_shard(symbol) % QUOTE_SHARDS]
                targets = (target,)
            else:  # 35=h or the breaker: the whole market
                targets = names
            place = bisect_left if side < 0 else bisect_right
            for key in targets:
                index = by_shard.get(key)
                if index is None:
                    by_shard[key] = index = len(out)
                    out.append((key, ShardBatch(StatusEvents(), False, [], batch.progress, key)))
                part = out[index][1]
                events = part.events
                if type(events) is not StatusEvents:
                    events = StatusEvents(events)
                    events.statuses = []
                    part = part._replace(events=events)
                    out[index] = (key, part)
                elif not hasattr(events, "statuses"):
                    events.statuses = []
                events.statuses.append(
                    (place(part.seqs, seq), event, kind is SecurityStatus or key == primary, seq)
                )
        return out

    return shard_events


def _stream_order(item: tuple[int, int, object]) -> tuple[int, int]:
    return item[0], item[1]


def attach(shards: Stream, ctx: FlowContext, with_audit: bool) -> Stream[list[Alert]]:
    """Add the stop engine to the market-data shards (`flows.quotes.shard`, with orders);
    return its alerts, for the pipeline's one alert sink."""
    effects = op.stateful_batch(STEP_ID, shards, lambda resume: StopShardLogic(resume, ctx))
    effects = op.key_rm("unkey_stop_effects", effects)
    writes = op.filter_map(
        "stop_writes",
        effects,
        lambda e: (
            (PARTITION, StopWrites(tuple(e.rows), tuple(e.children)))
            if (e.rows or e.children)
            else None
        ),
    )
    url, data_dir = ctx.settings.clickhouse_url, ctx.settings.data_dir
    # ORDER_HELD rows from the stop sink's partition: wherever it runs, it may open a server;
    # embedded chdb only in a single-process run (one process per directory)
    held_audit = (
        partial(open_store, url, data_dir)
        if with_audit and (ctx.processes == 1 or not is_embedded(url))
        else None
    )
    op.output(
        "write_stops",
        writes,
        StopOutputSink(
            ctx.postgres_dsn,
            ctx.orders_out,
            encode_child_order,
            ctx.stats.add,
            ctx.retry,
            ctx.order_writers,
            recovery=ctx.recovery,
            audit_store=held_audit,
            redis_url=ctx.redis_url,
        ),
    )
    statuses = op.filter_map(
        "market_statuses", effects, lambda e: ("status", e.statuses) if e.statuses else None
    )
    status_sink = MarketStatusSink(
        ctx.postgres_dsn, ctx.redis_url, ctx.retry, ctx.settings.redis_stream_maxlen
    )
    op.output("write_market_status", statuses, status_sink)
    alerts = op.filter_map("stop_alerts", effects, lambda e: e.alerts or None)
    letters = op.flat_map("stop_letters", effects, lambda e: e.dead_letters)
    op.output("write_stop_letters", letters, DeadLetterSink(ctx.postgres_dsn, ctx.retry))
    if with_audit:
        # Off the worker thread: an insert per batch with a trigger, waited for, cost the
        # all-flows replay seconds (chdb's fixed cost per insert).
        audit = op.filter_map(
            "stop_audit", effects, lambda e: audit_partition_key(e.audit) if e.audit else None
        )
        delay = LIVE_MAX_DELAY_S if ctx.live else None
        sink = PipelinedAuditSink(
            ctx.settings.clickhouse_url, ctx.settings.data_dir, ctx.stats.add, ctx.retry,
            max_delay_s=delay, recovery=ctx.recovery, local=ctx.clickhouse_here,
        )  # fmt: skip
        op.output("write_stop_audit", audit, sink)
    return alerts
