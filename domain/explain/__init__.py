"""Domain layer: an alert's evidence in words, for the analysts (`brokerflow alerts show`, the
workbench's HTTP API). Pure and stdlib only.

The models write their evidence for machines: ns epochs, thresholds in ns, fractions, ExecIDs
(`domain.surveillance`, `flows.stops`, `flows.margin`). `explain` turns an alert's `details`
into what an analyst reads: a headline (what happened), the findings (each threshold against
its measured value) and the rest of the evidence, humanised. It reads the details as stored:
JSON, so Decimals are strings, counts are ints and instants are int epoch ns.

Details come from a database and may be from an older release, partial or damaged: nothing
here raises on them. A kind this module does not know, or a key an explainer does not use, gets
the generic humanisation (by the key's name); a finding whose figures are missing is left out.

Numbers: quantities and amounts with thousands separators and every digit they were given
("61,900", "42,000.00"); prices as given; measured shares with one decimal ("5.5 %"),
thresholds as configured ("5 %"); instants in ISO 8601 UTC ("2026-11-25T14:30:41.170Z"),
durations in words ("15 s", "3 h 12 min").

Modules: `explanation` (`explain`, `Explanation`), `evidence` (reading the details),
`surveillance_alerts` and `stop_and_margin_alerts` (one explainer per kind), `fields` (the rest
of the evidence, episodes, ids) and `words` (numbers, times and codes). Everything is imported
from `domain.explain`.
"""

from domain.explain.explanation import Explanation, explain
from domain.explain.fields import humanise, is_instant, label
from domain.explain.words import (
    NS_PER_MS,
    NS_PER_S,
    ORD_TYPES,
    SIDES,
    day_text,
    duration,
    instant,
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
