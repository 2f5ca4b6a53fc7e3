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

Modules: `orders` (the orders, FIX codes and outcomes), `intake` (the checks of an order's own
fields), `heaps`, `ladders` (trailing stops), `bands` (a symbol's state and bands) and `book`
(`StopBook`). Everything is imported from `domain.stops`.
"""

# The private classes imported `as` themselves are for recovery snapshots: a stop book pickled
# before the split names its classes `domain.stops.<class>` (private ones included), and pickle
# finds them here.
from domain.stops.bands import _Band as _Band
from domain.stops.bands import _Symbol as _Symbol
from domain.stops.book import StopBook, evaluate_stops
from domain.stops.heaps import _KeyHeap as _KeyHeap
from domain.stops.intake import check_stop_order, order_from_request
from domain.stops.ladders import _Group as _Group
from domain.stops.ladders import _TrailLadder as _TrailLadder
from domain.stops.orders import (
    CHILD_SUFFIX,
    CONTINGENCY_OCO,
    CONTINGENCY_OTO,
    EXEC_INST_TRAILING_STOP,
    NS_PER_DAY,
    NS_PER_MS,
    NS_PER_SECOND,
    ORD_TYPE_LIMIT,
    ORD_TYPE_MARKET,
    ORD_TYPE_PEGGED,
    ORD_TYPE_STOP,
    ORD_TYPE_STOP_LIMIT,
    PEG_OFFSET_BPS,
    PEG_OFFSET_PRICE,
    REFERENCES,
    SELL_SIDES,
    SIDE_BUY,
    TIF_DAY,
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
)
from domain.stops.orders import _Record as _Record

__all__ = [
    "CHILD_SUFFIX",
    "CONTINGENCY_OCO",
    "CONTINGENCY_OTO",
    "EXEC_INST_TRAILING_STOP",
    "NS_PER_DAY",
    "NS_PER_MS",
    "NS_PER_SECOND",
    "ORD_TYPE_LIMIT",
    "ORD_TYPE_MARKET",
    "ORD_TYPE_PEGGED",
    "ORD_TYPE_STOP",
    "ORD_TYPE_STOP_LIMIT",
    "PEG_OFFSET_BPS",
    "PEG_OFFSET_PRICE",
    "REFERENCES",
    "SELL_SIDES",
    "SIDE_BUY",
    "TIF_DAY",
    "TIF_GTC",
    "TIF_GTD",
    "Accepted",
    "Activated",
    "Cancelled",
    "ChildOrder",
    "Expired",
    "Outcome",
    "Rejected",
    "Replaced",
    "StopBook",
    "StopOrder",
    "Triggered",
    "check_stop_order",
    "evaluate_stops",
    "order_from_request",
]
