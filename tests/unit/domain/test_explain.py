"""Alerts in words (`domain.explain`): each kind's measured figures against its thresholds, ISO
times and no raw ns, every ExecID and ClOrdID, episodes; odd details explained without raising.

The details are made by the real producers (the models of `domain.surveillance`, the margin
flow's alert builders, a real stop book) and stored as the alert sink stores them (JSON:
Decimals as strings), so a renamed evidence key fails here."""

from __future__ import annotations

import doctest
import importlib
import json
import pkgutil
import re
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

import pytest

from domain import explain as explain_module
from domain.alerts import make_alert
from domain.explain import Explanation, explain
from domain.margin import (
    ConcentrationRule,
    MarginMonitor,
    MarginPolicy,
    assess_concentration,
    margin_figures,
)
from domain.stops import StopBook, StopOrder, Triggered
from domain.surveillance import (
    NS_PER_DAY,
    NS_PER_S,
    Fill,
    Finding,
    MarkingTheCloseModel,
    OrderToTradeModel,
    OwnershipMissingModel,
    PumpAndDumpModel,
    RoundTripModel,
    SelfMatchModel,
    SpoofingModel,
)
from flows import margin as margin_flow

DAY = 20_417  # 2025-11-25
T0 = DAY * NS_PER_DAY + (14 * 3600 + 30 * 60 + 41) * NS_PER_S + 170_000_000  # 14:30:41.170
OWNERS = {"A1": "alice", "A2": "alice", "B1": "bob"}


def stored(details: dict[str, Any]) -> dict[str, Any]:
    """The details as `alerts.details` gives them back: the JSON the alert sink writes."""
    return json.loads(make_alert("ANY", "k", "50", 0, details=details).details_json())


def of_finding(f: Finding) -> dict[str, Any]:
    """An alert's details as flows.surveillance `_alert` writes them (evidence, score, key)."""
    return stored({**f.evidence, "score": f.score, "model_key": f.key})


def explained(f: Finding, **columns: Any) -> Explanation:
    account = None if f.subject_is_owner else f.subject
    owner = f.subject if f.subject_is_owner else None
    return explain(f.kind, of_finding(f), account=account, owner=owner, symbol=f.symbol,
                   **columns)  # fmt: skip


def words(e: Explanation, reference: bool = False) -> str:
    """Everything the analyst reads; the reference (the model's key) only if asked."""
    fields = [f"{k}: {v}" for k, v in e.fields if reference or k != "reference"]
    return "\n".join([e.headline, *e.findings, *fields])


def assert_no_raw_ns(e: Explanation, details: dict[str, Any]) -> None:
    """No `…_ns` value of the details, and no epoch-ns-sized number, is shown as is."""
    text = words(e)
    for value in _ns_values(details):
        assert str(value) not in text and f"{value:,}" not in text, value
    assert not re.search(r"\d{13,}", text.replace(",", "")), text


def _ns_values(value: Any, key: str = "") -> list[int]:
    if isinstance(value, dict):
        return [v for k, x in value.items() for v in _ns_values(x, k)]
    if isinstance(value, list):
        return [v for x in value for v in _ns_values(x, key)]
    return [value] if key.endswith("_ns") and isinstance(value, int) and value >= 1000 else []


def fill(exec_id, account, side, qty=100, px="10.00", at_s=0.0, match=None, symbol="AVGO"):
    return Fill(exec_id, account, symbol, side, D(qty), D(px), T0 + int(at_s * NS_PER_S),
                f"C-{exec_id}", match)  # fmt: skip


def run(model, fills):
    return [f for x in fills for f in model.on_fill(x)]


# -- surveillance -----------------------------------------------------------------------------


def test_explain_self_match_of_one_account():
    trade = [fill("E1", "A1", "1", 500, "101.25", match="T9"),
             fill("E2", "A1", "2", 500, "101.25", 0.2, "T9")]  # fmt: skip
    [f] = run(SelfMatchModel(OWNERS), trade)
    e = explained(f)
    assert e.headline == "A1 traded 500 AVGO at 101.25 with itself (self-match)"
    assert "TrdMatchID (880)" in e.findings[0]
    assert "both sides of the trade are account A1" in e.findings
    assert e.exec_ids == ("E1", "E2") and e.cl_ord_ids == ("C-E1", "C-E2")
    assert e.fields[-1] == ("reference", "self:E1:E2")


def test_explain_self_match_across_accounts_of_one_owner():
    [f] = run(SelfMatchModel(OWNERS), [fill("E1", "A1", "1", 1200, at_s=0),
                                        fill("E2", "A2", "2", 1200, at_s=0.5)])  # fmt: skip
    e = explained(f)
    assert (
        e.headline == "A1 and A2, both owned by alice, traded 1,200 AVGO at 10.00 with each other"
    )
    assert "within the 1 s window (matched by symbol, price, quantity)" in e.findings[0]
    assert "accounts A1 and A2 have the same owner, alice" in e.findings
    assert_no_raw_ns(e, of_finding(f))


def test_explain_round_trips_of_an_owner():
    fills = []
    for i in range(12):
        fills += [fill(f"B{i}", "A1", "1", 500, at_s=60 * i),
                  fill(f"S{i}", "A2", "2", 500, at_s=60 * i + 30)]  # fmt: skip
    [f] = run(RoundTripModel(OWNERS), fills)
    e = explained(f)
    assert e.headline == (
        "alice went out and back to flat in AVGO 10 times on 2025-11-25 (bought 5,000, sold 5,000)"
    )
    assert "10 round trips in one UTC day (10 ≥ 10)" in e.findings
    assert "net position 0 against 5,000 traded each way (0.0 % ≤ 10 %)" in e.findings
    assert e.exec_ids[:3] == ("B0", "S0", "B1") and len(e.exec_ids) == 20


def spoofed() -> Finding:
    """Layering: 3 x 1,000 resting to sell at three prices, a buy of 100, all 3,000 cancelled
    (it fires at the third cancel: 2,000 is under 80 %)."""
    model = SpoofingModel()
    for i, px in enumerate(("10.05", "10.10", "10.15")):
        model.on_order("B1", "AVGO", f"L{i}", "2", D(1000), D(px), T0)
    model.on_order("B1", "AVGO", "BUY", "1", D(100), D("10.00"), T0)
    assert (
        model.on_fill(Fill("F1", "B1", "AVGO", "1", D(100), D("10.00"), T0 + NS_PER_S, "BUY")) == []
    )
    found = []
    for i in range(3):
        found += model.on_cancel("B1", "AVGO", f"L{i}", T0 + (2 + i) * NS_PER_S)
    [f] = found
    return f


def test_explain_layering_with_its_thresholds():
    e = explained(spoofed())
    assert e.headline == (
        "B1 bought 100 AVGO against 3,000 resting to sell at 3 prices, then cancelled 100.0 % "
        "of it within 15 s (layering)"
    )
    assert "resting to sell: 3,000, 30 × the fill of 100 (30 ≥ 5)" in e.findings
    assert (
        "cancelled 3,000 of 3,000 (cancels, and replaces that cut an order) within 15 s of the "
        "fill (100.0 % ≥ 80 %)"
    ) in e.findings
    assert "resting orders at 3 prices (10.05, 10.10, 10.15): layering" in e.findings
    assert e.exec_ids == ("F1",) and e.cl_ord_ids == ("L0", "L1", "L2")


def test_explain_marking_the_close_shares_against_both_thresholds():
    close = 21 * 3600 * NS_PER_S
    model = MarkingTheCloseModel(close_ns_of_day=close)
    day0 = DAY * NS_PER_DAY
    model.on_day_volume("AVGO", 200_000.0, day0 + close - 40 * 60 * NS_PER_S)
    model.on_market_trade("AVGO", 10_000.0, day0 + close - 10 * 60 * NS_PER_S)
    model.on_fill(Fill("X1", "B1", "AVGO", "1", D(700), D("10.00"), day0 + close - 60 * NS_PER_S))
    [f] = model.judge()
    e = explained(f)
    assert e.headline == (
        "B1 traded 700 AVGO in the last 30 min before the close: 7.0 % of the volume then, "
        "0.3 % of the day's"
    )
    assert (
        "traded 700 of the 10,000 shares traded in the last 30 min before the close (7.0 % ≥ 5 %)"
    ) in e.findings
    assert "traded 700 of the day's 210,000 shares (0.3 % < 1 %)" in e.findings
    assert ("day volume from", "TradeVolume (269=B)") in e.fields
    assert_no_raw_ns(e, of_finding(f))


def pumped() -> list[Finding]:
    """3,400 bought of a 61,900-share day, sold 3 h 12 min after the first buy 21.1 % up."""
    model = PumpAndDumpModel()
    model.on_day_volume("AVGO", 61_900.0, T0 - NS_PER_S)
    found = model.on_fill(fill("P1", "B1", "1", 3400, "21.80"))
    found += model.on_fill(fill("D1", "B1", "2", 3400, "26.40", at_s=3 * 3600 + 12 * 60))
    return found


def test_explain_pump_accumulation_is_a_watch():
    accumulation = pumped()[0]
    e = explained(accumulation)
    assert e.headline == (
        "B1 bought 3,400 AVGO, 5.5 % of the day's volume so far (accumulation: a watch, not yet "
        "a dump)"
    )
    assert e.findings[0] == "bought 3,400 of the 61,900 shares traded so far today (5.5 % > 5 %)"
    assert "2025-11-25T14:30:41.170Z" in e.findings[1] and "within 48 h" in e.findings[1]
    assert_no_raw_ns(e, of_finding(accumulation))


def test_explain_pump_and_dump_with_the_time_to_the_sale():
    dump = pumped()[1]
    # The episode flow writes each finding's time as its occurrence (flows.surveillance `_alert`).
    details = of_finding(dump) | {"occurrences": {dump.key: {"ts_ns": dump.ts_ns, "score": 90}}}
    e = explain(dump.kind, details, account="B1", symbol="AVGO")
    assert e.headline == (
        "B1 bought 3,400 AVGO (5.5 % of the day's volume) and sold 21.1 % above its average buy "
        "within 3 h 12 min"
    )
    assert "sold at 26.40, 21.1 % above the average buy of 21.8000 (21.1 % ≥ 20 %)" in e.findings
    assert (
        "sold 3 h 12 min after the first buy at 2025-11-25T14:30:41.170Z (within 48 h)"
        in e.findings
    )
    assert e.exec_ids == ("P1", "D1")
    assert_no_raw_ns(e, details)


def test_explain_pump_and_dump_of_an_older_release_without_its_time():
    dump = pumped()[1]
    e = explained(dump)
    assert e.headline.endswith("and sold 21.1 % above its average buy")
    assert "first buy at 2025-11-25T14:30:41.170Z; a sale counts within 48 h of it" in e.findings


def test_explain_excessive_order_to_trade_ratio():
    model = OrderToTradeModel()
    for i in range(40):
        model.on_order("B1", f"O{i}", T0 + i)
    model.on_fill(fill("F1", "B1", "1"))
    [f] = model.close_day()
    e = explained(f)
    assert e.headline == "B1 sent 40 orders for 1 trade on 2025-11-25 (40 orders per trade)"
    assert "40 orders per trade (40 > 15)" in e.findings
    assert "on 2025-11-25 (40 orders per trade)" in e.headline
    assert "40 orders in the day (40 ≥ 20, the least judged)" in e.findings
    assert e.cl_ord_ids[:2] == ("O0", "O1") and len(e.cl_ord_ids) == 40


def test_explain_ownership_missing():
    [f] = OwnershipMissingModel(OWNERS).on_fill(fill("N1", "NOBODY", "1"))
    e = explained(f)
    assert e.headline == "NOBODY traded AVGO on 2025-11-25 with no owner on record"
    assert e.findings == ("no owner on record: wash detection across accounts is blind here",)
    assert e.exec_ids == ("N1",)


# -- account alerts ---------------------------------------------------------------------------


def test_explain_stop_triggered_through_a_gap():
    book = StopBook()
    book.on_quote("AVGO", T0, bid=D("100.9"), ask=D("101.1"), last=D("101"))
    order = StopOrder("S1", "AVGO", "2", D(300), "3", stop_px=D("100.00"), account="A1")
    book.submit(order, T0 + 1)
    [t] = book.on_quote("AVGO", T0 + 2, last=D("99.50"))
    assert type(t) is Triggered
    # The evidence flows.stops `StopLogic._triggered` writes for a trigger (built inline there).
    details = stored({
        "cl_ord_id": t.order.cl_ord_id, "ord_type": t.order.ord_type, "side": t.order.side,
        "quantity": t.order.order_qty, "stop_px": t.stop_px, "trigger_px": t.trigger_px,
        "reference": t.reference, "child_cl_ord_id": t.child.cl_ord_id,
        "child_ord_type": t.child.ord_type, "child_price": t.child.price,
    })  # fmt: skip
    e = explain("STOP_TRIGGERED", details, account="A1", symbol="AVGO")
    assert e.headline == (
        "Sell stop S1 of A1 for 300 AVGO triggered at 99.50 (last price); sent market order S1.T"
    )
    assert "last price 99.50 ≤ stop 100.00 (a sell stop triggers at or below its stop)" in (
        e.findings
    )
    assert "the price gapped 0.50 through the stop" in e.findings
    assert e.cl_ord_ids == ("S1", "S1.T")


def margin_alerts() -> list[dict[str, Any]]:
    """A margin call, its liquidation an hour later, and its cure, by flows.margin `_alert`."""
    policy = MarginPolicy()
    monitor = MarginMonitor(grace_ns=policy.grace_ns)
    holdings = {"AVGO": D(1000), "TSLA": D(500)}

    def at(avgo: str, ts: int) -> list:
        return monitor.update(
            margin_figures(D(-100_000), holdings, {"AVGO": D(avgo), "TSLA": D("100.00")}), ts
        )

    transitions = at("100.00", T0) + at("70.00", T0 + NS_PER_S)
    transitions += monitor.check_grace(
        margin_figures(D(-100_000), holdings, {"AVGO": D("70.00"), "TSLA": D("100.00")}),
        T0 + NS_PER_S + policy.grace_ns,
    )
    transitions += at("150.00", T0 + 2 * policy.grace_ns)
    assert [t.kind for t in transitions] == ["MARGIN_CALL", "LIQUIDATION", "MARGIN_CALL_CURED"]
    return [stored(dict(margin_flow._alert("A1", "alice", t).details)) for t in transitions]


def test_explain_margin_call_with_its_cures():
    call = margin_alerts()[0]
    e = explain("MARGIN_CALL", call, account="A1")
    # AVGO and TSLA are each over 25 % of the account: margined at 40 % (MarginPolicy).
    assert e.headline == (
        "A1 is below its maintenance margin: equity 50,000.00 against a requirement of 60,000.0000"
    )
    assert e.findings[:2] == (
        "equity 50,000.00 < maintenance requirement 60,000.0000 (excess -10,000.0000)",
        "equity is 33.3 % of the gross value 150,000.00",
    )
    assert any(f.startswith("a deposit of 10,000.00 cures the call") for f in e.findings)
    assert ("call since", "2025-11-25T14:30:41.170Z") in e.fields
    assert_no_raw_ns(e, call)


def test_explain_liquidation_names_what_to_sell():
    liquidation = margin_alerts()[1]
    e = explain("LIQUIDATION", liquidation, account="A1")
    assert e.headline.startswith(
        "A1's margin call of 2025-11-25T14:30:41.170Z was not met in its grace period: liquidate "
    )
    assert e.headline.endswith(
        "2 positions: sell 1,000 AVGO at about 70.00, sell 100 TSLA at about 100.00"
    )
    assert_no_raw_ns(e, liquidation)


def test_explain_margin_call_cured():
    cure = margin_alerts()[2]
    e = explain("MARGIN_CALL_CURED", cure, account="A1")
    assert e.headline.startswith("A1's margin call of 2025-11-25T14:30:41.170Z is cured: equity ")
    assert "equity 100,000.00 ≥ maintenance requirement 75,000.0000 (excess 25,000.0000)" in (
        e.findings
    )


def test_explain_concentration():
    rule = ConcentrationRule()
    figures = margin_figures(D(0), {"AVGO": D(400), "TSLA": D(600)},
                             {"AVGO": D("101.25"), "TSLA": D("10.00")})  # fmt: skip
    _, [x] = assess_concentration(figures, {}, rule, T0)
    logic = SimpleNamespace(concentration=rule)  # the one attribute the builder reads
    alert = margin_flow.AccountLogic._concentration_alert(logic, "A1", "alice", x, figures, T0)
    e = explain("CONCENTRATION", stored(dict(alert.details)), account="A1", symbol="AVGO")
    assert e.headline == "A1's AVGO position is 87.1 % of its gross value (over 25 %)"
    assert "AVGO position 40,500.00 (at 101.25) of gross value 46,500.00 (87.1 % > 25 %)" in (
        e.findings
    )
    assert "not reported again until its share falls below 20 %" in e.findings


# -- episodes, unknown kinds and odd details ------------------------------------------------


def test_explain_episode_of_three_findings():
    self_match = SelfMatchModel(OWNERS)
    findings = []
    for n, at_s in enumerate((0, 1150, 2424)):  # 14:30:41, 14:49:51, 15:11:05
        findings += run(self_match, [fill(f"E{n}a", "A1", "1", 100, at_s=at_s),
                                     fill(f"E{n}b", "A1", "2", 100, at_s=at_s + 0.1)])  # fmt: skip
    first = findings[0]
    details = of_finding(first)
    details["occurrences"] = {
        f.key: {"ts_ns": f.ts_ns, "score": f.score, **({} if f is first else f.evidence)}
        for f in findings
    }  # the shape of domain.triage `occurrence` (one per finding of the episode)
    details["episode"] = {"occurrences": 3, "first_ns": findings[0].ts_ns,
                          "last_ns": findings[-1].ts_ns}  # fmt: skip
    e = explain("WASH_TRADE", stored(details), account="A1", symbol="AVGO")
    assert e.headline.endswith("(self-match) (3 occurrences, 14:30:41–15:11:05 UTC)")
    assert e.exec_ids == ("E0a", "E0b", "E1a", "E1b", "E2a", "E2b")
    assert dict(e.fields)["occurrences"].startswith("2025-11-25T14:30:41.270Z (score 90), ")
    assert_no_raw_ns(e, details)


def test_explain_a_single_occurrence_is_no_episode():
    [f] = OwnershipMissingModel(OWNERS).on_fill(fill("N1", "NOBODY", "1"))
    details = of_finding(f) | {"occurrences": {f.key: {"ts_ns": f.ts_ns, "score": 40}}}
    assert "occurrence" not in words(explain(f.kind, details, account="NOBODY", symbol="AVGO"))


def test_explain_unknown_kind_is_humanised_by_key_names():
    details = {"opened_at_ns": T0, "hold_window_ns": 90 * NS_PER_S, "fill_exec_ids": ["X1"],
               "price_share": "0.125", "note": "12345", "count": 61900}  # fmt: skip
    e = explain("VELOCITY", details, account="A1", symbol="AVGO")
    assert e.headline == "VELOCITY for A1 in AVGO" and e.findings == ()
    assert dict(e.fields) == {
        "opened at": "2025-11-25T14:30:41.170Z", "hold window": "1 min 30 s",
        "fill exec ids": "X1", "price share": "12.5 %", "note": "12345", "count": "61,900",
    }  # fmt: skip
    assert e.exec_ids == ("X1",)


def test_explain_unknown_key_of_a_known_kind_is_kept():
    [f] = OwnershipMissingModel(OWNERS).on_fill(fill("N1", "NOBODY", "1"))
    details = of_finding(f) | {"venue_seen_ns": T0}
    fields = dict(explain(f.kind, details, account="NOBODY").fields)
    assert fields["venue seen"] == "2025-11-25T14:30:41.170Z"


def every_kind() -> list[tuple[str, dict[str, Any]]]:
    """Real details of every kind this module explains."""
    out = [(f.kind, of_finding(f)) for f in [spoofed(), *pumped()]]
    [wash] = run(SelfMatchModel(OWNERS), [fill("E1", "A1", "1"), fill("E2", "A1", "2", at_s=0.1)])
    model = OrderToTradeModel()
    for i in range(40):
        model.on_order("B1", f"O{i}", T0 + i)
    out += [(wash.kind, of_finding(wash)), ("EXCESSIVE_OTR", of_finding(model.close_day()[0]))]
    kinds = ("MARGIN_CALL", "LIQUIDATION", "MARGIN_CALL_CURED")
    out += list(zip(kinds, margin_alerts(), strict=True))
    out.append(("STOP_TRIGGERED", {"cl_ord_id": "S1", "side": "2", "stop_px": "1", "quantity": "3",
                                   "trigger_px": "0.9", "child_ord_type": "2"}))  # fmt: skip
    out.append(("CONCENTRATION", {"share": "0.4", "threshold": "0.25", "value": "4",
                                  "gross_value": "10"}))  # fmt: skip
    return out


JUNK = (None, "", "n/a", "NaN", 7, -1, 10**40, True, [], {}, ["x", {"y": 1}], {"a": {}})


@pytest.mark.parametrize(("kind", "details"), every_kind())
def test_explain_partial_or_damaged_details_never_raise(kind, details):
    assert explain(kind, {}).headline
    for key in details:
        assert explain(kind, {k: v for k, v in details.items() if k != key}).headline
        for junk in JUNK:
            e = explain(kind, details | {key: junk}, account="A1", symbol="AVGO")
            assert e.headline and all(isinstance(v, str) for _, v in e.fields)
    for junk in JUNK:
        assert explain(kind, {"thresholds": junk, "occurrences": junk, "episode": junk}).headline


def test_explain_module_examples():
    # The package and each of its modules (a re-exported function's examples are its module's).
    names = [m.name for m in pkgutil.iter_modules(explain_module.__path__)]
    modules = [explain_module, *(importlib.import_module(f"domain.explain.{n}") for n in names)]
    results = [doctest.testmod(module) for module in modules]
    assert sum(r.failed for r in results) == 0
    assert sum(r.attempted for r in results) > 0
