"""Domain layer: typed events decoded from FIX, shared by every flow.

Timestamps are int UTC nanoseconds (`ts_event`: from the message, TransactTime (60), else
MDEntryTime (273), else SendingTime (52); never the wall clock). Market-data prices and sizes are
floats: the quote flow only compares and forwards them, and `repr(float(s))` round-trips the wire
decimal. Order and execution quantities and prices are `Decimal` (ledger arithmetic must be exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.pickling import tuple_pickled

# MDEntryType (269)
MD_BID = "0"
MD_OFFER = "1"
MD_TRADE = "2"
MD_OPEN = "4"
MD_CLOSE = "5"
MD_HIGH = "7"
MD_LOW = "8"
MD_VOLUME = "B"

# MDUpdateAction (279)
MD_NEW = "0"
MD_CHANGE = "1"
MD_DELETE = "2"
MD_DELETE_THRU = "3"
MD_DELETE_FROM = "4"
MD_OVERLAY = "5"


@tuple_pickled
@dataclass(frozen=True, slots=True)
class MdEntry:
    """One entry of the NoMDEntries (268) group.

    Attributes:
        entry_type: MDEntryType (269).
        action: MDUpdateAction (279); "0" (new) for full refreshes (35=W).
        price: MDEntryPx (270), or None.
        size: MDEntrySize (271), or None.
        entry_id: MDEntryID (278), or None.
    """

    entry_type: str
    action: str
    price: float | None
    size: float | None
    entry_id: str | None = None


@tuple_pickled
@dataclass(frozen=True, slots=True)
class MarketDataSnapshot:
    """A full refresh (35=W) of one symbol: replaces its book.

    Attributes:
        rpt_seq: RptSeq (83) of the message, when the venue sends it: the baseline the next
            increments' RptSeq continue from (`domain.book_integrity`).
        crossed: the snapshot itself has best bid >= best ask (applied and published, flagged;
            the decoder also dead-letters it, naming it).
    """

    symbol: str
    ts_event: int
    entries: tuple[MdEntry, ...]
    rpt_seq: int | None = None
    crossed: bool = False


@tuple_pickled
@dataclass(frozen=True, slots=True)
class MarketDataIncrement:
    """The entries of one incremental refresh (35=X) that concern one symbol, in message order.

    An X message that carries several symbols becomes one increment per symbol (Symbol (55)
    is inherited from the previous entry when an entry omits it).

    Attributes:
        rpt_seq: (first, last) RptSeq (83) of this symbol's entries in the message (each entry
            of an instrument advances it by one), or None when the venue sends none.
    """

    symbol: str
    ts_event: int
    entries: tuple[MdEntry, ...]
    rpt_seq: tuple[int, int] | None = None


@tuple_pickled
@dataclass(frozen=True, slots=True)
class BookDamaged:
    """An update of `symbol`'s book was lost: its book is stale until the next snapshot.

    Made by the decoder for a 35=W/X that became a dead letter but whose Symbol (55) could still
    be read (reason "dead_letter"), and by a live FIX source for a market-data session's
    MsgSeqNum gap it could not fill (reason "session_gap", one per symbol of the session).
    Sharded by symbol with the market data (`domain.book_integrity`).
    """

    symbol: str
    ts_event: int
    reason: str
    detail: str = ""


MarketDataEvent = MarketDataSnapshot | MarketDataIncrement


@tuple_pickled
@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """An execution report (35=8), normalised; FIX 4.2 ExecType 1/2 (partial fill/fill) become "F".

    Attributes mirror FIX names: ExecID (17), OrderID (37), ClOrdID (11), OrigClOrdID (41),
    ExecType (150), OrdStatus (39), Account (1), Symbol (55), Side (54), OrderQty (38),
    OrdType (40), Price (44), StopPx (99), LastQty (32), LastPx (31), CumQty (14),
    LeavesQty (151), AvgPx (6), TrdMatchID (880), ExecRefID (19), Text (58).
    `raw` is the message as received and `source` where it came from ("file:day.fix:812"):
    the audit trail keeps both, and a sink that rejects the event makes a dead letter of them.
    """

    exec_id: str
    order_id: str
    cl_ord_id: str | None
    orig_cl_ord_id: str | None
    exec_type: str
    ord_status: str
    account: str | None
    symbol: str
    side: str
    order_qty: Decimal | None
    ord_type: str | None
    price: Decimal | None
    stop_px: Decimal | None
    last_qty: Decimal
    last_px: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    avg_px: Decimal
    ts_event: int
    trd_match_id: str | None = None
    exec_ref_id: str | None = None
    text: str | None = None
    poss_dup: bool = False
    raw: bytes = b""
    source: str = ""


@tuple_pickled
@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order (35=D), cancel (35=F) or cancel/replace (35=G) request.

    Attributes mirror FIX names: MsgType (35), ClOrdID (11), OrigClOrdID (41), Account (1),
    Symbol (55), Side (54), OrderQty (38), OrdType (40), Price (44), StopPx (99),
    TimeInForce (59), ExpireTime (126), ExecInst (18), PegOffsetValue (211), PegOffsetType (836).
    `raw` and `source` as for `ExecutionReport`. `order_id` is the OrderID (37) a cancel (F)
    or cancel/replace (G) may carry (the venue's id of the order, issue 18); None on a D.
    """

    msg_type: str
    cl_ord_id: str
    orig_cl_ord_id: str | None
    account: str | None
    symbol: str
    side: str
    order_qty: Decimal | None
    ord_type: str | None
    price: Decimal | None
    stop_px: Decimal | None
    time_in_force: str | None
    ts_event: int
    expire_time: int | None = None
    exec_inst: str | None = None
    peg_offset_value: Decimal | None = None
    peg_offset_type: str | None = None
    raw: bytes = b""
    source: str = ""
    # Last: `tuple_pickled` rebuilds from positional values, so requests pickled before this
    # field (in recovery snapshots) still load.
    order_id: str | None = None


@tuple_pickled
@dataclass(frozen=True, slots=True)
class OrderList:
    """A NewOrderList (35=E): orders submitted together, contingent on each other or not.

    Not part of `OrderEvent`: the flows that take lists (the stop engine) route them
    explicitly, and the ledger and audit steps see only single requests and reports.

    Attributes:
        list_id: ListID (66).
        contingency_type: ContingencyType (1385): "1" OCO (one cancels the others), "2" OTO
            (the first order is the entry, the rest are its children: a bracket); None for a
            plain list of independent orders.
        orders: the NoOrders (73) entries as new orders (`msg_type` "D"), in ListSeqNo (67)
            order, else in wire order; never empty. Each carries the list's `raw` and `source`.
        ts_event: TransactTime (60) of the message, else SendingTime (52). An order's own
            `ts_event` is its entry's TransactTime (60), else this one.
        raw: the message as received; `source` where it came from ("file:day.fix:812").
    """

    list_id: str
    contingency_type: str | None
    orders: tuple[OrderRequest, ...]
    ts_event: int
    raw: bytes = b""
    source: str = ""

    @property
    def symbol(self) -> str:
        """Symbol (55) of the first order, the key the flows shard by.

        The orders of a list may name different symbols (an OCO across symbols is rare but
        valid); a flow that keys by symbol sends the whole list to the first order's shard.
        """
        return self.orders[0].symbol


OrderEvent = ExecutionReport | OrderRequest


# Market status (issue 19): what a broker needs of the venue's statuses.
OPEN = "OPEN"
HALTED = "HALTED"
CLOSED = "CLOSED"
MARKET = "market"
"""The scope of a market-wide status (`TradingSessionStatus`), as the edge's frame names it."""


@tuple_pickled
@dataclass(frozen=True, slots=True)
class SecurityStatus:
    """A SecurityStatus (35=f): one symbol's trading state and price band.

    Attributes:
        symbol: Symbol (55).
        state: OPEN, HALTED or CLOSED as SecurityTradingStatus (326) maps it, or None when the
            message changes no state (326 absent, or an indication such as 23 fast market).
        trading_status: SecurityTradingStatus (326) as received, or None.
        reason: HaltReasonChar (327) and Text (58), or None.
        low_limit_px: LowLimitPrice (1148), or None.
        high_limit_px: HighLimitPrice (1149), or None.
        ts_event: TransactTime (60), else SendingTime (52).
        raw: the message as received; `source` where it came from.
    """

    symbol: str
    state: str | None
    trading_status: str | None
    reason: str | None
    low_limit_px: float | None
    high_limit_px: float | None
    ts_event: int
    raw: bytes = b""
    source: str = ""


@tuple_pickled
@dataclass(frozen=True, slots=True)
class TradingSessionStatus:
    """A TradingSessionStatus (35=h): the state of the whole market (every symbol).

    Attributes:
        trading_session_id: TradingSessionID (336).
        state: OPEN, HALTED or CLOSED as TradSesStatus (340) maps it.
        trad_ses_status: TradSesStatus (340) as received.
        reason: Text (58), or None.
        ts_event: TransactTime (60), else SendingTime (52).
        raw: the message as received; `source` where it came from.
    """

    trading_session_id: str
    state: str
    trad_ses_status: str
    reason: str | None
    ts_event: int
    raw: bytes = b""
    source: str = ""

    @property
    def symbol(self) -> str:
        """The scope "market": not a symbol; the flows broadcast it to every shard."""
        return MARKET


MarketStatusEvent = SecurityStatus | TradingSessionStatus


# Reference data during the day (issue 20): user-defined FIX messages (MsgType "U…"), so that
# a change enters the input stream and gets its place among the fills (`connectors.fix.
# reference` holds the tags; docs/reference-data.md).


@tuple_pickled
@dataclass(frozen=True, slots=True)
class AccountChanged:
    """An account opened, or its owner or margin rates changed (35=UA).

    Attributes:
        account: Account (1).
        owner: AccountOwner (5001).
        initial_margin, maintenance_margin: InitialMarginRate (5002) and MaintenanceMarginRate
            (5003), fractions of gross position value (defaults 0.50 and 0.30, as
            `brokerflow load accounts`).
        opening_cash: OpeningCash (5004): the cash of an account opened by this message; an
            account that exists keeps its cash (cash moves by `CashMoved` only).
        ts_event: TransactTime (60), else SendingTime (52).
        raw, source: the message as received and where it came from.
    """

    account: str
    owner: str
    initial_margin: Decimal
    maintenance_margin: Decimal
    opening_cash: Decimal
    ts_event: int
    raw: bytes = b""
    source: str = ""

    @property
    def symbol(self) -> str:
        """The key the flows shard by: the account (the gateway keys the message by it)."""
        return self.account


@tuple_pickled
@dataclass(frozen=True, slots=True)
class CashMoved:
    """A deposit (positive) or withdrawal (negative) of cash (35=UC).

    Attributes:
        account: Account (1).
        amount: CashAmount (5010), signed.
        movement_id: CashMovementID (5011): applied once per id, however often delivered.
        ts_event: TransactTime (60), else SendingTime (52).
        raw, source: the message as received and where it came from.
    """

    account: str
    amount: Decimal
    movement_id: str
    ts_event: int
    raw: bytes = b""
    source: str = ""

    @property
    def symbol(self) -> str:
        """The key the flows shard by: the account (the gateway keys the message by it)."""
        return self.account


ReferenceEvent = AccountChanged | CashMoved
REFERENCE_TYPES = (AccountChanged, CashMoved)
