"""`brokerflow edge --processes N` as a process: it serves, and SIGTERM stops every server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.common import wait_port
from tests.edge.conftest import free_port
from tests.eventually import eventually


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_edge_processes_sigterm_stops_every_server(redis_db_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "BROKERFLOW_REDIS_URL": redis_db_url, "BROKERFLOW_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "brokerflow.cli", "edge", "--host", "127.0.0.1", "--port",
         str(port), "--processes", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_port(port, 30), f"nothing listens on port {port}"
        children = eventually(lambda: _children(proc.pid), 10, 0.05, "the second server process")
        # Not a wait for a condition: past start-up, the servers' loops and their auto-ping
        # tasks run (what SIGTERM must stop).
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0, proc.stderr.read() if proc.stderr else ""
        eventually(lambda: not any(_alive(c) for c in children), 5, 0.05, "the servers ended")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
