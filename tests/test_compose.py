"""docker-compose.yml: Docker does not run here, so check that the stack is complete and wired."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_stack():
    services = _compose()["services"]
    for name in ("redpanda", "postgres", "redis", "clickhouse", "grafana", "flows", "edge"):
        assert name in services, f"service {name} missing"


def test_compose_brokerflow_services_point_at_the_stack():
    compose = _compose()
    services = compose["services"]
    for name in ("flows", "edge"):
        env = services[name]["environment"]
        assert env["BROKERFLOW_REDIS_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in env["BROKERFLOW_POSTGRES_DSN"]
        assert "@clickhouse:8123/" in env["BROKERFLOW_CLICKHOUSE_URL"]
        assert env["BROKERFLOW_KAFKA_BOOTSTRAP"].startswith("redpanda:")
        assert services[name]["build"] == "."
    # Every dependency named exists, and the image built for the flows installs the package.
    for svc in services.values():
        for dep in svc.get("depends_on", []):
            assert dep in services
    assert "pip install" in (ROOT / "Dockerfile").read_text()


def test_compose_flows_and_edge_run_the_brokerflow_cli():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["brokerflow"]' in dockerfile
    services = _compose()["services"]
    assert services["flows"]["command"] == ["run"]
    assert services["edge"]["command"][0] == "edge"
