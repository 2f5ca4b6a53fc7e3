"""docker-compose.yml: Docker does not run here, so check that the stack is complete and wired.

Each check stands for a way `docker compose up` would fail or come up wrong: a command the CLI
refuses, a service nobody can wait for (no health check), a dependency on a missing service, two
services on one host port, a mounted file that is not in the repository, an image that lacks a
package.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml

from brokerflow.cli import COMMANDS, build_parser
from brokerflow.settings import load_settings
from connectors.fix.live import load_live_sessions
from simulator.market import symbol_names

ROOT = Path(__file__).resolve().parents[1]
STACK = (
    "redpanda",
    "postgres",
    "redis",
    "clickhouse",
    "grafana",
    "exchange",
    "reference",
    "gateway",
    "flows",
    "edge",
)
ONE_SHOT = ("reference",)
"""Services that run to completion (restart "no"); the others wait for them to have succeeded."""


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _services() -> dict[str, dict]:
    return _compose()["services"]


def _brokerflow_services() -> dict[str, dict]:
    return {name: svc for name, svc in _services().items() if svc.get("build") == "."}


def _depends(svc: dict) -> dict[str, dict]:
    deps = svc.get("depends_on", {})
    return {d: {} for d in deps} if isinstance(deps, list) else deps


def _host_path(svc: dict, container_path: str) -> Path | None:
    """The repository file a container path maps to through the service's bind mounts."""
    wanted = PurePosixPath(container_path)
    for volume in svc.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./") and wanted.is_relative_to(target):
            return ROOT / source / wanted.relative_to(target)
    return None


def _env(svc: dict) -> dict[str, str]:
    return {k: str(v) for k, v in svc.get("environment", {}).items()}


def test_compose_has_the_production_stack():
    services = _services()
    missing = [name for name in STACK if name not in services]
    assert not missing, f"services missing: {missing}"
    assert set(_brokerflow_services()) == {"exchange", "reference", "gateway", "flows", "edge"}


def test_compose_every_service_has_a_healthcheck():
    for name, svc in _services().items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", f"{name} runs once"
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_compose_depends_on_waits_for_healthy_services():
    services = _services()
    for name, svc in services.items():
        for dep, spec in _depends(svc).items():
            assert dep in services, f"{name} depends on {dep}, which is not a service"
            wanted = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert spec.get("condition") == wanted, f"{name} -> {dep}"
    # The flows read accounts, owners and positions when they start: loaded before them.
    assert set(_depends(services["flows"])) >= {
        "redpanda",
        "postgres",
        "redis",
        "clickhouse",
        "reference",
    }
    assert set(_depends(services["reference"])) >= {"postgres", "exchange"}
    assert set(_depends(services["gateway"])) >= {"redpanda", "exchange"}
    assert "redis" in _depends(services["edge"])


def test_compose_host_ports_do_not_collide():
    seen: dict[str, str] = {}
    for name, svc in _services().items():
        for mapping in svc.get("ports", []):
            host = str(mapping).rsplit(":", 1)[0]
            assert host not in seen, f"host port {host}: {seen.get(host)} and {name}"
            seen[host] = name
    assert "8765" in seen and "9464" in seen and "3000" in seen


@pytest.mark.parametrize("name", ["exchange", "reference", "gateway", "flows", "edge"])
def test_compose_brokerflow_command_is_accepted_by_the_cli(name):
    svc = _services()[name]
    argv = [str(a) for a in svc["command"]]
    assert argv[0] in COMMANDS, f"{name}: no command `brokerflow {argv[0]}`"
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing an option
        pytest.fail(f"{name}: `brokerflow {' '.join(argv)}` refused by the CLI ({exc})")
    assert args.func is not None
    config = getattr(args, "config", None)
    if config is not None:
        # The config file is in the repository, mounted, and loads.
        path = _host_path(svc, str(config))
        assert path is not None and path.is_file(), f"{name}: {config} is not mounted from ./"
        assert load_settings(path).redis_url is None  # the stores come from the environment


def test_compose_brokerflow_services_point_at_the_stack():
    for name, svc in _brokerflow_services().items():
        env = _env(svc)
        assert env["BROKERFLOW_REDIS_URL"].startswith("redis://redis:6379/"), name
        assert "@postgres:5432/" in env["BROKERFLOW_POSTGRES_DSN"], name
        assert re.match(r"http://\w+:\w+@clickhouse:8123/\w+$", env["BROKERFLOW_CLICKHOUSE_URL"])
        assert env["BROKERFLOW_KAFKA_BOOTSTRAP"] == "redpanda:9092", name
    services = _services()
    # The credentials the services use are the ones the stores are started with.
    pg = _env(services["postgres"])
    dsn = _env(services["flows"])["BROKERFLOW_POSTGRES_DSN"]
    assert dsn == (
        f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/"
        f"{pg['POSTGRES_DB']}"
    )
    ch = _env(services["clickhouse"])
    assert _env(services["flows"])["BROKERFLOW_CLICKHOUSE_URL"] == (
        f"http://{ch['CLICKHOUSE_USER']}:{ch['CLICKHOUSE_PASSWORD']}@clickhouse:8123/"
        f"{ch['CLICKHOUSE_DB']}"
    )


def test_compose_flows_metrics_are_served_checked_and_scraped():
    services = _services()
    port = _env(services["flows"])["BROKERFLOW_METRICS_PORT"]
    assert f"http://localhost:{port}/metrics" in services["flows"]["healthcheck"]["test"]
    assert f"{port}:{port}" in services["flows"]["ports"]
    prometheus = _host_path(services["prometheus"], "/etc/prometheus/prometheus.yml")
    assert prometheus is not None and prometheus.is_file()
    scrape = yaml.safe_load(prometheus.read_text())["scrape_configs"]
    targets = [t for job in scrape for sc in job["static_configs"] for t in sc["targets"]]
    assert f"flows:{port}" in targets


def test_compose_every_metrics_port_is_scraped():
    """The gateway's FIX-session metrics and each edge process's own port (9466 + i with
    --processes N) are Prometheus targets, like the flows'."""
    services = _services()
    prometheus = _host_path(services["prometheus"], "/etc/prometheus/prometheus.yml")
    assert prometheus is not None
    scrape = yaml.safe_load(prometheus.read_text())["scrape_configs"]
    targets = {t for job in scrape for sc in job["static_configs"] for t in sc["targets"]}
    wanted = set()
    for name, svc in _brokerflow_services().items():
        port = _env(svc).get("BROKERFLOW_METRICS_PORT")
        if port is None:
            continue
        args = build_parser().parse_args([str(a) for a in svc["command"]])
        wanted |= {f"{name}:{int(port) + i}" for i in range(getattr(args, "processes", 1))}
    assert {"gateway:9465", "edge:9466", "edge:9467"} <= wanted
    assert wanted == targets


def test_compose_edge_healthcheck_uses_its_port():
    edge = _services()["edge"]
    args = build_parser().parse_args([str(a) for a in edge["command"]])
    assert f"http://localhost:{args.port}/" in edge["healthcheck"]["test"]
    assert f"{args.port}:{args.port}" in edge["ports"]


def test_compose_gateway_session_reaches_the_exchange():
    services = _services()
    exchange = build_parser().parse_args([str(a) for a in services["exchange"]["command"]])
    assert exchange.host == "0.0.0.0", "the exchange must listen beyond its own container"
    gateway = services["gateway"]
    config = build_parser().parse_args([str(a) for a in gateway["command"]]).config
    path = _host_path(gateway, str(config))  # the file the gateway reads its sessions from
    assert path is not None and path.exists(), config
    sessions = load_live_sessions(path)
    assert [(s.config.host, s.config.port, s.config.role) for s in sessions] == [
        ("exchange", exchange.port, "initiator")
    ]
    assert set(sessions[0].symbols) <= set(symbol_names(exchange.symbols))
    assert f"{exchange.port}:{exchange.port}" in services["exchange"]["ports"]


def test_compose_gateway_inbox_is_a_volume():
    """The back office's drop folder of intraday changes outlives the gateway's container."""
    gateway = _services()["gateway"]
    config = build_parser().parse_args([str(a) for a in gateway["command"]]).config
    path = _host_path(gateway, str(config))
    assert path is not None
    inbox = PurePosixPath(tomllib.loads(path.read_text())["reference"]["inbox"])
    targets = [PurePosixPath(v.split(":")[1]) for v in gateway["volumes"]]
    assert any(inbox.is_relative_to(t) and not str(t).startswith("/etc") for t in targets)


def test_compose_reference_service_loads_what_the_exchange_writes():
    """The exchange's synthetic accounts reach the ledger: the files it writes are the ones the
    one-shot reference service loads, through one named volume."""
    services = _services()
    exchange = build_parser().parse_args([str(a) for a in services["exchange"]["command"]])
    reference = build_parser().parse_args([str(a) for a in services["reference"]["command"]])
    assert reference.kind == "reference"
    written = {PurePosixPath(p) for p in exchange.accounts_out}
    assert written == {PurePosixPath(reference.file) / n for n in ("accounts.csv", "positions.csv")}

    def volume_of(svc: dict, path: PurePosixPath) -> str:
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if path.is_relative_to(target):
                return source
        pytest.fail(f"{path} is not on a volume")

    assert volume_of(services["exchange"], next(iter(written))) == volume_of(
        services["reference"], PurePosixPath(reference.file)
    )


def test_compose_mounts_exist_and_named_volumes_are_declared():
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} not in the repository"
            else:
                assert source in declared, f"{name}: volume {source} not declared"


def test_compose_grafana_provisioning_paths_exist():
    grafana = _services()["grafana"]
    provisioning = _host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None
    assert (provisioning / "datasources").is_dir() and (provisioning / "dashboards").is_dir()
    providers = yaml.safe_load((provisioning / "dashboards" / "brokerflow.yaml").read_text())
    for provider in providers["providers"]:
        folder = _host_path(grafana, provider["options"]["path"])
        assert folder is not None and list(folder.glob("*.json")), provider["options"]["path"]
    env = _env(grafana)
    assert "grafana-clickhouse-datasource" in env["GF_INSTALL_PLUGINS"]


def test_compose_image_holds_every_package():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["brokerflow"]' in dockerfile
    assert "pip install" in dockerfile
    assert re.search(r"apt-get install .*curl", dockerfile)  # the health checks use curl
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [p.rstrip("*") for p in include]
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.M))
    assert set(packages) <= copied, f"not copied into the image: {set(packages) - copied}"


def test_compose_parse_args_refuses_unknown_options():
    # The command check above is only worth something if the parser refuses bad argv.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--no-such-option"])
    assert isinstance(build_parser().parse_args(["edge", "--port", "1"]), argparse.Namespace)
