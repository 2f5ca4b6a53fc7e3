"""`brokerflow bench run-cpu`: the CPU `brokerflow run` uses over live FIX sessions, at the demo's
rate and with the market idle.

Two processes, as an operator runs them: `brokerflow simulate-exchange` (the demo's market: 50
symbols at 5 events/s each, plus the synthetic order flow's drop copies) and `brokerflow run
--config` with the demo's sessions (market data + drop copy, order entry) on the real
PostgreSQL and Redis of `BROKERFLOW_POSTGRES_DSN` / `BROKERFLOW_REDIS_URL` (a database of its
own, a reserved Redis db), ClickHouse on chdb (inside the `run` process, so in its figure).

Once `run` reads messages and has warmed up, the CPU time of its process tree (utime + stime in
/proc of `run` and every descendant, plus what reaped children left in its cutime/cstime) is
taken over a window at rate; then SIGUSR1 makes the simulator quiet (heartbeats only) and,
after a settling pause (past the epoch end that inserts what the ClickHouse sinks still held),
over a window idle: the steady cost of a quiet market. The simulator is not counted; the
PostgreSQL and Redis servers (their whole trees: shared with whatever else runs on the
machine) are printed on a line apart. Each figure is printed beside `BASELINE`, measured at
the commit it names before the idle polling was removed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common
from brokerflow.settings import Settings

#: Measured with this benchmark at `commit`, before the idle polling was removed (9b688e0,
#: ee57d6a), on this machine (2-core AMD EPYC, 2026-12-07): the yardsticks. "-dirty": other
#: engineers' uncommitted changes in the shared tree (brokerflow/commands/load.py), not the
#: live path's code. Its idle window began 5 s after the market went quiet (the busy loop
#: it measured does not settle).
BASELINE: dict[str, object] = {
    "commit": "cfad06e8f494695ee250bba7a1fb3bcaa5c70e22-dirty",
    "rate_cpu_pct": 29.74,
    "idle_cpu_pct": 100.34,
    "rate_msgs_per_s": 493.9,
    "idle_msgs_per_s": 0.0,
    "rate_postgres_cpu_pct": 0.75,
    "rate_redis_cpu_pct": 2.3,
    "idle_postgres_cpu_pct": 0.0,
    "idle_redis_cpu_pct": 0.1,
}
GOAL_IDLE_PCT = 5.0  # "near zero": a few % of one core at most
_PROGRESS = re.compile(r"^run: ([\d,]+) messages")
_TICK = os.sysconf("SC_CLK_TCK")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-cpu-symbols", type=int, default=50,
                   help="run-cpu: simulated symbols (default 50: the demo's)")  # fmt: skip
    p.add_argument("--run-cpu-rate", type=float, default=5.0,
                   help="run-cpu: market events/s per symbol (default 5: the demo's)")  # fmt: skip
    p.add_argument("--run-cpu-warmup", type=float, default=15.0,
                   help="run-cpu: seconds of input before the first window")  # fmt: skip
    p.add_argument("--run-cpu-window", type=float, default=20.0,
                   help="run-cpu: seconds of each measured window")  # fmt: skip
    p.add_argument(
        "--run-cpu-settle",
        type=float,
        default=12.0,
        help="run-cpu: seconds after the market goes quiet before the idle window (default "
        "12: past Bytewax's 10 s epoch, whose end inserts the last ticks and audit rows held)",
    )


# -- /proc -------------------------------------------------------------------------------------


def _stats() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, utime + stime, cutime + cstime) of every process, in clock ticks."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        out[int(entry.name)] = (
            int(fields[1]),
            int(fields[11]) + int(fields[12]),
            int(fields[13]) + int(fields[14]),
        )
    return out


def tree_ticks(root: int, stats: dict[int, tuple[int, int, int]] | None = None) -> int:
    """CPU ticks of `root` and its descendants, plus what their reaped children left them."""
    stats = _stats() if stats is None else stats
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1] + stats[pid][2]
            todo.extend(children.get(pid, ()))
    return total


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:`port` (`ss`), or None when not visible."""
    try:
        done = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True,
                              text=True, timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"pid=(\d+)", done.stdout)
    return int(match.group(1)) if match else None


@dataclass
class Sample:
    at: float
    run: int
    servers: dict[str, int]
    messages: int


def _messages(log: Path) -> int:
    """The message count of `run`'s last progress line."""
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        match = _PROGRESS.match(line)
        if match:
            count = int(match.group(1).replace(",", ""))
    return count


def sample(run_pid: int, servers: dict[str, int], log: Path) -> Sample:
    stats = _stats()
    return Sample(time.monotonic(), tree_ticks(run_pid, stats),
                  {name: tree_ticks(pid, stats) for name, pid in servers.items()},
                  _messages(log))  # fmt: skip


def window(
    run: subprocess.Popen, servers: dict[str, int], log: Path, seconds: float
) -> dict[str, float]:
    """CPU % of one core of the `run` tree and of each server, and messages/s, over `seconds`."""
    a = sample(run.pid, servers, log)
    time.sleep(seconds)
    b = sample(run.pid, servers, log)
    if run.poll() is not None:
        msg = f"bench run-cpu: brokerflow run exited ({run.returncode}) during the window"
        raise RuntimeError(msg)
    dt = b.at - a.at
    out = {"cpu_pct": round((b.run - a.run) / _TICK / dt * 100, 2),
           "msgs_per_s": round((b.messages - a.messages) / dt, 1)}  # fmt: skip
    for name in servers:
        out[f"{name}_cpu_pct"] = round((b.servers[name] - a.servers[name]) / _TICK / dt * 100, 2)
    return out


# -- the processes -----------------------------------------------------------------------------


def _config(path: Path, port: int, symbols: list[str], store_dir: Path) -> None:
    """The demo's two sessions with the simulator, as `[[fix.session]]` tables."""
    session = f'port = {port}\nheartbeat_s = 10\nstore_dir = "{store_dir}"\n'
    listed = ", ".join(f'"{s}"' for s in symbols)
    path.write_text(
        '[[fix.session]]\nname = "simx"\nsender_comp_id = "BROKERFLOW"\n'
        f'target_comp_id = "SIMX"\n{session}purpose = ["market-data", "drop-copy"]\n'
        f"symbols = [{listed}]\n\n"
        '[[fix.session]]\nname = "simx-oe"\nsender_comp_id = "BROKERFLOW-OE"\n'
        f'target_comp_id = "SIMX"\n{session}purpose = "order-entry"\n'
    )


def _stop(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _wait_messages(run: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            msg = f"bench run-cpu: brokerflow run exited ({run.returncode}): {' | '.join(tail)}"
            raise RuntimeError(msg)
        if _messages(log) > 0:
            return
        time.sleep(0.5)
    msg = f"bench run-cpu: brokerflow run read no message within {timeout:g} s (see {log})"
    raise RuntimeError(msg)


def measure(settings: Settings, args: argparse.Namespace) -> dict[str, float]:
    """Start the simulator and `run`, and measure both windows; the figures."""
    from bench.pipeline import reserved_redis_db
    from brokerflow.commands.load import KINDS, load_rows, read_accounts, read_positions
    from brokerflow.services import ensure_services
    from simulator.market import symbol_names

    endpoints = ensure_services(settings, {"redis", "postgres"})
    work = (common.DATA_DIR / "run-cpu").resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    servers = {name: pid for name, port in (("postgres", 5432), ("redis", 6379))
               if (pid := listener_pid(port)) is not None}  # fmt: skip
    cli = [sys.executable, "-m", "brokerflow.cli"]
    with reserved_redis_db(endpoints.redis_url) as redis_url:
        dsn = common.scratch_database(endpoints.postgres_dsn, "bench_run_cpu")
        import redis

        with redis.Redis.from_url(redis_url) as client:
            client.flushdb()
        (port,) = common.free_ports(1)
        accounts, positions = work / "accounts.csv", work / "positions.csv"
        sim_log = work / "simulate-exchange.log"
        with sim_log.open("wb") as out:
            sim = subprocess.Popen(
                [*cli, "simulate-exchange", "--port", str(port),
                 "--symbols", str(args.run_cpu_symbols), "--rate", str(args.run_cpu_rate),
                 "--accounts-out", str(accounts), str(positions)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        run = None
        try:
            if not common.wait_port(port, 60):
                msg = f"bench run-cpu: the simulator did not listen (see {sim_log})"
                raise RuntimeError(msg)
            load_rows(dsn, KINDS["accounts"], read_accounts(accounts), str(accounts))
            load_rows(dsn, KINDS["positions"], read_positions(positions), str(positions))
            config = work / "run.toml"
            _config(config, port, symbol_names(args.run_cpu_symbols), work / "fix")
            env = {k: v for k, v in os.environ.items() if not k.startswith("BROKERFLOW_")}
            env.update({
                "BROKERFLOW_POSTGRES_DSN": dsn, "BROKERFLOW_REDIS_URL": redis_url,
                "BROKERFLOW_DATA_DIR": str(work / "data"),
            })  # fmt: skip
            if settings.clickhouse_url and not settings.clickhouse_url.startswith("chdb"):
                env["BROKERFLOW_CLICKHOUSE_URL"] = settings.clickhouse_url
            run_log = work / "run.log"
            with run_log.open("wb") as out:
                run = subprocess.Popen([*cli, "run", "--config", str(config)], env=env,
                                       stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)  # fmt: skip
            _wait_messages(run, run_log, 180)
            time.sleep(args.run_cpu_warmup)
            at_rate = window(run, servers, run_log, args.run_cpu_window)
            sim.send_signal(signal.SIGUSR1)  # the market goes quiet: heartbeats only
            time.sleep(args.run_cpu_settle)
            idle = window(run, servers, run_log, args.run_cpu_window)
        finally:
            if run is not None:
                _stop(run, signal.SIGINT, 60)
            _stop(sim, signal.SIGTERM, 30)
    figures = {f"rate_{k}": v for k, v in at_rate.items()}
    figures.update({f"idle_{k}": v for k, v in idle.items()})
    return figures


def _pct(value: object) -> str:
    return "-" if value is None else f"{float(value):5.1f} %"


def report_lines(f: dict[str, float], base: dict[str, object], window_s: float) -> list[str]:
    """The figures of this run beside the baseline's, as printed."""
    at = f"at {str(base['commit'])[:10]}" if base.get("commit") else "not measured"
    lines = [
        f"bench run-cpu: brokerflow run over live FIX sessions, CPU % of one core "
        f"({window_s:g} s windows; baseline {at}, before the fix)",
        f"  {'':40} {'now':>8} {'baseline':>9}",
    ]
    for part, label in (("rate", "at the demo's rate"), ("idle", "market idle (heartbeats)")):
        now_rate, base_rate = f[f"{part}_msgs_per_s"], base.get(f"{part}_msgs_per_s")
        reads = f"{now_rate:.0f}" + (f" / {base_rate:.0f}" if base_rate is not None else "")
        lines.append(f"  {f'{label} ({reads} msg/s)':40} {_pct(f[f'{part}_cpu_pct']):>8} "
                     f"{_pct(base.get(f'{part}_cpu_pct')):>9}")  # fmt: skip
    for name in ("postgres", "redis"):
        if f"rate_{name}_cpu_pct" in f:
            lines.append(
                f"  {f'{name} server (not counted)':40} "
                f"{_pct(f[f'rate_{name}_cpu_pct'])} / {_pct(f[f'idle_{name}_cpu_pct'])} "
                f"(rate / idle; whole tree, shared with the machine)"
            )
    lines.append("  ClickHouse is chdb, inside the run process: counted; the simulator is not")
    return lines


def run(settings: Settings, args: argparse.Namespace) -> None:
    f = measure(settings, args)
    base = BASELINE
    for line in report_lines(f, base, args.run_cpu_window):
        print(line)
    yardsticks: dict[str, object] = dict(f)
    yardsticks.update({f"baseline_{k}": v for k, v in base.items()})
    yardsticks["goal_idle_cpu_pct"] = GOAL_IDLE_PCT
    path = common.write_result(
        "run-cpu", "% of one core", f["idle_cpu_pct"], GOAL_IDLE_PCT, yardsticks
    )
    print(f"wrote {path}")
