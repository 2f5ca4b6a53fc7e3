"""Domain layer, stop engine: the book, `StopBook`, and `evaluate_stops` (package docstring)."""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import replace
from datetime import time
from decimal import Decimal

from domain.errors import ConfigError
from domain.events import OrderRequest
from domain.quotes import Quote
from domain.stops.bands import (
    _BUY_AT,
    _BUYS,
    _LIM_WIDTH,
    _REF_BASE,
    _SELL_AT,
    _SELLS,
    _Band,
    _down,
    _evaluate,
    _stirs,
    _Symbol,
    _up,
)
from domain.stops.heaps import _COMPACT_SLACK, _key, _KeyHeap
from domain.stops.intake import check_stop_order, order_from_request
from domain.stops.ladders import _TrailLadder
from domain.stops.orders import (
    _LEG_TYPES,
    _PENDING,
    _WORKING,
    CHILD_SUFFIX,
    CONTINGENCY_OCO,
    CONTINGENCY_OTO,
    NS_PER_DAY,
    NS_PER_MS,
    ORD_TYPE_LIMIT,
    ORD_TYPE_MARKET,
    ORD_TYPE_PEGGED,
    ORD_TYPE_STOP,
    ORD_TYPE_STOP_LIMIT,
    PEG_OFFSET_BPS,
    REFERENCES,
    SIDE_BUY,
    TIF_GTC,
    TIF_GTD,
    Accepted,
    Activated,
    Cancelled,
    ChildOrder,
    Expired,
    Outcome,
    Rejected,
    Replaced,
    StopOrder,
    Triggered,
    _Record,
    _release,
)
from domain.time_of_day import time_of_day_ns


class StopBook:
    """Resting stop and contingent orders of a set of symbols, and the rules that fire them.

    Every method takes the event time (int UTC ns), first expires what is due by then, and returns
    the outcomes in order. Nothing raises on bad input: requests are `Rejected` with a reason.

    >>> book = StopBook()
    >>> _ = book.on_quote("AAPL", 1, last=100.0)
    >>> book.submit(StopOrder("s1", "AAPL", "2", Decimal(10), "3", stop_px=Decimal("99.5")), 2)
    [Accepted(cl_ord_id='s1', ts_ns=2)]
    >>> [type(o).__name__ for o in book.on_quote("AAPL", 3, last=99.2)]
    ['Triggered']
    """

    __slots__ = ("default_reference", "symbol_references", "session_close", "gtc_days",
                 "dedup_window_ns", "_close_ns", "_seq", "_orders", "_triggered", "_aliases",
                 "_symbols", "_expiries", "_lists", "_done", "_done_order")  # fmt: skip

    def __init__(
        self,
        default_reference: str = "last",
        session_close: time = time(21, 0),
        gtc_days: int = 90,
        symbol_references: dict[str, str] | None = None,
        dedup_window_ns: int = NS_PER_DAY,
    ) -> None:
        """Create an empty book.

        Args:
            default_reference: reference price of orders and symbols with no own setting.
            session_close: UTC time at which Day orders expire.
            gtc_days: GTC orders expire this many days after acceptance.
            symbol_references: per-symbol reference price, overriding the default.
            dedup_window_ns: how long a ClOrdID that left the book stays a duplicate.

        Raises:
            ConfigError: a reference is not one of last, bid, ask, mid, or gtc_days < 1.
        """
        symbol_references = dict(symbol_references or {})
        for ref in (default_reference, *symbol_references.values()):
            if ref not in REFERENCES:
                msg = f"reference {ref} is not one of last, bid, ask, mid"
                raise ConfigError(msg)
        if gtc_days < 1:
            msg = f"gtc_days must be at least 1, was {gtc_days}"
            raise ConfigError(msg)
        self.default_reference = default_reference
        self.symbol_references = symbol_references
        self.session_close = session_close
        self.gtc_days = gtc_days
        self.dedup_window_ns = dedup_window_ns
        self._close_ns = time_of_day_ns(session_close)
        self._seq = 0
        self._orders: dict[str, _Record] = {}  # pending and working
        self._triggered: dict[str, _Record] = {}  # triggered OTO entries awaiting their fill
        self._aliases: dict[str, str] = {}  # "<id>.T" -> id, for those entries
        self._symbols: dict[str, _Symbol] = {}
        self._expiries: list[tuple[int, int, str]] = []  # (expire_ns, seq, cl_ord_id)
        self._lists: dict[str, list[str]] = {}  # OCO list id -> legs
        self._done: dict[str, int] = {}  # cl_ord_id -> when it left
        self._done_order: deque[tuple[int, str]] = deque()

    def __getstate__(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        for sym in self._symbols.values():
            if not hasattr(sym, "lim"):
                sym.add_bands()

    # -- queries ------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Return the number of resting orders (held OTO children included)."""
        return len(self._orders)

    def __contains__(self, cl_ord_id: object) -> bool:
        return cl_ord_id in self._orders

    def get(self, cl_ord_id: str) -> StopOrder | None:
        """Return the resting order with this ClOrdID, or None."""
        rec = self._orders.get(cl_ord_id)
        return None if rec is None else rec.order

    def stop_px(self, cl_ord_id: str) -> Decimal | None:
        """Return the current stop of a resting order (a trailing stop's ratcheted one), or None.

        None also for a trailing stop that waits for activation or a first price, a held OTO
        child, and a limit or market leg.
        """
        rec = self._orders.get(cl_ord_id)
        if rec is None or rec.state != _WORKING:
            return None
        order = rec.order
        if order.ord_type != ORD_TYPE_PEGGED:
            return order.stop_px
        ladder = self._ladder(rec)
        mark = ladder.mark(cl_ord_id)
        return None if mark is None else ladder.stop_px(mark, order.peg_offset_value)

    def snapshot(self) -> tuple[tuple, ...]:
        """Return the resting orders as comparable tuples, by acceptance sequence (for tests)."""
        return tuple(
            (rec.seq, rec.order, rec.state, self.stop_px(cl_ord_id), rec.expire_ns, rec.oco,
             rec.parent, tuple(rec.children))
            for cl_ord_id, rec in sorted(self._orders.items(), key=lambda kv: kv[1].seq)
        )  # fmt: skip

    def reference_px(self, symbol: str, reference: str) -> Decimal | None:
        """Return the last known value of a symbol's reference price, or None."""
        sym = self._symbols.get(symbol)
        return None if sym is None else sym.current(reference)

    # -- requests -----------------------------------------------------------------------------

    def apply_request(self, request: OrderRequest) -> list[Outcome]:
        """Apply a 35=D (submit), 35=F (cancel) or 35=G (replace) at its `ts_event`."""
        ts = request.ts_event
        msg_type = request.msg_type
        if msg_type == "D":
            order = order_from_request(request)
            if type(order) is Rejected:
                return [*self.expire_due(ts), order]
            return self.submit(order, ts)
        if msg_type not in ("F", "G"):
            out = self.expire_due(ts)
            reason = f"MsgType(35) {msg_type} is not an order request"
            out.append(Rejected(request.cl_ord_id, reason, ts))
            return out
        orig = request.orig_cl_ord_id
        if orig is None:
            out = self.expire_due(ts)
            out.append(Rejected(request.cl_ord_id, "OrigClOrdID(41) missing", ts))
            return out
        if msg_type == "F":
            return self.cancel(orig, ts, cl_ord_id=request.cl_ord_id)
        return self.replace(
            orig,
            request.cl_ord_id,
            ts,
            side=request.side,
            symbol=request.symbol,
            ord_type=request.ord_type,
            stop_px=request.stop_px,
            price=request.price,
            order_qty=request.order_qty,
            peg_offset_value=request.peg_offset_value,
        )

    def submit(self, order: StopOrder, ts_ns: int) -> list[Outcome]:
        """Accept a stop, stop-limit or trailing stop, or reject it with a reason."""
        out = self.expire_due(ts_ns)
        reason = check_stop_order(order) or self._check_new(order, ts_ns)
        rec = None
        if reason is None:
            rec = self._record(order, ts_ns)
            reason = self._through(rec)
        if reason is not None:
            out.append(Rejected(order.cl_ord_id, reason, ts_ns))
            return out
        self._add(rec)
        self._rest(rec)
        out.append(Accepted(order.cl_ord_id, ts_ns))
        return out

    def submit_list(
        self, orders: list[StopOrder], contingency_type: int, list_id: str, ts_ns: int
    ) -> list[Outcome]:
        """Accept a contingent list whole, or reject every order of it.

        Args:
            orders: OCO: the legs. OTO: the entry first, then its children (linked as an OCO
                when there are two or more: a bracket).
            contingency_type: ContingencyType (1385): 1 OCO, 2 OTO.
            list_id: ListID (66); names the OCO link in cancel reasons.
            ts_ns: event time.

        Returns:
            `Accepted` for every order, then `Activated` (with the child to send) for each
            limit or market order that goes to the venue now; or `Rejected` for every order.
        """
        out = self.expire_due(ts_ns)
        ids = [o.cl_ord_id for o in orders]
        reason = None
        if contingency_type not in (CONTINGENCY_OCO, CONTINGENCY_OTO):
            reason = f"ContingencyType(1385) {contingency_type} is not supported"
        elif len(orders) < 2:
            reason = "a contingent list needs at least two orders"
        elif len(set(ids)) != len(ids):
            reason = "ClOrdID(11) repeated within the list"
        elif list_id in self._lists:
            reason = f"ListID(66) {list_id} is in use"
        records: list[_Record] = []
        for order in orders:
            if reason is not None:
                break
            leg_reason = check_stop_order(order, in_list=True) or self._check_new(order, ts_ns)
            if leg_reason is None:
                rec = self._record(order, ts_ns)
                held = contingency_type == CONTINGENCY_OTO and records
                if not held:
                    leg_reason = self._through(rec)
                else:
                    rec.state = _PENDING
                records.append(rec)
            if leg_reason is not None:
                reason = f"{order.cl_ord_id}: {leg_reason}"
        if reason is not None:
            out.extend(Rejected(cl_ord_id, f"list {list_id} rejected: {reason}", ts_ns)
                       for cl_ord_id in ids)  # fmt: skip
            return out
        oco_legs = records if contingency_type == CONTINGENCY_OCO else records[1:]
        if len(oco_legs) >= 2:
            self._lists[list_id] = [r.order.cl_ord_id for r in oco_legs]
            for rec in oco_legs:
                rec.oco = list_id
        if contingency_type == CONTINGENCY_OTO:
            entry = records[0]
            entry.children = [r.order.cl_ord_id for r in records[1:]]
            for rec in records[1:]:
                rec.parent = entry.order.cl_ord_id
        for rec in records:
            self._add(rec)
            out.append(Accepted(rec.order.cl_ord_id, ts_ns))
        for rec in records:
            if rec.state == _WORKING:
                self._rest(rec)
                if rec.order.ord_type in _LEG_TYPES:
                    out.append(Activated(rec.order.cl_ord_id, ts_ns, _release(rec.order)))
        return out

    def submit_bracket(
        self,
        entry: StopOrder,
        take_profit: StopOrder,
        stop_loss: StopOrder,
        list_id: str,
        ts_ns: int,
    ) -> list[Outcome]:
        """Submit an entry whose take-profit and stop-loss (an OCO pair) wait for its full fill."""
        return self.submit_list([entry, take_profit, stop_loss], CONTINGENCY_OTO, list_id, ts_ns)

    def cancel(
        self,
        orig_cl_ord_id: str,
        ts_ns: int,
        cl_ord_id: str | None = None,
        reason: str = "cancel requested",
    ) -> list[Outcome]:
        """Cancel the order OrigClOrdID (41) (and the OTO children it holds).

        Args:
            orig_cl_ord_id: the order to cancel.
            ts_ns: event time.
            cl_ord_id: the cancel request's own ClOrdID (11), named by a `Rejected`.
            reason: the `Cancelled` reason.
        """
        out = self.expire_due(ts_ns)
        rec = self._orders.get(orig_cl_ord_id)
        if rec is None:
            out.append(Rejected(cl_ord_id or orig_cl_ord_id, self._missing(orig_cl_ord_id), ts_ns))
            return out
        self._cancel(rec, reason, ts_ns, out)
        return out

    def replace(
        self,
        orig_cl_ord_id: str,
        cl_ord_id: str,
        ts_ns: int,
        *,
        side: str | None = None,
        symbol: str | None = None,
        ord_type: str | None = None,
        stop_px: Decimal | None = None,
        price: Decimal | None = None,
        order_qty: Decimal | None = None,
        peg_offset_value: Decimal | None = None,
    ) -> list[Outcome]:
        """Replace OrigClOrdID (41) by ClOrdID (11) with new terms (None keeps a term).

        Side, Symbol and OrdType cannot change. A replaced trailing stop keeps its mark; the
        order keeps its expiry, contingency links and state, and takes a new acceptance sequence.
        """
        out = self.expire_due(ts_ns)
        rec = self._orders.get(orig_cl_ord_id)
        old = None if rec is None else rec.order
        reason = None
        if old is None:
            reason = self._missing(orig_cl_ord_id)
        elif side is not None and side != old.side:
            reason = f"replace changes Side(54) from {old.side} to {side}"
        elif symbol is not None and symbol != old.symbol:
            reason = f"replace changes Symbol(55) from {old.symbol} to {symbol}"
        elif ord_type is not None and ord_type != old.ord_type:
            reason = f"replace changes OrdType(40) from {old.ord_type} to {ord_type}"
        elif cl_ord_id != orig_cl_ord_id and self._is_taken(cl_ord_id, ts_ns):
            reason = f"duplicate ClOrdID {cl_ord_id}"
        new = None
        if reason is None:
            new = replace(
                old,
                cl_ord_id=cl_ord_id,
                stop_px=old.stop_px if stop_px is None else stop_px,
                price=old.price if price is None else price,
                order_qty=old.order_qty if order_qty is None else order_qty,
                peg_offset_value=(
                    old.peg_offset_value if peg_offset_value is None else peg_offset_value
                ),
            )
            reason = check_stop_order(new, in_list=old.ord_type in _LEG_TYPES)
            if reason is None and rec.state == _WORKING:
                reason = self._through(replace(rec, order=new))
        if reason is not None:
            out.append(Rejected(cl_ord_id, reason, ts_ns))
            return out
        self._seq += 1
        seq = self._seq
        if rec.state == _WORKING and old.ord_type == ORD_TYPE_PEGGED:
            self._ladder(rec).rekey(orig_cl_ord_id, cl_ord_id, seq, new.peg_offset_value)
            self._symbols[old.symbol].band(rec.reference).rebound(_BUYS if rec.buy else _SELLS)
        else:
            self._unrest(rec)
        del self._orders[orig_cl_ord_id]
        if cl_ord_id != orig_cl_ord_id:
            self._mark_done(orig_cl_ord_id, ts_ns)
        rec.order = new
        rec.seq = seq
        self._orders[cl_ord_id] = rec
        heapq.heappush(self._expiries, (rec.expire_ns, seq, cl_ord_id))
        if rec.state == _WORKING and old.ord_type != ORD_TYPE_PEGGED:
            self._rest(rec)
        self._rename_links(rec, orig_cl_ord_id, cl_ord_id)
        out.append(Replaced(cl_ord_id, orig_cl_ord_id, ts_ns))
        return out

    # -- market data, fills, time -------------------------------------------------------------

    def on_quote(
        self,
        symbol: str,
        ts_ns: int,
        *,
        bid: float | Decimal | None = None,
        ask: float | Decimal | None = None,
        last: float | Decimal | None = None,
    ) -> list[Outcome]:
        """Apply the fields a quote carries (None = not carried) and fire what they reach.

        Only references whose value changed are evaluated (module docstring). Floats are read
        as the decimal they print as.
        """
        expiries = self._expiries
        out = self.expire_due(ts_ns) if expiries and expiries[0][0] <= ts_ns else []
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = self._symbols[symbol] = _Symbol()
        # Most quotes fall inside every band: they change the stored values and the bands'
        # runs, nothing else (see `_Band`). The rest are looked at reference by reference.
        # Values are kept as quoted (no Decimal made for a quiet quote).
        stirred: list[tuple[str, _Band, float | Decimal, int]] = []
        lim = sym.lim
        if last is not None and last != sym.last:
            sym.last = last
            band = sym.band_last
            if band is not None:
                sides = _stirs(band, lim, 0, last)
                if sides:
                    stirred.append(("last", band, last, sides))
        moved = False
        if bid is not None and bid != sym.bid:
            sym.bid = bid
            moved = True
            band = sym.band_bid
            if band is not None:
                sides = _stirs(band, lim, _LIM_WIDTH, bid)
                if sides:
                    stirred.append(("bid", band, bid, sides))
        if ask is not None and ask != sym.ask:
            sym.ask = ask
            moved = True
            band = sym.band_ask
            if band is not None:
                sides = _stirs(band, lim, 2 * _LIM_WIDTH, ask)
                if sides:
                    stirred.append(("ask", band, ask, sides))
        if moved:
            band = sym.band_mid
            if band is not None and sym.bid is not None and sym.ask is not None:
                mid = sym.mid_of(sym.bid, sym.ask)
                if mid != sym.mid:
                    sym.mid = mid
                    sides = _stirs(band, lim, 3 * _LIM_WIDTH, mid)
                    if sides:
                        stirred.append(("mid", band, mid, sides))
        if not stirred:
            return out
        fired: list[tuple[int, str, Decimal | None, Decimal, str]] = []
        for ref, band, px, sides in stirred:
            _evaluate(band, ref, px, sides, fired)
        if fired:
            fired.sort()
            orders = self._orders
            for seq, cl_ord_id, stop, px, ref in fired:
                rec = orders.get(cl_ord_id)
                if rec is not None and rec.seq == seq:  # else an OCO sibling took it this step
                    self._trigger(rec, stop, px, ref, ts_ns, out)
        return out

    def on_l1(self, quote: Quote) -> list[Outcome]:
        """Apply a published L1 `Quote` (its `ts` is in ms); unchanged fields are ignored."""
        return self.on_quote(
            quote.symbol, quote.ts * NS_PER_MS, bid=quote.bid, ask=quote.ask, last=quote.ltp
        )

    def on_fill(
        self, cl_ord_id: str, cum_qty: Decimal, order_qty: Decimal, ts_ns: int
    ) -> list[Outcome]:
        """Take a fill notification: CumQty (14) of OrderQty (38) of ClOrdID (11).

        A fill of an OCO leg cancels the other legs; a full fill of an OTO entry (under its own
        ClOrdID, or `"<id>.T"` once triggered) activates its children. Other fills are ignored.
        """
        out = self.expire_due(ts_ns)
        entry_id = self._aliases.get(cl_ord_id, cl_ord_id)
        rec = self._orders.get(entry_id) or self._triggered.get(entry_id)
        if rec is None or rec.state == _PENDING or not cum_qty > 0:
            return out
        if rec.oco is not None:
            self._cancel_siblings(rec, f"OCO sibling {entry_id} filled", ts_ns, out)
        if cum_qty >= order_qty:
            children = rec.children
            rec.children = []
            self._leave(rec, ts_ns)
            self._activate(children, ts_ns, out)
        return out

    def expire_due(self, ts_ns: int) -> list[Outcome]:
        """Expire the orders due at or before `ts_ns`, by due time then acceptance sequence."""
        out: list[Outcome] = []
        expiries = self._expiries
        orders = self._orders
        while expiries and expiries[0][0] <= ts_ns:
            expire_ns, seq, cl_ord_id = heapq.heappop(expiries)
            rec = orders.get(cl_ord_id)
            if rec is None or rec.seq != seq:
                continue
            self._leave(rec, expire_ns)
            out.append(Expired(cl_ord_id, expire_ns))
            self._drop_children(rec, f"OTO entry {cl_ord_id} expired", expire_ns, out)
        if len(expiries) > 2 * len(orders) + _COMPACT_SLACK:
            expiries[:] = [e for e in expiries if (r := orders.get(e[2])) and r.seq == e[1]]
            heapq.heapify(expiries)
        return out

    # -- internals ----------------------------------------------------------------------------

    def _is_taken(self, cl_ord_id: str, ts_ns: int) -> bool:
        done = self._done
        queue = self._done_order
        horizon = ts_ns - self.dedup_window_ns
        while queue and queue[0][0] <= horizon:
            left_ns, old_id = queue.popleft()
            if done.get(old_id) == left_ns:
                del done[old_id]
        return cl_ord_id in self._orders or cl_ord_id in self._triggered or cl_ord_id in done

    def _missing(self, orig_cl_ord_id: str) -> str:
        """Why a cancel or replace of OrigClOrdID (41) finds no order to act on."""
        if orig_cl_ord_id in self._triggered:
            return f"{orig_cl_ord_id} already triggered"
        return f"unknown ClOrdID {orig_cl_ord_id}"

    def _mark_done(self, cl_ord_id: str, ts_ns: int) -> None:
        self._done[cl_ord_id] = ts_ns
        self._done_order.append((ts_ns, cl_ord_id))

    def _check_new(self, order: StopOrder, ts_ns: int) -> str | None:
        if self._is_taken(order.cl_ord_id, ts_ns):
            return f"duplicate ClOrdID {order.cl_ord_id}"
        if order.time_in_force == TIF_GTD and order.expire_time <= ts_ns:
            return f"ExpireTime(126) {order.expire_time} is not after the event time {ts_ns}"
        return None

    def _record(self, order: StopOrder, ts_ns: int) -> _Record:
        tif = order.time_in_force
        if tif == TIF_GTD:
            expire_ns = order.expire_time
        elif tif == TIF_GTC:
            expire_ns = ts_ns + self.gtc_days * NS_PER_DAY
        else:  # Day: the first session close after acceptance
            expire_ns = ts_ns - ts_ns % NS_PER_DAY + self._close_ns
            if expire_ns <= ts_ns:
                expire_ns += NS_PER_DAY
        reference = (
            order.reference or self.symbol_references.get(order.symbol) or self.default_reference
        )
        self._seq += 1
        return _Record(order, self._seq, _WORKING, order.side == SIDE_BUY, reference, expire_ns)

    def _through(self, rec: _Record) -> str | None:
        # A fixed stop the current reference has already reached would fire at once.
        order = rec.order
        if order.ord_type != ORD_TYPE_STOP and order.ord_type != ORD_TYPE_STOP_LIMIT:
            return None
        current = self.reference_px(order.symbol, rec.reference)
        if current is None or _key(rec.buy, order.stop_px) > _key(rec.buy, current):
            return None
        where = "below" if rec.buy else "above"
        side = "buy" if rec.buy else "sell"
        return f"{side} stop {order.stop_px} is at or {where} the {rec.reference} price {current}"

    def _add(self, rec: _Record) -> None:
        self._orders[rec.order.cl_ord_id] = rec
        heapq.heappush(self._expiries, (rec.expire_ns, rec.seq, rec.order.cl_ord_id))

    def _symbol(self, symbol: str) -> _Symbol:
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = self._symbols[symbol] = _Symbol()
        return sym

    def _ladder(self, rec: _Record) -> _TrailLadder:
        """The record's ladder, brought up to date with its reference's run (`_Symbol.settle`)."""
        sym = self._symbol(rec.order.symbol)
        sym.settle(rec.reference)
        bps = rec.order.peg_offset_type == PEG_OFFSET_BPS
        key = (rec.reference, rec.buy, bps)
        ladder = sym.ladders.get(key)
        if ladder is None:
            ladder = sym.ladders[key] = _TrailLadder(rec.buy, bps)
            band = sym.band(rec.reference)
            (band.buy_ladders if rec.buy else band.sell_ladders).append(ladder)
        return ladder

    def _rest(self, rec: _Record) -> None:
        order = rec.order
        ord_type = order.ord_type
        if ord_type == ORD_TYPE_PEGGED:
            current = self.reference_px(order.symbol, rec.reference)
            self._ladder(rec).add(
                order.cl_ord_id, rec.seq, order.peg_offset_value, current, order.activation_px
            )
            self._symbols[order.symbol].band(rec.reference).rebound(_BUYS if rec.buy else _SELLS)
        elif ord_type == ORD_TYPE_STOP or ord_type == ORD_TYPE_STOP_LIMIT:
            sym = self._symbol(order.symbol)
            key = (rec.reference, rec.buy)
            heap = sym.stops.get(key)
            if heap is None:
                heap = sym.stops[key] = _KeyHeap()
                band = sym.band(rec.reference)
                if rec.buy:
                    band.buy_heap = heap
                else:
                    band.sell_heap = heap
            heap.push(_key(rec.buy, order.stop_px), rec.seq, order.cl_ord_id)
            # Only the new stop can move the band, and only outwards: no need to rebound.
            lim, i = sym.lim, _REF_BASE[rec.reference]
            if rec.buy:
                lim[i + _BUY_AT] = min(lim[i + _BUY_AT], _down(order.stop_px))
            else:
                lim[i + _SELL_AT] = max(lim[i + _SELL_AT], _up(order.stop_px))

    def _unrest(self, rec: _Record) -> None:
        if rec.state != _WORKING:
            return
        order = rec.order
        ord_type = order.ord_type
        if ord_type == ORD_TYPE_PEGGED:
            self._ladder(rec).discard(order.cl_ord_id)
        elif ord_type == ORD_TYPE_STOP or ord_type == ORD_TYPE_STOP_LIMIT:
            heap = self._symbol(order.symbol).stops.get((rec.reference, rec.buy))
            if heap is not None:
                heap.discard(order.cl_ord_id)
        # The band stays: an order leaving only makes it wider than it needs to be.

    def _leave(self, rec: _Record, ts_ns: int) -> None:
        """Take a record out of the book and its links (not its children)."""
        cl_ord_id = rec.order.cl_ord_id
        if self._triggered.pop(cl_ord_id, None) is not None:
            self._aliases.pop(cl_ord_id + CHILD_SUFFIX, None)
        else:
            del self._orders[cl_ord_id]
            self._unrest(rec)
        self._mark_done(cl_ord_id, ts_ns)
        if rec.oco is not None:
            self._detach_oco(rec)
        if rec.parent is not None:
            parent_id = rec.parent
            parent = self._orders.get(parent_id) or self._triggered.get(parent_id)
            if parent is not None and cl_ord_id in parent.children:
                parent.children.remove(cl_ord_id)
                if not parent.children and parent_id in self._triggered:
                    self._leave(parent, ts_ns)  # nothing left to wait for

    def _detach_oco(self, rec: _Record) -> None:
        list_id = rec.oco
        rec.oco = None
        legs = self._lists.get(list_id)
        if legs is None:
            return
        legs.remove(rec.order.cl_ord_id)
        if not legs:
            del self._lists[list_id]

    def _cancel(self, rec: _Record, reason: str, ts_ns: int, out: list[Outcome]) -> None:
        cl_ord_id = rec.order.cl_ord_id
        self._leave(rec, ts_ns)
        out.append(Cancelled(cl_ord_id, reason, ts_ns))
        self._drop_children(rec, f"OTO entry {cl_ord_id} cancelled", ts_ns, out)

    def _drop_children(self, rec: _Record, reason: str, ts_ns: int, out: list[Outcome]) -> None:
        for child_id in list(rec.children):
            child = self._orders.get(child_id)
            if child is not None:
                self._cancel(child, reason, ts_ns, out)
        rec.children = []

    def _cancel_siblings(self, rec: _Record, reason: str, ts_ns: int, out: list[Outcome]) -> None:
        list_id = rec.oco
        self._detach_oco(rec)
        self._cancel_legs(list_id, reason, ts_ns, out)

    def _cancel_legs(self, list_id: str, reason: str, ts_ns: int, out: list[Outcome]) -> None:
        for leg_id in self._lists.pop(list_id, ()):
            leg = self._orders.get(leg_id)
            if leg is not None:
                leg.oco = None
                self._cancel(leg, reason, ts_ns, out)

    def _trigger(
        self,
        rec: _Record,
        stop: Decimal | None,
        px: Decimal,
        reference: str,
        ts_ns: int,
        out: list[Outcome],
    ) -> None:
        order = rec.order
        cl_ord_id = order.cl_ord_id
        limit = order.ord_type == ORD_TYPE_STOP_LIMIT
        child = ChildOrder(
            cl_ord_id + CHILD_SUFFIX,
            order.symbol,
            order.side,
            order.order_qty,
            ORD_TYPE_LIMIT if limit else ORD_TYPE_MARKET,
            order.price if limit else None,
            order.account,
        )
        stop = order.stop_px if stop is None else stop
        out.append(Triggered(order, stop, px, reference, ts_ns, child))
        # Its structure entry is already gone (so `_unrest` skips it); take it off the book
        # (and the OCO) now.
        rec.state = "triggered"
        oco = rec.oco
        if rec.children:
            del self._orders[cl_ord_id]
            if oco is not None:
                self._detach_oco(rec)
            self._triggered[cl_ord_id] = rec
            self._aliases[child.cl_ord_id] = cl_ord_id
        else:
            self._leave(rec, ts_ns)
        if oco is not None:
            self._cancel_legs(oco, f"OCO sibling {cl_ord_id} triggered", ts_ns, out)

    def _activate(self, child_ids: list[str], ts_ns: int, out: list[Outcome]) -> None:
        records = []
        for child_id in child_ids:
            rec = self._orders.get(child_id)
            if rec is not None and rec.state == _PENDING:
                rec.parent = None
                rec.state = _WORKING
                records.append(rec)
        through = []
        for rec in records:
            order = rec.order
            if self._through(rec) is not None:
                through.append(rec)
            else:
                self._rest(rec)
            child = _release(order) if order.ord_type in _LEG_TYPES else None
            out.append(Activated(order.cl_ord_id, ts_ns, child))
        for rec in through:
            # The market already passed the stop-loss: protect the position now.
            if self._orders.get(rec.order.cl_ord_id) is rec:
                current = self.reference_px(rec.order.symbol, rec.reference)
                self._trigger(rec, None, current, rec.reference, ts_ns, out)

    def _rename_links(self, rec: _Record, old_id: str, new_id: str) -> None:
        if old_id == new_id:
            return
        if rec.oco is not None:
            legs = self._lists[rec.oco]
            legs[legs.index(old_id)] = new_id
        if rec.parent is not None:
            parent = self._orders.get(rec.parent) or self._triggered.get(rec.parent)
            if parent is not None:
                parent.children[parent.children.index(old_id)] = new_id
        for child_id in rec.children:
            child = self._orders.get(child_id)
            if child is not None:
                child.parent = new_id


def evaluate_stops(book: StopBook, quote: Quote) -> tuple[StopBook, list[Outcome]]:
    """Apply a published L1 quote to `book` (STYLE.md §9.1); return the book and its outcomes.

    The book is updated in place and returned, the shape `stateful_map` expects.
    """
    return book, book.on_l1(quote)
