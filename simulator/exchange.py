"""Simulator layer: the exchange's matching and market-data logic, without sockets.

`ExchangeCore` is what `brokerflow simulate-exchange` serves over FIX sessions
(`simulator.exchange_server` wires it to the session layer's `Acceptor`):

* the market: a `MarketSimulator` started at a wall-clock time, with an `OrderFlowSimulator`
  of many accounts trading on it; `advance(now_ns)` returns what happened up to `now_ns`: the
  incremental refreshes (35=X) and the synthetic flow's execution reports (35=8, a drop copy);
* `market_data_request(fields)` answers a MarketDataRequest (35=V): a full refresh (35=W) per
  symbol from the current book (263=0: a snapshot only, 1: then the updates), or a
  MarketDataRequestReject (35=Y) naming the problem;
* the feed's RptSeq (83) per symbol goes out as the simulator writes it; the market can lose a
  share of its 35=X upstream (`drop_incrementals`) and send an unsolicited 35=W per symbol
  every `snapshot_every_s` to the sessions subscribed to it (issue 21, book integrity);
  `filter_incremental(body, symbols)` keeps the entries of a 35=X a subscriber asked for;
* `new_order(origin, fields, now_ns)` fills a NewOrderSingle (35=D) against the current book:
  a market order at once at the ask (buy) or bid (sell), a limit order when marketable, else
  it rests until the market reaches its limit (checked by every `advance`);
  `cancel_order(origin, fields, now_ns)` cancels a resting order (35=F), or answers an
  OrderCancelReject (35=9). The book has no depth: an order fills whole at the touch.

Messages are `(msg_type, body)` pairs (tag, bytes value) without the standard header: the
session adds BeginString, MsgSeqNum, CompIDs and SendingTime. TransactTime (60) is the time
passed in, so the same calls give the same bodies.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter

from connectors.fix.live import outbound_fields
from connectors.fix.timefmt import format_utc_timestamp
from simulator.market import MarketSimulator, format_price
from simulator.market_status import IndexFall, StatusScenario
from simulator.orders import OrderFlowSimulator

Body = list[tuple[int, bytes]]
SOH = b"\x01"
# Standard header and trailer tags: the sending session writes its own.
# Fields the simulator writes that FIX 4.4 does not define for the message type, so a session
# validating against the FIX 4.4 dictionary would reject the message: TransactTime (60) in
# 35=X (the event time is then MDEntryTime (273) on SendingTime's date) and TrdMatchID (880,
# FIX 5.0) in 35=8.
# MDEntryID (278) in a 35=W entry (FIX 4.4's MDFullGrp has none): the periodic snapshots.
_NOT_IN_FIX44 = {b"X": frozenset((60,)), b"8": frozenset((880,)), b"W": frozenset((278,))}
# Order and execution ids of the synthetic flow, prefixed with the run id: the order-flow
# simulator numbers them per day and seed, so a restarted exchange would reuse them.
_ID_TAGS = frozenset((11, 17, 19, 37, 41))
_BUY, _SELL = b"1", b"2"
STATUS_TYPES = frozenset((b"f", b"h"))  # SecurityStatus, TradingSessionStatus
_MARKET, _LIMIT = b"1", b"2"


def split_message(raw: bytes) -> tuple[bytes, Body]:
    """MsgType (35) and the body fields of an encoded message (header and trailer dropped)."""
    return outbound_fields(raw)


@dataclass(frozen=True, slots=True)
class Routed:
    """A message for a session: `to` is the session's key, or None for every drop copy."""

    to: tuple[str, str, str] | None
    msg_type: bytes
    body: Body
    symbols: frozenset[bytes] = frozenset()  # for 35=X: the symbols its entries are about


@dataclass(slots=True)
class _Order:
    origin: tuple[str, str, str]
    order_id: bytes
    cl_ord_id: bytes
    account: bytes | None
    symbol: bytes
    side: bytes
    qty: int
    ord_type: bytes
    price: int  # limit in 0.01 ticks (0 for market)


@dataclass(slots=True)
class ExchangeStats:
    """What the exchange did (the `simulate-exchange` summary)."""

    incrementals: int = 0
    snapshots: int = 0
    snapshot_requests: int = 0  # 35=V with 263=0 (a snapshot only)
    drop_copies: int = 0
    orders_received: int = 0
    fills: int = 0
    rejects: int = 0
    cancels: int = 0
    duplicates: int = 0


def _ticks(text: bytes) -> int:
    """Price text to 0.01 ticks (raises ValueError on a non-number or a negative price)."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text.decode("ascii"))
    except (InvalidOperation, UnicodeDecodeError):
        msg = f"price {text!r} is not a number"
        raise ValueError(msg) from None
    if value <= 0:
        msg = f"price {text!r} is not positive"
        raise ValueError(msg)
    return int((value * 100).to_integral_value())


class ExchangeCore:
    """The simulated venue: market, synthetic order flow, and the orders sessions send.

    Args:
        symbols: simulated symbols (`simulator.market.symbol_names`).
        start_ns: the market's start (wall-clock UTC ns: the feed is paced by the wall clock).
        seed: simulator seed.
        rate_per_symbol: market events per symbol per second.
        accounts: accounts of the synthetic order flow.
        orders_per_minute: synthetic orders per minute (0: no synthetic flow).
        run_id: prefixes OrderID (37) and ExecID (17) so a restarted exchange reuses none.
        drop_incrementals: percent of the market's 35=X lost upstream (`MarketSimulator`).
        snapshot_every_s: an unsolicited 35=W per symbol every this many seconds.

    `add_status` merges the venue's halts, bands and a falling index
    (`simulator.market_status`) into the feed by event time.
    """

    def __init__(
        self,
        symbols: int,
        start_ns: int,
        seed: int = 1,
        rate_per_symbol: float = 5.0,
        accounts: int = 200,
        orders_per_minute: float = 120.0,
        run_id: str = "SX",
        drop_incrementals: float = 0.0,
        snapshot_every_s: float | None = None,
    ) -> None:
        self.market = MarketSimulator(
            symbols, seed, start_ns, rate_per_symbol, drop_incrementals=drop_incrementals,
            snapshot_every_s=snapshot_every_s,
        )  # fmt: skip
        self.symbols = [s.encode() for s in self.market.symbols]
        self._index = {s: i for i, s in enumerate(self.symbols)}
        stream: Iterator[tuple[int, bytes]]
        if orders_per_minute > 0:
            self.order_flow: OrderFlowSimulator | None = OrderFlowSimulator(
                self.market, accounts=accounts, orders_per_minute=orders_per_minute
            )
            stream = self.order_flow.messages()
        else:
            self.order_flow = None
            stream = self.market.messages()
        self.broadcast: frozenset[bytes] = frozenset()
        self._index_fall: IndexFall | None = None
        self._status: StatusScenario | None = None
        self._index_last: bytes | None = None  # the index's last print sent
        self._stream = stream
        self._held: tuple[int, bytes] | None = None
        self.run_id = run_id
        self._prefix = run_id.encode()
        self._ids = 0
        self._resting: dict[tuple[tuple[str, str, str], bytes], _Order] = {}
        self._entry_ids: dict[tuple[bytes, bytes], bytes] = {}  # (symbol, 269) -> 278
        self.orders_seen: dict[tuple[tuple[str, str, str], bytes], bytes] = {}  # -> OrderID
        self.stats = ExchangeStats()
        self.snapshot_requests: list[tuple[bytes, tuple[bytes, ...]]] = []  # (262, symbols)

    def add_status(self, status: StatusScenario) -> None:
        """Merge a status scenario into the feed, from now on (its messages already due go
        out at the next `advance`): 35=f/35=h and the index's 35=X go to every market-data
        subscriber (`broadcast`: the index needs no subscription)."""
        stream = self._stream
        if self._held is not None:  # the next market message, already taken from the stream
            stream, self._held = itertools.chain((self._held,), stream), None
        self._stream = heapq.merge(stream, status.messages(), key=itemgetter(0))
        if status.index is not None:
            self.broadcast = frozenset((status.index.symbol.encode(),))
            self._index_fall = status.index
        self._status = status

    def write_accounts(self, accounts_csv: str, positions_csv: str) -> None:
        """The synthetic flow's accounts and opening positions, for `brokerflow load`."""
        if self.order_flow is not None:
            self.order_flow.accounts_csv(accounts_csv)
            self.order_flow.positions_csv(positions_csv)

    # ------------------------------------------------------------------ market data
    def market_data_request(self, fields: Body) -> tuple[list[tuple[bytes, Body]], list[bytes]]:
        """Answer a MarketDataRequest (35=V).

        Returns:
            The messages to send back (one 35=W per symbol for SubscriptionRequestType (263)
            0 or 1, nothing for 2, a 35=Y for a bad request), and the symbols to stream 35=X
            for from now on (263=1; empty otherwise).
        """
        values = dict(fields)
        req_id = values.get(262, b"")
        kind = values.get(263, b"")
        symbols = [value for tag, value in fields if tag == 55]
        if not req_id or kind not in (b"0", b"1", b"2"):
            return [self._md_reject(req_id, b"2", "MDReqID (262) and SubscriptionRequestType "
                                    "(263) 0, 1 or 2 are required")], []  # fmt: skip
        if kind == b"2":
            return [], []
        unknown = [s for s in symbols if s not in self._index]
        if not symbols or unknown:
            text = f"unknown symbol {unknown[0].decode()!r}" if unknown else "no Symbol (55)"
            return [self._md_reject(req_id, b"0", text)], []
        if kind == b"0":
            self.stats.snapshot_requests += 1
            self.snapshot_requests.append((req_id, tuple(symbols)))
        snapshots = [(b"W", self.snapshot(req_id, s)) for s in symbols]
        if self._status is not None:  # each symbol's band (35=f), as a venue sends it
            bands = [self._status.band_body(s.decode()) for s in symbols]
            snapshots += [(b"f", body) for body in bands if body]
        index = self._index_fall
        if index is not None:
            # The index goes to every subscriber; its previous close (and last print) too, in
            # a snapshot, so a session that logs on late still has the breaker's reference.
            body = [(262, req_id), (55, index.symbol.encode()), (268, b"1"),
                    (269, b"5"), (270, b"%.2f" % index.close)]  # fmt: skip
            if self._index_last is not None:
                body[2] = (268, b"2")
                body += [(269, b"2"), (270, self._index_last)]
            snapshots.append((b"W", body))
        self.stats.snapshots += len(snapshots)
        return snapshots, symbols if kind == b"1" else []

    def _md_reject(self, req_id: bytes, reason: bytes, text: str) -> tuple[bytes, Body]:
        # MDReqRejReason (281): 0 unknown symbol, 2 insufficient bandwidth... 2 stands in for
        # "bad request" (FIX 4.4 has no better code).
        return b"Y", [(262, req_id or b"?"), (281, reason), (58, text.encode())]

    def snapshot(self, req_id: bytes, symbol: bytes) -> Body:
        """A 35=W body: `symbol`'s best bid, offer and last trade, with the RptSeq (83) of the
        last entry they include.

        The simulator's book may already be past a message held back for its time (the next
        one, not sent yet); the snapshot includes it and says so by its RptSeq, so a consumer
        that follows RptSeq ignores that message when it comes (a duplicate). FIX 4.4's
        snapshot group has no MDEntryID (278): the levels are keyed by price until the
        incrementals replace them.
        """
        index = self._index[symbol]
        book = self.market.top_of_book(index)
        assert book is not None  # every snapshot of the simulator's own 35=W is out by then
        bid, bid_size, ask, ask_size, last = book
        return [(262, req_id), (55, symbol), (83, b"%d" % self.market.rpt_seq(index)),
                (268, b"3"),
                (269, b"0"), (270, format_price(bid).encode()), (271, b"%d" % bid_size),
                (269, b"1"), (270, format_price(ask).encode()), (271, b"%d" % ask_size),
                (269, b"2"), (270, format_price(last).encode()), (271, b"100")]  # fmt: skip

    @staticmethod
    def filter_incremental(body: Body, symbols: set[bytes]) -> Body | None:
        """The 35=X body with only the entries of `symbols` (None when none is left)."""
        try:
            start = next(i for i, (tag, _) in enumerate(body) if tag == 268)
        except StopIteration:
            return None
        entries: list[Body] = []
        for tag, value in body[start + 1 :]:
            if tag == 279 or not entries:
                entries.append([])
            entries[-1].append((tag, value))
        kept = [e for e in entries if any(t == 55 and v in symbols for t, v in e)]
        if not kept:
            return None
        if len(kept) == len(entries):
            return body
        return [*body[:start], (268, b"%d" % len(kept)), *(f for e in kept for f in e)]

    # ------------------------------------------------------------------ the clock
    def advance(self, now_ns: int) -> list[Routed]:
        """Everything due by `now_ns`: 35=X of the feed, 35=8 of the synthetic flow (drop
        copies), and fills of resting orders the market has reached."""
        out: list[Routed] = []
        stream = self._stream
        held = self._held
        touched: set[bytes] = set()
        while True:
            if held is None:
                held = next(stream)
            if held[0] > now_ns:
                break
            msg_type, body = split_message(held[1])
            at_ns, held = held[0], None
            drop = _NOT_IN_FIX44.get(msg_type)
            if drop:
                body = [f for f in body if f[0] not in drop]
            if msg_type in (b"W", b"X"):
                self._track_entry_ids(msg_type, body)
            if msg_type == b"X":
                symbols = frozenset(v for t, v in body if t == 55)
                if symbols and symbols <= self.broadcast:
                    self._index_last = next(v for t, v in body if t == 270)
                touched |= symbols
                out.append(Routed(None, b"X", body, symbols))
                self.stats.incrementals += 1
            elif msg_type == b"8":
                prefix = self._prefix + b"-"
                body = [(t, prefix + v) if t in _ID_TAGS else (t, v) for t, v in body]
                out.append(Routed(None, b"8", body))
                self.stats.drop_copies += 1
            elif msg_type in STATUS_TYPES:  # the venue's statuses: every market-data session
                symbols = frozenset(v for t, v in body if t == 55)
                out.append(Routed(None, msg_type, body, symbols))
            elif msg_type == b"W" and at_ns > self.market.start_ns:
                # a periodic snapshot (`snapshot_every_s`): to the symbol's subscribers
                out.append(Routed(None, b"W", body, frozenset(v for t, v in body if t == 55)))
                self.stats.snapshots += 1
            # The opening 35=W and client 35=D/F/G stay inside: a subscriber gets its snapshot
            # from `snapshot`.
        self._held = held
        if touched and self._resting:
            out.extend(self._fill_resting(touched, now_ns))
        return out

    def _track_entry_ids(self, msg_type: bytes, body: Body) -> None:
        """Remember the MDEntryID (278) of each symbol's top bid and offer, so a snapshot
        carries the ids the next 35=X deletes and changes refer to."""
        symbol = b""
        entries: list[dict[int, bytes]] = []
        for tag, value in body:
            if (tag == 279 and msg_type == b"X") or (tag == 269 and msg_type == b"W"):
                entries.append({})
            elif tag == 55 and not entries:
                symbol = value
            if entries:
                entries[-1][tag] = value
        for entry in entries:
            side, entry_id = entry.get(269), entry.get(278)
            if side in (b"0", b"1") and entry_id and entry.get(279) != b"2":
                self._entry_ids[(entry.get(55, symbol), side)] = entry_id

    # ------------------------------------------------------------------ orders
    def _next_id(self, kind: bytes) -> bytes:
        self._ids += 1
        return b"%s-%s%d" % (self._prefix, kind, self._ids)

    def new_order(self, origin: tuple[str, str, str], fields: Body, now_ns: int) -> list[Routed]:
        """Answer a NewOrderSingle (35=D) from session `origin`: reports to it (35=8).

        A ClOrdID (11) the session already sent (a resend after a restart, say) is ignored and
        counted in `stats.duplicates`: an order is never filled twice.
        """
        values = dict(fields)
        if (origin, values.get(11, b"")) in self.orders_seen:
            self.stats.duplicates += 1
            return []
        self.stats.orders_received += 1
        order = _Order(
            origin,
            self._next_id(b"O"),
            values.get(11, b""),
            values.get(1),
            values.get(55, b""),
            values.get(54, b""),
            0,
            values.get(40, b""),
            0,
        )
        problem = ""
        try:
            order.qty = int(values.get(38, b"0"))
            if order.ord_type == _LIMIT:
                order.price = _ticks(values.get(44, b""))
        except ValueError as exc:
            problem = str(exc)
        if not order.cl_ord_id:
            problem = "ClOrdID (11) is missing"
        elif order.symbol not in self._index:
            problem = f"unknown symbol {order.symbol.decode(errors='replace')!r}"
        elif order.side not in (_BUY, _SELL):
            problem = f"Side (54) {order.side.decode(errors='replace')!r} is not 1 or 2"
        elif order.ord_type not in (_MARKET, _LIMIT):
            problem = f"OrdType (40) {order.ord_type.decode(errors='replace')!r} is not 1 or 2"
        elif not problem and order.qty <= 0:
            problem = "OrderQty (38) must be positive"
        if problem:
            self.stats.rejects += 1
            return [self._report(order, b"8", b"8", now_ns, text=problem)]
        self.orders_seen[(origin, order.cl_ord_id)] = order.order_id
        out = [self._report(order, b"0", b"0", now_ns)]
        px = self._touch(order)
        if px is not None:
            out.append(self._fill(order, px, now_ns))
        else:
            self._resting[(origin, order.cl_ord_id)] = order
        return out

    def cancel_order(self, origin: tuple[str, str, str], fields: Body, now_ns: int) -> list[Routed]:
        """Answer an OrderCancelRequest (35=F): 35=8 150=4 for a resting order, else 35=9."""
        values = dict(fields)
        cl_ord_id = values.get(11, b"")
        order = self._resting.pop((origin, values.get(41, b"")), None)
        if order is None:
            self.stats.rejects += 1
            body = [
                (37, b"NONE"), (11, cl_ord_id), (41, values.get(41, b"")), (39, b"8"),
                (434, b"1"), (102, b"1"), (58, b"unknown or no longer working order"),
            ]  # fmt: skip
            return [Routed(origin, b"9", body)]
        self.stats.cancels += 1
        order.cl_ord_id, orig = cl_ord_id, order.cl_ord_id
        return [self._report(order, b"4", b"4", now_ns, orig=orig)]

    def _touch(self, order: _Order) -> int | None:
        """The price `order` fills at now (the touch), or None if it would rest."""
        book = self.market.top_of_book(self._index[order.symbol])
        if book is None:
            return None
        bid, _, ask, _, _ = book
        px = ask if order.side == _BUY else bid
        if order.ord_type == _MARKET:
            return px
        marketable = px <= order.price if order.side == _BUY else px >= order.price
        return px if marketable else None

    def _fill_resting(self, symbols: set[bytes], now_ns: int) -> list[Routed]:
        out = []
        for key, order in list(self._resting.items()):
            if order.symbol in symbols:
                px = self._touch(order)
                if px is not None:
                    del self._resting[key]
                    out.append(self._fill(order, order.price, now_ns))  # at its limit
        return out

    def _fill(self, order: _Order, px: int, now_ns: int) -> Routed:
        self.stats.fills += 1
        return self._report(order, b"F", b"2", now_ns, last=(order.qty, px))

    def _report(
        self, order: _Order, exec_type: bytes, status: bytes, now_ns: int,
        last: tuple[int, int] | None = None, text: str = "", orig: bytes | None = None,
    ) -> Routed:  # fmt: skip
        filled = last is not None
        done = filled or exec_type in (b"4", b"8")
        body: Body = [(37, order.order_id), (11, order.cl_ord_id)]
        if orig is not None:
            body.append((41, orig))
        body += [(17, self._next_id(b"E")), (150, exec_type), (39, status)]
        if order.account:
            body.append((1, order.account))
        body += [(55, order.symbol), (54, order.side or b"1"), (38, b"%d" % order.qty)]
        if order.ord_type in (_MARKET, _LIMIT):
            body.append((40, order.ord_type))
        if order.price:
            body.append((44, format_price(order.price).encode()))
        if last is not None:
            body += [(32, b"%d" % last[0]), (31, format_price(last[1]).encode())]
        body += [
            (14, b"%d" % (order.qty if filled else 0)),
            (151, b"0" if done else b"%d" % order.qty),
            (6, format_price(last[1]).encode() if last is not None else b"0"),
        ]
        if exec_type == b"8":
            body.append((103, b"0"))
        if text:
            body.append((58, text.encode()))
        body.append((60, format_utc_timestamp(now_ns, 3).encode()))
        return Routed(order.origin, b"8", body)
