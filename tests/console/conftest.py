"""A console over real stores holding the labelled surveillance day: every flow replayed into a
fresh PostgreSQL database, a Redis db and an embedded ClickHouse (chdb), then the console served
by uvicorn on a free port of this process (which holds the chdb store, as the demo does)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import fresh_database, reserved_redis_db
from tests.edge.conftest import RunningEdge, running_edge

TRADER_ACCOUNTS = ("K1",)


@dataclass
class Workbench:
    url: str
    dsn: str
    store: Any
    data_dir: Path
    tokens: dict[str, str]
    secret: bytes
    edge: RunningEdge

    def client(self, role: str | None = "analyst") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def alert_ids(self, kind: str) -> list[str]:
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT alert_id FROM alerts WHERE kind = %s ORDER BY alert_id", (kind,)
            ).fetchall()
        return [r[0] for r in rows]


def _accounts(path: Path) -> list[str]:
    return [line.split(",")[0] for line in path.read_text().splitlines()[1:] if line]


@pytest.fixture(scope="module")
def workbench(postgres_dsn: str, redis_url: str, tmp_path_factory) -> Iterator[Workbench]:
    from brokerflow.cli import main
    from console.app import ConsoleConfig
    from console.server import BackgroundConsole
    from edge.tokens import edge_secret, issue_token
    from simulator.surveillance import write_scenario
    from sinks.clickhouse import migrate_clickhouse, open_store

    root = tmp_path_factory.mktemp("workbench")
    data_dir = root / "data"
    day, accounts, labels = root / "day.fix", root / "accounts.csv", root / "labels.csv"
    write_scenario(day, accounts, labels)
    with fresh_database(postgres_dsn) as dsn, reserved_redis_db(redis_url) as redis_db, \
            pytest.MonkeyPatch.context() as mp:  # fmt: skip
        mp.setenv("BROKERFLOW_POSTGRES_DSN", dsn)
        mp.setenv("BROKERFLOW_REDIS_URL", redis_db)
        mp.delenv("BROKERFLOW_CLICKHOUSE_URL", raising=False)
        dd = ["--data-dir", str(data_dir)]
        assert main(["load", "accounts", str(accounts), *dd]) == 0
        assert main(["replay", str(day), "-q", *dd]) == 0
        store = open_store(None, data_dir)
        migrate_clickhouse(store)
        secret = edge_secret(None, data_dir)
        now = int(time.time())
        traders = [a for a in _accounts(accounts) if a in TRADER_ACCOUNTS] or _accounts(
            accounts)[:1]  # fmt: skip
        tokens = {
            "analyst": issue_token(secret, "ann", "analyst", [], now, 3600),
            "analyst2": issue_token(secret, "bob", "analyst", [], now, 3600),
            "trader": issue_token(secret, "tom", "trader", traders, now, 3600),
            "operator": issue_token(secret, "ops", "operator", [], now, 3600),
        }
        with running_edge(redis_db, secret) as edge:
            console = BackgroundConsole(ConsoleConfig(dsn, secret, store, edge.url)).start()
            try:
                yield Workbench(console.url, dsn, store, data_dir, tokens, secret, edge)
            finally:
                console.stop()
                store.close()
