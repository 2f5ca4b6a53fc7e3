"""Domain layer: the trigger engine of stop, stop-limit, trailing-stop and contingent orders.

Being split into modules (issue 22); the engine is in `domain.stops.book` for now.
"""

from domain.stops.book import (
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
    StopBook,
    StopOrder,
    Triggered,
    check_stop_order,
    evaluate_stops,
    order_from_request,
)

# Recovery snapshots name the classes of a pickled book by module: those written before the
# split say `domain.stops.<class>`, private ones included, so they stay reachable here.
from domain.stops.book import _Band as _Band
from domain.stops.book import _Group as _Group
from domain.stops.book import _KeyHeap as _KeyHeap
from domain.stops.book import _Record as _Record
from domain.stops.book import _Symbol as _Symbol
from domain.stops.book import _TrailLadder as _TrailLadder

__all__ = [
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
