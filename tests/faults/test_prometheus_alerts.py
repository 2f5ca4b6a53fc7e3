"""A real Prometheus (Debian's package) scrapes a running replay with deploy/'s alert rules: when
Redis goes down under the run, `BrokerflowSinkRetrying` goes pending for store "redis", the alert
an operator is paged by. Skipped, saying why, where the prometheus binary is missing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from brokerflow.services import stop_services
from tests.eventually import eventually
from tests.faults.reference import ReferenceDay, load_day
from tests.faults.test_store_outage import _embedded, _quotes_written, _replay
from tests.test_dashboards import promql

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-rules.yml"
PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus (Debian's package: make test)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=2) as r:
        return json.load(r)["data"]


def _answers(port: int, path: str) -> bool:
    try:
        _api(port, path)
    except OSError:
        return False
    return True


def _alerts(port: int) -> list[dict]:
    return _api(port, "alerts")["alerts"]


def _scraped_up(port: int) -> bool:
    result = _api(port, "query?query=up")["result"]
    return any(r["value"][1] == "1" for r in result)


def test_redis_down_under_a_run_makes_the_sink_retry_alert_pending(
    tmp_path: Path, reference_day: ReferenceDay, pg_dsn: str
) -> None:
    stores = tmp_path / "stores"
    url = _embedded(stores, "redis", postgres_dsn=pg_dsn)
    metrics, web = _free_port(), _free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        "  - job_name: brokerflow-flows\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics}']}}]\n"
    )
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {**os.environ, "BROKERFLOW_POSTGRES_DSN": pg_dsn, "BROKERFLOW_REDIS_URL": url,
           "BROKERFLOW_METRICS_PORT": str(metrics), "BROKERFLOW_SINK_RETRY_S": "120"}  # fmt: skip
    load_day(reference_day.day, env, tmp_path / "run")
    eventually(lambda: _answers(web, "query?query=up"), 30, what="Prometheus answering")
    run = _replay(reference_day.day, env, tmp_path / "run")  # every flow, as users replay
    try:
        eventually(lambda: _quotes_written(url), 60, what="quotes in Redis")
        assert stop_services(stores) == ["redis"]
        assert run.poll() is None, "the replay ended before Redis went down: make the day longer"
        # The run now retries for up to 120 s, its metrics still served: Prometheus scrapes
        # the retries counting up and evaluates the rule every second.
        eventually(lambda: _scraped_up(web), 30, what="the flows scraped")

        def pending() -> bool:
            return any(a["labels"]["alertname"] == "BrokerflowSinkRetrying"
                       and a["labels"].get("store") == "redis" for a in _alerts(web))  # fmt: skip

        eventually(pending, 45, what="BrokerflowSinkRetrying pending")
        [alert] = [a for a in _alerts(web) if a["labels"]["alertname"] == "BrokerflowSinkRetrying"]
        assert alert["state"] in ("pending", "firing")  # firing only after a minute down
        assert alert["labels"]["severity"] == "warning"
        # The pipeline-metrics dashboard's PromQL, on the same Prometheus: every query is
        # valid, and the ones on what a replay exports have data.
        answered = {}
        for title, expr in promql():
            query = urllib.parse.urlencode({"query": expr})
            answered[title] = _api(web, f"query?{query}")["result"]  # raises on a bad query
        for title in ("Messages in per second, by source", "Scrape targets up",
                      "Store writes retried and given up, per minute"):  # fmt: skip
            assert answered[title], f"{title}: no data from a running replay"
    finally:
        run.kill()
        run.communicate(timeout=30)
        prometheus.terminate()
        prometheus.wait(30)
        stop_services(stores)
