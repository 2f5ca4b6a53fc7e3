"""The edge benchmark's harness, shared by its quote and order-status paths: the Redis db it
reserves, the edge and client processes it starts, the CPU it reads and each step's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from bench.common import percentile, wait_port

BENCH_REDIS_DB = 14  # flushed; reserved through the test suite's lock key while running
SECRET = "bench-edge-secret-of-at-least-32-bytes"


WARMUP_S = 3.0  # not recorded: connections settle, the edge's flush period adapts to the load


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def await_port(port: int, timeout: float = 30.0) -> None:
    if not wait_port(port, timeout):
        raise SystemExit(f"error: nothing listens on port {port}")


def cpu_s(pids: list[int]) -> float:
    """User+system CPU seconds of processes and their children (the edge's SO_REUSEPORT ones)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    seen = set()
    stack = list(pids)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (OSError, IndexError):
            continue
        stack.extend(int(c) for c in children)
    return total


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat), for the share
    of a step's CPU that went to other processes (a shared machine)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def bench_redis(settings) -> tuple[str, redis.Redis, str]:  # noqa: ANN001
    from brokerflow.services import ensure_services

    base = urlsplit(ensure_services(settings, {"redis"}).redis_url)
    url = urlunsplit(base._replace(path=f"/{BENCH_REDIS_DB}"))
    lock_client = redis.Redis.from_url(urlunsplit(base._replace(path="/0")))
    token = secrets.token_hex(8)
    deadline = time.monotonic() + 120
    while not lock_client.set(
        f"brokerflow:test-db-lock:{BENCH_REDIS_DB}", token, nx=True, px=30 * 60 * 1000
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"error: Redis db {BENCH_REDIS_DB} stays reserved by tests")
        time.sleep(0.5)
    return url, lock_client, token


class Clients:
    """The client processes; signals start and stop the recording of each step."""

    def __init__(
        self,
        url: str,
        n: int,
        processes: int,
        tokens: list[str],
        tmp: Path,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.procs: list[subprocess.Popen] = []
        self.files: list[Path] = []
        per = -(-n // processes)
        for k in range(processes):
            offset, count = k * per, min(per, n - k * per)
            if count <= 0:
                break
            tokens_file = tmp / f"tokens-{k}.txt"
            tokens_file.write_text("\n".join(tokens[offset : offset + count]))
            result = tmp / f"clients-{k}-{secrets.token_hex(3)}.json"
            self.files.append(result)
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.edge",
                        "clients",
                        "--url",
                        url,
                        "--offset",
                        str(offset),
                        "--count",
                        str(count),
                        "--tokens-file",
                        str(tokens_file),
                        "--result-file",
                        str(result),
                        *extra,
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in self.procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise SystemExit("error: the benchmark clients did not connect")

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def signal(self, sig: int) -> None:
        for proc in self.procs:
            proc.send_signal(sig)

    def finish(self) -> dict:
        self.signal(signal.SIGTERM)
        alerts, steps = 0, []
        totals = {"orders": 0, "wrong": 0, "snapshots": 0}
        for proc, path in zip(self.procs, self.files, strict=True):
            proc.wait(60)
            doc = json.loads(path.read_text())
            alerts += doc["alerts"]
            for name in totals:
                totals[name] += doc.get(name, 0)
            for i, step in enumerate(doc["steps"]):
                if i == len(steps):
                    steps.append({"frames": 0, "updates": 0, "sample": []})
                steps[i]["frames"] += step["frames"]
                steps[i]["updates"] += step["updates"]
                steps[i]["sample"] += step["sample"]
        return {"alerts": alerts, "steps": steps, **totals}


def step_figures(
    step: dict, rate: float, seconds: float, cpu: float, client_cpu: float, busy: float
) -> dict:
    sample = sorted(step["sample"])
    frames, updates = step["frames"], step["updates"]
    return {
        "rate_in": rate,
        "delivered_updates_per_s": round(updates / seconds),
        "frames_per_s": round(frames / seconds),
        "p50_ms": percentile(sample, 50),
        "p99_ms": percentile(sample, 99),
        "server_cpu_s_per_s": round(cpu / seconds, 2),
        "server_us_per_frame": round(cpu / frames * 1e6, 1) if frames else None,
        "clients_cpu_s_per_s": round(client_cpu / seconds, 2),
        # Redis, the producer and whatever else ran on the machine meanwhile.
        "other_cpu_s_per_s": round((busy - cpu - client_cpu) / seconds, 2),
    }


def start_edge(url: str, port: int, args: argparse.Namespace, tmp: Path) -> subprocess.Popen:
    """The edge as `brokerflow edge` runs it (`edge_entry`), on the benchmark's db and secret."""
    env = {
        **os.environ,
        "BROKERFLOW_REDIS_URL": url,
        "BROKERFLOW_EDGE_SECRET": SECRET,
        "BROKERFLOW_DATA_DIR": str(tmp),
    }
    command = [
        sys.executable, "-m", "bench.edge", "edge", "--redis-url", url, "--port", str(port),
        "--processes", str(args.edge_processes), "--flush-ms", str(args.edge_flush_ms),
    ]  # fmt: skip
    if args.edge_max_frames_per_s:
        command += ["--max-frames-per-s", str(args.edge_max_frames_per_s)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def release_bench_redis(client: redis.Redis, lock: redis.Redis, token: str) -> None:
    client.flushdb()
    client.close()
    if lock.get(f"brokerflow:test-db-lock:{BENCH_REDIS_DB}") == token.encode():
        lock.delete(f"brokerflow:test-db-lock:{BENCH_REDIS_DB}")
    lock.close()
