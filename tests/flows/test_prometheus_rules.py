"""The alert rules of deploy/: valid for promtool, their unit tests pass, and every metric they
read is one a real run exports (a renamed metric would leave an alert that can never fire)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from brokerflow.commands.replay import replay
from brokerflow.observability import set_kafka_lag
from tests.flows.test_dq_flow import fill
from tests.flows.test_metrics_endpoint import port, scrape  # noqa: F401 - `port` is a fixture
from tests.flows.test_quotes_flow import snapshot, write_file

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus-rules.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian's prometheus package: make test)"
)


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=DEPLOY, capture_output=True, text=True,
                          check=False)  # fmt: skip


@needs_promtool
def test_promtool_accepts_the_config_and_rules_and_their_unit_tests_pass() -> None:
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", RULES.name),
                 ("test", "rules", "prometheus-rules.test.yml")):  # fmt: skip
        done = promtool(*args)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_every_metric_the_rules_read_is_exported_by_a_run(tmp_path, settings_factory, port):  # noqa: F811
    rules = [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]
    wanted = {name for rule in rules for name in re.findall(r"\bbrokerflow_\w+", rule["expr"])}
    # The edge's and the FIX sessions' are checked where those run (test_edge_server,
    # test_fix_session_loopback): a replay has neither.
    wanted = {n for n in wanted if not n.startswith(("brokerflow_edge_", "brokerflow_fix_"))}
    assert len(wanted) >= 4
    settings = settings_factory(metrics_port=port, dq=True, dq_budget_share=1.0)
    lines = [
        snapshot("ACME", 0, "9.99", 500, "10.01", 400),
        snapshot("CROS", 1, "30.05", 100, "30.00", 100),  # crossed: a data-quality failure
        fill(10),
        b"8=FIX.4.4|9=5|35=0|10=000|",  # a dead letter
    ]
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False,
           flows=("quotes", "ledger"))  # fmt: skip
    set_kafka_lag("fix.marketdata", 0, 0, 0.0)  # what the Kafka source sets
    exported = {name for name, _labels in scrape(port)}
    assert wanted <= exported, f"read by the rules, exported by no run: {wanted - exported}"
