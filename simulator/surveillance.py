"""A labelled surveillance scenario: abusive patterns and innocent look-alikes in one FIX day.

`write_scenario(day, accounts_csv, labels_csv)` writes execution reports (35=8) of:
- abusive: alice's self-match between her two accounts (same TrdMatchID), bob's 12 round trips
  in one symbol, carol's layering (large sell orders at three prices, a small buy fill, the
  sells cancelled within seconds), heidi's order storm (60 orders, 2 trades);
- innocent look-alikes: frank and gina trading with each other (same TrdMatchID, different
  owners), erin the day trader building a position (buys 3 for every 2 sold), dave the market
  maker (quotes both sides, trades, refreshes his quotes after 30 s), ivan placing and filling
  orders normally;
- with market data (35=X trades, so the models know each symbol's volume): kim's pump and dump
  (buys well over 5 % of PUMP's day volume, then sells 25 % higher after the price rises), and
  liam, the lucky small trader next to her (a 2 % share, the same profitable exit); nina marking
  the close (7 % of CLSE's volume in its last 30 minutes, 0.5 % of its day), and oscar, who
  trades CLSE at midday and a little before the close; X8 and X9, accounts not on record
  (no owner known: OWNERSHIP_MISSING), trading with each other;
and the labels (`subject,model`: which subject truly abuses which model) to score the models'
precision and recall with `brokerflow replay --labels`. Deterministic.
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


class _Writer:
    def __init__(self) -> None:
        self.lines: list[tuple[int, bytes]] = []
        self.seq = 0
        self.ids = 0

    def report(self, account: str, symbol: str, side: str, exec_type: str, qty: int,
               px: str, at_ms: int, cl_ord_id: str = "", match: str | None = None,
               price: str | None = None) -> None:  # fmt: skip
        self.seq += 1
        self.ids += 1
        ts = T0 + at_ms * 1_000_000
        stamp = _stamp(ts)
        cl = cl_ord_id or f"CL{self.ids}"
        fill = exec_type == "F"
        m = simplefix.FixMessage()
        pairs = [
            (8, "FIX.4.4"), (35, "8"), (49, "BROKER"), (56, "SURV"), (34, self.seq), (52, stamp),
            (37, f"O-{cl}"), (11, cl), (17, f"X{self.ids}"), (150, exec_type),
            (39, {"F": "2", "0": "0", "4": "4"}[exec_type]), (1, account), (55, symbol),
            (54, side), (38, qty), (32, qty if fill else 0), (31, px if fill else 0),
            (14, qty if fill else 0), (151, 0 if fill or exec_type == "4" else qty),
            (6, px if fill else 0), (60, stamp),
        ]  # fmt: skip
        if price is not None:
            pairs += [(40, "2"), (44, price)]
        if match:
            pairs.append((880, match))
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


def write_scenario(day: Path, accounts_csv: Path, labels_csv: Path) -> int:
    """Write the scenario; return the number of messages."""
    w = _Writer()
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
    # carol: layering in CORE
    for i, px in enumerate(("20.05", "20.06", "20.07")):
        w.report("C1", "CORE", "2", "0", 3_000, "0", 900_000 + i, f"CS{i}", price=px)
    w.report("C1", "CORE", "1", "F", 100, "20.00", 901_000, "CB")
    for i in range(3):
        w.report("C1", "CORE", "2", "4", 3_000, "0", 903_000 + i, f"CS{i}", price="20.05")
    # dave: a market maker quoting both sides, trading, refreshing quotes 30 s later
    for k in range(5):
        base = 1_000_000 + k * 60_000
        w.report("D1", "CORE", "2", "0", 500, "0", base, f"DS{k}", price="20.10")
        w.report("D1", "CORE", "1", "0", 500, "0", base + 1, f"DB{k}", price="19.90")
        w.report("D1", "CORE", "1", "F", 100, "20.10", base + 1_000, f"DT{k}")
        w.report("D1", "CORE", "2", "4", 500, "0", base + 30_000, f"DS{k}", price="20.10")
        w.report("D1", "CORE", "1", "4", 500, "0", base + 30_001, f"DB{k}", price="19.90")
    # heidi: an order storm with two trades
    for i in range(60):
        w.report("H1", "DUSK", "1", "0", 100, "0", 2_000_000 + i * 500, f"HO{i}", price="3.00")
    w.report("H1", "DUSK", "1", "F", 100, "3.00", 2_040_000, "HO0")
    w.report("H1", "DUSK", "1", "F", 100, "3.00", 2_041_000, "HO1")
    # ivan: ordinary orders, filled
    for i in range(10):
        w.report("I1", "DUSK", "1", "0", 100, "0", 2_100_000 + i * 10_000, f"IO{i}", price="3.01")
        w.report("I1", "DUSK", "1", "F", 100, "3.01", 2_100_500 + i * 10_000, f"IO{i}")
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
