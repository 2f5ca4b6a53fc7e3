"""Surveillance state pickled by an earlier release (a recovery snapshot) resumes.

`data/surveillance-before-split.pickle` was written by the `domain/surveillance.py` of commit
6ec2191 (the last before `domain.surveillance` became a package: its classes, private ones
included, are named `domain.surveillance.<class>`) from `OPS_BEFORE` (see `write_fixture`).
Loaded by today's code, the models must go on exactly as models that saw the same events today.
"""

from __future__ import annotations

import pickle
from decimal import Decimal as D
from pathlib import Path

import domain.surveillance as s

FIXTURE = Path(__file__).parent / "data" / "surveillance-before-split.pickle"
T0 = 20_400 * 86_400 * 10**9 + (20 * 3600 + 35 * 60) * 10**9  # 20:35 UTC: the closing window
S = 10**9
OWNERS = {"A1": "O1", "A2": "O1", "B1": "O2"}


def _fill(exec_id: str, account: str, side: str, qty: int, px: str, at_s: int, cl: str,
          match: str | None = None) -> s.Fill:  # fmt: skip
    return s.Fill(exec_id, account, "ACME", side, D(qty), D(px), T0 + at_s * S, cl, match)


OPS_BEFORE: list[tuple] = [
    ("day_volume", 100_000.0, 0),
    ("order", "B1", "S1", "2", 2000, "10.05", 1),
    ("order", "B1", "S2", "2", 2000, "10.06", 2),
    ("fill", _fill("E1", "B1", "1", 100, "10.00", 3, "B9")),
    ("fill", _fill("E2", "A1", "1", 300, "10.00", 4, "C1", "M1")),
    ("fill", _fill("E3", "A2", "2", 300, "10.00", 5, "C2")),
    ("trade", 500.0, 6),
    ("fill", _fill("E4", "A1", "2", 300, "10.00", 7, "C3")),
]
OPS_AFTER: list[tuple] = [
    ("fill", _fill("E5", "A2", "1", 300, "10.00", 8, "C8")),  # E4's other side, same owner
    ("cancel", "B1", "S1", 8),
    ("cancel", "B1", "S2", 9),
    ("fill", _fill("E5", "A1", "2", 300, "10.00", 10, "C4", "M1")),
    ("fill", _fill("E6", "C9", "1", 6000, "10.00", 11, "C5")),
    ("fill", _fill("E7", "C9", "2", 6000, "13.00", 12, "C6")),
    ("trade", 100.0, 1600),  # 21:01:40, past the close: the closing window is judged
    ("fill", _fill("E8", "A1", "1", 100, "10.00", 86_400, "C7")),  # the next day
]


def models() -> list:
    return [s.SelfMatchModel(OWNERS), s.RoundTripModel(OWNERS), s.OrderToTradeModel(),
            s.OwnershipMissingModel(OWNERS), s.SpoofingModel(), s.MarkingTheCloseModel(),
            s.PumpAndDumpModel(), s.OrderChains()]  # fmt: skip


def apply(state: list, op: tuple) -> list:
    self_match, trips, otr, owners, spoof, close, pump, chains = state
    kind = op[0]
    if kind == "fill":
        fill = op[1]
        return [f for m in (self_match, trips, otr, owners, spoof, close, pump)
                for f in m.on_fill(fill)]  # fmt: skip
    if kind == "order":
        _, account, cl, side, qty, px, at_s = op
        chains.placed(f"V{cl}", cl, T0 + at_s * S)
        return [*spoof.on_order(account, "ACME", cl, side, D(qty), D(px), T0 + at_s * S),
                *otr.on_order(account, cl, T0 + at_s * S)]  # fmt: skip
    if kind == "cancel":
        _, account, cl, at_s = op
        chains.ended(f"V{cl}")
        return spoof.on_cancel(account, "ACME", cl, T0 + at_s * S)
    if kind == "trade":
        return [*close.on_market("ACME", op[1], T0 + op[2] * S),
                *pump.on_market("ACME", op[1], T0 + op[2] * S)]  # fmt: skip
    return [*close.on_day_volume("ACME", op[1], T0 + op[2] * S),
            *pump.on_day_volume("ACME", op[1], T0 + op[2] * S)]  # fmt: skip


def write_fixture() -> None:  # run with the old domain package first on sys.path
    state = models()
    for op in OPS_BEFORE:
        apply(state, op)
    FIXTURE.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def test_models_pickled_before_the_split_resume_like_new_ones() -> None:
    old = pickle.loads(FIXTURE.read_bytes())
    new = models()
    for op in OPS_BEFORE:
        apply(new, op)
    outcomes = [apply(old, op) for op in OPS_AFTER]
    assert outcomes == [apply(new, op) for op in OPS_AFTER]
    assert [len(m) for m in old if hasattr(m, "__len__")] == [
        len(m) for m in new if hasattr(m, "__len__")
    ]
    kinds = sorted({f.kind for found in outcomes for f in found})
    assert kinds == ["MARKING_THE_CLOSE", "OWNERSHIP_MISSING", "PUMP_AND_DUMP", "SPOOFING",
                     "WASH_TRADE"]  # fmt: skip
