"""Domain layer, alerts in words: the explainers of the stop engine's and the margin flow's kinds:
STOP_TRIGGERED, MARGIN_CALL, MARGIN_CALL_CURED, LIQUIDATION, CONCENTRATION."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from domain.explain.evidence import _Context, _decimal, _Evidence
from domain.explain.words import (
    ORD_TYPES,
    SIDES,
    _compare,
    _count,
    instant,
    limit,
    percent,
    quantity,
)
from domain.ledger import is_buy


def _stop_triggered(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """STOP_TRIGGERED (`flows.stops`, `_triggered`): the stop fired; its child order was sent."""
    order, side = ev.text("cl_ord_id") or "?", ev.text("side")
    ord_type = ORD_TYPES.get(ev.text("ord_type") or "", "stop")
    qty, stop, trigger = ev.num("quantity"), ev.num("stop_px"), ev.num("trigger_px")
    reference = ev.text("reference") or "reference"
    sell = not is_buy(side)
    side_word = SIDES.get(side or "", "sell" if sell else "buy").capitalize() if side else "The"
    child, child_type = ev.text("child_cl_ord_id"), ORD_TYPES.get(ev.text("child_ord_type") or "")
    child_price = ev.price("child_price")
    sent = f"{child_type or 'child'} order {child or '?'}"
    if child_type == "limit" and child_price:
        sent = f"limit order {child or '?'} at {child_price}"
    size = f" for {quantity(qty)} {c.shares}" if qty is not None else f" on {c.shares}"
    at = ev.price("trigger_px") or "?"
    headline = (
        f"{side_word} {ord_type} {order} of {c.who}{size} triggered at {at} ({reference} price); "
        f"sent {sent}"
    )
    ev.use("cl_ord_id", "side", "ord_type", "quantity", "reference", "child_cl_ord_id",
           "child_ord_type", "child_price")  # fmt: skip
    findings = []
    if stop is not None and trigger is not None:
        op = ("≤" if trigger <= stop else ">") if sell else ("≥" if trigger >= stop else "<")
        where = "at or below" if sell else "at or above"
        findings.append(
            f"{reference} price {ev.price('trigger_px')} {op} stop {ev.price('stop_px')} "
            f"(a {'sell' if sell else 'buy'} stop triggers {where} its stop)"
        )
        if trigger != stop:
            findings.append(f"the price gapped {quantity(abs(trigger - stop))} through the stop")
        ev.use("stop_px", "trigger_px")
    return headline, findings


def _margin(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """MARGIN_CALL, MARGIN_CALL_CURED, LIQUIDATION (`flows.margin._alert`)."""
    equity, need, excess = ev.num("equity"), ev.num("maintenance_requirement"), ev.num("excess")
    since = ev.integer("episode_start_ns")
    called = f"margin call of {instant(since)}" if since is not None else "margin call"
    against = f"equity {quantity(equity)} against a requirement of {quantity(need)}"
    lines = _liquidation_lines(ev.raw("liquidation"))
    if c.kind == "MARGIN_CALL_CURED":
        headline = f"{c.who}'s {called} is cured: {against}"
    elif c.kind == "LIQUIDATION":
        plan = f": {', '.join(lines)}" if lines else ""
        headline = (
            f"{c.who}'s {called} was not met in its grace period: liquidate "
            f"{_count(len(lines), 'position', 'positions')}{plan}"
        )
        ev.use("liquidation")
    else:
        headline = f"{c.who} is below its maintenance margin: {against}"
    if c.kind in ("MARGIN_CALL_CURED", "LIQUIDATION"):
        ev.use("episode_start_ns")
    findings = []
    if equity is not None and need is not None:
        op = "≥" if equity >= need else "<"
        findings.append(
            f"equity {quantity(equity)} {op} maintenance requirement {quantity(need)} "
            f"(excess {quantity(excess)})"
        )
        ev.use("equity", "maintenance_requirement", "excess")
    ratio, gross = ev.num("ratio"), ev.num("gross_value")
    if ratio is not None:
        findings.append(f"equity is {percent(ratio)} of the gross value {quantity(gross)}")
        ev.use("ratio", "gross_value")
    cure, to_maintenance = ev.num("cash_to_cure"), ev.num("cash_to_maintenance")
    to_initial = ev.num("cash_to_initial")
    if cure is not None or to_maintenance is not None:
        findings.append(
            f"a deposit of {quantity(cure)} cures the call; {quantity(to_maintenance)} restores "
            f"maintenance, {quantity(to_initial)} initial margin"
        )
        ev.use("cash_to_cure", "cash_to_maintenance", "cash_to_initial")
    cut, cut_initial = ev.num("reduction_to_maintenance"), ev.num("reduction_to_initial")
    if cut is not None:
        findings.append(
            f"or selling {quantity(cut)} of positions restores maintenance, "
            f"{quantity(cut_initial)} initial margin"
        )
        ev.use("reduction_to_maintenance", "reduction_to_initial")
    return headline, findings


def _liquidation_lines(value: Any) -> list[str]:
    """`details["liquidation"]` (`LiquidationLine`s) in words: "sell 300 AVGO at about 101.25"."""
    if not isinstance(value, list):
        return []
    out = []
    for line in value:
        if not isinstance(line, Mapping):
            continue
        action = "buy to cover" if line.get("side") == "1" else "sell"
        mark = line.get("mark")
        at = f" at about {mark}" if isinstance(mark, str | int | Decimal) else ""
        out.append(
            f"{action} {quantity(_decimal(line.get('quantity')))} {line.get('symbol') or '?'}{at}"
        )
    return out


def _concentration(ev: _Evidence, c: _Context) -> tuple[str, list[str]]:
    """CONCENTRATION (`flows.margin`, `_concentration_alert`): one position too large a part."""
    share, threshold, rearm = ev.num("share"), ev.num("threshold"), ev.num("rearm_below")
    value, gross, mark = ev.num("value"), ev.num("gross_value"), ev.price("mark")
    headline = (
        f"{c.who}'s {c.symbol or '?'} position is {percent(share)} of its gross value "
        f"(over {limit(threshold)})"
    )
    ev.use("share", "threshold")
    findings = []
    if value is not None and gross is not None:
        at = f" (at {mark})" if mark else ""
        findings.append(
            f"{c.symbol or '?'} position {quantity(value)}{at} of gross value {quantity(gross)} "
            f"({percent(share)} {_compare(share, '>', threshold)} {limit(threshold)})"
        )
        ev.use("value", "gross_value", "mark")
    if rearm is not None:
        findings.append(f"not reported again until its share falls below {limit(rearm)}")
        ev.use("rearm_below")
    return headline, findings
