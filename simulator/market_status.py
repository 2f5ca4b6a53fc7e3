"""Simulator layer: market-status scenarios (issue 19): halts, price bands, a falling index.

`StatusScenario` makes the venue's status messages of a simulated session, to merge in event
time with the market simulator's (`brokerflow simulate`, `brokerflow simulate-exchange`):

- a symbol halt: SecurityStatus (35=f) SecurityTradingStatus (326) 2 (trading halt, HaltReason
  (327) D news dissemination) at its start, 326=17 (ready to trade) at its end;
- a market halt: TradingSessionStatus (35=h) TradSesStatus (340) 1 (halted) at its start,
  340=2 (open) at its end;
- price bands: at the session's start one 35=f per symbol without 326 (the state unchanged)
  with LowLimitPrice (1148) / HighLimitPrice (1149) the opening price -/+ the percentage;
- a falling index: an index symbol's previous close (269=5) at the start, then a print
  (269=2) every `print_every_s`: flat at the close until the fall starts, then down in a
  straight line by `fall_pct` % over `over_s`, then flat. With `[market_status]
  index_symbol` naming it, the flows' circuit breaker trips at 10 / 15 / 20 %.

Specs on the command line (minutes after the start, fractions allowed): `--halt SYMBOL@MIN+DUR`,
`--market-halt MIN+DUR`, `--bands PCT`, `--index-fall PCT@MIN+DUR` (`parse_*` below). Every
message carries TransactTime (60), its event time. Nothing reads the wall clock.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import simplefix

from connectors.fix.timefmt import format_utc_timestamp
from simulator.market import TICKS_PER_UNIT, MarketSimulator, SimulationSummary, write_lines
from simulator.orders import OrderFlowSimulator

NS_PER_S = 1_000_000_000
SENDER = b"SIMS"  # its own SenderCompID: its MsgSeqNum (34) is its own
Body = list[tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class Halt:
    """A halt of `symbol` (None: the whole market) from `at_s` for `duration_s` seconds."""

    symbol: str | None
    at_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class IndexFall:
    """The index's path: flat at `close`, then `fall_pct` % down over `over_s` from `at_s`."""

    fall_pct: float
    at_s: float
    over_s: float
    symbol: str = "IDX"
    close: float = 20_000.0
    print_every_s: float = 1.0

    def price(self, t_s: float) -> float:
        if t_s <= self.at_s:
            return self.close
        done = 1.0 if self.over_s <= 0 else min(1.0, (t_s - self.at_s) / self.over_s)
        return round(self.close * (1 - self.fall_pct / 100 * done), 2)


@dataclass
class StatusScenario:
    """The status messages of a session starting at `start_ns` (UTC ns).

    Attributes:
        halts: symbol and market halts.
        bands_pct: the band around each symbol's opening price (`opening`), or None.
        opening: symbol -> opening price (the bands' centre).
        index: the falling index, or None.
    """

    start_ns: int
    halts: list[Halt] = field(default_factory=list)
    bands_pct: float | None = None
    opening: dict[str, float] = field(default_factory=dict)
    index: IndexFall | None = None

    def bodies(self, until_ns: int | None = None) -> Iterator[tuple[int, bytes, Body]]:
        """`(event time ns, MsgType, body)` in event-time order, up to `until_ns` (the index
        prints need an end; without one they stop an hour after the fall ends)."""
        out: list[tuple[int, int, bytes, Body]] = []
        start = self.start_ns
        for symbol in sorted(self.opening) if self.bands_pct is not None else ():
            out.append((start, len(out), b"f", self.band_body(symbol)))
        for halt in self.halts:
            begin = start + round(halt.at_s * NS_PER_S)
            end = begin + round(halt.duration_s * NS_PER_S)
            if halt.symbol is None:
                out.append((begin, len(out), b"h", [(336, b"1"), (340, b"1"),
                                                     (58, b"simulated market halt")]))  # fmt: skip
                out.append((end, len(out), b"h", [(336, b"1"), (340, b"2")]))
            else:
                name = halt.symbol.encode()
                out.append((begin, len(out), b"f", [(55, name), (326, b"2"), (327, b"D")]))
                out.append((end, len(out), b"f", [(55, name), (326, b"17")]))
        index = self.index
        if index is not None:
            name = index.symbol.encode()
            out.append((start, len(out), b"X", [(268, b"1"), (279, b"0"), (269, b"5"),
                                                 (55, name), (270, _px(index.close))]))  # fmt: skip
            stop = until_ns
            if stop is None:
                stop = start + round((index.at_s + index.over_s + 3600) * NS_PER_S)
            step = round(index.print_every_s * NS_PER_S)
            t = start + step
            while t < stop:
                px = index.price((t - start) / NS_PER_S)
                out.append((t, len(out), b"X", [(268, b"1"), (279, b"0"), (269, b"2"),
                                                 (55, name), (270, _px(px))]))  # fmt: skip
                t += step
        out.sort(key=lambda item: (item[0], item[1]))
        for ts, _, msg_type, body in out:
            if until_ns is None or ts < until_ns:
                yield ts, msg_type, body

    def band_body(self, symbol: str) -> Body:
        """The 35=f body of `symbol`'s band (its opening price -/+ `bands_pct` %); empty
        without bands."""
        px = self.opening.get(symbol)
        if px is None or self.bands_pct is None:
            return []
        pct = self.bands_pct / 100
        low, high = round(px * (1 - pct), 2), round(px * (1 + pct), 2)
        return [(55, symbol.encode()), (1148, _px(low)), (1149, _px(high))]

    def messages(self, until_ns: int | None = None) -> Iterator[tuple[int, bytes]]:
        """`(event time ns, encoded FIX 4.4 message)` for a file, in event-time order."""
        seq = 0
        for ts, msg_type, body in self.bodies(until_ns):
            seq += 1
            stamp = format_utc_timestamp(ts).encode()
            m = simplefix.FixMessage()
            for tag, value in ((8, b"FIX.4.4"), (35, msg_type), (49, SENDER),
                               (56, b"BROKERFLOW"), (34, b"%d" % seq), (52, stamp)):  # fmt: skip
                m.append_pair(tag, value)
            for tag, value in body:
                m.append_pair(tag, value)
            m.append_pair(60, stamp)
            yield ts, m.encode()


def _px(value: float) -> bytes:
    return f"{value:.2f}".encode()


# -- command-line specs ---------------------------------------------------------------------

_HALT = re.compile(r"^(?P<symbol>[A-Za-z0-9._-]+)@(?P<at>\d+(\.\d+)?)\+(?P<dur>\d+(\.\d+)?)$")
_WHEN = re.compile(r"^(?P<at>\d+(\.\d+)?)\+(?P<dur>\d+(\.\d+)?)$")
_FALL = re.compile(r"^(?P<pct>\d+(\.\d+)?)@(?P<at>\d+(\.\d+)?)\+(?P<dur>\d+(\.\d+)?)$")


def parse_halt(text: str) -> Halt:
    """`SYMBOL@MIN+DUR`: halt SYMBOL MIN minutes after the start for DUR minutes."""
    m = _HALT.match(text)
    if m is None:
        msg = f"expected SYMBOL@MINUTE+MINUTES (e.g. AAPL@10+5), was {text!r}"
        raise ValueError(msg)
    return Halt(m["symbol"], float(m["at"]) * 60, float(m["dur"]) * 60)


def parse_market_halt(text: str) -> Halt:
    """`MIN+DUR`: halt the market MIN minutes after the start for DUR minutes."""
    m = _WHEN.match(text)
    if m is None:
        msg = f"expected MINUTE+MINUTES (e.g. 20+3), was {text!r}"
        raise ValueError(msg)
    return Halt(None, float(m["at"]) * 60, float(m["dur"]) * 60)


def parse_index_fall(text: str) -> tuple[float, float, float]:
    """`PCT@MIN+DUR`: (fall %, start s, duration s): the index falls PCT % from minute MIN over
    DUR minutes."""
    m = _FALL.match(text)
    if m is None or not 0 < float(m["pct"]) < 100:
        msg = f"expected PERCENT@MINUTE+MINUTES with 0 < PERCENT < 100 (e.g. 12@5+10), was {text!r}"
        raise ValueError(msg)
    return float(m["pct"]), float(m["at"]) * 60, float(m["dur"]) * 60


def write_merged(
    sim: MarketSimulator | OrderFlowSimulator,
    scenario: StatusScenario,
    path: str | Path,
    until_ns: int,
    progress: Callable[[int, int], None] | None = None,
    progress_every: int = 100_000,
) -> SimulationSummary:
    """Write `sim`'s session with the scenario's messages merged in event time (the
    simulator's first at equal times), one message a line, up to `until_ns`."""
    market = sim if isinstance(sim, MarketSimulator) else sim.market
    start_trades = market.trades_emitted
    merged = heapq.merge(
        sim.messages(until_ns=until_ns), scenario.messages(until_ns), key=itemgetter(0)
    )
    written, size, by_type, first_ns, last_ns = write_lines(path, merged, progress, progress_every)
    return SimulationSummary(
        messages=written,
        by_type=by_type,
        symbols=len(market.symbols),
        trades=market.trades_emitted - start_trades,
        first_event_ns=first_ns,
        last_event_ns=last_ns,
        bytes_written=size,
    )


def opening_prices(market: MarketSimulator) -> dict[str, float]:
    """Each symbol's opening price (its 35=W's last trade), before the session starts."""
    out = {}
    for index, symbol in enumerate(market.symbols):
        book = market.top_of_book(index)
        if book is not None:
            out[symbol] = book[4] / TICKS_PER_UNIT
    return out
