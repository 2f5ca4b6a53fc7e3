"""A labelled surveillance scenario: abusive patterns and innocent look-alikes in one FIX day.

`write_scenario(day, accounts_csv, labels_csv)` writes execution reports (35=8) of:
- abusive: alice's self-match between her two accounts (same TrdMatchID), bob's 12 round trips
  in one symbol, carol's layering (large sell orders at three prices, a small buy fill, the
  sells cancelled within seconds), heidi's order storm (60 orders, 2 trades);
- innocent look-alikes: frank and gina trading with each other (same TrdMatchID, different
  owners), erin the day trader building a position (buys 3 for every 2 sold), dave the market
  maker (quotes both sides, trades, refreshes his quotes after 30 s), ivan placing and filling
  orders normally;
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
]  # fmt: skip
LABELS = [("alice", "WASH_TRADE"), ("bob", "WASH_TRADE"), ("C1", "SPOOFING"),
          ("H1", "EXCESSIVE_OTR")]  # fmt: skip


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
