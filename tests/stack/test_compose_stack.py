"""docker-compose.yml, run without Docker: every brokerflow service of the file as a local process.

Each service runs with the command, environment, mounts, health check and start order that the
compose file gives it, read from the file (a copy in this test would drift). Only what Docker
would provide is stood in for:
- the stores are this machine's: PostgreSQL (a fresh database), Redis (a reserved db),
  librdkafka's mock cluster for `redpanda` (the real Kafka protocol) and chdb for `clickhouse`;
- a service name used as a host name is 127.0.0.1, and each published port is a free local port
  (in the command, the environment, the health check and the mounted config files);
- a bind mount is a copy of the repository folder (so that host names can be rewritten in it),
  a named volume a folder shared by the services that mount it.

End to end: exchange -> reference (one shot) -> gateway -> Kafka -> flows (`run`) -> edge. The
test then checks what users see: quotes on the WebSocket, the exchange's fills booked in the
ledger (none refused as "not a known account"), and surveillance alerts in PostgreSQL and on an
analyst's WebSocket.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePosixPath

import psycopg
import pytest
import yaml
from websockets.asyncio.client import connect

from tests.conftest import fresh_database, reserved_redis_db
from tests.edge.conftest import free_port
from tests.eventually import eventually
from tests.scrape import scrape

ROOT = Path(__file__).resolve().parents[2]
BROKERFLOW = str(Path(sys.executable).with_name("brokerflow"))
START_S = 90.0  # a service's health check must pass within this (compose: retries x interval)
STORE_URLS = {
    "redis": "BROKERFLOW_REDIS_URL",
    "postgres": "BROKERFLOW_POSTGRES_DSN",
    "clickhouse": "BROKERFLOW_CLICKHOUSE_URL",
    "redpanda": "BROKERFLOW_KAFKA_BOOTSTRAP",
}
"""The infrastructure services, and the variable through which the brokerflow services reach
each: its value is replaced by this machine's stand-in."""


@dataclass
class Service:
    """One brokerflow service of the compose file, translated to this machine."""

    name: str
    spec: dict
    mounts: dict[str, Path]  # container path -> host path
    ports: dict[str, str]  # container port -> host port (every published port of the stack)
    stores: dict[str, str]  # variable -> local value
    bootstrap: str
    process: subprocess.Popen | None = None
    log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def local(self, text: str) -> str:
        """A string of the compose file (argument, variable, health check) for this machine."""
        for target in sorted(self.mounts, key=len, reverse=True):
            if text == target or text.startswith(target + "/"):
                return str(self.mounts[target]) + text[len(target) :]
        text = text.replace("redpanda:9092", self.bootstrap)
        for port, host_port in self.ports.items():
            text = re.sub(rf"\b{port}\b", host_port, text)
        return text

    def argv(self) -> list[str]:
        return [BROKERFLOW, *(self.local(str(a)) for a in self.spec["command"])]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
        for key, value in (self.spec.get("environment") or {}).items():
            env[key] = self.stores.get(key) or self.local(str(value))
        return env

    def healthy(self) -> bool:
        """Run the service's own health check (CMD form), translated."""
        test = self.spec["healthcheck"]["test"]
        assert test[0] == "CMD", f"{self.name}: only CMD health checks are run here"
        argv = [self.local(str(a)) for a in test[1:]]
        if argv[0] == "python":
            argv[0] = sys.executable
        done = subprocess.run(argv, capture_output=True, timeout=15, env=self.env, check=False)
        return done.returncode == 0


def _local_ports(specs: dict[str, dict]) -> dict[str, str]:
    """A free local port for each port the stack listens on: the published ones, and each
    service's metrics ports (BROKERFLOW_METRICS_PORT, one per edge process)."""
    ports = {
        str(mapping).rsplit(":", 1)[1]: str(free_port())
        for spec in specs.values() for mapping in spec.get("ports", [])
    }  # fmt: skip
    for spec in specs.values():
        first = (spec.get("environment") or {}).get("BROKERFLOW_METRICS_PORT")
        if first is None or first in ports:
            continue
        command = [str(a) for a in spec.get("command", [])]
        count = int(command[command.index("--processes") + 1]) if "--processes" in command else 1
        while True:  # `count` consecutive free ports
            base = free_port()
            if all(_port_free(base + i) for i in range(1, count)):
                break
        for i in range(count):
            ports[str(int(first) + i)] = str(base + i)
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _copy_bind_mount(source: Path, into: Path, hosts: set[str], ports: dict[str, str],
                     mounts: dict[str, Path]) -> Path:  # fmt: skip
    """A copy of a bound folder whose config files name 127.0.0.1 for the stack's host names,
    the local ports and the local paths of container paths."""
    shutil.copytree(source, into)
    for path in into.rglob("*.toml"):
        text = path.read_text()
        text = re.sub(
            r'host = "([\w.-]+)"',
            lambda m: 'host = "127.0.0.1"' if m[1] in hosts else m[0],
            text,
        )
        for port, host_port in ports.items():
            text = re.sub(rf"\bport = {port}\b", f"port = {host_port}", text)
        for target in sorted(mounts, key=len, reverse=True):
            text = re.sub(rf'"{re.escape(target)}(/[^"]*)?"',
                          lambda m, t=target: f'"{mounts[t]}{m[1] or ""}"', text)  # fmt: skip
        path.write_text(text)
    return into


def _order(services: dict[str, dict]) -> list[str]:
    """The brokerflow services in an order that respects depends_on."""
    ours = [n for n, s in services.items() if s.get("build") == "."]
    done: list[str] = []
    while len(done) < len(ours):
        ready = [
            n for n in ours if n not in done
            and all(d in done or d not in ours for d in services[n].get("depends_on") or {})
        ]  # fmt: skip
        assert ready, f"a dependency cycle among {sorted(set(ours) - set(done))}"
        done += ready[:1]
    return done


@dataclass
class Stack:
    services: dict[str, Service]
    dsn: str
    redis_url: str
    tmp: Path

    def tail(self) -> str:
        out = []
        for svc in self.services.values():
            if svc.log is not None and svc.log.exists():
                lines = svc.log.read_text(errors="replace").splitlines()[-15:]
                out.append(f"--- {svc.name} ---\n" + "\n".join(lines))
        return "\n".join(out)


def _wait(what: str, check, stack: Stack, timeout: float = START_S, every: float = 0.5):  # noqa: ANN001, ANN202
    """`eventually`, with the services' last log lines when it times out."""
    return eventually(check, timeout, every, what, describe=stack.tail)


def _start(svc: Service, stack: Stack) -> None:
    svc.env = svc.environment()
    svc.log = stack.tmp / "logs" / f"{svc.name}.log"
    with svc.log.open("wb") as log:
        svc.process = subprocess.Popen(
            svc.argv(), cwd=stack.tmp, env=svc.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _stop(svc: Service) -> None:
    if svc.process is None or svc.process.poll() is not None:
        return
    os.killpg(svc.process.pid, signal.SIGTERM)
    try:
        svc.process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(svc.process.pid, signal.SIGKILL)
        svc.process.wait(10)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_dsn: str, redis_url: str
) -> Iterator[Stack]:
    from confluent_kafka import Producer

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    specs: dict[str, dict] = compose["services"]
    tmp = tmp_path_factory.mktemp("stack")
    (tmp / "logs").mkdir()
    owner = Producer({"test.mock.num.brokers": 3, "bootstrap.servers": "", "log_level": 0})
    brokers = owner.list_topics(timeout=5).brokers.values()
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)
    ports = _local_ports(specs)
    with fresh_database(postgres_dsn) as dsn, reserved_redis_db(redis_url) as redis_db:
        stores = {
            STORE_URLS["redis"]: redis_db,
            STORE_URLS["postgres"]: dsn,
            STORE_URLS["clickhouse"]: f"chdb://{tmp / 'clickhouse'}",
            STORE_URLS["redpanda"]: bootstrap,
        }
        named = {name: tmp / "volumes" / name for name in compose.get("volumes") or {}}
        services: dict[str, Service] = {}
        for name in _order(specs):
            spec = specs[name]
            mounts: dict[str, Path] = {}
            binds = []
            for volume in spec.get("volumes", []):
                source, target = volume.split(":")[:2]
                if source.startswith("./"):
                    binds.append((ROOT / source, target))
                else:
                    named[source].mkdir(parents=True, exist_ok=True)
                    mounts[target] = named[source]
            for source, target in binds:
                copy = tmp / "binds" / name / PurePosixPath(target).name
                mounts[target] = _copy_bind_mount(source, copy, set(specs), ports, mounts)
            services[name] = Service(name, spec, mounts, ports, stores, bootstrap)
        stack = Stack(services, dsn, redis_db, tmp)
        try:
            for name, svc in services.items():
                for dep, cond in (svc.spec.get("depends_on") or {}).items():
                    if dep in services and cond["condition"] == "service_completed_successfully":
                        proc = services[dep].process
                        assert proc is not None
                        code = proc.wait(START_S)
                        assert code == 0, f"{dep} exited {code}\n{stack.tail()}"
                _start(svc, stack)
                if svc.spec.get("restart") != "no":
                    _wait(f"{name} healthy", svc.healthy, stack)
            yield stack
        finally:
            for svc in reversed(services.values()):
                _stop(svc)
            del owner


def _query(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def _token(stack: Stack, role: str, *accounts: str) -> str:
    edge = stack.services["edge"]
    argv = [BROKERFLOW, "token", "issue", "--user", f"stack-{role}", "--role", role]
    for account in accounts:
        argv += ["--account", account]
    done = subprocess.run(argv, env=edge.env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def _edge_url(stack: Stack, token: str) -> str:
    edge = stack.services["edge"]
    return f"ws://127.0.0.1:{edge.ports['8765']}/ws?token={token}"


def test_stack_books_the_exchanges_fills(stack: Stack) -> None:
    """The reference service loaded the exchange's accounts, so its drop-copy fills are booked."""
    accounts = _query(stack.dsn, "SELECT count(*) FROM accounts")[0][0]
    assert accounts > 0
    booked = _wait(
        "fills booked in the ledger",
        lambda: _query(
            stack.dsn,
            "SELECT count(*), count(DISTINCT e.account) FROM executions e "
            "JOIN accounts a USING (account) WHERE e.exec_type = 'F'",
        )[0] if _query(stack.dsn, "SELECT count(*) FROM executions")[0][0] >= 20 else None,
        stack,
    )  # fmt: skip
    fills, accounts_filled = booked
    assert fills > 0 and accounts_filled > 1
    refused = _query(
        stack.dsn, "SELECT count(*) FROM dead_letters WHERE reason LIKE '%not a known account%'"
    )
    assert refused == [(0,)], stack.tail()
    # The fills moved the cash the back office handed over (the exchange's accounts.csv).
    opening = _opening_cash(stack)
    cash = dict(_query(stack.dsn, "SELECT account, cash FROM accounts"))
    assert set(cash) == set(opening)
    assert any(cash[a] != opening[a] for a in opening)


def test_stack_applies_a_deposit_dropped_during_the_day(stack: Stack) -> None:
    """A back office drops a deposit into the gateway's inbox (the `referenceinbox` volume):
    it reaches the ledger without a restart, once; a bad file is refused whole, with its
    line and reason."""
    gateway = stack.services["gateway"]
    [inbox] = [p for t, p in gateway.mounts.items() if t == "/inbox"]
    account = _query(stack.dsn, "SELECT min(account) FROM accounts")[0][0]
    (inbox / "bad.tmp").write_text(f"account,amount,movement_id\n{account},ten,BAD-1\n")
    (inbox / "bad.tmp").rename(inbox / "bad.csv")
    (inbox / "deposit.tmp").write_text(f"account,amount,movement_id\n{account},1000,STACK-DEP-1\n")
    (inbox / "deposit.tmp").rename(inbox / "deposit.csv")  # complete files only, as documented

    def booked() -> list[tuple]:
        return _query(
            stack.dsn,
            "SELECT account, amount FROM cash_movements WHERE movement_id = 'STACK-DEP-1'",
        )

    assert _wait("the deposit booked", booked, stack) == [(account, Decimal(1000))]
    assert _wait("the deposit file done", lambda: (inbox / "done" / "deposit.csv").exists(), stack)
    reason = _wait(
        "the bad file refused", lambda: list((inbox / "rejected").glob("*.reason")), stack
    )
    assert "line 2" in reason[0].read_text() and "ten" in reason[0].read_text()
    assert _query(stack.dsn, "SELECT count(*) FROM cash_movements WHERE movement_id = 'BAD-1'") == [
        (0,)
    ]
    # The ledger's cash is the opening cash, the fills' and the movements', in one snapshot:
    # the deposit is in, once.
    cash, fills, moved = _query(
        stack.dsn,
        "SELECT a.cash, "
        "(SELECT coalesce(sum(cash_delta), 0) FROM executions e WHERE e.account = a.account), "
        "(SELECT coalesce(sum(amount), 0) FROM cash_movements m WHERE m.account = a.account) "
        f"FROM accounts a WHERE a.account = '{account}'",
    )[0]
    assert moved == 1000
    assert cash == _opening_cash(stack)[account] + fills + moved


def _opening_cash(stack: Stack) -> dict[str, Decimal]:
    reference = stack.services["reference"]
    [folder] = [p for t, p in reference.mounts.items() if t == "/reference"]
    with (folder / "accounts.csv").open() as handle:
        return {row["account"]: Decimal(row["cash"]) for row in csv.DictReader(handle)}


def test_stack_quotes_reach_a_traders_websocket(stack: Stack) -> None:
    account = _query(stack.dsn, "SELECT min(account) FROM accounts")[0][0]
    url = _edge_url(stack, _token(stack, "trader", account))

    async def quotes() -> list[dict]:
        async with connect(url) as ws:
            await ws.send(json.dumps({"action": "subscribe", "symbols": ["AAPL", "MSFT"]}))
            seen: list[dict] = []
            deadline = asyncio.get_running_loop().time() + 30
            while len(seen) < 3:
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, f"quote frames so far: {len(seen)}"
                frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                if frame["type"] == "quote":
                    seen.append(frame)
                elif frame["type"] == "quotes":  # a client behind gets the latest of each
                    seen += frame["quotes"]
            return seen

    live = asyncio.run(quotes())
    assert {f["symbol"] for f in live} <= {"AAPL", "MSFT"}
    assert all(f["bid"] < f["ask"] for f in live if f.get("bid") and f.get("ask"))


def test_stack_raises_surveillance_alerts(stack: Stack) -> None:
    """The exchange plays a wash trade 20 s in (`--abuse 20`); the flows raise it, the ledger
    keeps it, and an analyst connected to the edge sees it."""
    url = _edge_url(stack, _token(stack, "analyst"))

    async def alert() -> dict:
        async with connect(url) as ws:
            deadline = asyncio.get_running_loop().time() + START_S
            while True:
                left = deadline - asyncio.get_running_loop().time()
                assert left > 0, "no alert frame on the analyst's WebSocket"
                frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                if frame["type"] == "alert":
                    return frame

    frame = asyncio.run(alert())
    assert frame["kind"] and frame["alert_id"]
    rows = _query(
        stack.dsn, f"SELECT kind, owner FROM alerts WHERE alert_id = '{frame['alert_id']}'"
    )
    assert rows and rows[0][0] == frame["kind"]
    assert rows[0][1], "the alert names the account's owner (loaded by the reference service)"


def test_stack_prometheus_targets_answer(stack: Stack) -> None:
    """Every target of the stack's Prometheus (deploy/prometheus.yml) serves brokerflow
    metrics: the flows, the gateway and each edge process."""
    flows = stack.services["flows"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = [
        (job["job_name"], target)
        for job in config["scrape_configs"] for sc in job["static_configs"]
        for target in sc["targets"]
    ]  # fmt: skip
    assert {job for job, _ in targets} >= {
        "brokerflow-flows", "brokerflow-gateway", "brokerflow-edge"
    }  # fmt: skip
    for job, target in targets:
        host, port = target.rsplit(":", 1)
        assert host in stack.services, f"{job}: {host} is not a service of the stack"
        samples = scrape(f"127.0.0.1:{flows.ports[port]}", timeout=10)
        assert any(n.startswith("brokerflow_") for n, _ in samples), f"{job} {target}: none"
