"""Edge layer (pure): which alerts and frames each role receives.

- trader: quotes of any symbol; account alerts (stops, margin, concentration) and the price
  alerts they set (`NOTICE_KINDS`, as `price_alert` frames) of the accounts in the token only.
  Never surveillance alerts, not even about their own account: telling a suspect they are
  under surveillance would tip them off.
- analyst: quotes; surveillance alerts of every account.
- operator: quotes and the flows' health frames.
"""

from __future__ import annotations

from domain import alerts as account_alerts
from domain import surveillance
from edge.claims import ANALYST, OPERATOR, TRADER, Claims

ACCOUNT_KINDS = frozenset(
    {
        account_alerts.STOP_TRIGGERED,
        account_alerts.MARGIN_CALL,
        account_alerts.MARGIN_CALL_CURED,
        account_alerts.LIQUIDATION,
        account_alerts.CONCENTRATION,
    }
)
# Notices a trader asked for (a price alert of theirs fired): to the traders of the account as
# their own frame; no one's case to work, so never in the analysts' queue or counts (console).
NOTICE_KINDS = frozenset({account_alerts.PRICE_ALERT})
SURVEILLANCE_KINDS = frozenset(
    {
        surveillance.WASH_TRADE,
        surveillance.PUMP_AND_DUMP,
        surveillance.SPOOFING,
        surveillance.MARKING_THE_CLOSE,
        surveillance.EXCESSIVE_OTR,
        surveillance.OWNERSHIP_MISSING,
    }
)


def alert_visible(claims: Claims, kind: str, account: str) -> bool:
    """Return whether a connection with `claims` receives an alert of `kind` about `account`.

    >>> from edge.claims import Claims
    >>> bob = Claims("bob", "trader", frozenset({"A1"}), 0)
    >>> alert_visible(bob, "MARGIN_CALL", "A1"), alert_visible(bob, "MARGIN_CALL", "A2")
    (True, False)
    """
    role = claims.role
    if role == TRADER:
        return (kind in ACCOUNT_KINDS or kind in NOTICE_KINDS) and account in claims.accounts
    if role == ANALYST:
        return kind in SURVEILLANCE_KINDS
    return False


def receives_health(claims: Claims) -> bool:
    """Return whether the connection gets the flows' health frames (operators only)."""
    return claims.role == OPERATOR
