"""Console layer (pure): what each role may read and do through the HTTP API and the pages.

The same tokens and roles as the WebSocket edge (`edge.claims`):
- analyst: every alert (surveillance and account alerts; not the traders' own price alerts,
  which are notices to them, not cases), every account, the reports, and the workflow actions;
- trader: the account alerts (stops, margin, concentration) of the accounts in the token, and
  those accounts' views; never a surveillance alert, not even about their own account (telling
  a suspect they are under surveillance would tip them off), nor the compliance reports;
- operator: the flows' health, nothing about clients.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import BrokerflowError
from edge.claims import ANALYST, OPERATOR, TRADER, Claims
from edge.roles import ACCOUNT_KINDS, NOTICE_KINDS, SURVEILLANCE_KINDS


class Forbidden(BrokerflowError):
    """The token is good, but its role may not see or do this (HTTP 403)."""


@dataclass(frozen=True, slots=True)
class AlertScope:
    """Which alerts a token may see: `kinds`/`accounts` None means any; never the `hidden`
    kinds (the traders' own notices, `edge.roles.NOTICE_KINDS`, are not analysts' work)."""

    kinds: frozenset[str] | None
    accounts: frozenset[str] | None
    hidden: frozenset[str] = NOTICE_KINDS

    def allows(self, kind: str, account: str | None) -> bool:
        if kind in self.hidden or (self.kinds is not None and kind not in self.kinds):
            return False
        return self.accounts is None or account in self.accounts


ANALYST_SCOPE = AlertScope(None, None)
"""Every alert an analyst works on: all kinds but the traders' notices (PRICE_ALERT)."""


def alert_scope(claims: Claims) -> AlertScope:
    """The alerts `claims` may see. Raises `Forbidden` for operators."""
    if claims.role == ANALYST:
        return ANALYST_SCOPE
    if claims.role == TRADER:
        return AlertScope(ACCOUNT_KINDS, claims.accounts)
    msg = f"role {claims.role} sees the flows' health, not alerts"
    raise Forbidden(msg)


def check_kind_visible(claims: Claims, kind: str) -> None:
    """A trader asking for a surveillance kind is refused, not shown an empty list."""
    if claims.role == TRADER and kind in SURVEILLANCE_KINDS:
        msg = f"a trader token does not see surveillance alerts ({kind})"
        raise Forbidden(msg)


def check_account(claims: Claims, account: str) -> None:
    """Raise `Forbidden` unless `claims` may see `account`'s view."""
    if claims.role == ANALYST:
        return
    if claims.role == TRADER and account in claims.accounts:
        return
    if claims.role == TRADER:
        msg = f"account {account} is not one of this trader token's accounts"
    else:
        msg = f"role {claims.role} does not see accounts"
    raise Forbidden(msg)


def check_analyst(claims: Claims, what: str) -> None:
    """Raise `Forbidden` unless `claims` is an analyst's (reports, workflow, suppressions)."""
    if claims.role != ANALYST:
        msg = f"{what} is for analysts; this token's role is {claims.role}"
        raise Forbidden(msg)


def check_flows(claims: Claims) -> None:
    """The flows' health: operators and analysts."""
    if claims.role not in (OPERATOR, ANALYST):
        msg = f"the flows' health is for operators; this token's role is {claims.role}"
        raise Forbidden(msg)
