"""Domain layer, surveillance: marking the close (`MarkingTheCloseModel`)."""

from __future__ import annotations

from decimal import Decimal

from domain.surveillance.findings import (
    MARKING_THE_CLOSE,
    NS_PER_DAY,
    NS_PER_S,
    Fill,
    Finding,
    day_of,
)
from domain.surveillance.volume import DayVolume, MarketVolumeInputs, _decimal


class MarkingTheCloseModel(MarketVolumeInputs):
    """MARKING_THE_CLOSE: an account's volume in the last `window_ns` (30 min) before the close
    is ≥ `window_share` (5 %) of the symbol's volume in that window, or ≥ `day_share` (1 %) of
    its day volume; judged when event time passes the close (`close_ns_of_day`, ns after
    midnight UTC).

    The window volume is the trades (269=2) seen in the window. The day volume is the venue's
    (`DayVolume`: TradeVolume, 269=B, plus the trades after it; the trades seen when the venue
    reports none). The day share is there to catch an account that is large against the
    stock's whole day; against only the trades seen by a feed that joined inside the window,
    it would be the window share at a fifth of its threshold (1 % instead of 5 %), hence the
    venue's figure whenever there is one. A symbol whose day volume is under
    `min_symbol_volume` is too thin to judge shares of.

    Buys and sells count alike: the closing price values every position in the stock, and a
    seller can depress it as a buyer can lift it. An account that sells a tenth of a thin
    stock's closing window into the close (the dump of a pump, a minute before the close) is
    flagged with the buyers, as an analyst would want it.
    """

    def __init__(
        self,
        close_ns_of_day: int = 21 * 3600 * NS_PER_S,
        window_ns: int = 30 * 60 * NS_PER_S,
        window_share: Decimal = Decimal("0.05"),
        day_share: Decimal = Decimal("0.01"),
        min_symbol_volume: Decimal = Decimal(1000),
    ) -> None:
        self.close_ns_of_day = close_ns_of_day
        self.window_ns = window_ns
        self.window_share = window_share
        self.day_share = day_share
        self.min_symbol_volume = min_symbol_volume
        self._day = -1
        self._judged = False
        # The current day's bounds in event time; an event in [_day_ns, _quiet_until_ns) has
        # nothing to roll or judge (the hot path: one comparison).
        self._day_ns = 0
        self._window_ns = 0
        self._close_ns = 0
        self._quiet_until_ns = 0
        self._volume = DayVolume()
        self._window_volume: dict[str, float] = {}
        self._account_volume: dict[tuple[str, str], Decimal] = {}
        self._exec_ids: dict[tuple[str, str], list[str]] = {}

    def _roll(self, ts_ns: int) -> list[Finding]:
        """Judge the day once event time passes its close; start a new day when it begins."""
        day = day_of(ts_ns)
        findings: list[Finding] = []
        past_close = day > self._day or ts_ns % NS_PER_DAY >= self.close_ns_of_day
        if self._day >= 0 and not self._judged and past_close:
            findings = self.judge()
            self._judged = True
        if day != self._day:
            self._day = day
            self._judged = False
            self._day_ns = day * NS_PER_DAY
            self._close_ns = self._day_ns + self.close_ns_of_day
            self._window_ns = self._close_ns - self.window_ns
            self._volume.clear()
            self._window_volume.clear()
            self._account_volume.clear()
            self._exec_ids.clear()
        if self._judged or ts_ns % NS_PER_DAY >= self.close_ns_of_day:
            self._quiet_until_ns = self._day_ns + NS_PER_DAY
        else:
            self._quiet_until_ns = self._close_ns
        return findings

    def on_market(
        self, symbol: str, traded: float, ts_ns: int, day_volume: float | None = None
    ) -> list[Finding]:
        """Trades of `traded` shares of the symbol printed on the market (269=2, all
        participants), then, if given, the venue's day volume (269=B), which counts them."""
        findings = self._roll(ts_ns) if not self._day_ns <= ts_ns < self._quiet_until_ns else []
        self._volume.update(symbol, traded, day_volume)
        if traded and self._window_ns <= ts_ns < self._close_ns:
            window = self._window_volume
            window[symbol] = window.get(symbol, 0.0) + traded
        return findings

    def on_fill(self, fill: Fill) -> list[Finding]:
        ts_ns = fill.ts_ns
        findings = self._roll(ts_ns) if not self._day_ns <= ts_ns < self._quiet_until_ns else []
        if self._window_ns <= ts_ns < self._close_ns:
            key = (fill.account, fill.symbol)
            self._account_volume[key] = self._account_volume.get(key, Decimal(0)) + fill.qty
            ids = self._exec_ids.setdefault(key, [])
            if len(ids) < 50:
                ids.append(fill.exec_id)
        return findings

    def judge(self) -> list[Finding]:
        """The findings of the current day's closing window (at the close, or end of input)."""
        close_ns = self._day * NS_PER_DAY + self.close_ns_of_day
        findings = []
        for (account, symbol), volume in sorted(self._account_volume.items()):
            window = _decimal(self._window_volume.get(symbol, 0.0))
            day_volume = _decimal(self._volume.of(symbol))
            if day_volume < self.min_symbol_volume:
                continue  # too thin a market to judge shares
            window_share = volume / window if window else Decimal(1)
            day_share = volume / day_volume
            if window_share < self.window_share and day_share < self.day_share:
                continue
            score = min(100, int(50 + 100 * window_share))
            findings.append(
                Finding(
                    MARKING_THE_CLOSE, f"close:{account}:{symbol}:{self._day}", account, symbol,
                    close_ns, score,
                    {"account_volume": volume, "window_volume": window, "day_volume": day_volume,
                     "day_volume_source": self._volume.source(symbol),
                     "window_share": window_share.quantize(Decimal("0.0001")),
                     "day_share": day_share.quantize(Decimal("0.0001")),
                     "thresholds": {"window_share": self.window_share,
                                    "day_share": self.day_share},
                     "window_ns": self.window_ns,
                     "exec_ids": list(self._exec_ids[(account, symbol)])},
                )
            )  # fmt: skip
        return findings
