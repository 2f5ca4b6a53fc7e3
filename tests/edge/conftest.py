"""Fixtures of the edge tests: a real edge server (picows, in a thread) on a reserved Redis db."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from edge.config import EdgeConfig
from edge.server import serve
from edge.tokens import issue_token

SECRET = b"test-edge-secret-of-thirty-two-bytes!"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningEdge:
    url: str
    http_url: str
    redis: redis.Redis
    config: EdgeConfig

    def token(self, user: str, role: str, accounts: tuple[str, ...] = (), **kw: Any) -> str:
        return issue_token(SECRET, user, role, accounts, int(time.time()), kw.get("ttl_s", 600))

    def ws_url(self, token: str | None, **params: str) -> str:
        query = "" if token is None else f"?token={token}"
        for key, value in params.items():
            query += ("&" if query else "?") + f"{key}={value}"
        return self.url + query

    def set_quote(self, symbol: str, seq: int, bid: float = 10.0, **extra: Any) -> bytes:
        """Write a quote as the quote flow does: the key, then an entry on stream:quotes."""
        doc = {
            "symbol": symbol, "bid": bid, "bid_size": 100.0, "ask": bid + 0.01,
            "ask_size": 100.0, "ltp": bid, "ltq": 10.0, "volume": 1000.0 + seq,
            "ts": int(time.time() * 1000), "seq": seq, **extra,
        }
        data = json.dumps(doc, separators=(",", ":")).encode()
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(f"quote:{symbol}", data)
        pipe.xadd("stream:quotes", {"symbol": symbol, "data": data})
        pipe.execute()
        return data

    def add_alert(self, alert_id: str, kind: str, account: str, **extra: Any) -> bytes:
        doc = {"alert_id": alert_id, "kind": kind, "account": account, "severity": "HIGH",
               "details": {"evidence": f"test {alert_id}"}, "event_time": 0, **extra}
        data = json.dumps(doc).encode()
        return self.redis.xadd("stream:alerts", {"kind": kind, "account": account, "data": data})


@pytest.fixture
def edge(redis_db_url: str) -> Iterator[RunningEdge]:
    """An edge serving `redis_db_url` on a free port, stopped after the test."""
    with running_edge(redis_db_url) as running:
        yield running


@contextmanager
def running_edge(
    redis_db_url: str, secret: bytes = SECRET, **config_fields: Any
) -> Iterator[RunningEdge]:
    """An edge serving `redis_db_url` on a free port (a thread of this process) until exit;
    `config_fields` set more `EdgeConfig` fields (e.g. `postgres_dsn`)."""
    port = free_port()
    config = EdgeConfig(
        redis_url=redis_db_url, secret=secret, host="127.0.0.1", port=port,
        flush_ms=20, max_symbols=50, max_pending_alerts=200, health_s=0.2, **config_fields,
    )
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(serve(config, ready))
        await ready.wait()
        started.set()
        await task

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by the test that waits for the start
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10), "edge did not start"
    if failure:
        raise failure[0]
    client = redis.Redis.from_url(redis_db_url)
    try:
        yield RunningEdge(f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}", client, config)
    finally:
        for task in asyncio.all_tasks(loop):
            loop.call_soon_threadsafe(task.cancel)
        thread.join(5)
        client.close()
