"""Structured logs: with --log-json every line a replay writes to stderr is a JSON object, and
the run's start and end are among them with their figures."""

from __future__ import annotations

import json

from brokerflow.cli import main
from brokerflow.logs import configure_logging
from tests.flows.test_quotes_flow import snapshot, write_file


def test_log_json_lines_parse_and_carry_the_run_figures(
    tmp_path, settings_factory, monkeypatch, capsys
):
    settings = settings_factory(dq=False)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    path = write_file(tmp_path / "day.fix", [snapshot("ACME", 0, "9.99", 500, "10.01", 400)])
    try:
        code = main(["replay", str(path), "-q", "--flows", "quotes", "--no-dq", "--log-json",
                     "--data-dir", str(settings.data_dir)])  # fmt: skip
    finally:
        configure_logging("text")
    assert code == 0

    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]
    by_event = {e["event"]: e for e in events}
    assert by_event["run_start"]["flows"] == ["quotes"]
    assert by_event["run_end"]["messages"] == 1
    assert all({"ts", "level", "logger", "event"} <= set(e) for e in events)
