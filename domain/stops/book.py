"""Domain layer: the trigger engine of stop, stop-limit, trailing-stop and contingent orders.

Pure logic, stdlib only: no clock, no I/O, no logging. The flow feeds order requests, quotes and
fill notifications in (every call carries its event time, int UTC ns) and gets plain frozen
outcome dataclasses back. A `StopBook` is plain picklable state (Bytewax recovery snapshots it):
it stores no lambdas, and `pickle.loads(pickle.dumps(book))` behaves exactly like `book`.

Orders (`StopOrder`, built from a 35=D by `order_from_request`):

- Stop, OrdType (40) 3: triggers a market child (40=1). Stop-limit, 40=4: a limit child at
  Price (44). Trailing stop, 40=P with ExecInst (18) containing "a": PegOffsetValue (211) is a
  price offset (PegOffsetType (836) "0") or basis points ("1"); an optional `activation_px`
  delays trailing until the reference reaches it. A trailing stop sends a market child.
- TimeInForce (59): Day "0" (the default), GTC "1" (expires `gtc_days` after acceptance), GTD "6"
  (at ExpireTime (126)). A Day order expires at the first session close strictly after its
  acceptance (`session_close`, UTC; no holiday calendar). An order is gone *at* its expiry time:
  every call first expires what is due at its event time, so a quote at or after the expiry
  cannot trigger the order. A replace keeps the original expiry.
- Contingent lists (`submit_list`; from NewOrderList 35=E in `flows.stops`): ContingencyType (1385)
  1, OCO: when a leg triggers, or a fill of a leg is reported, the other legs are cancelled in
  the same step. 2, OTO: the first order is the entry, the rest are its children, held back
  until the entry is FULLY filled (`on_fill`); two or more children are linked as an OCO
  (bracket: take-profit limit + stop-loss). Limit or market legs (40=2/1) are not triggered here:
  `Activated` carries them as a `ChildOrder` to send, and the book only tracks them for the
  contingency. A triggered entry's fill is reported under its child's ClOrdID (`"<id>.T"`).

Decisions:

- Reference price: last trade by default; per order (`StopOrder.reference`), else per symbol
  (`symbol_references`), else `default_reference`; one of last, bid, ask, mid ((bid + ask) / 2
  of the current bid and ask). It is fixed at acceptance. Values are kept as quoted (a float is
  read as the decimal it prints as, when a Decimal is needed).
- Only a reference whose value *changed* is evaluated. `on_quote` takes the fields a quote carries
  (None = not carried) and the book remembers the last bid, ask and last of each symbol, so a
  full L1 `Quote` that repeats an unchanged last does not re-evaluate stops on last. Nothing is
  lost: every resting order was already checked against the unchanged value (at acceptance or at
  the change), and a repeated value cannot ratchet a trailing stop.
- A price that gaps through the stop triggers at the observed reference (`trigger_px`), not at
  StopPx. Sell stops trigger when reference <= stop, buy stops when reference >= stop.
- Wrong-side stops are REJECTED at intake and on replace (a broker does so): a sell stop at or
  above, a buy stop at or below the current reference would fire at once. With no reference
  known yet the stop is accepted and the first price decides. A bracket stop-loss activated by
  the entry's fill whose stop the market has already passed triggers at once at the current
  reference instead: the position exists and must be protected.
- Trailing stops: a sell trailing stop keeps the high-water mark X of its reference since
  acceptance (or since the activation price was reached), stop = X - offset or
  X * (1 - bps / 10000); a buy trailing stop the low-water mark, stop = X + offset or
  X * (1 + bps / 10000). X only moves in the client's favour. With no reference known at
  acceptance, X starts at the first price. Prices are assumed positive; stops are not rounded
  to a tick.
- Order of outcomes: within one call, expiries first (by expiry time, then acceptance sequence),
  then the call's own outcomes. Orders fired by one quote are processed by acceptance sequence
  (a replace is a new acceptance, as at a venue); an OCO leg cancelled by an earlier sibling in
  the same step does not trigger. Same inputs give the same outcomes in the same order.
- Exactly once: a triggered order leaves the book; a ClOrdID that is resting, or left the book
  within `dedup_window_ns`, is rejected as a duplicate, so a resent 35=D cannot fire twice.
- An OCO leg's partial fill cancels the siblings (FIX OCO semantics); a client cancel of one leg
  cancels that leg only. A cancel of an entry, or its expiry, cancels its held children.

Data structures and complexity (n = resting orders of one symbol, reference and side):

- Stops and stop-limits: one binary heap per (reference, side) of (key, seq, ClOrdID) with key =
  stop for buys and -stop for sells, so both sides fire while `key <= key(reference)`. Deletion
  is lazy (an entry counts only while its ClOrdID maps to the same seq) and a heap is rebuilt
  when dead entries outnumber live ones: O(log n) amortised per accept/cancel/replace/trigger.
- Trailing stops: one `_TrailLadder` per (reference, side, offset type). Orders accepted earlier
  have marks at least as good as later ones, so groups of equal mark form a monotonic stack; a
  new best price pops the groups it improves on and melds them into one (union-find records
  the merges). Each group holds a pairing heap of (offset, seq, ClOrdID) (smallest offset fires
  first; O(1) insert and meld, O(log n) amortised pop), and a heap over groups keyed by each
  group's most exposed stop finds the groups that fire. A group is created by one acceptance and
  merged away at most once, so ratchets cost O(1) amortised per order plus one O(log n) push
  per quote; orders awaiting their activation price wait in a heap keyed by it. Amortised
  O(log n) per order accepted, cancelled, replaced or triggered.
- Per quote: each reference with orders has a band (`_Band`): per side, the values at which one
  of its orders may fire or activate, kept with the structures (as floats rounded outwards, in
  one array per symbol: a quiet quote reads one block of memory and makes no Decimal). A value
  inside it costs a few comparisons and widens the band's run (the highest and lowest value
  since the trailing ladders were last brought up to date); the ladders ratchet to the run
  lazily, before anything reads or changes them and before a value outside the band is
  evaluated. Outside the band: O(1) per structure of that side, plus the fired orders (and
  dead entries, once each); never a scan.
- Expiry: one heap of (expire_ns, seq, ClOrdID), lazy deletion: O(log n) per order.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import time
from decimal import Decimal

from domain.errors import ConfigError
from domain.events import OrderRequest
from domain.quotes import Quote

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
NS_PER_MS = 1_000_000

# OrdType (40)
ORD_TYPE_MARKET = "1"
ORD_TYPE_LIMIT = "2"
ORD_TYPE_STOP = "3"
ORD_TYPE_STOP_LIMIT = "4"
ORD_TYPE_PEGGED = "P"
# TimeInForce (59)
TIF_DAY = "0"
TIF_GTC = "1"
TIF_GTD = "6"
# PegOffsetType (836)
PEG_OFFSET_PRICE = "0"
PEG_OFFSET_BPS = "1"
# ExecInst (18) "a": trailing stop peg.
EXEC_INST_TRAILING_STOP = "a"
# ContingencyType (1385)
CONTINGENCY_OCO = 1
CONTINGENCY_OTO = 2
# Side (54)
SIDE_BUY = "1"
SELL_SIDES = frozenset({"2", "5", "6"})  # sell, sell short, sell short exempt

REFERENCES = ("last", "bid", "ask", "mid")

_STOP_TYPES = frozenset({ORD_TYPE_STOP, ORD_TYPE_STOP_LIMIT, ORD_TYPE_PEGGED})
_LEG_TYPES = frozenset({ORD_TYPE_MARKET, ORD_TYPE_LIMIT})  # allowed in lists only
_TIFS = frozenset({TIF_DAY, TIF_GTC, TIF_GTD})
_BPS = Decimal(10_000)
_ONE = Decimal(1)
_NO_ACTIVATION = Decimal("-Infinity")  # heap key of "activate at the first price"
_INF = Decimal("Infinity")
_NEG_INF = Decimal("-Infinity")
_BAND_ATTR = {ref: f"band_{ref}" for ref in REFERENCES}
_SELLS, _BUYS, _BOTH = 1, 2, 3  # sides of a band
# Dead entries a structure may hold beyond its live ones before it compacts (amortised O(1)).
_COMPACT_SLACK = 64

# Record states.
_PENDING = "pending"  # an OTO child held until its entry is fully filled
_WORKING = "working"  # resting here (stops) or working at the venue (limit/market legs)


@dataclass(frozen=True, slots=True)
class StopOrder:
    """A stop, stop-limit or trailing-stop order (or a limit/market leg of a contingent list).

    Attributes:
        cl_ord_id: ClOrdID (11).
        symbol: Symbol (55).
        side: Side (54): "1" buy; "2", "5", "6" sell.
        order_qty: OrderQty (38).
        ord_type: OrdType (40): "3" stop, "4" stop-limit, "P" trailing stop; "1"/"2" in lists.
        stop_px: StopPx (99), for stops and stop-limits.
        price: Price (44): the limit of a stop-limit's child, or of a limit leg.
        time_in_force: TimeInForce (59): "0" Day, "1" GTC, "6" GTD.
        expire_time: ExpireTime (126), UTC ns, for GTD.
        peg_offset_value: PegOffsetValue (211): the trailing amount (price, or bps).
        peg_offset_type: PegOffsetType (836): "0" price, "1" basis points.
        activation_px: trailing starts once the reference reaches this price (sell: at or
            above, buy: at or below); None starts at acceptance.
        reference: "last", "bid", "ask" or "mid"; None takes the book's setting.
        account: Account (1), copied to the child.
    """

    cl_ord_id: str
    symbol: str
    side: str
    order_qty: Decimal | None
    ord_type: str | None
    stop_px: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str = TIF_DAY
    expire_time: int | None = None
    peg_offset_value: Decimal | None = None
    peg_offset_type: str = PEG_OFFSET_PRICE
    activation_px: Decimal | None = None
    reference: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class ChildOrder:
    """An order to send to the venue: a triggered stop's child, or a released list leg.

    Attributes:
        cl_ord_id: ClOrdID (11): `"<stop ClOrdID>.T"` for a trigger, the leg's own for a leg.
        ord_type: OrdType (40): "1" market or "2" limit.
        price: Price (44) of a limit child, else None.
    """

    cl_ord_id: str
    symbol: str
    side: str
    order_qty: Decimal
    ord_type: str
    price: Decimal | None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The order rests in the book (or, in a list, waits for its entry's fill)."""

    cl_ord_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request the book refused; nothing changed. `cl_ord_id` is the request's ClOrdID."""

    cl_ord_id: str
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Replaced:
    """OrigClOrdID (41) now rests as ClOrdID (11) with the new terms."""

    cl_ord_id: str
    orig_cl_ord_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Triggered:
    """The stop fired and left the book: send `child`.

    Attributes:
        stop_px: the stop price when it fired (a trailing stop's ratcheted stop).
        trigger_px: the reference price observed, past the stop when the price gapped.
        reference: which reference fired it.
    """

    order: StopOrder
    stop_px: Decimal
    trigger_px: Decimal
    reference: str
    ts_ns: int
    child: ChildOrder


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The order left the book unfired ("cancel requested", "OCO sibling X triggered", ...)."""

    cl_ord_id: str
    reason: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Expired:
    """The order's time in force ran out; `ts_ns` is when it was due."""

    cl_ord_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Activated:
    """A list order became live: a held OTO child, or a limit/market leg to send now (`child`)."""

    cl_ord_id: str
    ts_ns: int
    child: ChildOrder | None = None


Outcome = Accepted | Rejected | Replaced | Triggered | Cancelled | Expired | Activated


def check_stop_order(order: StopOrder, in_list: bool = False) -> str | None:
    """Return why `order`'s fields are unusable, or None when they are fine.

    Args:
        order: the order to check (state-independent checks only).
        in_list: limit and market legs are allowed in contingent lists.
    """
    side = order.side
    if side != SIDE_BUY and side not in SELL_SIDES:
        return f"Side(54) {side} is not supported"
    qty = order.order_qty
    if qty is None:
        return "OrderQty(38) missing"
    if not qty > 0:
        return f"OrderQty(38) must be positive, was {qty}"
    ord_type = order.ord_type
    if ord_type == ORD_TYPE_STOP or ord_type == ORD_TYPE_STOP_LIMIT:
        if order.stop_px is None:
            return "StopPx(99) missing for a stop order"
        if not order.stop_px > 0:
            return f"StopPx(99) must be positive, was {order.stop_px}"
    elif ord_type == ORD_TYPE_PEGGED:
        offset = order.peg_offset_value
        if offset is None:
            return "PegOffsetValue(211) missing for a trailing stop"
        if not offset > 0:
            return f"PegOffsetValue(211) must be positive, was {offset}"
        if order.peg_offset_type == PEG_OFFSET_BPS:
            if offset >= _BPS:
                return f"PegOffsetValue(211) must be below 10000 bps, was {offset}"
        elif order.peg_offset_type != PEG_OFFSET_PRICE:
            return f"PegOffsetType(836) {order.peg_offset_type} is not supported"
        if order.activation_px is not None and not order.activation_px > 0:
            return f"activation price must be positive, was {order.activation_px}"
    elif not (in_list and ord_type in _LEG_TYPES):
        return f"OrdType(40) {ord_type} is not a stop order"
    if ord_type == ORD_TYPE_STOP_LIMIT or ord_type == ORD_TYPE_LIMIT:
        if order.price is None:
            return "Price(44) missing for a limit order"
        if not order.price > 0:
            return f"Price(44) must be positive, was {order.price}"
    if order.reference is not None and order.reference not in REFERENCES:
        return f"reference {order.reference} is not one of last, bid, ask, mid"
    if order.time_in_force not in _TIFS:
        return f"TimeInForce(59) {order.time_in_force} is not supported for stop orders"
    if order.time_in_force == TIF_GTD and order.expire_time is None:
        return "ExpireTime(126) missing for TimeInForce(59) 6 (GTD)"
    return None


def order_from_request(
    request: OrderRequest,
    *,
    reference: str | None = None,
    activation_px: Decimal | None = None,
) -> StopOrder | Rejected:
    """Build a `StopOrder` from a new order request (35=D), or say why not.

    Args:
        request: the decoded 35=D.
        reference: the order's reference price (the FIX message has no field for it).
        activation_px: a trailing stop's activation price (likewise not on the wire).

    Returns:
        The order, or `Rejected` naming the missing or unsupported field.
    """
    ts = request.ts_event
    if request.msg_type != "D":
        return Rejected(request.cl_ord_id, f"MsgType(35) {request.msg_type} is not 35=D", ts)
    if request.ord_type == ORD_TYPE_PEGGED and EXEC_INST_TRAILING_STOP not in (
        request.exec_inst or ""
    ):
        return Rejected(
            request.cl_ord_id, "OrdType(40) P needs ExecInst(18) a (trailing stop peg)", ts
        )
    order = StopOrder(
        cl_ord_id=request.cl_ord_id,
        symbol=request.symbol,
        side=request.side,
        order_qty=request.order_qty,
        ord_type=request.ord_type,
        stop_px=request.stop_px if request.ord_type != ORD_TYPE_PEGGED else None,
        price=request.price if request.ord_type == ORD_TYPE_STOP_LIMIT else None,
        time_in_force=request.time_in_force or TIF_DAY,  # FIX: absent 59 means Day
        expire_time=request.expire_time,
        peg_offset_value=request.peg_offset_value,
        peg_offset_type=request.peg_offset_type or PEG_OFFSET_PRICE,
        activation_px=activation_px,
        reference=reference,
        account=request.account,
    )
    reason = check_stop_order(order)
    if reason is not None:
        return Rejected(request.cl_ord_id, reason, ts)
    return order


def _key(buy: bool, px: Decimal) -> Decimal:
    # Heap key: both sides fire while key(stop) <= key(reference) and improve (trailing) when
    # key(price) < key(mark).
    return px if buy else -px


def _to_decimal(value: float | Decimal | None) -> Decimal | None:
    if value is None or type(value) is Decimal:
        return value
    # repr of a float is the shortest string that round-trips: the wire decimal (events.py).
    return Decimal(repr(value)) if type(value) is float else Decimal(value)


class _KeyHeap:
    """A min-heap of (key, seq, cl_ord_id) with lazy deletion through `live`."""

    __slots__ = ("heap", "live")

    def __init__(self) -> None:
        self.heap: list[tuple[Decimal, int, str]] = []
        self.live: dict[str, int] = {}  # cl_ord_id -> seq of its one valid entry

    def push(self, key: Decimal, seq: int, cl_ord_id: str) -> None:
        self.live[cl_ord_id] = seq
        heapq.heappush(self.heap, (key, seq, cl_ord_id))

    def discard(self, cl_ord_id: str) -> None:
        if (
            self.live.pop(cl_ord_id, None) is not None
            and len(self.heap) > 2 * len(self.live) + _COMPACT_SLACK
        ):
            live = self.live
            self.heap = [e for e in self.heap if live.get(e[2]) == e[1]]
            heapq.heapify(self.heap)

    def pop_upto(self, limit: Decimal) -> list[tuple[int, str]]:
        """Remove and return (seq, cl_ord_id) of the live entries with key <= limit."""
        out: list[tuple[int, str]] = []
        heap = self.heap
        live = self.live
        while heap and heap[0][0] <= limit:
            _, seq, cl_ord_id = heapq.heappop(heap)
            if live.get(cl_ord_id) == seq:
                del live[cl_ord_id]
                out.append((seq, cl_ord_id))
        return out


# A pairing-heap node: [entry, children]; entry = (offset, seq, cl_ord_id).
def _meld(a: list | None, b: list | None) -> list | None:
    if a is None:
        return b
    if b is None:
        return a
    if b[0] < a[0]:
        a, b = b, a
    a[1].append(b)
    return a


def _pop_root(node: list) -> list | None:
    kids = node[1]
    if not kids:
        return None
    # Two-pass pairing: pair left to right, then meld the pairs right to left.
    paired = [_meld(kids[i], kids[i + 1]) for i in range(0, len(kids) - 1, 2)]
    if len(kids) % 2:
        paired.append(kids[-1])
    root = paired.pop()
    while paired:
        root = _meld(paired.pop(), root)
    return root


class _Group:
    """Trailing stops sharing one mark `x`, in a pairing heap by offset."""

    __slots__ = ("x", "root", "version")

    def __init__(self, x: Decimal) -> None:
        self.x = x
        self.root: list | None = None
        self.version = 0

    def __getstate__(self) -> tuple:
        # Flatten: a pairing heap can be deep, and pickle recurses on nesting.
        entries = []
        stack = [self.root] if self.root is not None else []
        while stack:
            node = stack.pop()
            entries.append(node[0])
            stack.extend(node[1])
        entries.sort()
        return (self.x, self.version, entries)

    def __setstate__(self, state: tuple) -> None:
        self.x, self.version, entries = state
        root = None
        for entry in entries:
            root = _meld(root, [entry, []])
        self.root = root


class _TrailLadder:
    """Trailing stops of one symbol, reference, side and offset type (see the module docstring).

    `live` maps a ClOrdID to (offset, seq, gid, activation key): gid is the group it joined
    (follow `parent` to the group it was merged into), -1 while it waits for activation.
    """

    __slots__ = ("buy", "bps", "groups", "stack", "parent", "group_heap", "live", "dormant",
                 "next_gid", "entries", "min_offset")  # fmt: skip

    def __init__(self, buy: bool, bps: bool) -> None:
        self.buy = buy
        self.bps = bps
        self.groups: dict[int, _Group] = {}  # live root gid -> group
        self.stack: list[int] = []  # root gids, bottom (best mark) to top
        self.parent: dict[int, int] = {}  # merged gid -> gid it merged into
        self.group_heap: list[tuple[Decimal, int, int]] = []  # (stop key, gid, version)
        self.live: dict[str, tuple[Decimal, int, int, Decimal | None]] = {}
        self.dormant = _KeyHeap()  # keyed by -key(activation_px)
        self.next_gid = 0
        self.entries = 0  # pairing-heap entries, dead ones included
        # The smallest offset of any order added since the last rebuild (a bound for `_Band`).
        self.min_offset: Decimal | None = None

    def stop_px(self, x: Decimal, offset: Decimal) -> Decimal:
        if self.bps:
            ratio = offset / _BPS
            return x * (_ONE + ratio) if self.buy else x * (_ONE - ratio)
        return x + offset if self.buy else x - offset

    def _find(self, gid: int) -> int:
        parent = self.parent
        root = gid
        while root in parent:
            root = parent[root]
        while gid != root:
            parent[gid], gid = root, parent[gid]
        return root

    def mark(self, cl_ord_id: str) -> Decimal | None:
        """The order's high/low-water mark, or None while it waits for activation."""
        gid = self.live[cl_ord_id][2]
        return None if gid < 0 else self.groups[self._find(gid)].x

    def _push_group(self, gid: int, group: _Group) -> None:
        group.version += 1
        if group.root is not None:
            offset = group.root[0][0]  # may be a dead entry: a lower bound, checked on pop
            key = _key(self.buy, self.stop_px(group.x, offset))
            heapq.heappush(self.group_heap, (key, gid, group.version))

    def _join_top(self, cl_ord_id: str, seq: int, offset: Decimal, x: Decimal) -> None:
        # Precondition: every group's mark is at least as good as x (x is the current price).
        stack = self.stack
        if stack and self.groups[stack[-1]].x == x:
            gid = stack[-1]
            group = self.groups[gid]
        else:
            gid = self.next_gid
            self.next_gid += 1
            group = self.groups[gid] = _Group(x)
            stack.append(gid)
        group.root = _meld(group.root, [(offset, seq, cl_ord_id), []])
        self.entries += 1
        self.live[cl_ord_id] = (offset, seq, gid, None)
        self._push_group(gid, group)
        if self.min_offset is None or offset < self.min_offset:
            self.min_offset = offset

    def add(
        self,
        cl_ord_id: str,
        seq: int,
        offset: Decimal,
        current: Decimal | None,
        activation_px: Decimal | None,
    ) -> None:
        """Add an order; it trails from `current` unless it waits for a price or activation."""
        buy = self.buy
        if current is not None and (
            activation_px is None or _key(buy, current) <= _key(buy, activation_px)
        ):
            self._join_top(cl_ord_id, seq, offset, current)
            return
        act_key = _NO_ACTIVATION if activation_px is None else -_key(buy, activation_px)
        self.dormant.push(act_key, seq, cl_ord_id)
        self.live[cl_ord_id] = (offset, seq, -1, act_key)

    def rekey(self, old_id: str, new_id: str, seq: int, offset: Decimal) -> None:
        """Carry a replaced order over to its new ClOrdID, seq and offset, keeping its mark."""
        _, _, gid, act_key = self.live.pop(old_id)
        if gid < 0:
            self.dormant.discard(old_id)
            self.dormant.push(act_key, seq, new_id)
            self.live[new_id] = (offset, seq, -1, act_key)
            return
        gid = self._find(gid)
        group = self.groups[gid]
        group.root = _meld(group.root, [(offset, seq, new_id), []])
        self.entries += 1
        self.live[new_id] = (offset, seq, gid, None)
        self._push_group(gid, group)
        if self.min_offset is None or offset < self.min_offset:
            self.min_offset = offset

    def discard(self, cl_ord_id: str) -> None:
        entry = self.live.pop(cl_ord_id, None)
        if entry is not None:
            if entry[2] < 0:
                self.dormant.discard(cl_ord_id)
            self._maybe_rebuild()

    def ratchet(self, px: Decimal) -> bool:
        """Pop the groups whose mark `px` improves on and meld them into one, marked `px`.

        Returns whether any mark moved.
        """
        buy = self.buy
        price_key = px if buy else -px  # _key, inlined
        groups = self.groups
        stack = self.stack
        if stack and (groups[stack[-1]].x if buy else -groups[stack[-1]].x) > price_key:
            base_gid = stack.pop()
            base = groups[base_gid]
            while stack and _key(buy, groups[stack[-1]].x) > price_key:
                # Keep the lower (older) group as the root: it absorbs the newer one.
                gid = stack.pop()
                group = groups.pop(gid)
                group.root = _meld(group.root, base.root)
                self.parent[base_gid] = gid
                del groups[base_gid]
                groups[gid] = group
                base_gid, base = gid, group
            base.x = px
            stack.append(base_gid)
            self._push_group(base_gid, base)
            return True
        return False

    def top_mark(self) -> Decimal | None:
        """The least favourable mark of the active orders (the newest group's), or None."""
        return self.groups[self.stack[-1]].x if self.stack else None

    def update(self, px: Decimal) -> list[tuple[int, str, Decimal]]:
        """Apply a new reference price; return (seq, cl_ord_id, stop) of the orders it fires."""
        buy = self.buy
        price_key = px if buy else -px
        groups = self.groups
        # 1. Ratchet.
        self.ratchet(px)
        # 2. Activation: the orders whose activation price (or first price) is reached.
        dormant = self.dormant
        if dormant.heap and dormant.heap[0][0] <= -price_key:
            live = self.live
            for seq, cl_ord_id in sorted(dormant.pop_upto(-price_key)):
                self._join_top(cl_ord_id, seq, live[cl_ord_id][0], px)
        # 3. Fire: the groups whose most exposed stop is reached, smallest offset first.
        fired: list[tuple[int, str, Decimal]] = []
        group_heap = self.group_heap
        live = self.live
        while group_heap:
            key, gid, version = group_heap[0]
            group = groups.get(gid)
            if group is None or group.version != version:
                heapq.heappop(group_heap)
                continue
            if key > price_key:
                break
            heapq.heappop(group_heap)
            x = group.x
            root = group.root
            while root is not None:
                offset, seq, cl_ord_id = root[0]
                entry = live.get(cl_ord_id)
                if entry is not None and entry[1] == seq:
                    stop = self.stop_px(x, offset)
                    if _key(buy, stop) > price_key:
                        break
                    del live[cl_ord_id]
                    fired.append((seq, cl_ord_id, stop))
                root = _pop_root(root)
                self.entries -= 1
            group.root = root
            self._push_group(gid, group)
        if fired:
            self._maybe_rebuild()
        return fired

    def _maybe_rebuild(self) -> None:
        size = self.entries + len(self.parent) + len(self.group_heap) + len(self.groups)
        if size > 4 * len(self.live) + _COMPACT_SLACK:
            self._rebuild()

    def _rebuild(self) -> None:
        # Drop dead entries, merged group ids, empty groups and stale group keys: O(n log n),
        # paid for by the >= 3n removals since the last rebuild.
        buy = self.buy
        active = []
        for cl_ord_id, (offset, seq, gid, _) in self.live.items():
            if gid >= 0:
                x = self.groups[self._find(gid)].x
                active.append((_key(buy, x), seq, x, offset, cl_ord_id))
        active.sort()
        self.groups = {}
        self.stack = []
        self.parent = {}
        self.group_heap = []
        self.entries = 0
        self.min_offset = min((entry[0] for entry in self.live.values()), default=None)
        for _, seq, x, offset, cl_ord_id in active:
            self._join_top(cl_ord_id, seq, offset, x)


def _session_close_ns(close: time) -> int:
    return (
        close.hour * 3600 + close.minute * 60 + close.second
    ) * NS_PER_SECOND + close.microsecond * 1000


@dataclass(slots=True)
class _Record:
    order: StopOrder
    seq: int  # acceptance sequence: ordering and the validity token of heap entries
    state: str
    buy: bool
    reference: str
    expire_ns: int
    oco: str | None = None  # OCO list id
    parent: str | None = None  # OTO entry this child waits for
    children: list[str] = field(default_factory=list)  # held OTO children


# The float shadow of a band: slots of `_Symbol.lim` from the band's `base`.
_HIGH, _LOW = 0, 1  # the run's extremes
_SELL_AT, _WAKE_HIGH, _SELL_MARK, _SELL_OFF, _SELL_FACTOR = 2, 3, 4, 5, 6
_BUY_AT, _WAKE_LOW, _BUY_MARK, _BUY_OFF, _BUY_FACTOR = 7, 8, 9, 10, 11
_LIM_WIDTH = 12
_REF_BASE = {ref: i * _LIM_WIDTH for i, ref in enumerate(REFERENCES)}
_NAN = float("nan")  # "no such order": every comparison with it is false
# Relative slack of the float bounds that are computed per quote (a few ulps suffice).
_EPS = 2.0**-40


def _up(value: Decimal) -> float:
    """A float at or above `value` (float() rounds to nearest: one step up is always enough)."""
    return math.nextafter(float(value), math.inf)


def _down(value: Decimal) -> float:
    return math.nextafter(float(value), -math.inf)


@dataclass(slots=True)
class _Band:
    """One reference price of one symbol: its structures, and the values at which they may act.

    A value strictly inside the band can neither fire nor activate an order on that reference:
    the quote only widens `high`/`low`, the extremes of the reference since the sell and the buy
    trailing ladders were last brought up to date. Trailing stops ratchet lazily to them: a
    sell's mark is max(its group's mark, high), a buy's min(..., low); the ladders apply that
    before anything reads or changes them, and before a value that may fire on their side.

    Each side (sells fire at or below, buys at or above) is judged and evaluated on its own.
    Bounds come from the structures' tops in Decimal and are kept as floats rounded outwards,
    next to each other in the symbol's `lim` array, so that a quote is judged from one block of
    memory (the resting orders of a million stops do not fit in a cache; every object a quote
    touches costs a trip to memory). A bound only ever lets more through: lazy-deletion tops may
    be dead entries, `min_offset` a departed order's, and the per-quote float sums carry a
    slack of a few ulps. The worst it costs is a look at the structures that finds nothing.
    `high`/`low` are the values as quoted (float or Decimal), read as Decimals when used.
    """

    lim: array  # the symbol's float shadows (`_Symbol.lim`)
    base: int  # this reference's first slot in it
    high: float | Decimal | None = None
    low: float | Decimal | None = None
    sell_heap: _KeyHeap | None = None  # the reference's fixed sell stops
    buy_heap: _KeyHeap | None = None
    sell_ladders: list[_TrailLadder] = field(default_factory=list)  # by price, by bps
    buy_ladders: list[_TrailLadder] = field(default_factory=list)

    def restart(self, sides: int, value: float | Decimal | None) -> None:
        """Start the run of `sides` at `value` (the reference now; None: not quoted yet)."""
        lim, i = self.lim, self.base
        if sides & _SELLS:
            self.high = value
            lim[i + _HIGH] = -math.inf if value is None else float(value)
        if sides & _BUYS:
            self.low = value
            lim[i + _LOW] = math.inf if value is None else float(value)

    def rebound(self, sides: int = _BOTH) -> None:
        """Recompute the bounds of `sides` from the structures (after they changed)."""
        lim, i = self.lim, self.base
        if sides & _SELLS:
            heap = self.sell_heap
            at = -heap.heap[0][0] if heap is not None and heap.heap else _NEG_INF
            mark = wake = _INF
            off = factor = None
            for ladder in self.sell_ladders:
                if ladder.group_heap:
                    at = max(at, -ladder.group_heap[0][0])  # stale or dead entries: higher
                top = ladder.top_mark()
                if top is not None and ladder.min_offset is not None:
                    mark = min(mark, top)
                    if ladder.bps:
                        factor = _ONE - ladder.min_offset / _BPS  # as `stop_px` computes it
                    else:
                        off = ladder.min_offset
                if ladder.dormant.heap:
                    wake = min(wake, ladder.dormant.heap[0][0])  # -key(activation) = price
            lim[i + _SELL_AT] = _up(at)
            lim[i + _WAKE_HIGH] = _down(wake)
            lim[i + _SELL_MARK] = _down(mark)
            lim[i + _SELL_OFF] = _NAN if off is None else float(off)
            lim[i + _SELL_FACTOR] = _NAN if factor is None else float(factor)
        if sides & _BUYS:
            heap = self.buy_heap
            at = heap.heap[0][0] if heap is not None and heap.heap else _INF
            mark = wake = _NEG_INF
            off = factor = None
            for ladder in self.buy_ladders:
                if ladder.group_heap:
                    at = min(at, ladder.group_heap[0][0])
                top = ladder.top_mark()
                if top is not None and ladder.min_offset is not None:
                    mark = max(mark, top)
                    if ladder.bps:
                        factor = _ONE + ladder.min_offset / _BPS
                    else:
                        off = ladder.min_offset
                if ladder.dormant.heap:
                    wake = max(wake, -ladder.dormant.heap[0][0])
            lim[i + _BUY_AT] = _down(at)
            lim[i + _WAKE_LOW] = _up(wake)
            lim[i + _BUY_MARK] = _up(mark)
            lim[i + _BUY_OFF] = _NAN if off is None else float(off)
            lim[i + _BUY_FACTOR] = _NAN if factor is None else float(factor)


def _stirs(band: _Band, lim: array, i: int, px: float | Decimal) -> int:
    """Record `px` in the band's run; return the sides (`_SELLS`, `_BUYS`) it may act on.

    `lim`/`i` are the band's (passed in so that a quiet quote never touches the band itself).
    """
    f = px if type(px) is float else float(px)
    sides = 0
    high = lim[i]
    if f >= high and (f > high or (type(px) is not float and px > _to_decimal(band.high))):
        lim[i] = high = f
        band.high = px
    if f <= lim[i + _SELL_AT] or f >= lim[i + _WAKE_HIGH]:
        sides = _SELLS
    elif high > lim[i + _SELL_MARK]:
        slack = high * _EPS
        if f <= high - lim[i + _SELL_OFF] + slack or f <= high * lim[i + _SELL_FACTOR] + slack:
            sides = _SELLS
    low = lim[i + _LOW]
    if f <= low and (f < low or (type(px) is not float and px < _to_decimal(band.low))):
        lim[i + _LOW] = low = f
        band.low = px
    if f >= lim[i + _BUY_AT] or f <= lim[i + _WAKE_LOW]:
        return sides | _BUYS
    if low < lim[i + _BUY_MARK]:
        slack = low * _EPS
        if f >= low + lim[i + _BUY_OFF] - slack or f >= low * lim[i + _BUY_FACTOR] - slack:
            return sides | _BUYS
    return sides


def _evaluate(
    band: _Band,
    ref: str,
    quoted: float | Decimal,
    sides: int,
    fired: list[tuple[int, str, Decimal | None, Decimal, str]],
) -> None:
    """Fire what a new value of `ref` reaches on `sides`; append (seq, id, stop, px, ref)."""
    px = _to_decimal(quoted)
    if sides & _SELLS:
        _fire_side(band.sell_heap, band.sell_ladders, _to_decimal(band.high), -px, px, ref, fired)
    if sides & _BUYS:
        _fire_side(band.buy_heap, band.buy_ladders, _to_decimal(band.low), px, px, ref, fired)
    band.restart(sides, quoted)
    band.rebound(sides)


def _fire_side(
    heap: _KeyHeap | None,
    ladders: list[_TrailLadder],
    extreme: Decimal,
    key: Decimal,
    px: Decimal,
    ref: str,
    fired: list[tuple[int, str, Decimal | None, Decimal, str]],
) -> None:
    # One side of `_evaluate`: `key` is px's heap key, `extreme` the side's run extreme.
    if heap is not None and heap.heap and heap.heap[0][0] <= key:
        for seq, cl_ord_id in heap.pop_upto(key):
            fired.append((seq, cl_ord_id, None, px, ref))
    for ladder in ladders:
        # The ratchet the quotes since the last look would have made (none fired), then this
        # price: the same groups, marks and fires as looking at every quote.
        if extreme != px:
            ladder.ratchet(extreme)
        for seq, cl_ord_id, stop in ladder.update(px):
            fired.append((seq, cl_ord_id, stop, px, ref))


@dataclass(slots=True)
class _Symbol:
    # The reference values as quoted (float or Decimal: read as Decimals by `current`).
    last: float | Decimal | None = None
    bid: float | Decimal | None = None
    ask: float | Decimal | None = None
    mid: Decimal | None = None  # kept only while orders reference the mid (`band_mid`)
    stops: dict[tuple[str, bool], _KeyHeap] = field(default_factory=dict)
    ladders: dict[tuple[str, bool, bool], _TrailLadder] = field(default_factory=dict)
    # One band per reference that has orders (None: no structure on it).
    band_last: _Band | None = None
    band_bid: _Band | None = None
    band_ask: _Band | None = None
    band_mid: _Band | None = None
    lim: array | None = None  # the bands' float shadows, `_LIM_WIDTH` slots per reference

    def quoted(self, reference: str) -> float | Decimal | None:
        """The reference's value as quoted (the mid: as a Decimal), or None."""
        if reference == "mid":
            bid, ask = self.bid, self.ask
            return None if bid is None or ask is None else self.mid_of(bid, ask)
        return getattr(self, reference)

    def current(self, reference: str) -> Decimal | None:
        """The reference's value as a Decimal, or None."""
        return _to_decimal(self.quoted(reference))

    @staticmethod
    def mid_of(bid: float | Decimal, ask: float | Decimal) -> Decimal:
        return (_to_decimal(bid) + _to_decimal(ask)) / 2


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
        self._close_ns = _session_close_ns(session_close)
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
                self._add_bands(sym)

    def _add_bands(self, sym: _Symbol) -> None:
        """Give a symbol of a book pickled before the bands (an earlier release's recovery
        snapshot) its bands: the structures are the same, the bands are derived from them."""
        for name in ("band_last", "band_bid", "band_ask", "band_mid", "lim"):
            setattr(sym, name, None)
        for ladder in sym.ladders.values():
            if not hasattr(ladder, "min_offset"):
                ladder.min_offset = min((e[0] for e in ladder.live.values()), default=None)
        for (ref, buy), heap in sym.stops.items():
            band = self._band(sym, ref)
            if buy:
                band.buy_heap = heap
            else:
                band.sell_heap = heap
        for (ref, buy, _bps), ladder in sym.ladders.items():
            band = self._band(sym, ref)
            (band.buy_ladders if buy else band.sell_ladders).append(ladder)
        for ref in REFERENCES:
            band = getattr(sym, _BAND_ATTR[ref])
            if band is not None:
                band.rebound()

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
            why = (
                f"{orig_cl_ord_id} already triggered"
                if orig_cl_ord_id in self._triggered
                else f"unknown ClOrdID {orig_cl_ord_id}"
            )
            out.append(Rejected(cl_ord_id or orig_cl_ord_id, why, ts_ns))
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
            reason = (
                f"{orig_cl_ord_id} already triggered"
                if orig_cl_ord_id in self._triggered
                else f"unknown ClOrdID {orig_cl_ord_id}"
            )
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
            self._band(self._symbols[old.symbol], rec.reference).rebound(
                _BUYS if rec.buy else _SELLS
            )
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
        """The record's ladder, brought up to date with its reference's run (`_settle`)."""
        sym = self._symbol(rec.order.symbol)
        self._settle(sym, rec.reference)
        bps = rec.order.peg_offset_type == PEG_OFFSET_BPS
        key = (rec.reference, rec.buy, bps)
        ladder = sym.ladders.get(key)
        if ladder is None:
            ladder = sym.ladders[key] = _TrailLadder(rec.buy, bps)
            band = self._band(sym, rec.reference)
            (band.buy_ladders if rec.buy else band.sell_ladders).append(ladder)
        return ladder

    def _band(self, sym: _Symbol, ref: str) -> _Band:
        """The band of `ref`, created (its run starting at the current value) on first use."""
        attr = _BAND_ATTR[ref]
        band = getattr(sym, attr)
        if band is None:
            if sym.lim is None:
                sym.lim = array("d", [_NAN]) * (len(REFERENCES) * _LIM_WIDTH)
            band = _Band(sym.lim, _REF_BASE[ref])
            band.restart(_BOTH, sym.quoted(ref))
            band.rebound()
            setattr(sym, attr, band)
            if ref == "mid":
                sym.mid = band.high  # kept from now on, to tell a changed mid
        return band

    def _settle(self, sym: _Symbol, ref: str) -> None:
        """Ratchet the ladders on `ref` to the extremes of its run, and start a new run.

        Nothing fires: every value of the run was inside the band, which bounds what the
        ratcheted stops could reach.
        """
        band = getattr(sym, _BAND_ATTR[ref])
        if band is None:
            return
        current = sym.current(ref)
        if current is None:
            return
        # Ratcheting to a mark the ladder already has changes nothing: no need to know which
        # side has a run.
        high, low = _to_decimal(band.high), _to_decimal(band.low)
        moved = 0
        for ladder in band.sell_ladders:
            if ladder.ratchet(high):
                moved |= _SELLS
        for ladder in band.buy_ladders:
            if ladder.ratchet(low):
                moved |= _BUYS
        band.restart(_BOTH, sym.quoted(ref))
        if moved:
            band.rebound(moved)  # the marks moved: so did the stops the band stands for

    def _rest(self, rec: _Record) -> None:
        order = rec.order
        ord_type = order.ord_type
        if ord_type == ORD_TYPE_PEGGED:
            current = self.reference_px(order.symbol, rec.reference)
            self._ladder(rec).add(
                order.cl_ord_id, rec.seq, order.peg_offset_value, current, order.activation_px
            )
            self._band(self._symbols[order.symbol], rec.reference).rebound(
                _BUYS if rec.buy else _SELLS
            )
        elif ord_type == ORD_TYPE_STOP or ord_type == ORD_TYPE_STOP_LIMIT:
            sym = self._symbol(order.symbol)
            key = (rec.reference, rec.buy)
            heap = sym.stops.get(key)
            if heap is None:
                heap = sym.stops[key] = _KeyHeap()
                band = self._band(sym, rec.reference)
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
            self._aliases.pop(cl_ord_id + ".T", None)
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
            cl_ord_id + ".T",
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


def _release(order: StopOrder) -> ChildOrder:
    limit = order.ord_type == ORD_TYPE_LIMIT
    return ChildOrder(
        order.cl_ord_id,
        order.symbol,
        order.side,
        order.order_qty,
        order.ord_type,
        order.price if limit else None,
        order.account,
    )


def evaluate_stops(book: StopBook, quote: Quote) -> tuple[StopBook, list[Outcome]]:
    """Apply a published L1 quote to `book` (STYLE.md §9.1); return the book and its outcomes.

    The book is updated in place and returned, the shape `stateful_map` expects.
    """
    return book, book.on_l1(quote)
