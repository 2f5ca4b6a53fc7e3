"""Domain layer, alerts in words: `explain`, an alert's `Explanation` (see the package)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.explain.evidence import Explainer, _Context, _Evidence, _finding_ts, _generic_headline
from domain.explain.fields import _ID_KEYS, _collect_ids, _episode, _fields
from domain.explain.stop_and_margin_alerts import _concentration, _margin, _stop_triggered
from domain.explain.surveillance_alerts import (
    _excessive_otr,
    _marking_the_close,
    _ownership_missing,
    _pump_and_dump,
    _spoofing,
    _wash_trade,
)


@dataclass(frozen=True, slots=True)
class Explanation:
    """An alert in words.

    Attributes:
        headline: one sentence: what happened.
        findings: each threshold against its measured value, in words.
        fields: the rest of the evidence, humanised, as (label, text); the model's key last,
            as "reference".
        exec_ids: every ExecID (17) the evidence names, occurrences included (chart markers,
            audit links).
        cl_ord_ids: every ClOrdID (11) the evidence names, occurrences included.
    """

    headline: str
    findings: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]
    exec_ids: tuple[str, ...]
    cl_ord_ids: tuple[str, ...]


def explain(
    kind: str,
    details: Mapping[str, Any],
    *,
    account: str | None = None,
    symbol: str | None = None,
    owner: str | None = None,
) -> Explanation:
    """Explain an alert of `kind` from its `details` (the `alerts.details` JSON).

    `account`, `symbol` and `owner` are the alert's columns: the subject of the headline (an
    owner-level wash trade has no account). Never raises on odd details (see the module).

    >>> e = explain("CONCENTRATION", {"share": "0.4", "threshold": "0.25", "rearm_below": "0.20",
    ...     "value": "40000.00", "gross_value": "100000.00", "mark": "101.25"},
    ...     account="ACC1", symbol="AVGO")
    >>> e.headline
    "ACC1's AVGO position is 40.0 % of its gross value (over 25 %)"
    >>> e.findings[0]
    'AVGO position 40,000.00 (at 101.25) of gross value 100,000.00 (40.0 % > 25 %)'
    """
    if not isinstance(details, Mapping):
        details = {}
    ev = _Evidence(details)
    who = account or owner or ev.text("account") or ev.text("owner") or "the account"
    context = _Context(str(kind), who, symbol, _finding_ts(details))
    explainer = _EXPLAINERS.get(context.kind)
    headline, findings = explainer(ev, context) if explainer else (_generic_headline(context), [])
    episode = _episode(details)
    if episode:
        headline = f"{headline} ({episode})"
    exec_ids: dict[str, None] = {}
    cl_ord_ids: dict[str, None] = {}
    # The alert's own evidence first (the order's or the buys' ids before the child's or the
    # sale's: JSONB keeps no order), then its episode's other occurrences.
    for key in sorted(details, key=lambda k: (k not in _ID_KEYS, str(k))):
        if key != "occurrences":
            _collect_ids(details[key], str(key), exec_ids, cl_ord_ids)
    _collect_ids(details.get("occurrences"), "", exec_ids, cl_ord_ids)
    return Explanation(headline, tuple(findings), _fields(ev), tuple(exec_ids), tuple(cl_ord_ids))


_EXPLAINERS: dict[str, Explainer] = {
    "WASH_TRADE": _wash_trade,
    "SPOOFING": _spoofing,
    "PUMP_AND_DUMP": _pump_and_dump,
    "MARKING_THE_CLOSE": _marking_the_close,
    "EXCESSIVE_OTR": _excessive_otr,
    "OWNERSHIP_MISSING": _ownership_missing,
    "STOP_TRIGGERED": _stop_triggered,
    "MARGIN_CALL": _margin,
    "MARGIN_CALL_CURED": _margin,
    "LIQUIDATION": _margin,
    "CONCENTRATION": _concentration,
}
