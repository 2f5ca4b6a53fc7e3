"""Surveillance models: the textbook case fires with its evidence, the look-alike does not, the
threshold moves the boundary, and the same input gives the same findings."""

from __future__ import annotations

from decimal import Decimal as D

from domain.surveillance import (
    EXCESSIVE_OTR,
    NS_PER_DAY,
    NS_PER_S,
    OWNERSHIP_MISSING,
    WASH_TRADE,
    Fill,
    OrderToTradeModel,
    OwnershipMissingModel,
    RoundTripModel,
    SelfMatchModel,
)

T0 = 20_000 * NS_PER_DAY + 14 * 3600 * NS_PER_S  # a day at 14:00 UTC
OWNERS = {"A1": "alice", "A2": "alice", "B1": "bob", "C1": "carol"}


def fill(exec_id, account, side, qty=100, px="10.00", at_s=0.0, match=None, symbol="ACME"):
    return Fill(exec_id, account, symbol, side, D(qty), D(px), T0 + int(at_s * NS_PER_S),
                f"C-{exec_id}", match)  # fmt: skip


def run(model, fills):
    return [f for x in fills for f in model.on_fill(x)]


# -- self-match -------------------------------------------------------------------------------


def test_self_match_by_trade_match_id_between_accounts_of_one_owner():
    found = run(SelfMatchModel(OWNERS), [fill("E1", "A1", "1", match="T9"),
                                         fill("E2", "A2", "2", at_s=0.2, match="T9")])  # fmt: skip
    [f] = found
    assert (f.kind, f.subject, f.symbol) == (WASH_TRADE, "alice", "ACME")
    assert f.evidence["exec_ids"] == ["E1", "E2"] and f.evidence["matched_by"] == "TrdMatchID(880)"
    assert f.evidence["accounts"] == ["A1", "A2"]


def test_self_match_without_match_id_within_the_window_only():
    model = SelfMatchModel(OWNERS, window_ns=NS_PER_S)
    assert len(run(model, [fill("E1", "A1", "1"), fill("E2", "A1", "2", at_s=0.5)])) == 1
    model = SelfMatchModel(OWNERS, window_ns=NS_PER_S)
    assert run(model, [fill("E1", "A1", "1"), fill("E2", "A1", "2", at_s=1.5)]) == []
    wider = SelfMatchModel(OWNERS, window_ns=2 * NS_PER_S)  # the threshold moves the boundary
    assert len(run(wider, [fill("E1", "A1", "1"), fill("E2", "A1", "2", at_s=1.5)])) == 1


def test_trades_between_unrelated_accounts_are_not_self_matches():
    look_alike = [fill("E1", "A1", "1", match="T1"), fill("E2", "B1", "2", match="T1"),
                  fill("E3", "B1", "1", at_s=1), fill("E4", "C1", "2", at_s=1.1)]  # fmt: skip
    assert run(SelfMatchModel(OWNERS), look_alike) == []


def test_self_match_state_is_bounded_by_the_window():
    model = SelfMatchModel(OWNERS)
    run(model, [fill(f"E{i}", "B1", "1", at_s=i * 2, match=f"T{i}") for i in range(1000)])
    assert len(model) <= 2


# -- round trips ------------------------------------------------------------------------------


def trips(account, n, qty=100, start_s=0.0):
    out = []
    for i in range(n):
        out.append(fill(f"{account}-B{i}", account, "1", qty, at_s=start_s + 60 * i))
        out.append(fill(f"{account}-S{i}", account, "2", qty, at_s=start_s + 60 * i + 30))
    return out


def test_ten_round_trips_of_one_owner_fire_once_with_the_figures():
    # Across two accounts of one owner: the owner is the subject.
    fills = trips("A1", 6) + trips("A2", 6, start_s=10_000)
    found = run(RoundTripModel(OWNERS), fills)
    [f] = found
    assert (f.kind, f.subject, f.evidence["pattern"]) == (WASH_TRADE, "alice", "round trips")
    assert f.evidence["round_trips"] == 10 and f.evidence["net_position"] == 0
    assert f.evidence["bought"] == D(1000) and f.evidence["sold"] == D(1000)


def test_a_day_trader_who_builds_a_position_does_not_fire():
    # Buys 3 for every 2 sold: the position grows, no round trip back to flat.
    fills = []
    for i in range(30):
        fills.append(fill(f"B{i}", "B1", "1", 300, at_s=60 * i))
        fills.append(fill(f"S{i}", "B1", "2", 200, at_s=60 * i + 30))
    assert run(RoundTripModel(OWNERS), fills) == []


def test_round_trip_threshold_moves_the_boundary_and_days_reset():
    assert run(RoundTripModel(OWNERS, min_round_trips=10), trips("C1", 9)) == []
    assert len(run(RoundTripModel(OWNERS, min_round_trips=9), trips("C1", 9))) == 1
    # Five today and five tomorrow are two days of five: nothing.
    split = trips("C1", 5) + trips("C1", 5, start_s=NS_PER_DAY / NS_PER_S)
    assert run(RoundTripModel(OWNERS), split) == []


# -- order to trade ---------------------------------------------------------------------------


def test_order_to_trade_ratio_judged_when_the_day_is_over():
    model = OrderToTradeModel(max_ratio=15, min_orders=20)
    found = []
    for i in range(40):
        found += model.on_order("B1", f"O{i}", T0 + i * NS_PER_S)
    found += model.on_fill(fill("E1", "B1", "1", at_s=50))
    found += model.on_fill(fill("E2", "B1", "1", at_s=51))  # 40 orders / 2 trades = 20
    for i in range(30):  # a market maker quoting a lot but trading: 30 / 10 = 3
        found += model.on_order("C1", f"Q{i}", T0 + i * NS_PER_S)
    for i in range(10):
        found += model.on_fill(fill(f"M{i}", "C1", "2", at_s=60 + i))
    assert found == []  # nothing until the day is over
    found = model.on_order("B1", "next-day", T0 + NS_PER_DAY)
    [f] = found
    assert (f.kind, f.subject) == (EXCESSIVE_OTR, "B1")
    assert (f.evidence["orders"], f.evidence["trades"], f.evidence["ratio"]) == (40, 2, D("20.00"))
    looser = OrderToTradeModel(max_ratio=25, min_orders=20)
    for i in range(40):
        looser.on_order("B1", f"O{i}", T0 + i * NS_PER_S)
    looser.on_fill(fill("E1", "B1", "1", at_s=50))
    looser.on_fill(fill("E2", "B1", "1", at_s=51))
    assert looser.close_day() == []


# -- ownership --------------------------------------------------------------------------------


def test_account_without_owner_is_alerted_once_a_day():
    model = OwnershipMissingModel(OWNERS)
    found = run(model, [fill("E1", "X9", "1"), fill("E2", "X9", "2", at_s=5),
                        fill("E3", "A1", "1", at_s=6)])  # fmt: skip
    [f] = found
    assert (f.kind, f.subject, f.evidence["exec_id"]) == (OWNERSHIP_MISSING, "X9", "E1")


def test_same_input_same_findings():
    fills = trips("A1", 12) + [fill("E1", "A1", "1", match="T1"), fill("E2", "A2", "2", match="T1")]

    def everything():
        models = [SelfMatchModel(OWNERS), RoundTripModel(OWNERS), OwnershipMissingModel(OWNERS)]
        return [f for m in models for f in run(m, fills)]

    first, second = everything(), everything()
    assert first == second and {f.kind for f in first} == {WASH_TRADE}
    assert len({f.key for f in first}) == len(first) == 2
