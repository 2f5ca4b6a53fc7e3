"""Margin maths and the call state machine, against hand calculations."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from domain.margin import (
    ConcentrationRule,
    MarginMonitor,
    MarginPolicy,
    MarginState,
    assess_concentration,
    margin_figures,
    propose_liquidation,
    shortfall,
)

NO_ADD_ON = MarginPolicy(concentration=())
S = 1_000_000_000


def test_figures_long_short_several_symbols_negative_cash() -> None:
    # Long 100 A @ 50 = 5,000; long 200 B @ 20 = 4,000; short 50 C @ 40 = -2,000; cash -3,000.
    f = margin_figures(
        D(-3000), {"A": D(100), "B": D(200), "C": D(-50)}, {"A": 50.0, "B": D(20), "C": 40.0},
        policy=NO_ADD_ON,
    )  # fmt: skip
    assert (f.long_value, f.short_value, f.gross_value) == (D(9000), D(2000), D(11000))
    assert f.equity == D(-3000) + D(5000) + D(4000) - D(2000) == D(4000)
    assert f.ratio == D(4000) / D(11000)
    assert f.maintenance_requirement == D("3300.0")  # 30 % of 11,000
    assert f.initial_requirement == D("5500.0")
    assert f.excess == D("700.0") and not f.in_deficit and not f.meets_initial


def test_concentration_add_on_raises_the_rate_of_the_big_position() -> None:
    # A is 8,000 of 10,000 gross (80 % > 25 %): margined at 40 %; B at 30 %.
    f = margin_figures(D(0), {"A": D(100), "B": D(100)}, {"A": D(80), "B": D(20)})
    assert f.concentrated == (("A", D("0.8")),)
    assert f.maintenance_requirement == D(8000) * D("0.40") + D(2000) * D("0.30")
    assert f.initial_requirement == D(8000) * D("0.50") + D(2000) * D("0.50")


def test_shortfall_cash_and_reduction_restore_the_levels() -> None:
    # Long 1,000 A @ 10 = 10,000, cash -8,000: equity 2,000; maintenance 3,000, initial 5,000.
    f = margin_figures(D(-8000), {"A": D(1000)}, {"A": D(10)}, policy=NO_ADD_ON)
    s = shortfall(f)
    assert (s.cash_to_maintenance, s.cash_to_initial) == (D(1000), D(3000))
    # Selling V keeps equity at 2,000 and leaves 0.3 * (10,000 - V) <= 2,000: V >= 3,333.33,
    # rounded up to whole shares at 10: 334 shares = 3,340.
    assert s.reduction_to_maintenance == D(3340)
    # Initial: 0.5 * (10,000 - V) <= 2,000: V >= 6,000 = 600 shares.
    assert s.reduction_to_initial == D(6000)
    cured = margin_figures(D(-8000) + D(1000), {"A": D(1000)}, {"A": D(10)}, policy=NO_ADD_ON)
    assert not cured.in_deficit
    sold = margin_figures(D(-8000) + D(3340), {"A": D(1000 - 334)}, {"A": D(10)}, policy=NO_ADD_ON)
    assert not sold.in_deficit


def test_liquidation_order_highest_rate_then_largest_value() -> None:
    policy = MarginPolicy(concentration=((D("0.5"), D("0.6")),))
    # A 6,000 (60 % > 50 %: rate 0.6), B 3,000, C short 1,000; cash -7,500: equity 500.
    f = margin_figures(
        D(-6500), {"A": D(600), "B": D(300), "C": D(-100)}, {"A": D(10), "B": D(10), "C": D(10)},
        policy=policy,
    )  # fmt: skip
    lines = propose_liquidation(f)
    assert [line.symbol for line in lines][0] == "A"
    assert lines[0].side == "2"
    after = {"A": D(600), "B": D(300), "C": D(-100)}
    cash = D(-6500)
    for line in lines:
        sign = -1 if line.side == "2" else 1
        after[line.symbol] += sign * line.quantity
        cash -= sign * line.quantity * line.mark
    result = margin_figures(cash, after, {"A": D(10), "B": D(10), "C": D(10)}, policy=policy)
    assert result.meets_initial


def test_unmarked_symbol_is_flagged_not_valued_at_zero() -> None:
    f = margin_figures(D(-1000), {"A": D(10), "B": D(10)}, {"A": D(5)})
    assert f.unmarked == ("B",)
    assert not f.in_deficit  # no verdict without every mark
    monitor = MarginMonitor()
    assert monitor.update(f, 1) == [] and monitor.state is MarginState.NORMAL


def test_call_once_per_episode_cure_and_new_episode() -> None:
    monitor = MarginMonitor(grace_ns=3600 * S)
    holding = {"A": D(1000)}

    def at(px: int, cash: D = D(-8000)):
        return margin_figures(cash, holding, {"A": D(px)}, policy=NO_ADD_ON)

    assert monitor.update(at(12), 1 * S) == []  # equity 4,000 >= 3,600
    [call] = monitor.update(at(11), 2 * S)  # equity 3,000 < 3,300
    assert (call.kind, call.episode_ns) == ("MARGIN_CALL", 2 * S)
    assert call.shortfall.cash_to_maintenance == D(300)
    assert monitor.update(at(10), 3 * S) == []  # still in the same episode: no second call
    [cured] = monitor.update(at(12), 4 * S)
    assert (cured.kind, cured.episode_ns) == ("MARGIN_CALL_CURED", 2 * S)
    [again] = monitor.update(at(10), 5 * S)
    assert (again.kind, again.episode_ns) == ("MARGIN_CALL", 5 * S)
    # A deposit cures it.
    [deposit] = monitor.update(at(10, D(-8000) + D(1500)), 6 * S)
    assert deposit.kind == "MARGIN_CALL_CURED"


def test_a_call_is_cured_only_above_the_cure_band() -> None:
    # 1,000 A, cash -8,000, maintenance 30 %, cure band 2 % of gross. At 11: equity 3,000 <
    # 3,300: called. At 11.50: equity 3,500 >= 3,450 (out of deficit) but the excess 50 is
    # under 2 % of 11,500 = 230: the call stands. At 11.90: excess 3,900 - 3,570 = 330 >= 238.
    policy = MarginPolicy(concentration=(), cure_band=D("0.02"))
    monitor = MarginMonitor(grace_ns=3600 * S)

    def at(px: str):
        return margin_figures(D(-8000), {"A": D(1000)}, {"A": D(px)}, policy=policy)

    assert [t.kind for t in monitor.update(at("11"), 1 * S)] == ["MARGIN_CALL"]
    assert monitor.update(at("11.50"), 2 * S) == [] and monitor.state is MarginState.CALL
    assert monitor.update(at("10.90"), 3 * S) == []  # back in deficit: the same episode
    assert [t.kind for t in monitor.update(at("11.90"), 4 * S)] == ["MARGIN_CALL_CURED"]


def test_concentration_alerts_once_per_episode_with_a_band_and_a_wait() -> None:
    # Threshold 25 %, re-armed below 20 % and no sooner than 60 s after the episode began.
    rule = ConcentrationRule(D("0.25"), D("0.05"), 60 * S)

    def book(**held: int):
        # Every symbol at 1: a position's share is its quantity over the total.
        return margin_figures(D(0), {s: D(q) for s, q in held.items()}, dict.fromkeys(held, D(1)))

    flags, found = assess_concentration(book(A=30, B=35, C=35), {}, rule, 0)
    assert flags == {"A": 0, "B": 0, "C": 0} and len(found) == 3  # three episodes
    flags, found = assess_concentration(book(A=24, B=38, C=38), flags, rule, 70 * S)
    assert set(flags) == {"A", "B", "C"} and found == []  # 24 % >= 20 %: still flagged
    flags, found = assess_concentration(book(A=10, B=45, C=45), flags, rule, 80 * S)
    assert set(flags) == {"B", "C"} and found == []  # 10 %, a minute on: re-armed
    flags, found = assess_concentration(book(A=30, B=35, C=35), flags, rule, 90 * S)
    assert [x.symbol for x in found] == ["A"] and flags["A"] == 90 * S  # a new episode
    # Traded out and back in within the minute: the same episode, no second alert.
    flags, found = assess_concentration(book(B=50, C=50), flags, rule, 100 * S)
    assert "A" in flags and found == []
    flags, found = assess_concentration(book(A=40, B=30, C=30), flags, rule, 110 * S)
    assert found == [] and flags["A"] == 90 * S
    # Closed for good, the episode re-arms once it is a minute old.
    flags, _ = assess_concentration(book(B=50, C=50), flags, rule, 151 * S)
    assert set(flags) == {"B", "C"}


def test_liquidation_exactly_when_the_grace_period_has_passed() -> None:
    monitor = MarginMonitor(grace_ns=3600 * S)
    f = margin_figures(D(-8000), {"A": D(1000)}, {"A": D(10)}, policy=NO_ADD_ON)
    [call] = monitor.update(f, 100 * S)
    assert monitor.due_ns() == 3700 * S
    assert monitor.check_grace(f, 3700 * S - 1) == []
    [liq] = monitor.check_grace(f, 3700 * S)
    assert liq.kind == "LIQUIDATION" and liq.episode_ns == call.episode_ns
    assert [(x.symbol, x.side, x.quantity) for x in liq.liquidation] == [("A", "2", D(600))]
    assert monitor.state is MarginState.LIQUIDATING
    assert monitor.update(f, 3800 * S) == []  # no second liquidation alert
    cured = margin_figures(D(-2000), {"A": D(400)}, {"A": D(10)}, policy=NO_ADD_ON)
    assert [t.kind for t in monitor.update(cured, 3900 * S)] == ["MARGIN_CALL_CURED"]


@given(
    cash=st.integers(-100_000, 100_000),
    positions=st.dictionaries(
        st.sampled_from("ABCDE"),
        st.tuples(st.integers(-500, 500).filter(bool), st.integers(1, 500)),
        min_size=1,
    ),
)
def test_proposed_liquidation_restores_initial_margin(cash, positions) -> None:
    holdings = {s: D(q) for s, (q, _) in positions.items()}
    marks = {s: D(px) for s, (_, px) in positions.items()}
    f = margin_figures(D(cash), holdings, marks)
    lines = propose_liquidation(f)
    if f.meets_initial:
        assert lines == []
        return
    after = dict(holdings)
    new_cash = D(cash)
    for line in lines:
        sign = -1 if line.side == "2" else 1
        assert line.quantity <= abs(holdings[line.symbol])
        after[line.symbol] += sign * line.quantity
        new_cash -= sign * line.quantity * line.mark
    result = margin_figures(new_cash, after, marks)
    # Either initial margin is restored, or everything was sold and equity is still negative.
    assert result.meets_initial or all(q == 0 for q in after.values())


# Accounts whose rates are fixed (no concentration add-on), marks in cents.
FIXED_RATE_ACCOUNTS = {
    "cash": st.integers(-80_000, 20_000),
    "positions": st.dictionaries(
        st.sampled_from("ABCDEFG"),
        st.tuples(st.integers(-500, 500).filter(bool), st.integers(1, 50_000)),
        min_size=1,
    ),
}


def _fixed_rate_figures(cash: int, positions: dict[str, tuple[int, int]]):
    holdings = {s: D(q) for s, (q, _) in positions.items()}
    marks = {s: D(c).scaleb(-2) for s, (_, c) in positions.items()}
    return margin_figures(D(cash), holdings, marks, policy=NO_ADD_ON)


@given(**FIXED_RATE_ACCOUNTS, initial=st.booleans())
def test_one_pass_reduction_equals_the_rounds_when_rates_are_fixed(cash, positions, initial):
    from domain.margin import _reduction_one_pass, _reduction_rounds

    f = _fixed_rate_figures(cash, positions)
    assert _reduction_one_pass(f, initial) == _reduction_rounds(f, initial)


@given(**FIXED_RATE_ACCOUNTS)
def test_shortfall_and_liquidation_agree_with_the_general_reduction(cash, positions):
    """The margin-call path (`shortfall`: totals only) and the liquidation path
    (`propose_liquidation`: the lines) give what the general rule, one position per round
    with the figures recomputed, gives when rates are fixed."""
    from domain.margin import _reduction_rounds, propose_liquidation, shortfall

    f = _fixed_rate_figures(cash, positions)
    owed = shortfall(f)
    to_maintenance, _ = _reduction_rounds(f, False)
    to_initial, lines = _reduction_rounds(f, True)
    assert owed.reduction_to_maintenance == to_maintenance
    assert owed.reduction_to_initial == to_initial
    assert propose_liquidation(f) == lines
    assert sum((x.value for x in lines), D(0)) == to_initial
