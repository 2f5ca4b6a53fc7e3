"""Edge layer: signing and checking edge tokens (PyJWT, HS256) and the key they use.

The key is `BROKERFLOW_EDGE_SECRET`; when unset, a random key is made once and kept in
`{data_dir}/edge_secret` (mode 0600), so `brokerflow token issue` and `brokerflow edge` on one
machine agree without configuration.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import jwt

from edge.claims import Claims, TokenError, check_claims

ALGORITHM = "HS256"
SECRET_FILE = "edge_secret"


def edge_secret(configured: str | None, data_dir: Path) -> bytes:
    """Return the configured key, else the one kept in the data dir (made on first use)."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    # O_EXCL: when two processes race to make it, one wins and the other reads the winner's.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def issue_token(
    secret: bytes, user: str, role: str, accounts: Iterable[str], now_s: int, ttl_s: int
) -> str:
    """Return a signed token; the claims are checked first so no unusable token is printed.

    Raises:
        TokenError: an unknown role, a trader without accounts, an empty user.
    """
    payload = {
        "sub": user,
        "role": role,
        "accounts": list(dict.fromkeys(accounts)),
        "iat": now_s,
        "exp": now_s + ttl_s,
    }
    check_claims(payload, now_s)
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def read_token(secret: bytes, token: str | None, now_s: float) -> Claims:
    """Verify a token's signature and claims.

    Raises:
        TokenError: missing, malformed, badly signed, expired, or with unacceptable claims.
    """
    if not token:
        msg = "no token"
        raise TokenError(msg)
    try:
        # Expiry is checked by check_claims against the clock we are given.
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"verify_exp": False}
        )
    except jwt.InvalidTokenError as exc:
        msg = f"bad token ({exc})"
        raise TokenError(msg) from None
    return check_claims(payload, now_s)
