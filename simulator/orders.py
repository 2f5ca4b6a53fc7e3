"""Simulator layer: deterministic retail order flow and the broker's execution reports (FIX 4.4).

`OrderFlowSimulator` runs over a `MarketSimulator` and merges its own messages into the market
data in event-time order, so a replay sees every order event next to the quote current at its
time. simplefix builds and encodes every message (BodyLength (9) and CheckSum (10)).

The population: ``accounts`` accounts ``ACC00001``... owned by ``OWN0001``... (most owners hold
one account, some two or three), each with cash and a few opening positions (written by
`accounts_csv` and `positions_csv` in the formats of ``brokerflow load``). Accounts trade through
client sessions (``WEB``, ``MOBILE``, ``API``); the broker's CompID is ``BROKER``. Each direction
of each session has its own MsgSeqNum (34) stream; SendingTime (52) and TransactTime (60) are
the event time (millisecond precision).

Per order, message by message:

* 35=D NewOrderSingle from the client: ClOrdID (11), Account (1), Symbol (55), Side (54, 1 buy
  or 2 sell), OrderQty (38, round lots), OrdType (40, 1 market or 2 limit), Price (44, limits
  only, near the quote), TimeInForce (59=0 day), TransactTime (60).
* 1-3 ms later the broker answers 35=8: an ack (150=0, 39=0, OrderID (37) assigned), or a
  reject (150=8, 39=8, OrdRejReason (103)=0, Text (58) "insufficient funds" or "insufficient
  position"): a buy must be covered by cash not reserved by the account's other working buys
  (market buys reserve 110% of the ask), a sell by shares not reserved by its other sells. So
  no account ever sells more than it holds (no short selling) or spends cash it has not got.
* Fills (150=F, 39=1 or 2) with LastQty (32), LastPx (31), CumQty (14), LeavesQty (151) =
  OrderQty - CumQty, AvgPx (6), ExecID (17), TrdMatchID (880). A market order, and a limit
  order marketable on arrival, fills at the ask (buy) or bid (sell) current at the fill, up to
  the size shown there; the rest fills in further partial fills 5-300 ms apart, each at the
  quote of its moment (a marketable limit stops at its limit and rests). A resting limit order
  is looked at every few seconds and fills at its limit price once the market reaches it
  (ask <= limit for a buy, bid >= limit for a sell).
* Some resting limit orders are cancelled (35=F, then 150=4 39=4 with LeavesQty 0) or replaced
  (35=G with a new ClOrdID, price and quantity, then 150=5). A market buy that can no longer be
  paid for at the current ask is cancelled by the broker (150=4, Text "insufficient funds").
* Rarely a fill is busted (150=H, ExecRefID (19) = the fill's ExecID, same TrdMatchID, LastQty
  and LastPx of the busted fill). The order re-opens for the busted quantity (CumQty down,
  LeavesQty up, OrdStatus 0 or 1) and goes on working. Only the last fill on an account's
  position in a symbol is busted, and only when no other order of the account in the symbol is
  working.

The ledger a consumer of the file must reproduce (`expected_ledger`): `simulator.accounts`.

Nothing reads the wall clock; the same arguments give the same bytes, and the market-data
messages are byte for byte those of the same `MarketSimulator` run without orders.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import simplefix

from simulator.accounts import (
    BUY,
    DEFAULT_INITIAL_MARGIN,
    DEFAULT_MAINTENANCE_MARGIN,
    SELL,
    Account,
    AccountLedger,
    Fill,
    Order,
    apply_fill,
    avg_text,
    cents,
    open_accounts,
    reverse_fill,
    round_avg,
    write_accounts_csv,
    write_positions_csv,
)
from simulator.clock import Clock
from simulator.files import SimulationSummary, write_lines
from simulator.market import MarketSimulator
from simulator.symbols import LOT, TICKS_PER_UNIT

__all__ = [
    "BROKER_COMP_ID",
    "CLIENT_SESSIONS",
    "DEFAULT_ACCOUNTS",
    "DEFAULT_INITIAL_MARGIN",
    "DEFAULT_MAINTENANCE_MARGIN",
    "DEFAULT_ORDERS_PER_MINUTE",
    "REFERENCE_INTERVAL_S",
    "AccountLedger",
    "OrderFlowSimulator",
    "round_avg",
]

BROKER_COMP_ID = "BROKER"
CLIENT_SESSIONS = ("WEB", "MOBILE", "API")
REFERENCE_INTERVAL_S = 10.0  # mean event time between two reference changes (the option's)
_P_NEW_ACCOUNT = 0.3  # of a reference change: an account opened, else a cash movement
#: Default order rate: a 10-minute file has about 3,000 orders, whatever the symbol count.
DEFAULT_ORDERS_PER_MINUTE = 300.0
DEFAULT_ACCOUNTS = 500

# Order mix (probabilities).
_P_SELL = 0.45  # share of orders that sell, when the account holds something to sell
_P_MARKET = 0.35  # share of market orders (the rest are limits)
_P_MARKETABLE = 0.25  # share of limit orders priced through the quote on arrival
_P_OVERSIZED = 0.02  # share of buys sized beyond the account's free cash (rejected)
_P_CANCEL = 0.30  # share of resting limit orders the client cancels later
_P_REPLACE = 0.15  # share of resting limit orders the client replaces later
_P_BUST = 0.004  # share of fills busted later (if still eligible then)
_MARKET_RESERVE_NUM, _MARKET_RESERVE_DEN = 11, 10  # market buys reserve 110% of the ask

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000

_MARKET, _LIMIT = b"1", b"2"


def _px(ticks: int) -> bytes:
    return b"%d.%02d" % divmod(ticks, TICKS_PER_UNIT)


class OrderFlowSimulator:
    """Simulated client orders and broker execution reports merged with a market-data feed.

    One instance is one session: ``messages()`` continues where the previous call stopped, and
    ``expected_ledger()`` is the state after the last message emitted so far.

    Example:
        >>> sim = OrderFlowSimulator(MarketSimulator(symbols=3, seed=2), accounts=20)
        >>> types = {msg.split(b"\\x01")[2] for _, msg in sim.messages(limit=2000)}
        >>> sorted(types)
        [b'35=8', b'35=D', b'35=W', b'35=X']
    """

    def __init__(
        self,
        market: MarketSimulator,
        seed: int | None = None,
        accounts: int = DEFAULT_ACCOUNTS,
        orders_per_minute: float = DEFAULT_ORDERS_PER_MINUTE,
        fills_only: bool = False,
        reference_changes: bool = False,
    ) -> None:
        """Set up the accounts and their opening positions; nothing is generated yet.

        Args:
            market: the market-data simulator to trade against; it must not have emitted any
                message yet. Its messages are merged into ``messages()`` unless ``fills_only``.
            seed: random seed of the order flow (default: the market's seed).
            accounts: how many accounts (>= 1).
            orders_per_minute: mean new orders (35=D) per simulated minute (> 0).
            fills_only: emit only the execution reports (35=8): no market data and no client
                messages; mostly market and marketable orders, no cancels or replaces. For
                ledger benchmarks.
            reference_changes: also emit the back office's changes during the day (issue
                20, docs/reference-data.md): accounts opened (35=UA), which then trade, and
                deposits and withdrawals (35=UC), about one per `REFERENCE_INTERVAL_S` of event
                time. Off, the output is byte for byte what it was without the option.

        Raises:
            ValueError: if an argument is out of range or ``market`` has already started.
        """
        if accounts < 1:
            msg = f"accounts must be >= 1, was {accounts}"
            raise ValueError(msg)
        if not orders_per_minute > 0:
            msg = f"orders_per_minute must be > 0, was {orders_per_minute}"
            raise ValueError(msg)
        if market.messages_emitted:
            msg = "market has already emitted messages; give a fresh MarketSimulator"
            raise ValueError(msg)
        self.market = market
        self.seed = market.seed if seed is None else seed
        self.orders_per_minute = orders_per_minute
        self.fills_only = fills_only
        self._rng = random.Random(f"brokerflow-orders:{self.seed}")
        self._clock = Clock()
        self._symbols = [s.encode() for s in market.symbols]
        self._symbol_idx = {s: i for i, s in enumerate(self._symbols)}
        day = datetime.fromtimestamp(market.start_ns // _NS_PER_S, tz=UTC).strftime("%Y%m%d")
        self._id_prefix = f"{day}{'B' if fills_only else 'S'}{self.seed}-".encode()
        self._counters = {b"C": 0, b"O": 0, b"E": 0, b"T": 0, b"M": 0}
        self._seq: dict[tuple[bytes, bytes], int] = {}
        self._sessions = [s.encode() for s in CLIENT_SESSIONS]
        self._broker = BROKER_COMP_ID.encode()
        self._heap: list[tuple[int, int, Callable[..., bytes | None], tuple]] = []
        self._counter = 0
        self._market_iter = market.messages()
        self._accounts = self._open_accounts(accounts)
        self._initial = [
            (
                a.account.decode(),
                a.owner,
                a.cash,
                {s: (h.qty, h.avg) for s, h in a.holdings.items()},
            )
            for a in self._accounts
        ]
        self.by_type: dict[str, int] = {}
        self.orders_sent = 0
        self.fills_emitted = 0
        self.messages_emitted = 0
        self._schedule(market.start_ns + self._interarrival_ns(), self._on_arrival)
        self.reference_changes = 0
        if reference_changes:  # their own random stream: the option alone decides them
            self._reference_rng = random.Random(f"brokerflow-reference:{self.seed}")
            self._schedule(market.start_ns + self._reference_interval_ns(), self._on_reference)

    # ---------------------------------------------------------------- set-up

    def _open_accounts(self, count: int) -> list[Account]:
        return open_accounts(self._rng, self.market, self._symbols, count, len(CLIENT_SESSIONS))

    def _reference_interval_ns(self) -> int:
        rate = 1.0 / REFERENCE_INTERVAL_S
        return max(1, int(self._reference_rng.expovariate(rate) * _NS_PER_S))

    def _on_reference(self, ns: int) -> bytes | None:
        """An account opened, or cash deposited or withdrawn (never below what working buys
        hold, so the day's orders stay affordable)."""
        rng = self._reference_rng
        self._schedule(ns + self._reference_interval_ns(), self._on_reference)
        if rng.random() < _P_NEW_ACCOUNT:
            owners = sorted({a.owner for a in self._accounts})
            # an owner with accounts already, sometimes: wash detection across them
            owner = owners[rng.randrange(len(owners))] if rng.random() < 0.3 else (
                f"OWN{len(owners) + 1:04d}")  # fmt: skip
            account = Account(
                account=b"ACC%05d" % (len(self._accounts) + 1),
                owner=owner,
                session=rng.randrange(len(CLIENT_SESSIONS)),
                cash=round(2.0 ** rng.uniform(14.3, 18.0)) * 100,
            )
            self._accounts.append(account)
            body = [(b"1", account.account), (b"5001", owner.encode()),
                    (b"5004", str(cents(account.cash)).encode())]  # fmt: skip
            return self._back_office(b"UA", ns, body)
        account = self._accounts[rng.randrange(len(self._accounts))]
        free = account.cash - account.reserved_cash
        if rng.random() < 0.5 or free < 200:
            amount = rng.randint(10, 500) * 100 * 100  # 1,000 .. 50,000
        else:
            amount = -rng.randint(1, free // 2)
        account.cash += amount
        body = [(b"1", account.account), (b"5010", str(cents(amount)).encode()),
                (b"5011", self._next_id(b"M"))]  # fmt: skip
        return self._back_office(b"UC", ns, body)

    def _back_office(self, msg_type: bytes, ns: int, body: list[tuple[bytes, bytes]]) -> bytes:
        """A reference change from the back office (`connectors.fix.reference`'s tags)."""
        key = (b"BACKOFFICE", self._broker)
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        stamp = self._clock.timestamp(ns // _NS_PER_MS)
        msg = simplefix.FixMessage()
        append = msg.append_pair
        for tag, value in [(b"8", b"FIX.4.4"), (b"35", msg_type), (b"49", key[0]),
                           (b"56", key[1]), (b"34", b"%d" % seq), (b"52", stamp), *body,
                           (b"60", stamp)]:  # fmt: skip
            append(tag, value)
        self.messages_emitted += 1
        self.reference_changes += 1
        key_type = msg_type.decode()
        self.by_type[key_type] = self.by_type.get(key_type, 0) + 1
        return msg.encode()

    def _interarrival_ns(self) -> int:
        return max(1, int(self._rng.expovariate(self.orders_per_minute / 60.0) * _NS_PER_S))

    def _next_id(self, kind: bytes) -> bytes:
        n = self._counters[kind] + 1
        self._counters[kind] = n
        return b"%s%s%08d" % (self._id_prefix, kind, n)

    def _schedule(self, ns: int, handler: Callable[..., bytes | None], *args: object) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (ns, self._counter, handler, args))

    def _latency_ns(self) -> int:
        return self._rng.randint(1 * _NS_PER_MS, 3 * _NS_PER_MS)

    # ---------------------------------------------------------------- public API

    @property
    def accounts(self) -> list[str]:
        """The account ids, ``ACC00001``..., in order."""
        return [a.account.decode() for a in self._accounts]

    def messages(
        self, limit: int | None = None, until_ns: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """Yield ``(event_time_ns, message)``: market data and order flow in event-time order.

        Args:
            limit: stop after this many messages (in this call), if given.
            until_ns: stop before the first message whose event time is >= this, if given.

        Yields:
            Event time (UTC nanoseconds, millisecond resolution, non-decreasing) and the
            encoded message (no newline). With ``fills_only`` only 35=8 messages are yielded.
        """
        market = self.market
        heap = self._heap
        market_iter = self._market_iter
        pop = heapq.heappop
        fills_only = self.fills_only
        emitted = 0
        while limit is None or emitted < limit:
            market_ns = market.peek_ns()
            if market_ns <= heap[0][0]:
                if until_ns is not None and market_ns // _NS_PER_MS * _NS_PER_MS >= until_ns:
                    return
                item = next(market_iter)
                if fills_only:
                    continue
                emitted += 1
                yield item
                continue
            ns, _, handler, args = heap[0]
            ts_ns = ns // _NS_PER_MS * _NS_PER_MS
            if until_ns is not None and ts_ns >= until_ns:
                return
            pop(heap)
            message = handler(ns, *args)
            if message is not None:
                emitted += 1
                yield ts_ns, message

    def write_file(
        self,
        path: str | Path,
        minutes: float | None = None,
        max_messages: int | None = None,
        max_fills: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        progress_every: int = 100_000,
    ) -> SimulationSummary:
        """Write the merged session to ``path``, one message per line (``\\n``-terminated).

        Args:
            path: the output file (overwritten).
            minutes: simulated minutes after the market's start time to cover, if given.
            max_messages: stop after this many messages, if given.
            max_fills: stop after the message that makes this many fills (150=F), if given.
                With no limit at all the call never returns.
            progress: called as ``progress(messages_written, event_time_ns)`` every
                ``progress_every`` messages.
            progress_every: see ``progress``.

        Returns:
            The summary of this call's output (``by_type`` counts every MsgType written;
            ``trades`` counts market trades).
        """
        market = self.market
        until_ns = None if minutes is None else market.start_ns + round(minutes * 60 * _NS_PER_S)
        start_trades = market.trades_emitted
        start_fills = self.fills_emitted

        def enough_fills() -> bool:
            return max_fills is not None and self.fills_emitted - start_fills >= max_fills

        written, size, by_type, first_ns, last_ns = write_lines(
            path, self.messages(limit=max_messages, until_ns=until_ns), progress,
            progress_every, enough_fills if max_fills is not None else None,
        )  # fmt: skip
        return SimulationSummary(
            messages=written,
            by_type=by_type,
            symbols=len(self._symbols),
            trades=market.trades_emitted - start_trades,
            first_event_ns=first_ns,
            last_event_ns=last_ns,
            bytes_written=size,
        )

    def expected_ledger(self) -> dict[str, AccountLedger]:
        """Return every account's cash and holdings after the messages emitted so far.

        Fills and busts are applied by the rules of `simulator.accounts` to the opening state
        of `accounts_csv` and `positions_csv`; holdings of quantity 0 are left out.

        Returns:
            ``{account: AccountLedger}`` for every account, in account order.
        """
        out: dict[str, AccountLedger] = {}
        for a in self._accounts:
            name = a.account.decode()
            out[name] = AccountLedger(
                account=name,
                owner=a.owner,
                cash=cents(a.cash),
                holdings={
                    s.decode(): (h.qty, h.avg) for s, h in sorted(a.holdings.items()) if h.qty
                },
            )
        return out

    def accounts_csv(self, path: str | Path) -> None:
        """Write the opening accounts as ``account,owner,cash,initial_margin,maintenance_margin``.

        Args:
            path: the CSV file (overwritten); the format of ``brokerflow load accounts``.
        """
        write_accounts_csv(path, self._initial)

    def positions_csv(self, path: str | Path) -> None:
        """Write the opening positions as ``account,symbol,quantity,avg_price``.

        Args:
            path: the CSV file (overwritten); the format of ``brokerflow load positions``.
        """
        write_positions_csv(path, self._initial)

    # ---------------------------------------------------------------- wire

    def _encode(
        self, msg_type: bytes, account: Account, ns: int, body: list[tuple[bytes, bytes]]
    ) -> bytes:
        session = self._sessions[account.session]
        if msg_type == b"8":
            sender, target = self._broker, session
        else:
            sender, target = session, self._broker
        key = (sender, target)
        seq = self._seq.get(key, 0) + 1
        self._seq[key] = seq
        stamp = self._clock.timestamp(ns // _NS_PER_MS)
        msg = simplefix.FixMessage()
        append = msg.append_pair
        append(b"8", b"FIX.4.4")
        append(b"35", msg_type)
        append(b"49", sender)
        append(b"56", target)
        append(b"34", b"%d" % seq)
        append(b"52", stamp)
        for tag, value in body:
            append(tag, value)
        append(b"60", stamp)
        self.messages_emitted += 1
        key_type = msg_type.decode()
        self.by_type[key_type] = self.by_type.get(key_type, 0) + 1
        return msg.encode()

    def _client_message(
        self, msg_type: bytes, order: Order, ns: int, cl_ord_id: bytes, orig: bytes | None,
        qty: int, price: int,
    ) -> bytes | None:  # fmt: skip
        if self.fills_only:
            return None
        body = [(b"11", cl_ord_id)]
        if orig is not None:
            body += [(b"41", orig), (b"37", order.order_id)]
        body += [(b"1", order.account.account), (b"55", order.symbol), (b"54", order.side),
                 (b"38", b"%d" % qty)]  # fmt: skip
        if msg_type != b"F":
            body.append((b"40", order.ord_type))
            if price:
                body.append((b"44", _px(price)))
            body.append((b"59", b"0"))
        return self._encode(msg_type, order.account, ns, body)

    def _report(
        self, order: Order, ns: int, exec_type: bytes, exec_id: bytes,
        extra: Sequence[tuple[bytes, bytes]] = (),
        last: tuple[int, int] | None = None, leaves: int | None = None,
        cl_ord_id: bytes | None = None, orig: bytes | None = None,
    ) -> bytes:  # fmt: skip
        """Build a 35=8 for ``order`` as it stands (after the change it reports)."""
        body = [(b"37", order.order_id), (b"11", cl_ord_id or order.cl_ord_id)]
        if orig is not None:
            body.append((b"41", orig))
        body += [
            (b"17", exec_id), (b"150", exec_type), (b"39", order.status),
            (b"1", order.account.account), (b"55", order.symbol), (b"54", order.side),
            (b"38", b"%d" % order.qty), (b"40", order.ord_type),
        ]  # fmt: skip
        if order.price:
            body.append((b"44", _px(order.price)))
        body.append((b"59", b"0"))
        if last is not None:
            body += [(b"32", b"%d" % last[0]), (b"31", _px(last[1]))]
        body += [
            (b"14", b"%d" % order.cum),
            (b"151", b"%d" % (order.qty - order.cum if leaves is None else leaves)),
            (b"6", avg_text(order.notional, order.cum)),
        ]
        body += extra
        return self._encode(b"8", order.account, ns, body)

    # ---------------------------------------------------------------- clients

    def _on_arrival(self, ns: int) -> bytes | None:
        rng = self._rng
        self._schedule(ns + self._interarrival_ns(), self._on_arrival)
        account = self._accounts[rng.randrange(len(self._accounts))]
        sellable = [
            s for s, h in account.holdings.items() if h.qty - account.reserved_qty.get(s, 0) >= LOT
        ]
        sell = bool(sellable) and rng.random() < _P_SELL
        if sell:
            symbol = sellable[rng.randrange(len(sellable))]
            idx = self._symbol_idx[symbol]
        else:
            idx = rng.randrange(len(self._symbols))
            symbol = self._symbols[idx]
        quote = self.market.top_of_book(idx)
        if quote is None:
            return None
        bid, _, ask, _, _ = quote
        p_market = 0.6 if self.fills_only else _P_MARKET
        p_marketable = 0.9 if self.fills_only else _P_MARKETABLE
        ord_type = _MARKET if rng.random() < p_market else _LIMIT
        price = 0
        if ord_type == _LIMIT:
            if rng.random() < p_marketable:
                price = ask + rng.randint(0, 2) if not sell else max(1, bid - rng.randint(0, 2))
            elif sell:
                price = ask + rng.randint(0, 10)
            else:
                price = max(1, bid - rng.randint(0, 10))
        r = rng.random()
        lots = (
            rng.randint(1, 5)
            if r < 0.75
            else rng.randint(6, 20)
            if r < 0.95
            else (rng.randint(21, 60))
        )
        if sell:
            held = account.holdings[symbol].qty - account.reserved_qty.get(symbol, 0)
            lots = min(lots, held // LOT)
        else:
            per_lot = LOT * (price or ask * _MARKET_RESERVE_NUM // _MARKET_RESERVE_DEN + 1)
            affordable = (account.cash - account.reserved_cash) // per_lot
            if rng.random() < _P_OVERSIZED:
                lots = max(lots, affordable + rng.randint(1, 5))
            elif affordable > 0:
                lots = min(lots, affordable)
        order = Order(
            cl_ord_id=self._next_id(b"C"),
            account=account,
            symbol_idx=idx,
            symbol=symbol,
            side=SELL if sell else BUY,
            qty=lots * LOT,
            ord_type=ord_type,
            price=price,
        )
        self.orders_sent += 1
        self._schedule(ns + self._latency_ns(), self._on_new_order, order)
        return self._client_message(b"D", order, ns, order.cl_ord_id, None, order.qty, price)

    def _on_cancel_request(self, ns: int, order: Order) -> bytes | None:
        if order.done or order.pending:
            return None
        order.pending = True
        cl_ord_id = self._next_id(b"C")
        self._schedule(ns + self._latency_ns(), self._on_cancel, order, cl_ord_id)
        return self._client_message(b"F", order, ns, cl_ord_id, order.cl_ord_id, order.qty, 0)

    def _on_replace_request(self, ns: int, order: Order) -> bytes | None:
        if order.done or order.pending:
            return None
        rng = self._rng
        quote = self.market.top_of_book(order.symbol_idx)
        assert quote is not None
        bid, _, ask, _, _ = quote
        aggressive = rng.random() < 0.3
        if order.side == BUY:
            price = ask if aggressive else max(1, bid - rng.randint(0, 3))
        else:
            price = bid if aggressive else ask + rng.randint(0, 3)
        qty = max(order.cum + LOT, order.qty + LOT * rng.randint(-2, 2))
        account = order.account
        # The change is reserved now (the order cannot fill while the request is in flight).
        if order.side == BUY:
            reserved = (qty - order.cum) * price
            if reserved - order.reserved > account.cash - account.reserved_cash:
                return None
            account.reserved_cash += reserved - order.reserved
            order.reserved, order.reserve_px = reserved, price
        else:
            symbol = order.symbol
            free = account.holdings[symbol].qty - account.reserved_qty[symbol] + order.reserved
            if qty - order.cum > free:
                return None
            account.reserved_qty[symbol] += qty - order.cum - order.reserved
            order.reserved = qty - order.cum
        order.pending = True
        cl_ord_id = self._next_id(b"C")
        self._schedule(ns + self._latency_ns(), self._on_replace, order, cl_ord_id, qty, price)
        return self._client_message(b"G", order, ns, cl_ord_id, order.cl_ord_id, qty, price)

    # ---------------------------------------------------------------- broker

    def _reject(self, ns: int, order: Order, reason: bytes) -> bytes:
        order.status, order.done = b"8", True
        return self._report(
            order, ns, b"8", self._next_id(b"E"), [(b"103", b"0"), (b"58", reason)], leaves=0
        )

    def _on_new_order(self, ns: int, order: Order) -> bytes:
        order.order_id = self._next_id(b"O")
        account = order.account
        symbol = order.symbol
        if order.side == BUY:
            if order.price:
                reserve_px = order.price
            else:
                quote = self.market.top_of_book(order.symbol_idx)
                assert quote is not None
                reserve_px = quote[2] * _MARKET_RESERVE_NUM // _MARKET_RESERVE_DEN + 1
            reserved = order.qty * reserve_px
            if reserved > account.cash - account.reserved_cash:
                return self._reject(ns, order, b"insufficient funds")
            account.reserved_cash += reserved
            order.reserve_px, order.reserved = reserve_px, reserved
        else:
            holding = account.holdings.get(symbol)
            free = 0 if holding is None else holding.qty - account.reserved_qty.get(symbol, 0)
            if order.qty > free:
                return self._reject(ns, order, b"insufficient position")
            account.reserved_qty[symbol] = account.reserved_qty.get(symbol, 0) + order.qty
            order.reserved = order.qty
        account.working[symbol] = account.working.get(symbol, 0) + 1
        self._schedule(ns + self._rng.randint(0, _NS_PER_MS), self._on_work, order, order.version)
        return self._report(order, ns, b"0", self._next_id(b"E"))

    def _release(self, order: Order) -> None:
        """Free what a finished order still holds."""
        account = order.account
        if order.side == BUY:
            account.reserved_cash -= order.reserved
        else:
            account.reserved_qty[order.symbol] -= order.reserved
        order.reserved = 0
        order.done = True
        account.working[order.symbol] -= 1

    def _on_cancel(self, ns: int, order: Order, cl_ord_id: bytes) -> bytes:
        orig = order.cl_ord_id
        order.cl_ord_id = cl_ord_id
        order.status, order.pending = b"4", False
        self._release(order)
        return self._report(order, ns, b"4", self._next_id(b"E"), leaves=0, orig=orig)

    def _on_replace(self, ns: int, order: Order, cl_ord_id: bytes, qty: int, price: int) -> bytes:
        orig = order.cl_ord_id
        order.cl_ord_id, order.qty, order.price = cl_ord_id, qty, price
        order.pending, order.rested = False, False
        order.status = b"1" if order.cum else b"0"
        order.version += 1
        self._schedule(ns + self._rng.randint(0, _NS_PER_MS), self._on_work, order, order.version)
        return self._report(order, ns, b"5", self._next_id(b"E"), orig=orig)

    def _rest(self, ns: int, order: Order) -> None:
        rng = self._rng
        if not order.rested:
            order.rested = True
            if not self.fills_only:
                r = rng.random()
                if r < _P_CANCEL:
                    delay = _NS_PER_S + int(rng.expovariate(1 / 20) * _NS_PER_S)
                    self._schedule(ns + delay, self._on_cancel_request, order)
                elif r < _P_CANCEL + _P_REPLACE:
                    delay = _NS_PER_S + int(rng.expovariate(1 / 10) * _NS_PER_S)
                    self._schedule(ns + delay, self._on_replace_request, order)
        delay = 200 * _NS_PER_MS + int(rng.expovariate(1 / 2) * _NS_PER_S)
        self._schedule(ns + delay, self._on_work, order, order.version)

    def _on_work(self, ns: int, order: Order, version: int) -> bytes | None:
        """Fill what the market allows now, then plan the next look at the order."""
        if order.done or version != order.version:
            return None
        rng = self._rng
        if order.pending:
            self._schedule(ns + 50 * _NS_PER_MS, self._on_work, order, version)
            return None
        quote = self.market.top_of_book(order.symbol_idx)
        assert quote is not None
        bid, bid_size, ask, ask_size, _ = quote
        buy = order.side == BUY
        touch, touch_size = (ask, ask_size) if buy else (bid, bid_size)
        leaves = order.qty - order.cum
        if order.price:
            marketable = touch <= order.price if buy else touch >= order.price
            if not marketable:
                self._rest(ns, order)
                return None
        if order.rested:
            px = order.price
            qty = min(leaves, LOT * rng.randint(1, 10))
        else:
            px = touch
            qty = min(leaves, max(LOT, touch_size))
        account = order.account
        if buy:
            free = account.cash - account.reserved_cash + order.reserved
            qty = min(qty, max(0, free) // (px * LOT) * LOT)
            if not qty:
                # The price ran away from what the order reserved: the broker cancels the rest.
                order.status = b"4"
                self._release(order)
                return self._report(
                    order, ns, b"4", self._next_id(b"E"), [(b"58", b"insufficient funds")],
                    leaves=0,
                )  # fmt: skip
        return self._fill(ns, order, qty, px)

    def _fill(self, ns: int, order: Order, qty: int, px: int) -> bytes:
        account = order.account
        symbol = order.symbol
        order.cum += qty
        order.notional += qty * px
        leaves = order.qty - order.cum
        if order.side == BUY:
            reserved = leaves * order.reserve_px
            account.reserved_cash += reserved - order.reserved
            order.reserved = reserved
        else:
            account.reserved_qty[symbol] -= qty
            order.reserved -= qty
        apply_fill(account, symbol, order.side, qty, px)
        fill = Fill(order, qty, px, self._next_id(b"E"), self._next_id(b"T"))
        account.last_fill[symbol] = fill
        self.fills_emitted += 1
        rng = self._rng
        if leaves:
            order.status = b"1"
            delay = rng.randint(5 * _NS_PER_MS, 300 * _NS_PER_MS)
            self._schedule(ns + delay, self._on_work, order, order.version)
        else:
            order.status = b"2"
            self._release(order)
        if rng.random() < _P_BUST:
            delay = _NS_PER_S + int(rng.expovariate(1 / 20) * _NS_PER_S)
            self._schedule(ns + delay, self._on_bust, fill)
        return self._report(
            order, ns, b"F", fill.exec_id, [(b"880", fill.match_id)], last=(qty, px)
        )

    def _on_bust(self, ns: int, fill: Fill) -> bytes | None:
        order = fill.order
        account = order.account
        symbol = order.symbol
        cost = fill.qty * fill.px
        if (
            order.status != b"2"
            or account.last_fill.get(symbol) is not fill
            or account.working.get(symbol, 0)
            or (order.side == SELL and account.cash - account.reserved_cash < cost)
        ):
            return None
        reverse_fill(account, symbol, order.side, fill.qty, fill.px)
        account.last_fill[symbol] = None
        # The order re-opens for the busted quantity and works again.
        order.cum -= fill.qty
        order.notional -= cost
        order.status = b"1" if order.cum else b"0"
        order.done = False
        order.version += 1
        account.working[symbol] += 1
        if order.side == BUY:
            if not order.price:
                quote = self.market.top_of_book(order.symbol_idx)
                assert quote is not None
                order.reserve_px = quote[2] * _MARKET_RESERVE_NUM // _MARKET_RESERVE_DEN + 1
            order.reserved = fill.qty * order.reserve_px
            account.reserved_cash += order.reserved
        else:
            order.reserved = fill.qty
            account.reserved_qty[symbol] = account.reserved_qty.get(symbol, 0) + fill.qty
        self._schedule(ns + self._latency_ns(), self._on_work, order, order.version)
        return self._report(
            order, ns, b"H", self._next_id(b"E"),
            [(b"19", fill.exec_id), (b"880", fill.match_id)], last=(fill.qty, fill.px),
        )  # fmt: skip
