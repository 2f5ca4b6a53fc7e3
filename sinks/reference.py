"""Sinks layer: reference changes booked by the ledger (issue 20, part 1), in its transaction.

`apply_reference(cur, event, step_id)` books one `AccountChanged` or `CashMoved` inside the
ledger's transaction, between the order events before and after it in the input
(`sinks.ledger.LedgerWriter`), so that a fill of an account opened earlier in the same input is
booked, and a cash movement counts once:

- AccountChanged: a new account is inserted with its opening cash; an existing one gets the
  owner and margin rates of the message (its cash is not touched: cash moves by deltas only,
  fills and `CashMoved`, so a change cannot clobber the day's fills), unless a later change
  was applied already (`accounts.reference_ts_ns`: on Kafka each partition carries a copy, and
  a late copy must not undo a newer change). Idempotent.
- CashMoved: the movement's row goes into `cash_movements` (movement id PRIMARY KEY) and its
  amount onto `accounts.cash`, together. The same movement delivered again (same id, account
  and amount) changes nothing and is counted as a duplicate, as a re-delivered ExecID is. An
  unknown account, or an id already used for another account or amount, is a dead letter with
  its reason, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from domain.dead_letters import DeadLetter
from domain.events import AccountChanged, CashMoved, ReferenceEvent

# A change older than the last one applied (a late copy, an old file again) changes nothing.
_UPSERT_ACCOUNT = (
    "INSERT INTO accounts AS a (account, owner, cash, initial_margin, maintenance_margin, "
    "positions_ts_ns, reference_ts_ns) VALUES (%s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (account) DO UPDATE SET owner = EXCLUDED.owner, "
    "initial_margin = EXCLUDED.initial_margin, maintenance_margin = EXCLUDED.maintenance_margin, "
    "reference_ts_ns = EXCLUDED.reference_ts_ns, updated_at = now() "
    "WHERE a.reference_ts_ns <= EXCLUDED.reference_ts_ns "
    "AND (a.owner, a.initial_margin, a.maintenance_margin) IS DISTINCT FROM "
    "(EXCLUDED.owner, EXCLUDED.initial_margin, EXCLUDED.maintenance_margin) "
    "RETURNING xmax = 0"
)
_LOCK_ACCOUNT = "SELECT 1 FROM accounts WHERE account = %s FOR UPDATE"
_INSERT_MOVEMENT = (
    "INSERT INTO cash_movements (movement_id, account, amount, event_time, ts_event, source) "
    "VALUES (%s, %s, %s, to_timestamp(%s::numeric / 1e9), %s, %s) "
    "ON CONFLICT (movement_id) DO NOTHING RETURNING movement_id"
)
_SELECT_MOVEMENT = "SELECT account, amount FROM cash_movements WHERE movement_id = %s"
_MOVE_CASH = (
    "UPDATE accounts SET cash = cash + %s, updated_at = now(), "
    "positions_ts_ns = GREATEST(positions_ts_ns, %s), positions_version = positions_version + 1 "
    "WHERE account = %s"
)


@dataclass(frozen=True, slots=True)
class ReferenceOutcome:
    """What booking one reference event did.

    Attributes:
        applied: it changed the ledger (False: a duplicate, a no-op change, or a dead letter).
        dead_letter: why it was refused, or None.
        changed_cash: the account whose cash it set (its holdings document must be published
            again), or None.
    """

    applied: bool
    dead_letter: DeadLetter | None = None
    changed_cash: str | None = None


def _letter(event: ReferenceEvent, reason: str, tag: int, step_id: str) -> DeadLetter:
    return DeadLetter(event.source, reason, event.raw, step_id, "FieldError", tag)


def apply_reference(cur: psycopg.Cursor, event: ReferenceEvent, step_id: str) -> ReferenceOutcome:
    """Book `event` in the caller's transaction (see the module docstring)."""
    if type(event) is AccountChanged:
        cur.execute(
            _UPSERT_ACCOUNT,
            (event.account, event.owner, event.opening_cash, event.initial_margin,
             event.maintenance_margin, event.ts_event, event.ts_event),
        )  # fmt: skip
        row = cur.fetchone()
        if row is None:  # the same owner and rates: a re-delivery, nothing to change
            return ReferenceOutcome(False)
        return ReferenceOutcome(True, changed_cash=event.account if row[0] else None)
    assert type(event) is CashMoved
    cur.execute(_LOCK_ACCOUNT, (event.account,))
    if cur.fetchone() is None:
        reason = f"Account(1) '{event.account}' is not a known account"
        return ReferenceOutcome(False, _letter(event, reason, 1, step_id))
    cur.execute(
        _INSERT_MOVEMENT,
        (event.movement_id, event.account, event.amount, event.ts_event, event.ts_event,
         event.source),
    )  # fmt: skip
    if cur.fetchone() is not None:
        cur.execute(_MOVE_CASH, (event.amount, event.ts_event, event.account))
        return ReferenceOutcome(True, changed_cash=event.account)
    cur.execute(_SELECT_MOVEMENT, (event.movement_id,))
    account, amount = cur.fetchone()
    if account == event.account and amount == event.amount:
        return ReferenceOutcome(False)  # delivered again: booked once already
    reason = (
        f"CashMovementID(5011) '{event.movement_id}' was already used for account "
        f"'{account}', amount {amount}: not booked again"
    )
    return ReferenceOutcome(False, _letter(event, reason, 5011, step_id))
