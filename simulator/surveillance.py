"""A labelled surveillance scenario: abusive patterns and innocent look-alikes in one FIX day.

`write_scenario(day, accounts_csv, labels_csv, style)` writes execution reports (35=8) of:
- abusive: alice's self-match between her two accounts (same TrdMatchID), bob's 12 round trips
  in one symbol, carol's layering (large sell orders at three prices, walked down a cent by
  replaces, a small buy fill, then two layers cancelled and the third cut to a fifteenth by a
  replace within seconds), heidi's order storm (30 orders each replaced once: 60 order
  messages, 2 trades, the rest cancelled);
- innocent look-alikes: frank and gina trading with each other (same TrdMatchID, different
  owners), erin the day trader building a position (buys 3 for every 2 sold), dave the market
  maker (quotes both sides, trades, re-prices his quotes by replaces seconds after the trade,
  cancels them 30 s later), ivan placing and filling orders normally (amending two first);
- with market data (35=X trades, so the models know each symbol's volume): kim's pump and dump
  (buys well over 5 % of PUMP's day volume, then sells 25 % higher after the price rises), and
  liam, the lucky small trader next to her (a 2 % share, the same profitable exit); nina marking
  the close (7 % of CLSE's volume in its last 30 minutes, 0.5 % of its day), and oscar, who
  trades CLSE at midday and a little before the close; X8 and X9, accounts not on record
  (no owner known: OWNERSHIP_MISSING), trading with each other;
and the labels (`subject,model`: which subject truly abuses which model) to score the models'
precision and recall with `brokerflow replay --labels`. Deterministic.

`style` is how the venue reports cancels (150=4) and replaces (150=5); OrderID (37) is the
venue's and the same on every report of an order either way:
- "standard" (FIX 4.4): ClOrdID (11) is the id of the client's cancel or cancel/replace request,
  OrigClOrdID (41) the order's current ClOrdID (the one it was placed or last replaced with);
  after a replace, the order's reports (fills) carry the new ClOrdID;
- "echo": every report of an order echoes the ClOrdID it was placed with in 11, without 41.
The models must find the same whichever way.
"""

from __future__ import annotations

import csv
from pathlib import Path

import simplefix

from simulator.stops import _stamp

DAY_NS = 1_795_564_800 * 1_000_000_000  # 2026-11-25T00:00:00Z
T0 = DAY_NS + 14 * 3600 * 1_000_000_000

ACCOUNTS = [
    ("A1", "alice"), ("A2", "alice"), ("B1", "bob"), ("C1", "carol"), ("D1", "dave"),
    ("E1", "erin"), ("F1", "frank"), ("G1", "gina"), ("H1", "heidi"), ("I1", "ivan"),
    ("K1", "kim"), ("L1", "liam"), ("N1", "nina"), ("O1", "oscar"),
]  # fmt: skip
LABELS = [("alice", "WASH_TRADE"), ("bob", "WASH_TRADE"), ("C1", "SPOOFING"),
          ("H1", "EXCESSIVE_OTR"), ("K1", "PUMP_AND_DUMP"), ("N1", "MARKING_THE_CLOSE"),
          ("X8", "OWNERSHIP_MISSING"), ("X9", "OWNERSHIP_MISSING")]  # fmt: skip
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


STYLES = ("standard", "echo")
"""How the venue reports cancels and replaces (see the module docstring)."""


class _Writer:
    def __init__(self, style: str = "standard") -> None:
        if style not in STYLES:
            msg = f"style {style!r} is not one of {', '.join(STYLES)}"
            raise ValueError(msg)
        self.style = style
        self.lines: list[tuple[int, bytes]] = []
        self.seq = 0
        self.ids = 0
        self.current: dict[str, str] = {}  # an order (its first ClOrdID) -> its ClOrdID now
        self.requests = 0

    def report(self, account: str, symbol: str, side: str, exec_type: str, qty: int,
               px: str, at_ms: int, cl_ord_id: str = "", match: str | None = None,
               price: str | None = None, orig: str | None = None,
               order: str = "") -> None:  # fmt: skip
        """One execution report; `order`: the ClOrdID the order was placed with (OrderID (37)
        is made of it), `cl_ord_id` by default."""
        self.seq += 1
        self.ids += 1
        ts = T0 + at_ms * 1_000_000
        stamp = _stamp(ts)
        cl = cl_ord_id or f"CL{self.ids}"
        fill = exec_type == "F"
        m = simplefix.FixMessage()
        pairs = [
            (8, "FIX.4.4"), (35, "8"), (49, "BROKER"), (56, "SURV"), (34, self.seq), (52, stamp),
            (37, f"O-{order or cl}"), (11, cl), (17, f"X{self.ids}"), (150, exec_type),
            (39, {"F": "2", "0": "0", "4": "4", "5": "0"}[exec_type]), (1, account),
            (55, symbol), (54, side), (38, qty), (32, qty if fill else 0), (31, px if fill else 0),
            (14, qty if fill else 0), (151, 0 if fill or exec_type == "4" else qty),
            (6, px if fill else 0), (60, stamp),
        ]  # fmt: skip
        if orig is not None:
            pairs.append((41, orig))
        if price is not None:
            pairs += [(40, "2"), (44, price)]
        if match:
            pairs.append((880, match))
        for tag, value in pairs:
            m.append_pair(tag, value)
        self.lines.append((ts, m.encode()))

    def filled(self, account: str, symbol: str, side: str, qty: int, px: str, at_ms: int,
               order: str) -> None:  # fmt: skip
        """A fill of resting `order` (its whole quantity), named as the venue names it now."""
        self.report(account, symbol, side, "F", qty, px, at_ms, self._named(order),
                    order=order)  # fmt: skip

    def replaced(self, account: str, symbol: str, side: str, qty: int, price: str, at_ms: int,
                 order: str) -> None:  # fmt: skip
        """The venue's confirmation (150=5) that `order` now rests as `qty` at `price`."""
        if self.style == "echo":
            self.report(account, symbol, side, "5", qty, "0", at_ms, order, price=price)
            return
        self.requests += 1
        old, new = self._named(order), f"{order}-R{self.requests}"
        self.current[order] = new
        self.report(account, symbol, side, "5", qty, "0", at_ms, new, price=price, orig=old,
                    order=order)  # fmt: skip

    def cancelled(self, account: str, symbol: str, side: str, qty: int, price: str, at_ms: int,
                  order: str) -> None:  # fmt: skip
        """The venue's confirmation (150=4) that `order` is cancelled, at the client's request."""
        if self.style == "echo":
            self.report(account, symbol, side, "4", qty, "0", at_ms, order, price=price)
            return
        self.requests += 1
        self.report(account, symbol, side, "4", qty, "0", at_ms, f"{order}-X{self.requests}",
                    price=price, orig=self._named(order), order=order)  # fmt: skip

    def _named(self, order: str) -> str:
        return self.current.get(order, order)

    def market_quote(self, symbol: str, bid: str, ask: str, at_ms: int) -> None:
        """The venue's best bid and offer (a 35=W snapshot, 1,000 shares each side)."""
        self.seq += 1
        ts = T0 + at_ms * 1_000_000
        stamp = _stamp(ts)
        m = simplefix.FixMessage()
        pairs = [
            (8, "FIX.4.4"), (35, "W"), (49, "MD"), (56, "SURV"), (34, self.seq), (52, stamp),
            (55, symbol), (268, 2), (269, 0), (270, bid), (271, 1_000), (269, 1), (270, ask),
            (271, 1_000),
        ]  # fmt: skip
        for tag, value in pairs:
            m.append_pair(tag, value)
        self.lines.append((ts, m.encode()))

    def market_trade(self, symbol: str, qty: int, px: str, at_ms: int) -> None:
        """A trade on the market (all participants), as a 35=X trade entry."""
        self.seq += 1
        ts = T0 + at_ms * 1_000_000
        stamp = _stamp(ts)
        m = simplefix.FixMessage()
        pairs = [
            (8, "FIX.4.4"), (35, "X"), (49, "MD"), (56, "SURV"), (34, self.seq), (52, stamp),
            (268, 1), (279, 0), (269, 2), (55, symbol), (270, px), (271, qty),
        ]  # fmt: skip
        for tag, value in pairs:
            m.append_pair(tag, value)
        self.lines.append((ts, m.encode()))


def _market_abuse(w: _Writer) -> None:
    """Pump and dump, marking the close and missing owners, each beside its look-alike."""
    # PUMP: 1,000-share trades every 5 minutes from 14:00; the price jumps 25 % at 17:00.
    for k in range(72):
        w.market_trade("PUMP", 1_000, "2.00" if k < 36 else "2.50", k * 5 * MINUTE_MS + 100)
    # kim buys 3,000 by 15:00 (day volume then ~12,000: 25 %), sells it all at 2.50 at 18:00
    for i in range(3):
        w.report("K1", "PUMP", "1", "F", 1_000, "2.00", HOUR_MS + i * MINUTE_MS)
    w.report("K1", "PUMP", "2", "F", 3_000, "2.50", 4 * HOUR_MS)
    # liam buys 300 at 15:30 (~2 % of the day volume), sells at the same profit
    w.report("L1", "PUMP", "1", "F", 300, "2.00", HOUR_MS + 30 * MINUTE_MS)
    w.report("L1", "PUMP", "2", "F", 300, "2.50", 4 * HOUR_MS + MINUTE_MS)
    # CLSE: 2,000-share trades every 10 minutes, 14:00-21:00 (84,000 a day; 6,000 in the
    # window 20:30-21:00), and one after the close that closes the day.
    for k in range(42):
        w.market_trade("CLSE", 2_000, "50.00", k * 10 * MINUTE_MS + 200)
    w.market_trade("CLSE", 100, "50.00", 7 * HOUR_MS + 5 * MINUTE_MS)
    # nina buys 420 at 20:55 (7 % of the window); oscar buys 600 at 15:02 (4 % of the volume
    # so far: under the pump model's 5 %) and sells 100 at 20:45 (under 2 % of the window)
    w.report("N1", "CLSE", "1", "F", 420, "50.10", 6 * HOUR_MS + 55 * MINUTE_MS)
    w.report("O1", "CLSE", "1", "F", 600, "50.00", HOUR_MS + 2 * MINUTE_MS)
    w.report("O1", "CLSE", "2", "F", 100, "50.00", 6 * HOUR_MS + 45 * MINUTE_MS)
    # X8 and X9, not on record, trade with each other
    w.report("X8", "DUSK", "1", "F", 100, "3.02", 3 * HOUR_MS, match="M9")
    w.report("X9", "DUSK", "2", "F", 100, "3.02", 3 * HOUR_MS, match="M9")


def write_scenario(day: Path, accounts_csv: Path, labels_csv: Path,
                   style: str = "standard") -> int:  # fmt: skip
    """Write the scenario, cancels and replaces reported in `style` (`STYLES`); return the
    number of messages."""
    w = _Writer(style)
    # alice: self-match across her two accounts
    w.report("A1", "ACME", "1", "F", 500, "10.00", 1_000, match="M1")
    w.report("A2", "ACME", "2", "F", 500, "10.00", 1_000, match="M1")
    # frank and gina: the same shape between different owners
    w.report("F1", "ACME", "1", "F", 500, "10.00", 2_000, match="M2")
    w.report("G1", "ACME", "2", "F", 500, "10.00", 2_000, match="M2")
    # bob: 12 round trips in BOLT
    for i in range(12):
        w.report("B1", "BOLT", "1", "F", 300, "5.00", 10_000 + i * 60_000)
        w.report("B1", "BOLT", "2", "F", 300, "5.01", 40_000 + i * 60_000)
    # erin: a day trader building a position in BOLT
    for i in range(12):
        w.report("E1", "BOLT", "1", "F", 300, "5.00", 12_000 + i * 60_000)
        w.report("E1", "BOLT", "2", "F", 200, "5.02", 42_000 + i * 60_000)
    # CORE's best bid and offer, 14:10-14:20 every 5 s: 20.02 x 20.04, pushed down to
    # 19.99 x 20.00 while carol's layers weigh on the offer side (she buys there), back after
    # (bid and offer only: no trade prints, so no model's volume changes).
    for k in range(121):
        at = 600_000 + k * 5_000
        low = 900_000 <= at < 905_000
        w.market_quote("CORE", "19.99" if low else "20.02", "20.00" if low else "20.04", at)
    for at, bid, ask in ((900_600, "19.99", "20.00"), (903_500, "20.01", "20.03")):
        w.market_quote("CORE", bid, ask, at)
    # carol: layering in CORE, the layers walked down a cent before her buy; after it, two
    # cancelled and the third cut from 3,000 to 200 (8,800 of 9,000 off the book in 4 s)
    for i, px in enumerate(("20.05", "20.06", "20.07")):
        w.report("C1", "CORE", "2", "0", 3_000, "0", 900_000 + i, f"CS{i}", price=px)
    for i, px in enumerate(("20.04", "20.05", "20.06")):
        w.replaced("C1", "CORE", "2", 3_000, px, 900_500 + i, f"CS{i}")
    w.report("C1", "CORE", "1", "F", 100, "20.00", 901_000, "CB")
    for i in range(2):
        w.cancelled("C1", "CORE", "2", 3_000, ("20.04", "20.05")[i], 903_000 + i, f"CS{i}")
    w.replaced("C1", "CORE", "2", 200, "20.06", 905_000, "CS2")
    w.cancelled("C1", "CORE", "2", 200, "20.06", 960_000, "CS2")
    # dave: a market maker quoting both sides, trading, re-pricing both quotes 4 s after the
    # trade (the same size: nothing taken off the book) and cancelling them 30 s later
    for k in range(5):
        base = 1_000_000 + k * 60_000
        w.report("D1", "CORE", "2", "0", 500, "0", base, f"DS{k}", price="20.10")
        w.report("D1", "CORE", "1", "0", 500, "0", base + 1, f"DB{k}", price="19.90")
        w.report("D1", "CORE", "1", "F", 100, "20.10", base + 1_000, f"DT{k}")
        w.replaced("D1", "CORE", "2", 500, "20.12", base + 5_000, f"DS{k}")
        w.replaced("D1", "CORE", "1", 500, "19.92", base + 5_001, f"DB{k}")
        w.cancelled("D1", "CORE", "2", 500, "20.12", base + 30_000, f"DS{k}")
        w.cancelled("D1", "CORE", "1", 500, "19.92", base + 30_001, f"DB{k}")
    # heidi: an order storm, 30 orders each re-priced once (60 order messages), two trades,
    # the rest cancelled at the end
    for i in range(30):
        w.report("H1", "DUSK", "1", "0", 100, "0", 2_000_000 + i * 500, f"HO{i}", price="2.99")
        w.replaced("H1", "DUSK", "1", 100, "3.00", 2_000_250 + i * 500, f"HO{i}")
    w.filled("H1", "DUSK", "1", 100, "3.00", 2_040_000, "HO0")
    w.filled("H1", "DUSK", "1", 100, "3.00", 2_041_000, "HO1")
    for i in range(2, 30):
        w.cancelled("H1", "DUSK", "1", 100, "3.00", 2_050_000 + i, f"HO{i}")
    # ivan: ordinary orders, filled; the first two amended (a cent higher) before they fill
    for i in range(10):
        w.report("I1", "DUSK", "1", "0", 100, "0", 2_100_000 + i * 10_000, f"IO{i}", price="3.01")
        if i < 2:
            w.replaced("I1", "DUSK", "1", 100, "3.02", 2_100_200 + i * 10_000, f"IO{i}")
        px = "3.02" if i < 2 else "3.01"
        w.filled("I1", "DUSK", "1", 100, px, 2_100_500 + i * 10_000, f"IO{i}")
    _market_abuse(w)
    w.lines.sort(key=lambda item: item[0])  # stable: same-time messages keep their order
    day.write_bytes(b"".join(line + b"\n" for _, line in w.lines))
    with open(accounts_csv, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["account", "owner", "cash"])
        writer.writerows([a, o, 10_000_000] for a, o in ACCOUNTS)
    with open(labels_csv, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["subject", "model"])
        writer.writerows(LABELS)
    return len(w.lines)
