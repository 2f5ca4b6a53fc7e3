"""Domain layer: trade-surveillance models (issue 22: being split into modules; the models are
in `domain.surveillance.spoofing` for now)."""

from domain.surveillance.spoofing import (
    EXCESSIVE_OTR,
    MARKING_THE_CLOSE,
    NS_PER_DAY,
    NS_PER_S,
    OWNERSHIP_MISSING,
    PUMP_AND_DUMP,
    SPOOFING,
    TRADE_VOLUME,
    TRADES_SEEN,
    WASH_TRADE,
    DayVolume,
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
    day_of,
)

# Recovery snapshots name the classes of pickled model state by module: those written before
# the split say `domain.surveillance.<class>`, private ones included, so they stay reachable.
from domain.surveillance.spoofing import _Accumulation as _Accumulation
from domain.surveillance.spoofing import _Activity as _Activity
from domain.surveillance.spoofing import _Resting as _Resting
from domain.surveillance.spoofing import _Suspect as _Suspect
from domain.surveillance.spoofing import _Trip as _Trip

__all__ = [
    "EXCESSIVE_OTR",
    "MARKING_THE_CLOSE",
    "NS_PER_DAY",
    "NS_PER_S",
    "OWNERSHIP_MISSING",
    "PUMP_AND_DUMP",
    "SPOOFING",
    "TRADE_VOLUME",
    "TRADES_SEEN",
    "WASH_TRADE",
    "DayVolume",
    "Fill",
    "Finding",
    "MarkingTheCloseModel",
    "OrderChains",
    "OrderToTradeModel",
    "OwnershipMissingModel",
    "PumpAndDumpModel",
    "RoundTripModel",
    "SelfMatchModel",
    "SpoofingModel",
    "day_of",
]
