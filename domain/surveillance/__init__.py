"""Domain layer: trade-surveillance models, pure and stdlib only, run live and in back-tests alike.

Each model takes order events in event time and returns `Finding`s: the model's kind, the
subject (account or owner), the symbol, the window, a score 0–100 and the evidence (ExecIDs,
ClOrdIDs, thresholds and the computed figures). A finding's `key` is derived from the input
(model, subject, symbol, window), so a replay or a restart yields the same key and the alert
made from it is stored once. State is bounded: every window expires in event time.

Models here (issue 6):
- `SelfMatchModel` (WASH_TRADE): two fills on opposite sides of the same trade, matched by
  TrdMatchID (880), else by symbol, price and quantity within `window_ns` (1 s), whose accounts
  are the same or share an owner.
- `RoundTripModel` (WASH_TRADE, round trips): an owner's intraday position in a symbol goes
  out and back to flat at least `min_round_trips` (10) times in one UTC day while the net
  change stays within `max_net_fraction` (10 %) of the volume each way.
- `OrderToTradeModel` (EXCESSIVE_OTR): orders per trade of an account in one UTC day above
  `max_ratio` (15) with at least `min_orders` (20) orders; judged when the day is over.
- `OwnershipMissingModel` (OWNERSHIP_MISSING): a fill of an account with no owner on record
  (wash detection across accounts is blind there); once per account and day.
- `SpoofingModel` (SPOOFING, layering at two or more prices): resting volume opposite a fill
  ≥ K (5) × the fill, and ≥ 80 % of it cancelled (or cut by replaces) within T (15 s) of
  the fill. An order is known by its OrderID (37) through replaces and cancels, however the
  venue names it in ClOrdID (11) and OrigClOrdID (41) (`OrderChains`).
- `MarkingTheCloseModel` (MARKING_THE_CLOSE): an account's volume in the last M (30) minutes
  before the close ≥ 5 % of the symbol's volume then, or ≥ 1 % of its day volume.
- `PumpAndDumpModel` (PUMP_AND_DUMP): buys > X (5 %) of the symbol's day volume; raised when
  it then sells ≥ Y (20 %) above its average buy within Z (48 h).
A symbol's day volume (`DayVolume`) is the venue's: TradeVolume (269=B) from the market data,
plus the trades printed after it; the trades seen when the venue reports none.

Modules: `findings` (`Fill`, `Finding`, the kinds), `wash`, `accounts` (order-to-trade,
ownership), `spoofing`, `marking_the_close`, `pump_and_dump`, `volume` (`DayVolume`) and
`order_chains`. Everything is imported from `domain.surveillance`.
"""

# The private classes imported `as` themselves are for recovery snapshots: model state pickled
# before the split names its classes `domain.surveillance.<class>` (private ones included), and
# pickle finds them here.
from domain.surveillance.accounts import OrderToTradeModel, OwnershipMissingModel
from domain.surveillance.accounts import _Activity as _Activity
from domain.surveillance.findings import (
    EXCESSIVE_OTR,
    MARKING_THE_CLOSE,
    NS_PER_DAY,
    NS_PER_S,
    OWNERSHIP_MISSING,
    PUMP_AND_DUMP,
    SPOOFING,
    WASH_TRADE,
    Fill,
    Finding,
    day_of,
)
from domain.surveillance.marking_the_close import MarkingTheCloseModel
from domain.surveillance.order_chains import OrderChains
from domain.surveillance.pump_and_dump import PumpAndDumpModel
from domain.surveillance.pump_and_dump import _Accumulation as _Accumulation
from domain.surveillance.spoofing import SpoofingModel
from domain.surveillance.spoofing import _Resting as _Resting
from domain.surveillance.spoofing import _Suspect as _Suspect
from domain.surveillance.volume import TRADE_VOLUME, TRADES_SEEN, DayVolume
from domain.surveillance.wash import RoundTripModel, SelfMatchModel
from domain.surveillance.wash import _Trip as _Trip

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
