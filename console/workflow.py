"""Console layer: the analysts' workflow on PostgreSQL `alerts` — one code path for the HTTP
API and `brokerflow alerts ack|assign|escalate|close`.

An action is checked (`domain.triage.check_action`), then applied in one transaction: the alert
row is locked (`FOR UPDATE`), so of two analysts closing one alert at once one wins and the
other is told who closed it; the status change and its `alert_actions` row commit together.
The action then goes to the audit trail (ClickHouse `audit_log`, event type ANALYST_ACTION).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from domain.audit import AuditRecord, decision_record
from domain.errors import BrokerflowError
from domain.triage import (
    ACK,
    CLOSE,
    ESCALATE,
    ActionRequest,
    check_action,
    transition,
)

log = logging.getLogger("brokerflow.console")

ANALYST_ACTION = "ANALYST_ACTION"
AuditWriter = Callable[[Sequence[AuditRecord]], None]


class AlertNotFound(BrokerflowError):
    """No alert has that id: bad input (HTTP 400, as the issue asks) / a one-line CLI error."""


class NotFound(BrokerflowError):
    """No account, report, audit event or suppression rule of that name (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """An applied action: the history row and the alert's state after it."""

    action_id: int
    alert_id: str
    action: str
    actor: str
    status: str
    from_status: str
    assignee: str | None
    disposition: str | None
    note: str | None
    at: dt.datetime
    audited: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id, "alert_id": self.alert_id, "action": self.action,
            "actor": self.actor, "status": self.status, "from_status": self.from_status,
            "assignee": self.assignee, "disposition": self.disposition, "note": self.note,
            "at": iso(self.at), "audited": self.audited,
        }  # fmt: skip


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, milliseconds: what the API and the pages show."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resolve_alert_id(conn: psycopg.Connection, prefix: str) -> str:
    """The alert id a unique prefix names (as `git` does with commits)."""
    text = prefix.strip()
    if not text:
        msg = "no alert id given"
        raise AlertNotFound(msg)
    ids = [r[0] for r in conn.execute(
        "SELECT alert_id FROM alerts WHERE alert_id LIKE %s ORDER BY alert_id LIMIT 2",
        (text.replace("%", "").replace("_", r"\_") + "%",),
    )]  # fmt: skip
    if len(ids) != 1:
        why = "no alert" if not ids else "more than one alert"
        msg = f"{why} with id {prefix!r}"
        raise AlertNotFound(msg)
    return ids[0]


_LOCK = """
SELECT status, closed_by, closed_at, kind, account, symbol FROM alerts
WHERE alert_id = %s FOR UPDATE
"""
_UPDATE = """
UPDATE alerts SET
    status = %(status)s,
    assignee = coalesce(%(assignee)s, assignee),
    disposition = coalesce(%(disposition)s, disposition),
    note = coalesce(%(note)s, note),
    acked_at = CASE WHEN %(acks)s THEN coalesce(acked_at, now()) ELSE acked_at END,
    closed_at = CASE WHEN %(status)s = 'CLOSED' THEN now() ELSE closed_at END,
    closed_by = CASE WHEN %(status)s = 'CLOSED' THEN %(actor)s ELSE closed_by END,
    updated_at = now()
WHERE alert_id = %(alert_id)s
"""
_HISTORY = """
INSERT INTO alert_actions (alert_id, actor, action, disposition, note, assignee, from_status,
                           to_status)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id, at
"""


def apply_action(
    conn: psycopg.Connection,
    alert_id: str,
    request: ActionRequest,
    audit: AuditWriter | None = None,
) -> ActionResult:
    """Apply one analyst action to one alert; return what it did.

    Raises:
        ActionRefused: the action or its fields are not valid (HTTP 400).
        AlreadyClosed: the alert is closed (HTTP 409), naming who closed it and when.
        AlertNotFound: no such alert (HTTP 400).
    """
    request = check_action(request)
    with conn.transaction():
        row = conn.execute(_LOCK, (alert_id,)).fetchone()
        if row is None:
            msg = f"no alert with id {alert_id!r}"
            raise AlertNotFound(msg)
        status, closed_by, closed_at, kind, account, symbol = row
        change = transition(alert_id, status, request, closed_by, iso(closed_at))
        conn.execute(_UPDATE, {
            "status": change.to_status, "assignee": change.assignee,
            "disposition": change.disposition, "note": change.note,
            "acks": request.action in (ACK, ESCALATE, CLOSE) or change.to_status != status,
            "actor": request.actor, "alert_id": alert_id,
        })  # fmt: skip
        action_id, at = conn.execute(_HISTORY, (
            alert_id, request.actor, request.action, change.disposition, change.note,
            change.assignee, status, change.to_status,
        )).fetchone()  # fmt: skip
    result = ActionResult(
        action_id, alert_id, request.action, request.actor, change.to_status, status,
        change.assignee, change.disposition, change.note, at, audited=False,
    )  # fmt: skip
    if audit is None:
        return result
    record = action_record(result, kind, account or "", symbol or "")
    try:
        audit([record])
    except Exception as exc:  # noqa: BLE001 - the decision stands; say the audit copy failed
        log.error("analyst action %s not written to the audit trail: %s", action_id, exc)
        return result
    return replace(result, audited=True)


def action_record(result: ActionResult, kind: str, account: str, symbol: str) -> AuditRecord:
    """The audit trail's row of an analyst action: who, what, on which alert, and when.

    Its event id derives from the `alert_actions` row, so writing it again changes nothing.
    """
    details = {
        "alert_id": result.alert_id, "alert_kind": kind, "action": result.action,
        "actor": result.actor, "from_status": result.from_status, "to_status": result.status,
        "assignee": result.assignee, "disposition": result.disposition, "note": result.note,
        "action_id": result.action_id,
    }  # fmt: skip
    at_us = int(result.at.timestamp() * 1_000_000)
    return decision_record(
        ANALYST_ACTION, f"alert_action:{result.action_id}", at_us,
        json.dumps(details, separators=(",", ":"), sort_keys=True), f"console:{result.actor}",
        account=account, symbol=symbol, ord_status=result.status,
    )  # fmt: skip


def clickhouse_audit(store: Any) -> AuditWriter:
    """An `AuditWriter` that inserts into the store's `audit_log`."""
    from sinks.clickhouse import AUDIT_COLUMNS, audit_rows

    def write(records: Sequence[AuditRecord]) -> None:
        store.insert("audit_log", AUDIT_COLUMNS, audit_rows(records))

    return write


def history(conn: psycopg.Connection, alert_id: str) -> list[dict[str, Any]]:
    """The alert's history, oldest first: every decision, and evidence the pipeline added."""
    rows = conn.execute(
        "SELECT id, actor, action, disposition, note, assignee, from_status, to_status, at "
        "FROM alert_actions WHERE alert_id = %s ORDER BY id",
        (alert_id,),
    ).fetchall()
    return [
        {"id": r[0], "actor": r[1], "action": r[2], "disposition": r[3], "note": r[4],
         "assignee": r[5], "from_status": r[6], "to_status": r[7], "at": iso(r[8])}
        for r in rows
    ]  # fmt: skip


# -- suppression rules -----------------------------------------------------------------------

MAX_SUPPRESSION = dt.timedelta(days=90)
_RULE_COLUMNS = ("id", "account", "kind", "reason", "actor", "starts_at", "ends_at",
                 "created_at", "revoked_at", "revoked_by")  # fmt: skip


def _rule(row: tuple) -> dict[str, Any]:
    rule = dict(zip(_RULE_COLUMNS, row, strict=True))
    for key in ("starts_at", "ends_at", "created_at", "revoked_at"):
        rule[key] = iso(rule[key])
    return rule


def list_suppressions(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every rule, newest first, revoked ones included (they are the audit of suppression)."""
    rows = conn.execute(
        f"SELECT {', '.join(_RULE_COLUMNS)} FROM suppressions ORDER BY id DESC"
    ).fetchall()
    return [_rule(r) for r in rows]


def _rule_record(rule: dict[str, Any], action: str, actor: str) -> AuditRecord:
    details = {"action": action, "actor": actor, **{k: rule[k] for k in _RULE_COLUMNS}}
    at = rule["revoked_at"] if action == "unsuppress" else rule["created_at"]
    return decision_record(
        ANALYST_ACTION, f"suppression:{rule['id']}:{action}",
        int(dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1e6),
        json.dumps(details, separators=(",", ":"), sort_keys=True), f"console:{actor}",
        account=rule["account"],
    )  # fmt: skip


def _audit_quietly(audit: AuditWriter | None, record: AuditRecord) -> bool:
    if audit is None:
        return False
    try:
        audit([record])
    except Exception as exc:  # noqa: BLE001 - the rule stands; say the audit copy failed
        log.error("suppression change not written to the audit trail: %s", exc)
        return False
    return True


def add_suppression(
    conn: psycopg.Connection,
    actor: str,
    account: str,
    kind: str | None,
    reason: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    audit: AuditWriter | None = None,
) -> dict[str, Any]:
    """Record a time-bounded rule; it applies to alerts raised within [starts_at, ends_at).

    Raises:
        ActionRefused: no account or reason, an unknown kind, an empty or too long period.
    """
    from console.filters import KINDS
    from domain.triage import ActionRefused

    if not account.strip() or not reason.strip():
        msg = "a suppression rule needs an account and a reason"
        raise ActionRefused(msg)
    if kind is not None and kind not in KINDS:
        msg = f"kind: unknown value {kind!r} (one of {', '.join(KINDS)})"
        raise ActionRefused(msg)
    if ends_at <= starts_at:
        msg = "ends_at: must be after starts_at"
        raise ActionRefused(msg)
    if ends_at - starts_at > MAX_SUPPRESSION:
        msg = f"a suppression rule lasts at most {MAX_SUPPRESSION.days} days"
        raise ActionRefused(msg)
    row = conn.execute(
        "INSERT INTO suppressions (account, kind, reason, actor, starts_at, ends_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {', '.join(_RULE_COLUMNS)}",
        (account.strip(), kind, reason.strip(), actor, starts_at, ends_at),
    ).fetchone()
    rule = _rule(row)
    rule["audited"] = _audit_quietly(audit, _rule_record(rule, "suppress", actor))
    return rule


def revoke_suppression(
    conn: psycopg.Connection, actor: str, rule_id: int, audit: AuditWriter | None = None
) -> dict[str, Any]:
    """End a rule now (kept, with who revoked it). Raises `NotFound` for no such rule."""
    row = conn.execute(
        "UPDATE suppressions SET revoked_at = coalesce(revoked_at, now()), "
        "revoked_by = coalesce(revoked_by, %s) WHERE id = %s "
        f"RETURNING {', '.join(_RULE_COLUMNS)}",
        (actor, rule_id),
    ).fetchone()
    if row is None:
        msg = f"no suppression rule {rule_id}"
        raise NotFound(msg)
    rule = _rule(row)
    rule["audited"] = _audit_quietly(audit, _rule_record(rule, "unsuppress", rule["revoked_by"]))
    return rule
