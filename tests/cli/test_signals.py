"""Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and SIGTERM stop the
long-running commands cleanly: the summary they print at a normal end, exit 0, no traceback,
panic or error on stderr, and no process of the group (data-quality child, writer processes,
edge workers, the demo's edge) left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.common import wait_port
from brokerflow.cli import main
from simulator.exchange import ExchangeCore
from simulator.exchange_server import ExchangeThread, default_sessions
from tests.edge.conftest import free_port
from tests.eventually import eventually

ROOT = Path(__file__).resolve().parents[2]
START_S = 90.0  # a cold start (imports, chdb, GX) on a busy 2-core machine
STOP_S = 60.0
BAD = re.compile(r"Traceback|panicked|\berror\b", re.IGNORECASE)


@dataclass
class Started:
    process: subprocess.Popen
    out: Path
    err: Path

    def text(self) -> tuple[str, str]:
        return self.out.read_text(errors="replace"), self.err.read_text(errors="replace")

    def wait_for(self, ready: Callable[[str, str], bool]) -> None:
        """Poll until `ready(stdout, stderr)`; fail if the command ends or takes too long."""

        def check() -> bool:
            out, err = self.text()
            if ready(out, err):
                return True
            assert self.process.poll() is None, f"ended early ({self.process.returncode}): {err}"
            return False

        eventually(
            check, START_S, 0.1, "the command ready", describe=lambda: "\n".join(self.text())
        )

    def interrupt(self, signum: int) -> tuple[str, str]:
        """Signal the whole process group, as a terminal's Ctrl-C does; wait for the end."""
        os.killpg(self.process.pid, signum)
        code = self.process.wait(STOP_S)
        out, err = self.text()
        assert code == 0, f"exit {code}:\n{err}"
        assert not BAD.search(err), err
        group = self.process.pid
        eventually(lambda: not _group_alive(group), 10, 0.05, "the command's process group gone")
        return out, err


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group `pgid`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@pytest.fixture
def start(tmp_path: Path, settings_factory) -> Iterator[Callable[..., Started]]:
    """`start(*args, **env)`: `brokerflow ARGS` in its own process group on this test's stores."""
    settings = settings_factory()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
    env.update(BROKERFLOW_REDIS_URL=settings.redis_url,
               BROKERFLOW_POSTGRES_DSN=settings.postgres_dsn,
               BROKERFLOW_DATA_DIR=str(settings.data_dir), BROKERFLOW_METRICS_PORT="0")  # fmt: skip
    started: list[Started] = []

    def run(*args: str, **extra: str) -> Started:
        out, err = tmp_path / f"out{len(started)}", tmp_path / f"err{len(started)}"
        with out.open("wb") as o, err.open("wb") as e:
            process = subprocess.Popen([sys.executable, "-m", "brokerflow.cli", *args], cwd=ROOT,
                                       env={**env, **extra}, stdout=o, stderr=e,
                                       start_new_session=True)  # fmt: skip
        started.append(Started(process, out, err))
        return started[-1]

    yield run
    for s in started:
        if s.process.poll() is None:
            os.killpg(s.process.pid, signal.SIGKILL)
            s.process.wait(10)


def _summary(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _progress(label: str) -> Callable[[str, str], bool]:
    """Ready once a progress line shows messages flowing (`label: N messages ...`, N > 0)."""
    pattern = re.compile(rf"^{label}: ([\d,]+) ", re.MULTILINE)
    return lambda out, err: any(int(n.replace(",", "")) for n in pattern.findall(err))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_stops_with_its_summary(start, signum):
    demo = start("demo", "--symbols", "5", "--rate", "20", "--json",
                 "--edge-port", str(free_port()), "--console-port", str(free_port()))  # fmt: skip
    demo.wait_for(lambda out, err: "stop with Ctrl-C" in out and _progress("demo")(out, err))
    out, _ = demo.interrupt(signum)
    summary = _summary(out)
    assert summary["messages"] > 0 and summary["files"] == ["fix:demo"]
    # The validator child set the signal aside, validated what it had and reported at the end.
    assert sum(summary["data_quality"]["rows_validated"].values()) > 0


@pytest.fixture(scope="module")
def exchange() -> Iterator[ExchangeThread]:
    core = ExchangeCore(4, time.time_ns(), rate_per_symbol=50, accounts=20, run_id="SXS")
    thread = ExchangeThread(core, default_sessions())
    thread.start()
    yield thread
    thread.stop()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_over_fix_sessions_stops_with_its_summary(start, exchange, tmp_path, signum):
    config = tmp_path / "run.toml"
    config.write_text(
        f'[[fix.session]]\nname = "simx"\nsender_comp_id = "BROKERFLOW"\ntarget_comp_id = "SIMX"\n'
        f'port = {exchange.port}\nheartbeat_s = 5\nstore_dir = "{tmp_path / "fix"}"\n'
        'purpose = ["market-data", "drop-copy"]\nsymbols = ["AAPL", "MSFT"]\n'
    )
    run = start("run", "--config", str(config), "--json")
    run.wait_for(_progress("run"))
    out, err = run.interrupt(signum)
    assert _summary(out)["messages"] > 0 and _summary(out)["files"] == ["fix:simx"]
    assert "sending Logout: session stopped" in err  # the session ended in order


@pytest.fixture(scope="module")
def big_day(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], int]:
    """FIX files that take a replay or the gateway many seconds: one simulated day, twenty
    times over (links: a file per partition, no copies)."""
    root = tmp_path_factory.mktemp("signals")
    day = root / "day.fix"
    assert main(["simulate", "--symbols", "20", "--minutes", "4", "--out", str(day),
                 "--no-orders"]) == 0  # fmt: skip
    links = [root / f"day-{n}.fix" for n in range(20)]
    for link in links:
        link.symlink_to(day)
    return [str(link) for link in links], 20 * sum(1 for _ in day.open("rb"))


def test_replay_stops_with_the_summary_of_what_it_read(start, big_day):
    paths, lines = big_day
    replay = start("replay", *paths, "--dq", "--json")  # --dq: its child process too
    replay.wait_for(_progress("replay"))
    out, _ = replay.interrupt(signal.SIGINT)
    summary = _summary(out)
    assert 0 < summary["messages"] < lines  # stopped early, and said how far it got


def test_gateway_stops_with_its_summary(start, big_day, kafka_bootstrap):
    paths, lines = big_day
    gateway = start("gateway", *paths, "--json", BROKERFLOW_KAFKA_BOOTSTRAP=kafka_bootstrap)
    gateway.wait_for(lambda out, err: re.search(r"gateway: [1-9][\d,]* published", err))
    out, _ = gateway.interrupt(signal.SIGTERM)
    summary = _summary(out)
    assert 0 < summary["published"] < lines
    assert "published" in out.splitlines()[1]  # the summary lines, then the JSON one


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_edge_with_two_processes_stops_quietly(start, signum):
    port = free_port()
    edge = start("edge", "--host", "127.0.0.1", "--port", str(port), "--processes", "2")
    edge.wait_for(lambda out, err: wait_port(port, 0.2))
    edge.interrupt(signum)


def test_a_signalled_command_stops_the_embedded_server_it_started(start, tmp_path):
    data = tmp_path / "embedded"
    port = free_port()
    edge = start("edge", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data),
                 BROKERFLOW_REDIS_URL="")  # fmt: skip
    edge.wait_for(lambda out, err: wait_port(port, 0.2))
    assert "started embedded Redis" in edge.text()[1]
    pid = json.loads((data / "redis" / "state.json").read_text())["pid"]
    edge.interrupt(signal.SIGTERM)
    assert not _alive(pid), "the embedded Redis outlived the command"
