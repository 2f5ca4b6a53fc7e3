"""Domain layer: an alert's evidence in words (issue 22: being split into modules; the code is in
`domain.explain.surveillance_alerts` for now)."""

from domain.explain.surveillance_alerts import (
    NS_PER_MS,
    NS_PER_S,
    ORD_TYPES,
    SIDES,
    Explanation,
    day_text,
    duration,
    explain,
    humanise,
    instant,
    is_instant,
    label,
    limit,
    percent,
    quantity,
)

__all__ = [
    "NS_PER_MS",
    "NS_PER_S",
    "ORD_TYPES",
    "SIDES",
    "Explanation",
    "day_text",
    "duration",
    "explain",
    "humanise",
    "instant",
    "is_instant",
    "label",
    "limit",
    "percent",
    "quantity",
]
