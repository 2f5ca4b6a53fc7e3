"""Edge layer: traders' price alerts over the WebSocket (issue 19, part 3).

    {"action":"alert.create","symbol","condition","value"[,"account"]}
        -> {"type":"alert.created","id","symbol","condition","value","account","status"}
    {"action":"alert.list"}          -> {"type":"alert.list","alerts":[row, ...]} (ACTIVE, FIRED)
    {"action":"alert.delete","id":N} -> {"type":"alert.deleted","id":N}

The SQL is `sinks.price_alerts`'s, the table's one module, which the CLI uses too (pyproject's
import-linter lets `edge.price_alerts` import that module alone; it imports psycopg and the
domain only). Its calls block, so they run off the event loop (`asyncio.to_thread`) on a small
psycopg_pool of `EdgeConfig.postgres_dsn`; without a DSN every action answers an error frame.

Decisions:
- The account: the token's, when it names one; a token with several must name one with
  `account` (one not in the token is refused, naming the field). A trader lists and deletes the
  alerts they set (by user), over all their accounts.
- A symbol is known when Redis holds `quote:{SYMBOL}`, i.e. the quotes flow has published it:
  the rule subscribe already uses for "unknown symbol". An alert on a symbol that has never
  traded here could never be checked by the trader against a price.
- Bad input: an `error` frame whose message starts with the field and which carries `field`
  ("symbol", "condition", "value", "account", "id"); a create beyond
  `EdgeConfig.price_alerts_max_per_user` is refused with the limit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import ConnectionPool

from domain.price_alerts import PriceAlertError
from edge import protocol
from edge.config import EdgeConfig
from sinks import price_alerts as store  # the table's SQL (see the module docstring)

log = logging.getLogger("brokerflow.edge")

T = TypeVar("T")
NO_POSTGRES = "price alerts need PostgreSQL: this edge has no BROKERFLOW_POSTGRES_DSN configured"


class PriceAlerts:
    """The alert.* actions of one edge process."""

    def __init__(self, config: EdgeConfig, client: aioredis.Redis) -> None:
        self.config = config
        self.redis = client
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    def _connection_pool(self) -> ConnectionPool:
        with self._lock:  # opened on first use, in a worker thread
            if self._pool is None:
                assert self.config.postgres_dsn is not None
                self._pool = ConnectionPool(
                    self.config.postgres_dsn, min_size=1, max_size=4, open=True,
                    kwargs={"autocommit": True}, name="edge-price-alerts",
                )  # fmt: skip
            return self._pool

    async def _run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        def call() -> T:
            with self._connection_pool().connection() as conn:
                return fn(conn)

        return await asyncio.to_thread(call)

    async def act(self, claims, action: protocol.Action) -> bytes:  # noqa: ANN001 - Claims
        """Do one alert.* action for the connection of `claims`; return the frame to send."""
        name = _NAMES[type(action)]
        if self.config.postgres_dsn is None:
            return protocol.error_frame(NO_POSTGRES, action=name)
        try:
            if isinstance(action, protocol.AlertCreate):
                return await self._create(claims, action)
            if isinstance(action, protocol.AlertDelete):
                user = claims.user
                await self._run(lambda c: store.delete(c, action.id, user=user))
                return protocol.json_frame("alert.deleted", id=action.id)
            rows = await self._run(lambda c: store.list_alerts(c, claims.user))
            return protocol.json_frame("alert.list", alerts=[r.as_dict() for r in rows])
        except PriceAlertError as exc:
            return protocol.error_frame(str(exc), field=exc.field, action=name)
        except store.PriceAlertNotFoundError as exc:
            return protocol.error_frame(str(exc), field="id", action=name)
        except store.PriceAlertLimitError as exc:
            return protocol.error_frame(str(exc), action=name)
        except (psycopg.Error, aioredis.RedisError) as exc:
            log.warning("%s failed: %s", name, exc)
            return protocol.error_frame(f"{name} failed: {type(exc).__name__}", action=name)

    async def _create(self, claims, action: protocol.AlertCreate) -> bytes:  # noqa: ANN001
        account = _account(claims, action.account)
        symbol = action.symbol
        known: set[str] = set()
        if isinstance(symbol, str) and protocol.SYMBOL_RE.fullmatch(symbol.strip()):
            name = symbol.strip().upper()
            if await self.redis.exists(f"quote:{name}"):
                known.add(name)
        limit = self.config.price_alerts_max_per_user
        alert = await self._run(
            lambda c: store.create(
                c, user=claims.user, symbol=symbol, condition=action.condition,
                value=action.value, account=account, max_per_user=limit, known_symbols=known,
            )
        )  # fmt: skip
        return protocol.json_frame(
            "alert.created", id=alert.id, symbol=alert.symbol, condition=alert.condition,
            value=float(alert.value), account=alert.account, status=store.ACTIVE,
        )  # fmt: skip

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


_NAMES = {
    protocol.AlertCreate: "alert.create",
    protocol.AlertList: "alert.list",
    protocol.AlertDelete: "alert.delete",
}


def _account(claims, wanted: object) -> str:  # noqa: ANN001 - Claims
    """The account an alert is set for: `wanted` if the token names it, else the token's one."""
    accounts = sorted(claims.accounts)
    field = "account"
    if wanted is None:
        if len(accounts) == 1:
            return accounts[0]
        reason = (
            "this token names no account" if not accounts
            else f"this token has several accounts ({', '.join(accounts)}): name one"
        )  # fmt: skip
        raise PriceAlertError(field, reason)
    if not isinstance(wanted, str) or wanted not in claims.accounts:
        reason = f"{str(wanted)[:40]!r} is not one of this token's accounts"
        raise PriceAlertError(field, reason)
    return wanted
