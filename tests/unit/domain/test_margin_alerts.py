"""Concentration and the margin alerts, from the rules' definitions (domain.margin,
`ConcentrationRule`; domain.margin_alerts): a position above the threshold share of the gross
value starts one episode and one alert; it stays flagged, silent, at or above the re-arm share;
it re-arms below it, or as the account's only position, once the episode is old enough."""

from __future__ import annotations

from decimal import Decimal as D

from domain.alerts import CONCENTRATION, alert_id
from domain.margin import ConcentrationRule, MarginMonitor, MarginPolicy, margin_figures
from domain.margin_alerts import concentration_alert, judge_concentration, margin_alert

S = 1_000_000_000
RULE = ConcentrationRule(D("0.25"), D("0.05"), rearm_after_ns=60 * S)


def figures(**values: int):
    """An account holding one share of each symbol at the given price (its value)."""
    return margin_figures(
        D(10_000), {s: D(1) for s in values}, {s: D(v) for s, v in values.items()}
    )


def test_a_position_over_the_threshold_alerts_once_per_episode():
    alerts: list = []
    flags = judge_concentration("ACC1", "ann", figures(A=30, B=35, C=35), {}, RULE, 5 * S, alerts)
    assert flags == {"A": 5 * S, "B": 5 * S, "C": 5 * S}  # each over 25 % of 100
    assert [a.symbol for a in alerts] == ["A", "B", "C"]
    a = alerts[0]
    assert (a.kind, a.severity, a.account, a.owner, a.event_time) == (
        CONCENTRATION, "MEDIUM", "ACC1", "ann", 5 * S,
    )  # fmt: skip
    assert a.alert_id == alert_id(CONCENTRATION, f"ACC1:A:{5 * S}")
    assert a.details == {"share": D("0.3000"), "threshold": D("0.25"), "rearm_below": D("0.20"),
                         "value": D(30), "gross_value": D(100), "mark": D(30)}  # fmt: skip
    # Still over, and between the re-arm share and the threshold: the same episode, silent.
    again: list = []
    flags = judge_concentration("ACC1", "ann", figures(A=22, B=39, C=39), flags, RULE, 6 * S, again)
    assert again == [] and set(flags) == {"A", "B", "C"}


def test_a_flag_re_arms_below_the_re_arm_share_only_once_the_episode_is_old_enough():
    alerts: list = []
    flags = judge_concentration("X", "o", figures(A=30, B=70), {}, RULE, 0, alerts)
    low = figures(A=10, B=10, C=10, D=10, E=60)  # A at 10 %: below the re-arm share
    early = judge_concentration("X", "o", low, flags, RULE, 59 * S, [])
    assert early["A"] == 0  # episode not a minute old: still flagged
    late = judge_concentration("X", "o", low, flags, RULE, 60 * S + 1, alerts := [])
    assert "A" not in late and [a.symbol for a in alerts] == ["E"]  # E's own new episode


def test_rule_rearm_at_is_the_oldest_episode_plus_the_wait_and_the_screen_is_its_floats():
    assert RULE.rearm_at({"A": 7 * S, "B": 3 * S}) == 3 * S + 60 * S
    assert RULE.rearm_at({}) == 60 * S
    assert RULE.screen_at(9) == (0.25, 0.2, 9)
    assert RULE.screen_ns == S  # judged at most once per event-time second


def test_concentration_alert_carries_the_rule_and_the_figures():
    f = figures(A=50, B=50)
    from domain.margin import ConcentrationFinding

    x = ConcentrationFinding("A", D("0.5"), D(50), D(50))
    a = concentration_alert("ACC", "own", x, f, RULE, 42)
    assert a.symbol == "A" and a.details["share"] == D("0.5000")
    assert a.details["gross_value"] == D(100) and a.details["threshold"] == D("0.25")


def test_margin_call_alert_says_the_deposit_that_cures_it():
    policy = MarginPolicy(concentration=(), cure_band=D("0.02"))
    # 1,000 of stock against a 800 loan: equity 200, maintenance 300, excess -100.
    f = margin_figures(D(-800), {"A": D(10)}, {"A": D(100)}, policy=policy)
    (t,) = MarginMonitor(grace_ns=policy.grace_ns).update(f, 7)
    a = margin_alert("ACC", "own", t)
    assert (a.kind, a.severity, a.event_time) == ("MARGIN_CALL", "HIGH", 7)
    assert a.alert_id == alert_id("MARGIN_CALL", "ACC:7")
    # Cured at an excess of 2 % of the gross value: 20 - (-100) = 120.
    assert a.details["cash_to_cure"] == D("120.00")
    assert a.details["cash_to_maintenance"] == D(100)
    assert a.details["marks"] == {"A": D(100)} and "liquidation" not in a.details
