"""Domain layer, surveillance: pump and dump (`PumpAndDumpModel`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.surveillance.findings import NS_PER_DAY, NS_PER_S, PUMP_AND_DUMP, Fill, Finding, day_of
from domain.surveillance.volume import DayVolume, MarketVolumeInputs, _decimal


@dataclass
class _Accumulation:
    bought: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    first_ns: int = 0
    exec_ids: list[str] = field(default_factory=list)
    flagged: bool = False
    dumped: bool = False


class PumpAndDumpModel(MarketVolumeInputs):
    """PUMP_AND_DUMP: an account's buys in a symbol exceed `volume_share` (X=5 %) of the
    symbol's day volume (score 60); raised (a second finding, score 90) if it then sells at
    ≥ `rise` (Y=20 %) above its average buy price within `within_ns` (Z=48 h) of its first buy.

    The day volume is the venue's (`DayVolume`: TradeVolume, 269=B, from the snapshot a feed
    starts with and the refreshes after it, plus the trades printed since; the trades printed
    since the start of the UTC day for a symbol the venue reports no volume for). A live model
    compares the buys with the day's volume so far: judged against the few minutes a feed has
    seen, an ordinary order on a liquid stock would look like a large share of its day.
    `min_symbol_volume` keeps the first trades of a day from deciding alone.

    The accumulation finding (score 60) is a watch, not a verdict: pump-and-dump schemes are
    run in thinly traded stocks, where a position is built, the price pushed up and the
    position sold into the rise, and a buyer of more than X of a thin stock's day volume
    holds the first part of that. It fires for any such buyer, whatever the buyer goes on to
    do (an account that buys 8 % of a thin stock's day to mark its close is one, and its
    MARKING_THE_CLOSE alert is best read next to this one); the dump (score 90) is the
    pattern itself.
    """

    def __init__(
        self,
        volume_share: Decimal = Decimal("0.05"),
        rise: Decimal = Decimal("0.20"),
        within_ns: int = 48 * 3600 * NS_PER_S,
        min_symbol_volume: Decimal = Decimal(10_000),
    ) -> None:
        self.volume_share = volume_share
        self.rise = rise
        self.within_ns = within_ns
        self.min_symbol_volume = min_symbol_volume
        self._day = -1
        self._day_ns = 0  # the current UTC day is [_day_ns, _day_ns + NS_PER_DAY)
        self._volume = DayVolume()
        self._positions: dict[tuple[str, str], _Accumulation] = {}
        self._started: deque[tuple[int, tuple[str, str]]] = deque()

    def _roll(self, ts_ns: int) -> None:
        if not self._day_ns <= ts_ns < self._day_ns + NS_PER_DAY:
            self._day = day_of(ts_ns)
            self._day_ns = self._day * NS_PER_DAY
            self._volume.clear()
        # Bounded: accumulations older than Z are forgotten, oldest first (they are queued in
        # the order they began, so expiry touches only what expires).
        started = self._started
        if started and started[0][0] < ts_ns - self.within_ns:
            horizon = ts_ns - self.within_ns
            while started and started[0][0] < horizon:
                first_ns, key = started.popleft()
                acc = self._positions.get(key)
                if acc is not None and acc.first_ns == first_ns:
                    del self._positions[key]

    def on_market(
        self, symbol: str, traded: float, ts_ns: int, day_volume: float | None = None
    ) -> list[Finding]:
        """Trades of `traded` shares of the symbol printed on the market (269=2, all
        participants), then, if given, the venue's day volume (269=B), which counts them."""
        started = self._started
        if not self._day_ns <= ts_ns < self._day_ns + NS_PER_DAY or (
            started and started[0][0] < ts_ns - self.within_ns
        ):
            self._roll(ts_ns)
        self._volume.update(symbol, traded, day_volume)
        return []

    def on_fill(self, fill: Fill) -> list[Finding]:
        self._roll(fill.ts_ns)
        key = (fill.account, fill.symbol)
        acc = self._positions.get(key)
        if fill.buy:
            if acc is None:
                acc = self._positions[key] = _Accumulation(first_ns=fill.ts_ns)
                self._started.append((fill.ts_ns, key))
            acc.bought += fill.qty
            acc.cost += fill.qty * fill.px
            if len(acc.exec_ids) < 50:
                acc.exec_ids.append(fill.exec_id)
            if acc.flagged:
                return []
            volume = _decimal(self._volume.of(fill.symbol))
            if volume < self.min_symbol_volume or acc.bought <= self.volume_share * volume:
                return []
            acc.flagged = True
            return [self._finding(fill, acc, "accumulation", 60, volume)]
        if acc is None or not acc.flagged or acc.dumped or not acc.bought:
            return []
        average = acc.cost / acc.bought
        if fill.px < average * (1 + self.rise):
            return []
        acc.dumped = True
        return [self._finding(fill, acc, "dump", 90, _decimal(self._volume.of(fill.symbol)))]

    def _finding(
        self, fill: Fill, acc: _Accumulation, stage: str, score: int, volume: Decimal
    ) -> Finding:
        average = (acc.cost / acc.bought).quantize(Decimal("0.0001"))
        evidence: dict[str, Any] = {
            "stage": stage, "bought": acc.bought, "average_buy_px": average,
            "symbol_day_volume": volume,
            "day_volume_source": self._volume.source(fill.symbol),
            "first_buy_ns": acc.first_ns, "exec_ids": list(acc.exec_ids),
            "thresholds": {"volume_share": self.volume_share, "rise": self.rise,
                           "within_ns": self.within_ns},
        }  # fmt: skip
        if stage == "dump":
            evidence |= {"sell_exec_id": fill.exec_id, "sell_px": fill.px,
                         "rise": (fill.px / average - 1).quantize(Decimal("0.0001"))}  # fmt: skip
        return Finding(
            PUMP_AND_DUMP, f"pump:{fill.account}:{fill.symbol}:{acc.first_ns}:{stage}",
            fill.account, fill.symbol, fill.ts_ns, score, evidence,
        )  # fmt: skip
