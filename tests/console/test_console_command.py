"""`brokerflow console` as users start it: it serves the API on the configured stores, and says
in one line why it cannot start when another process holds the embedded ClickHouse."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from edge.tokens import edge_secret, issue_token
from tests.edge.conftest import free_port
from tests.eventually import eventually


def _env(pg_dsn: str) -> dict[str, str]:
    env = {**os.environ, "BROKERFLOW_POSTGRES_DSN": pg_dsn}
    env.pop("BROKERFLOW_CLICKHOUSE_URL", None)
    return env


def _command(port: int, data) -> list[str]:
    return [sys.executable, "-m", "brokerflow.cli", "console", "--port", str(port),
            "--data-dir", str(data)]  # fmt: skip


def test_console_serves_the_api_then_a_second_one_on_the_same_chdb_says_why_not(
    pg_dsn: str, tmp_path
) -> None:
    data = tmp_path / "data"
    port = free_port()
    first = subprocess.Popen(_command(port, data), env=_env(pg_dsn), stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:

        def ask() -> tuple[httpx.Response] | None:
            """The API's answer, once the console made its secret and listens."""
            assert first.poll() is None, first.stderr.read()
            if not (data / "edge_secret").exists():
                return None
            token = issue_token(edge_secret(None, data), "sue", "analyst", [], int(time.time()),
                                600)  # fmt: skip
            return (httpx.get(f"http://127.0.0.1:{port}/api/alerts", params={"token": token},
                              timeout=5),)  # fmt: skip

        [answer] = eventually(ask, 60, 0.2, "the console's API", ignore=(httpx.TransportError,))
        assert answer.status_code == 200
        assert answer.json()["alerts"] == []

        # The first console holds the embedded chdb store: a second one says so in one line.
        second = subprocess.run(_command(free_port(), data), env=_env(pg_dsn),
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert second.returncode != 0
        last = second.stderr.strip().splitlines()[-1]
        assert "is open in another process (a running demo or run)" in last
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait(10)
