"""Edge layer (pure): the claims of an edge token and their check.

A token carries `sub` (the user), `role` (trader, analyst or operator), `accounts` (the accounts
a trader may see alerts of), `iat` and `exp`. The signature is checked by `edge.tokens`; this
module checks what the signed payload says, so a token signed with the right key but missing a
claim, naming an unknown role or a trader without accounts is refused the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.errors import BrokerflowError

TRADER = "trader"
ANALYST = "analyst"
OPERATOR = "operator"
ROLES = (TRADER, ANALYST, OPERATOR)


class TokenError(BrokerflowError):
    """An edge token is missing, badly signed, expired or says something we do not accept."""


@dataclass(frozen=True, slots=True)
class Claims:
    """Who is on a connection.

    Attributes:
        user: the `sub` claim; also names the watchlist (`watchlist:{user}`).
        role: one of `ROLES`.
        accounts: accounts whose alerts a trader receives (empty for other roles).
        expires_at_s: the `exp` claim, epoch seconds.
    """

    user: str
    role: str
    accounts: frozenset[str]
    expires_at_s: int


def check_claims(payload: Mapping[str, Any], now_s: float) -> Claims:
    """Return the claims of a verified token payload, or raise `TokenError` naming the problem.

    >>> check_claims({"sub": "ann", "role": "analyst", "exp": 20}, now_s=10).role
    'analyst'
    """
    user = payload.get("sub")
    if not isinstance(user, str) or not user:
        msg = "token has no user (sub)"
        raise TokenError(msg)
    role = payload.get("role")
    if role not in ROLES:
        msg = f"token role was {role!r}, expected one of {', '.join(ROLES)}"
        raise TokenError(msg)
    exp = payload.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        msg = "token has no expiry (exp)"
        raise TokenError(msg)
    if exp <= now_s:
        msg = "token expired"
        raise TokenError(msg)
    accounts = payload.get("accounts", [])
    if not isinstance(accounts, list) or not all(isinstance(a, str) and a for a in accounts):
        msg = "token accounts must be a list of account ids"
        raise TokenError(msg)
    if role == TRADER and not accounts:
        msg = "a trader token names no account"
        raise TokenError(msg)
    return Claims(user, role, frozenset(accounts) if role == TRADER else frozenset(), exp)
