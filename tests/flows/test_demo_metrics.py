"""Issue 9: `curl` on the metrics port during `brokerflow demo` shows every flow writing.

The demo runs as a user starts it (a subprocess of the CLI) on this test's own stores; the test
scrapes `/metrics` while it runs, as Prometheus would, until every flow's
`brokerflow_messages_out_total` is above zero or the demo ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
from collections import defaultdict
from pathlib import Path

from flows.pipeline import ALL_FLOWS
from tests.scrape import scrape

ROOT = Path(__file__).resolve().parents[2]
DEMO_SECONDS = 15
STARTUP_S = 60  # stores prepared, embedded chdb opened, the dataflow built: slow on busy cores


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _messages_out(port: int) -> dict[str, float] | None:
    """`brokerflow_messages_out_total` summed per flow, or None while nothing answers."""
    try:
        samples = scrape(f"127.0.0.1:{port}", timeout=2)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    out: dict[str, float] = defaultdict(float)
    for (name, labels), value in samples.items():
        if name == "brokerflow_messages_out_total":
            out[dict(labels)["flow"]] += value
    return dict(out)


def test_demo_metrics_show_every_flow_writing(tmp_path, pg_dsn, redis_db_url):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
    env.update(BROKERFLOW_REDIS_URL=redis_db_url, BROKERFLOW_POSTGRES_DSN=pg_dsn)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "brokerflow.cli", "demo", "--seconds", str(DEMO_SECONDS),
             "--symbols", "20", "--metrics-port", str(port), "--data-dir", str(tmp_path / "data")],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        seen: dict[str, float] = {}
        scraped = False
        try:
            deadline = time.monotonic() + STARTUP_S + DEMO_SECONDS
            while time.monotonic() < deadline and demo.poll() is None:
                counts = _messages_out(port)
                if counts is not None:
                    scraped = True
                    for flow, n in counts.items():
                        seen[flow] = max(seen.get(flow, 0.0), n)
                    if all(seen.get(flow, 0) > 0 for flow in ALL_FLOWS):
                        break
                time.sleep(0.5)
        finally:
            demo.terminate()
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
    output = log.read_text(errors="replace")
    assert scraped, f"nothing answered on :{port}/metrics; demo output:\n{output[-3000:]}"
    silent = [flow for flow in ALL_FLOWS if seen.get(flow, 0) <= 0]
    assert not silent, (
        f"no messages out during the demo for flows {silent}; counted: {seen}\n{output[-2000:]}"
    )
