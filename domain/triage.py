"""Domain layer: triage of alerts — the score the queue sorts on, episodes, and the analysts'
workflow (which action may follow which, and what each one records).

Pure and stdlib only: the console's HTTP API, the `brokerflow alerts` commands and the
surveillance flow use these rules; PostgreSQL only stores their outcome.

- **Score** (0..100): a surveillance alert's severity is its model's score (documented per model
  in docs/surveillance.md); an account alert's severity is a word, mapped by `SEVERITY_SCORES`.
  `sql/postgres/0008_alert_triage.sql` computes the same mapping as a generated column.
- **Episodes**: the same model finding the same pattern again for the same subject and symbol
  within `gap_ns` of its last finding continues one alert (`Episodes.assign`): the new finding
  becomes an occurrence of that alert instead of a new one.
- **Workflow**: OPEN -> ACKED -> ESCALATED -> CLOSED (ack, assign, escalate, close). Closing
  needs a disposition; a closed alert takes no further action (the pipeline may reopen it when
  the pattern continues, see `sinks.alerts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from domain.alerts import Alert
from domain.errors import BrokerflowError

SEVERITY_SCORES = {"INFO": 10, "LOW": 30, "MEDIUM": 50, "HIGH": 75, "CRITICAL": 95}

OPEN = "OPEN"
ACKED = "ACKED"
ESCALATED = "ESCALATED"
CLOSED = "CLOSED"
STATUSES = (OPEN, ACKED, ESCALATED, CLOSED)

ACK = "ack"
ASSIGN = "assign"
ESCALATE = "escalate"
CLOSE = "close"
ACTIONS = (ACK, ASSIGN, ESCALATE, CLOSE)
DISPOSITIONS = ("false_positive", "true_positive", "reported")

MAX_NOTE = 4000


def score_of(severity: str) -> int:
    """The 0..100 score of a severity: a model's score as is, a word by `SEVERITY_SCORES`.

    >>> score_of("72"), score_of("HIGH"), score_of("odd")
    (72, 75, 0)
    """
    if severity.isdigit():
        return min(int(severity), 100)
    return SEVERITY_SCORES.get(severity, 0)


# -- workflow --------------------------------------------------------------------------------


class ActionRefused(BrokerflowError):
    """The action is not valid for this alert (bad input): an HTTP 400 / a one-line CLI error."""


class AlreadyClosed(BrokerflowError):
    """The alert was closed (by someone else, or before): an HTTP 409."""

    def __init__(self, alert_id: str, closed_by: str | None, closed_at: str | None) -> None:
        who = closed_by or "someone"
        when = f" at {closed_at}" if closed_at else ""
        super().__init__(f"alert {alert_id} was already closed by {who}{when}")
        self.closed_by = closed_by
        self.closed_at = closed_at


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One analyst action, checked by `check_action` before anything is written."""

    action: str
    actor: str
    assignee: str | None = None
    disposition: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """What an accepted action does: the status it leads to and the fields it sets."""

    to_status: str
    assignee: str | None
    disposition: str | None
    note: str | None


def check_action(request: ActionRequest) -> ActionRequest:
    """Check an action's own fields (before the alert is read); return it normalised.

    Raises:
        ActionRefused: unknown action, assign without assignee, close without a valid
            disposition, a note too long; the message names the field.
    """
    action = (request.action or "").strip().lower()
    if action not in ACTIONS:
        msg = f"unknown action {request.action!r} (one of {', '.join(ACTIONS)})"
        raise ActionRefused(msg)
    if not request.actor:
        msg = "an action needs the user who takes it"
        raise ActionRefused(msg)
    note = (request.note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        msg = f"note is {len(note)} characters; at most {MAX_NOTE}"
        raise ActionRefused(msg)
    assignee = (request.assignee or "").strip() or None
    if action == ASSIGN and assignee is None:
        msg = "assign needs an assignee"
        raise ActionRefused(msg)
    disposition = (request.disposition or "").strip().lower() or None
    if action == CLOSE:
        if disposition is None:
            msg = f"close needs a disposition ({', '.join(DISPOSITIONS)})"
            raise ActionRefused(msg)
        if disposition not in DISPOSITIONS:
            msg = f"unknown disposition {request.disposition!r} (one of {', '.join(DISPOSITIONS)})"
            raise ActionRefused(msg)
    elif disposition is not None:
        msg = "only close takes a disposition"
        raise ActionRefused(msg)
    return ActionRequest(action, request.actor, assignee, disposition, note)


def transition(
    alert_id: str,
    status: str,
    request: ActionRequest,
    closed_by: str | None = None,
    closed_at: str | None = None,
) -> Transition:
    """The status an action leads to from `status`.

    Raises:
        AlreadyClosed: the alert is closed (any action).
        ActionRefused: ack of an alert that is not OPEN, escalate of an escalated one.
    """
    if status == CLOSED:
        raise AlreadyClosed(alert_id, closed_by, closed_at)
    action = request.action
    if action == ACK:
        if status != OPEN:
            msg = f"alert {alert_id} is {status}, not OPEN: nothing to acknowledge"
            raise ActionRefused(msg)
        return Transition(ACKED, None, None, request.note)
    if action == ASSIGN:
        # Assigning takes ownership: an OPEN alert counts as seen.
        return Transition(ACKED if status == OPEN else status, request.assignee, None, request.note)
    if action == ESCALATE:
        if status == ESCALATED:
            msg = f"alert {alert_id} is already ESCALATED"
            raise ActionRefused(msg)
        return Transition(ESCALATED, request.assignee, None, request.note)
    return Transition(CLOSED, None, request.disposition, request.note)


# -- episodes --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Episode:
    key: str
    first_ns: int
    last_ns: int


class Episodes:
    """One alert per episode per model: findings of the same kind about the same subject and
    symbol, each within `gap_ns` (event time) of the episode's latest, continue one episode.

    State is bounded: an episode quiet for longer than `gap_ns` behind the newest finding is
    forgotten (a later finding opens a new one, as it would anyway).
    """

    __slots__ = ("gap_ns", "_open", "_newest")

    def __init__(self, gap_ns: int) -> None:
        self.gap_ns = gap_ns
        self._open: dict[tuple[str, str, str | None], _Episode] = {}
        self._newest = 0

    def assign(self, kind: str, subject: str, symbol: str | None, key: str,
               ts_ns: int) -> tuple[str, bool]:  # fmt: skip
        """Return (the episode's key, whether this finding opens it)."""
        self._newest = max(self._newest, ts_ns)
        if len(self._open) > 256:
            self._forget(self._newest - self.gap_ns)
        ident = (kind, subject, symbol)
        episode = self._open.get(ident)
        if episode is not None and episode.first_ns - self.gap_ns <= ts_ns <= (
            episode.last_ns + self.gap_ns
        ):
            episode.last_ns = max(episode.last_ns, ts_ns)
            return episode.key, False
        self._open[ident] = _Episode(key, ts_ns, ts_ns)
        return key, True

    def _forget(self, horizon_ns: int) -> None:
        self._open = {k: e for k, e in self._open.items() if e.last_ns >= horizon_ns}

    def __len__(self) -> int:
        return len(self._open)


def occurrence(ts_ns: int, score: int, evidence: Mapping[str, Any] | None = None) -> dict:
    """One entry of an alert's `details["occurrences"]` (keyed by the finding's key)."""
    return {"ts_ns": ts_ns, "score": score, **(evidence or {})}


def merge_batch(alerts: Iterable[Alert]) -> list[Alert]:
    """Fold alerts of one batch that share an id (an episode continued within the batch) into
    one, in first-seen order: occurrences united, the highest score kept.

    The store merges across batches the same way (sinks.alerts); one statement cannot update
    the same row twice, so a batch must carry each id once.
    """
    out: dict[str, Alert] = {}
    for alert in alerts:
        seen = out.get(alert.alert_id)
        if seen is None:
            out[alert.alert_id] = alert
            continue
        if "occurrences" not in alert.details:
            continue  # the same alert twice (a retried batch): the first stands
        details = dict(seen.details)
        details["occurrences"] = {
            **seen.details.get("occurrences", {}),
            **alert.details.get("occurrences", {}),
        }
        severity = seen.severity
        if score_of(alert.severity) > score_of(severity):
            severity = alert.severity
        out[alert.alert_id] = replace(seen, severity=severity, details=details)
    return list(out.values())
