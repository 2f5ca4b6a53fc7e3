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


# -- spoofing ---------------------------------------------------------------------------------


def spoof(model, cancel_at_s: float, levels=("10.05", "10.06", "10.07"), resting_qty=2000):
    """Sell orders far above a small buy fill, then cancelled."""
    from domain.surveillance import SpoofingModel  # noqa: F401 - documents the model used

    found = []
    for i, px in enumerate(levels):
        found += model.on_order("B1", "ACME", f"S{i}", "2", D(resting_qty), D(px), T0 + i)
    found += model.on_order("B1", "ACME", "BUY", "1", D(100), D("10.00"), T0 + 10)
    found += model.on_fill(fill("E1", "B1", "1", 100, at_s=1))
    for i in range(len(levels)):
        found += model.on_cancel("B1", "ACME", f"S{i}", T0 + int(cancel_at_s * NS_PER_S) + i)
    return found


def test_layering_fires_with_its_evidence():
    from domain.surveillance import SPOOFING, SpoofingModel

    [f] = spoof(SpoofingModel(), cancel_at_s=5)
    assert (f.kind, f.subject, f.evidence["pattern"]) == (SPOOFING, "B1", "layering")
    assert f.evidence["opposite_volume"] == D(6000) and f.evidence["fill_exec_id"] == "E1"
    assert f.evidence["price_levels"] == ["10.05", "10.06", "10.07"]
    assert f.evidence["cancelled_fraction"] >= D("0.80")


def test_cancelling_after_the_window_or_a_small_book_is_not_spoofing():
    from domain.surveillance import SpoofingModel

    assert spoof(SpoofingModel(), cancel_at_s=30) == []  # a market maker refreshing later
    assert spoof(SpoofingModel(), cancel_at_s=5, resting_qty=100) == []  # 300 < 5 x 100
    assert len(spoof(SpoofingModel(size_multiple=D(2)), cancel_at_s=5, resting_qty=100)) == 1
    [single] = spoof(SpoofingModel(), cancel_at_s=5, levels=("10.05",), resting_qty=6000)
    assert single.evidence["pattern"] == "spoofing"


def test_orders_resting_longer_than_the_bound_are_forgotten():
    """Resting state stays bounded: orders whose end never comes leave after a day."""
    from domain.surveillance import SpoofingModel

    model = SpoofingModel()
    for i in range(1_000):  # a day of orders whose cancel or fill was never reported
        model.on_order(f"A{i}", "ACME", f"O{i}", "2", D(1_000), D("10.05"), T0 + i * NS_PER_S)
    assert model.resting() == 1_000
    next_day = T0 + NS_PER_DAY + 500 * NS_PER_S
    model.on_order("B1", "ACME", "NEW", "1", D(100), D("10.00"), next_day)
    assert model.resting() == 500 + 1  # the first 500 are older than a day
    # a forgotten order no longer makes a fill suspect: A1's sell rested a day ago
    assert model.on_fill(fill("E9", "A1", "1", 100, at_s=NS_PER_DAY / NS_PER_S + 600)) == []
    assert len(model) == 0
    # the bound is a parameter: a week keeps them all
    patient = SpoofingModel(max_resting_ns=7 * NS_PER_DAY)
    for i in range(10):
        patient.on_order(f"A{i}", "ACME", f"O{i}", "2", D(1_000), D("10.05"), T0 + i)
    patient.on_order("B1", "ACME", "NEW", "1", D(100), D("10.00"), T0 + 2 * NS_PER_DAY)
    assert patient.resting() == 11


# -- marking the close ------------------------------------------------------------------------


def test_marking_the_close_judged_at_the_close():
    from domain.surveillance import MARKING_THE_CLOSE, MarkingTheCloseModel

    close = 21 * 3600 * NS_PER_S
    day0 = T0 - T0 % NS_PER_DAY
    model = MarkingTheCloseModel(close_ns_of_day=close)
    found = model.on_market_trade("ACME", 100_000, day0 + 15 * 3600 * NS_PER_S)
    last_minutes = day0 + close - 10 * 60 * NS_PER_S
    found += model.on_market_trade("ACME", 10_000, last_minutes)
    found += model.on_fill(Fill("E1", "B1", "ACME", "1", D(1_000), D("10"), last_minutes, "C1"))
    found += model.on_fill(Fill("E2", "C1", "ACME", "1", D(100), D("10"), last_minutes, "C2"))
    assert found == []
    # The first event after the close judges the day: B1 did 1,000 of 10,000 (10 %) at the
    # close; C1 did 1 %, under both thresholds (5 % of the window, 1 % of 110,000).
    [f] = model.on_market_trade("ACME", 1, day0 + close + NS_PER_S)
    assert (f.kind, f.subject, f.evidence["window_share"]) == (MARKING_THE_CLOSE, "B1", D("0.1"))


def test_day_volume_is_the_venues_report_plus_the_trades_after_it():
    from domain.surveillance import TRADE_VOLUME, TRADES_SEEN, DayVolume

    volume = DayVolume()
    volume.update("ACME", 500)  # prints, no figure from the venue yet
    assert (volume.of("ACME"), volume.source("ACME")) == (500, TRADES_SEEN)
    # A trade, then the venue's TradeVolume (269=B) in the same message: the figure counts it.
    volume.update("ACME", 200, 4_000_000)
    volume.update("ACME", 300)
    assert (volume.of("ACME"), volume.source("ACME")) == (4_000_300, TRADE_VOLUME)
    volume.update("ACME", 0, 4_000_500)  # the next figure replaces it, no trade counted twice
    assert volume.of("ACME") == 4_000_500
    volume.clear()
    assert (volume.of("ACME"), len(volume)) == (0, 0)


def _close_day(reported_day_volume):
    """A feed that joins at 20:40, inside the closing window (20:30-21:00): the venue's
    snapshot (35=W) says 4,000,000 shares of ACME traded today (269=B), or says nothing; then
    100,000 shares print before the close. B1 trades 2,000 (2 % of what the feed saw, 0.05 %
    of the venue's day), C1 6,000 (6 % of the window)."""
    from domain.surveillance import MarkingTheCloseModel

    def at(minutes: float) -> int:  # minutes after 20:00 UTC
        return T0 - T0 % NS_PER_DAY + 20 * 3600 * NS_PER_S + int(minutes * 60 * NS_PER_S)

    model = MarkingTheCloseModel()
    found = []
    if reported_day_volume:
        found += model.on_day_volume("ACME", reported_day_volume, at(40))
    for k in range(10):
        found += model.on_market_trade("ACME", 10_000, at(41 + k))
    found += model.on_fill(Fill("E1", "B1", "ACME", "1", D(2_000), D("10"), at(45), "C1"))
    found += model.on_fill(Fill("E2", "C1", "ACME", "2", D(6_000), D("10"), at(55), "C2"))
    found += model.on_market_trade("ACME", 100, at(61))  # after the close: the day is judged
    return {f.subject: f.evidence for f in found}


def test_marking_the_close_day_share_is_the_venues_day_not_the_minutes_seen():
    judged = _close_day(4_000_000)
    assert set(judged) == {"C1"}  # B1's 2,000 is 0.05 % of the day the venue reports
    assert judged["C1"]["day_volume"] == D(4_100_000)
    assert judged["C1"]["day_volume_source"] == "TradeVolume (269=B)"
    assert judged["C1"]["window_share"] == D("0.06")
    # Without the venue's figure the model knows only the trades it saw, and says so.
    blind = _close_day(None)
    assert set(blind) == {"B1", "C1"}  # 2,000 of the 100,000 seen: the day share's 1 %
    assert blind["B1"]["day_volume"] == D(100_000)
    assert blind["B1"]["day_volume_source"] == "trades seen (269=2)"


# -- pump and dump ----------------------------------------------------------------------------


def test_pump_then_dump_raises_the_score():
    from domain.surveillance import PUMP_AND_DUMP, PumpAndDumpModel

    model = PumpAndDumpModel()
    found = model.on_market_trade("ACME", 100_000, T0)
    found += model.on_fill(fill("B1", "B1", "1", 3_000, "10.00", at_s=10))  # 3 % of the day
    found += model.on_fill(fill("B2", "B1", "1", 3_000, "10.00", at_s=20))  # 6 %: flagged
    found += model.on_fill(fill("S1", "B1", "2", 1_000, "11.00", at_s=3600))  # +10 %: not yet
    found += model.on_fill(fill("S2", "B1", "2", 5_000, "12.50", at_s=7200))  # +25 %: dump
    assert [(f.kind, f.evidence["stage"], f.score) for f in found] == [
        (PUMP_AND_DUMP, "accumulation", 60), (PUMP_AND_DUMP, "dump", 90)
    ]
    assert found[1].evidence["rise"] == D("0.25") and found[1].evidence["sell_exec_id"] == "S2"


def test_a_large_buyer_in_a_deep_market_is_not_a_pump():
    from domain.surveillance import PumpAndDumpModel

    model = PumpAndDumpModel()
    model.on_market_trade("ACME", 10_000_000, T0)
    assert model.on_fill(fill("B1", "C1", "1", 50_000, "10.00", at_s=10)) == []  # 0.5 %
    stricter = PumpAndDumpModel(volume_share=D("0.001"))  # the threshold moves the boundary
    stricter.on_market_trade("ACME", 10_000_000, T0)
    assert len(stricter.on_fill(fill("B1", "C1", "1", 50_000, "10.00", at_s=10))) == 1


def test_a_pump_is_judged_against_the_venues_day_volume():
    """A feed that joins at 14:00 UTC: the venue's snapshot says 3,000,000 shares of ACME
    traded so far today (269=B). 20,000 more print, then B1 buys 5,000 in one order: a quarter
    of what the feed saw, 0.16 % of the day. In THIN, which no venue reports a volume for, the
    same buy is a quarter of the day's prints."""
    from domain.surveillance import PumpAndDumpModel

    model = PumpAndDumpModel()
    model.on_day_volume("ACME", 3_000_000, T0)
    for k in range(4):
        model.on_market_trade("ACME", 5_000, T0 + k * NS_PER_S)
        model.on_market_trade("THIN", 5_000, T0 + k * NS_PER_S)
    assert model.on_fill(fill("B1", "B1", "1", 5_000, at_s=10)) == []
    [f] = model.on_fill(fill("B2", "B1", "1", 5_000, at_s=10, symbol="THIN"))
    assert (f.evidence["stage"], f.evidence["symbol_day_volume"]) == ("accumulation", D(20_000))
    assert f.evidence["day_volume_source"] == "trades seen (269=2)"


def test_pump_state_is_bounded_by_its_window():
    from domain.surveillance import PumpAndDumpModel

    model = PumpAndDumpModel(within_ns=48 * 3600 * NS_PER_S)
    for h in range(200):  # a new buyer every hour for 200 hours
        model.on_fill(fill(f"B{h}", f"X{h}", "1", 100, at_s=h * 3600))
    assert len(model._positions) <= 49


def test_orders_that_expire_stop_resting_without_counting_as_cancels():
    from domain.surveillance import SpoofingModel

    model = SpoofingModel()
    model.on_order("B1", "ACME", "S0", "2", D(6000), D("10.05"), T0)
    model.on_done("B1", "ACME", "S0", T0 + 1)  # expired at the venue
    assert model.resting() == 0
    model.on_fill(fill("E1", "B1", "1", 100, at_s=1))
    assert len(model) == 0  # nothing rests against the fill: no suspect


def test_order_chains_find_the_order_however_the_venue_names_it() -> None:
    from domain.surveillance import OrderChains

    chains = OrderChains()
    chains.placed("V1", "C1", T0)  # 150=0
    # replaced (150=5): 11 the new id, 41 the old; the order stays known as placed, C1
    assert chains.known("V1", "C2", "C1", "5") == "C1"
    chains.placed("V1", chains.known("V1", "C2", "C1", "5"), T0 + 1)
    assert chains.known("V1", "C2", None, "F") == "C1"  # a fill of the replaced order
    # cancelled the standard way (11 the cancel request, 41 the order's last id): by OrderID
    assert chains.known("V1", "Q9", "C2", "4") == "C1"
    chains.ended("V1")
    # an order never seen: 41 on a cancel, else 11 (a venue echoing the order's ClOrdID)
    assert chains.known("V7", "Q1", "C7", "4") == "C7"
    assert chains.known("V8", "C8", None, "4") == "C8"
    assert chains.known("", "C9", None, "F") == "C9"


def test_order_chains_are_bounded_in_event_time() -> None:
    from domain.surveillance import OrderChains

    chains = OrderChains()
    for i in range(1_000):  # a day of orders whose end was never reported
        chains.placed(f"V{i}", f"C{i}", T0 + i * NS_PER_S)
    chains.placed("V0", "C0", T0 + 600 * NS_PER_S)  # V0 replaced: placed again
    chains.placed("W", "W1", T0 + NS_PER_DAY + 500 * NS_PER_S)
    assert len(chains) == 500 + 1 + 1  # V0, V500..V999 and W
    assert chains.known("V0", "C0-2", "C0-1", "5") == "C0"


def resting_layers(model) -> None:
    """B1 rests 3 x 2,000 to sell above the market, then buys 100 (a fill at 1 s)."""
    for i, px in enumerate(("10.05", "10.06", "10.07")):
        model.on_order("B1", "ACME", f"S{i}", "2", D(2000), D(px), T0 + i)
    model.on_fill(fill("E1", "B1", "1", 100, at_s=1))


def test_a_replace_that_cuts_a_layer_cancels_the_cut():
    """FIX has no partial cancel: a client cancels part of an order by replacing it smaller."""
    from domain.surveillance import SpoofingModel

    model = SpoofingModel()
    resting_layers(model)
    assert model.on_cancel("B1", "ACME", "S0", T0 + 3 * NS_PER_S) == []
    assert model.on_cancel("B1", "ACME", "S1", T0 + 3 * NS_PER_S) == []  # 4,000 of 6,000
    # S2 cut from 2,000 to 100 (it rests on at 10.07): 5,900 of 6,000 cancelled
    [f] = model.on_replace("B1", "ACME", "S2", "2", D(100), D("10.07"), T0 + 4 * NS_PER_S)
    assert f.evidence["cancelled_volume"] == D(5900)
    assert f.evidence["cancelled_cl_ord_ids"] == ["S0", "S1", "S2"]
    assert model.resting() == 1


def test_a_replace_that_moves_a_layer_is_not_a_cancel():
    from domain.surveillance import SpoofingModel

    model = SpoofingModel()
    resting_layers(model)
    for i in range(3):  # repriced, the same size: nothing leaves the book
        assert model.on_replace("B1", "ACME", f"S{i}", "2", D(2000), D("10.04"),
                                T0 + 2 * NS_PER_S) == []  # fmt: skip
    assert model.on_cancel("B1", "ACME", "S0", T0 + 3 * NS_PER_S) == []  # a third: no finding
    assert model.resting() == 2
