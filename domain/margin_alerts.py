"""Domain layer: the alerts of margin monitoring and the evidence each carries. Pure.

MARGIN_CALL, MARGIN_CALL_CURED and LIQUIDATION come from a `domain.margin.MarginTransition` (one
per episode: keyed by the account and the episode's start); CONCENTRATION from a
`domain.margin.ConcentrationFinding` (one per episode of a position: keyed by the account, the
symbol and the time it was found). `domain.explain` reads these details back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.alerts import CONCENTRATION, Alert, make_alert
from domain.margin import (
    ConcentrationFinding,
    ConcentrationRule,
    MarginFigures,
    MarginTransition,
    assess_concentration,
)

SEVERITY = {"MARGIN_CALL": "HIGH", "MARGIN_CALL_CURED": "INFO", "LIQUIDATION": "CRITICAL"}
CONCENTRATION_SEVERITY = "MEDIUM"


def margin_alert(account: str, owner: str, t: MarginTransition) -> Alert:
    """The alert of a margin state transition, with the figures that caused it; a call and a
    liquidation also say what would cure them (`domain.margin.Shortfall`), including the
    deposit that cures the call (maintenance plus the cure band)."""
    f, s = t.figures, t.shortfall
    details: dict[str, Any] = {
        "episode_start_ns": t.episode_ns,
        "equity": f.equity,
        "gross_value": f.gross_value,
        "long_value": f.long_value,
        "short_value": f.short_value,
        "ratio": None if f.ratio is None else f.ratio.quantize(Decimal("0.000001")),
        "maintenance_requirement": f.maintenance_requirement,
        "initial_requirement": f.initial_requirement,
        "excess": f.excess,
        "marks": dict(zip(f.symbols, f.marks, strict=True)),
        "cash": f.cash,
    }
    if t.kind != "MARGIN_CALL_CURED":
        details |= {
            "cash_to_maintenance": s.cash_to_maintenance,
            "cash_to_initial": s.cash_to_initial,
            "reduction_to_maintenance": s.reduction_to_maintenance,
            "reduction_to_initial": s.reduction_to_initial,
            # What a deposit must be to cure the call (maintenance plus the cure band).
            "cash_to_cure": max(Decimal(0), f.policy.cure_band * f.gross_value - f.excess).quantize(
                Decimal("0.01")
            ),
        }
    if t.liquidation:
        details["liquidation"] = [
            {"symbol": x.symbol, "side": x.side, "quantity": x.quantity, "mark": x.mark,
             "value": x.value}
            for x in t.liquidation
        ]  # fmt: skip
    return make_alert(
        t.kind, f"{account}:{t.episode_ns}", SEVERITY[t.kind], t.ts_ns,
        account=account, owner=owner, details=details,
    )  # fmt: skip


def concentration_alert(
    account: str,
    owner: str,
    x: ConcentrationFinding,
    figures: MarginFigures,
    rule: ConcentrationRule,
    ts_ns: int,
) -> Alert:
    """The CONCENTRATION alert of a position found over the rule's threshold at `ts_ns`."""
    return make_alert(
        CONCENTRATION, f"{account}:{x.symbol}:{ts_ns}", CONCENTRATION_SEVERITY, ts_ns,
        account=account, owner=owner, symbol=x.symbol,
        details={"share": x.share.quantize(Decimal("0.0001")), "threshold": rule.share,
                 "rearm_below": rule.rearm_share, "value": x.value,
                 "gross_value": figures.gross_value, "mark": x.mark},
    )  # fmt: skip


def judge_concentration(
    account: str,
    owner: str,
    figures: MarginFigures,
    flagged: dict[str, int],
    rule: ConcentrationRule,
    ts_ns: int,
    alerts: list[Alert],
) -> dict[str, int]:
    """Judge an account's concentration at `ts_ns` (`domain.margin.assess_concentration`):
    append the alerts of the episodes it starts to `alerts`; return its flags after it."""
    flagged, found = assess_concentration(figures, flagged, rule, ts_ns)
    for x in found:
        alerts.append(concentration_alert(account, owner, x, figures, rule, ts_ns))
    return flagged
