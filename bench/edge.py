"""The edge benchmark: N WebSocket clients, each on 20 of 500 symbols, quotes entering Redis.

By default it runs issue 8's two goal configurations, each with its own yardstick:
1,000 clients x 10,000 updates/s (p99 < 50 ms) and 5,000 clients x 1,000 updates/s
(p99 < 150 ms); `--edge-clients`/`--edge-rates` run one configuration over several rates instead.
Printed for each configuration and input rate (updates/s XADDed to `stream:quotes`):
    delivered   quote updates/s received by all clients, and WebSocket frames/s
    latency     p50/p99 ms from the XADD (the quote's `ts` is the wall clock at XADD) to the
                client's read; ms resolution
    server CPU  of the edge processes, per frame and per update delivered
    alerts      STOP_TRIGGERED alerts XADDed (20/s) for the clients' accounts vs received
    CPU         of the edge, of the clients, and of everything else (Redis, the producer, other
                work on the machine: its cores are shared)
The run saturates at the first rate whose p99 passes the goal. Yardstick, same run: a bare picows
broadcast loop (no Redis, no subscription map) sending each client a batch frame of the same
size once per flush period, staggered and paced like the edge (`edge.pacing`), to the same
clients.

Processes: the edge (`brokerflow edge`, or the bare server), the clients (picows, `--client-
processes` of them), and this one producing. All share the machine's cores.

The order-status path (issue 19; `--edge-paths orders` runs it alone, written to
bench/results/edge-orders.json): 1,000 trader connections, each with its own account and its
own order flow (new, partial fill, fill, new, cancel, again), execution reports written as the
ledger flow writes them (`domain.order_status.order_frame` and `sinks.order_status`'s writer: the
same Lua script, XADD to `stream:orders` and the open-order hash) at `--edge-order-rate`
reports/s in all. Printed: p50/p99 ms from the report written (its `ts` is the wall clock when it
was built, just before the write) to the `order` frame read by its trader (goal p99 < 100 ms),
frames delivered vs written, and frames that reached a connection of another account (must be 0:
each client checks the frame's account against its token's).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import os
import random
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from bench.common import percentile, wait_port, write_result

BENCH_REDIS_DB = 14  # flushed; reserved through the test suite's lock key while running
SECRET = "bench-edge-secret-of-at-least-32-bytes"
ALERTS_PER_S = 20
GOAL_P99_MS = 50.0
# Issue 8's goals: (clients, updates/s in, p99 ms XADD -> client).
GOALS = ((1000, 10_000.0, 50.0), (5000, 1_000.0, 150.0))
WARMUP_S = 3.0  # not recorded: connections settle, the edge's flush period adapts to the load
ORDER_GOAL_P99_MS = 100.0  # issue 19: execution report in -> order frame at the client
_TS = re.compile(rb'"ts":(\d+)')


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--edge-clients",
        type=int,
        help="edge: WebSocket clients of one configuration (default: the two goal ones)",
    )
    p.add_argument(
        "--edge-rates",
        help="edge: input rates to step through, updates/s (comma-separated; default with "
        "--edge-clients: 1000,5000,10000)",
    )
    p.add_argument("--edge-seconds", type=float, default=8.0, help="edge: seconds per rate")
    p.add_argument("--edge-processes", type=int, default=2, help="edge: server processes")
    p.add_argument("--edge-client-processes", type=int, default=1, help="edge: client processes")
    p.add_argument(
        "--edge-flush-ms", type=int, default=25, help="edge: shortest quote flush period"
    )
    p.add_argument(
        "--edge-max-frames-per-s",
        type=int,
        help="edge: frames/s per process before the flush period lengthens (default: the edge's)",
    )
    p.add_argument("--edge-no-yardstick", action="store_true", help="edge: skip the bare loop")
    p.add_argument(
        "--edge-paths",
        default="quotes,orders",
        help="edge: which paths to measure, comma-separated: quotes (issue 8's goals), orders "
        "(issue 19's order-status push)",
    )
    p.add_argument(
        "--edge-order-traders", type=int, default=1000, help="edge orders: trader connections"
    )
    p.add_argument(
        "--edge-order-rate",
        type=float,
        default=2000.0,
        help="edge orders: execution reports/s written, all traders together",
    )


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    if not wait_port(port, timeout):
        raise SystemExit(f"error: nothing listens on port {port}")


def _cpu_s(pids: list[int]) -> float:
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


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat), for the share
    of a step's CPU that went to other processes (a shared machine)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# -- clients (a separate process) -----------------------------------------------------------------


class _ClientStats:
    def __init__(self) -> None:
        self.recording = False
        self.frames = 0
        self.updates = 0
        self.latencies = array.array("l")
        self.alerts = 0
        self.steps: list[dict] = []
        self.orders = 0  # order frames received, all the run
        self.wrong = 0  # of those, of an account not the connection's
        self.snapshots = 0

    def start(self) -> None:
        self.frames = self.updates = 0
        self.latencies = array.array("l")
        self.recording = True

    def stop(self) -> None:
        self.recording = False
        lat = sorted(self.latencies)
        # Send percentiles plus the sorted sample's size; the parent merges by weighting.
        self.steps.append(
            {
                "frames": self.frames,
                "updates": self.updates,
                "n": len(lat),
                "sample": lat[:: max(1, len(lat) // 20_000)],
            }
        )


async def _order_clients(args, stats: _ClientStats, listener, msg_type, ws_connect) -> list:  # noqa: ANN001
    """Connect trader `i` of the range (token of account ACC{i}); each checks the account of
    every `order` frame it reads and, while recording, its latency from the frame's `ts`."""
    text = msg_type.TEXT

    class OrderListener(listener):
        def __init__(self, account: str) -> None:
            self.account = account

        def on_ws_frame(self, transport, frame) -> None:  # noqa: ANN001
            if frame.msg_type != text:
                return
            payload = frame.get_payload_as_bytes()
            if payload.startswith(b'{"type":"orders"'):
                stats.snapshots += 1
                return
            if not payload.startswith(b'{"type":"order",'):
                return
            now_ms = time.time_ns() // 1_000_000
            doc = json.loads(payload)
            stats.orders += 1
            if doc.get("account") != self.account:
                stats.wrong += 1
            if stats.recording:
                stats.frames += 1
                stats.updates += 1
                stats.latencies.append(now_ms - int(doc["ts"]))

    transports = []
    for i in range(args.offset, args.offset + args.count):
        token = args.tokens[i - args.offset] if args.tokens else ""
        account = f"ACC{i}"
        transport, _ = await ws_connect(
            lambda account=account: OrderListener(account), f"{args.url}?token={token}"
        )
        transports.append(transport)
        if i % 200 == 199:
            await asyncio.sleep(0)
    return transports


async def _clients_main(args: argparse.Namespace) -> None:
    from picows import WSListener, WSMsgType, ws_connect

    stats = _ClientStats()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, stats.start)
    loop.add_signal_handler(signal.SIGUSR2, stats.stop)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    findall = _TS.findall

    class Listener(WSListener):
        def on_ws_frame(self, transport, frame) -> None:  # noqa: ANN001
            if frame.msg_type != WSMsgType.TEXT:
                return
            payload = frame.get_payload_as_bytes()
            head = payload[:16]
            if head == b'{"type":"alert",':
                stats.alerts += 1
                return
            # quote and quotes frames; not snapshots, hello or pong
            if not stats.recording or not head.startswith(b'{"type":"quote'):
                return
            now_ms = time.time_ns() // 1_000_000
            stamps = findall(payload)
            stats.frames += 1
            stats.updates += len(stamps)
            append = stats.latencies.append
            for ts in stamps:
                append(now_ms - int(ts))

    if args.orders:
        transports = await _order_clients(args, stats, WSListener, WSMsgType, ws_connect)
        gc.freeze()
        print("ready", flush=True)
        await done.wait()
        for transport in transports:
            transport.disconnect()
        Path(args.result_file).write_text(
            json.dumps({"alerts": 0, "steps": stats.steps, "orders": stats.orders,
                        "wrong": stats.wrong, "snapshots": stats.snapshots})
        )  # fmt: skip
        return
    rng = random.Random(args.offset)
    symbols = [f"S{n:03d}" for n in range(args.symbols)]
    transports = []
    for i in range(args.offset, args.offset + args.count):
        token = args.tokens[i - args.offset] if args.tokens else ""
        url = f"{args.url}?token={token}"
        transport, _listener = await ws_connect(Listener, url)
        picked = rng.sample(symbols, args.per_client)
        transport.send(
            WSMsgType.TEXT, json.dumps({"action": "subscribe", "symbols": picked}).encode()
        )
        transports.append(transport)
        if i % 200 == 199:
            await asyncio.sleep(0)
    # Keep the collector off the hot path: what exists now lives until the end.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    print("ready", flush=True)
    await done.wait()
    for transport in transports:
        transport.disconnect()
    Path(args.result_file).write_text(json.dumps({"alerts": stats.alerts, "steps": stats.steps}))


def clients_entry(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url")
    p.add_argument("--offset", type=int)
    p.add_argument("--count", type=int)
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--per-client", type=int, default=20)
    p.add_argument("--tokens-file")
    p.add_argument("--result-file")
    p.add_argument("--orders", action="store_true", help="order-status path: no quotes")
    args = p.parse_args(argv)
    args.tokens = Path(args.tokens_file).read_text().split() if args.tokens_file else []
    _raise_fd_limit()
    import uvloop

    uvloop.run(_clients_main(args))


# -- the yardstick server: a bare picows broadcast loop (separate process) ------------------------


async def _bare_main(
    port: int, rate: float, flush_ms: int, symbols: int, per_client: int, budget: int
) -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    from edge.config import EdgeConfig
    from edge.pacing import next_flush_period

    clients: dict = {}

    class Listener(WSListener):
        def on_ws_connected(self, transport) -> None:  # noqa: ANN001
            clients[transport] = None

        def on_ws_disconnected(self, transport) -> None:  # noqa: ANN001
            clients.pop(transport, None)

    defaults = EdgeConfig(redis_url="", secret=b"")
    phases = defaults.flush_phases
    lowest, highest = flush_ms / 1000, max(flush_ms, defaults.flush_max_ms) / 1000
    server = await ws_create_server(lambda _request: Listener(), "127.0.0.1", port)
    text = WSMsgType.TEXT
    loop = asyncio.get_running_loop()
    period = lowest
    phase = frames = frames_at = 0
    due = measured_at = loop.time()
    try:
        while True:
            # Each tick one phase of the clients gets one frame of the updates a client
            # collects in a period, stamped as if they had arrived through it (as in the edge).
            k = max(1, round(rate * period * per_client / symbols))
            group = list(clients)[phase::phases]
            phase = (phase + 1) % phases
            if group:
                now_ms = time.time_ns() // 1_000_000
                span = period * 1000
                quotes = [
                    b'{"type":"quote","symbol":"S001","bid":100.0,"bid_size":100.0,"ask":100.01,'
                    b'"ask_size":100.0,"ltp":100.0,"ltq":10.0,"volume":12345.0,"ts":%d,"seq":1}'
                    % (now_ms - span * j // k)
                    for j in range(k)
                ]
                frame = (
                    quotes[0]
                    if k == 1
                    else b'{"type":"quotes","quotes":[' + b",".join(quotes) + b"]}"
                )
                for n, transport in enumerate(group, 1):
                    transport.send(text, frame)
                    if n % 250 == 0:
                        await asyncio.sleep(0)
                frames += len(group)
            now = loop.time()
            if now - measured_at >= 0.5:
                period = next_flush_period(
                    period, (frames - frames_at) / (now - measured_at), budget, lowest, highest
                )
                measured_at, frames_at = now, frames
            tick = period / phases
            due += tick
            if due < now - tick:
                due = now
            await asyncio.sleep(max(0.0, due - now))
    finally:
        server.close()


def bare_entry(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int)
    p.add_argument("--rate", type=float)
    p.add_argument("--flush-ms", type=int)
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--per-client", type=int, default=20)
    p.add_argument("--max-frames-per-s", type=int)
    args = p.parse_args(argv)
    _raise_fd_limit()
    import uvloop

    uvloop.run(
        _bare_main(
            args.port, args.rate, args.flush_ms, args.symbols, args.per_client,
            args.max_frames_per_s,
        )
    )  # fmt: skip


def edge_entry(argv: list[str]) -> None:
    """The edge as `brokerflow edge` runs it, on the benchmark's Redis db and secret."""
    from edge.config import EdgeConfig
    from edge.server import run_edge

    p = argparse.ArgumentParser()
    p.add_argument("--redis-url")
    p.add_argument("--port", type=int)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--flush-ms", type=int, default=25)
    p.add_argument("--max-frames-per-s", type=int)
    args = p.parse_args(argv)
    _raise_fd_limit()
    extra = {} if args.max_frames_per_s is None else {"max_frames_per_s": args.max_frames_per_s}
    config = EdgeConfig(
        redis_url=args.redis_url,
        secret=SECRET.encode(),
        host="127.0.0.1",
        port=args.port,
        flush_ms=args.flush_ms,
        **extra,
    )
    run_edge(config, args.processes)


# -- the run ------------------------------------------------------------------------------


def _bench_redis(settings) -> tuple[str, redis.Redis, str]:  # noqa: ANN001
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


class _Clients:
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


def _produce(
    client: redis.Redis,
    rate: float,
    seconds: float,
    symbols: list[str],
    seqs: dict[str, int],
    accounts: list[str],
) -> tuple[int, int]:
    """XADD quotes at `rate`/s (and alerts at ALERTS_PER_S) for `seconds`; return counts."""
    tick = 0.01
    per_tick = rate * tick
    carry = 0.0
    sent = alerts = 0
    alert_carry = 0.0
    started = time.perf_counter()
    next_at = started
    rng = random.Random(7)
    while True:
        now = time.perf_counter()
        if now - started >= seconds:
            return sent, alerts
        carry += per_tick
        k, carry = int(carry), carry - int(carry)
        pipe = client.pipeline(transaction=False)
        ts = time.time_ns() // 1_000_000
        for _ in range(k):
            symbol = symbols[rng.randrange(len(symbols))]
            seqs[symbol] += 1
            data = (
                '{"symbol":"%s","bid":100.0,"bid_size":100.0,"ask":100.01,"ask_size":100.0,'
                '"ltp":100.0,"ltq":10.0,"volume":12345.0,"ts":%d,"seq":%d}'
                % (symbol, ts, seqs[symbol])
            )
            pipe.xadd(
                "stream:quotes", {"symbol": symbol, "data": data}, maxlen=100_000, approximate=True
            )
        alert_carry += ALERTS_PER_S * tick
        while alert_carry >= 1:
            alert_carry -= 1
            alerts += 1
            account = accounts[rng.randrange(len(accounts))]
            data = json.dumps(
                {
                    "alert_id": f"bench-{ts}-{alerts}",
                    "kind": "STOP_TRIGGERED",
                    "account": account,
                    "details": {},
                }
            )
            pipe.xadd("stream:alerts", {"kind": "STOP_TRIGGERED", "account": account, "data": data})
        pipe.execute()
        sent += k
        next_at += tick
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def _step_figures(
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


def _run_steps(
    client: redis.Redis,
    clients: _Clients,
    rates: list[float],
    seconds: float,
    pids: list[int],
    accounts: list[str],
) -> tuple[list[dict], int, int]:
    symbols = [f"S{n:03d}" for n in range(500)]
    seqs = dict.fromkeys(symbols, 1)
    figures, cpus, alerts_sent = [], [], 0
    for rate in rates:
        _, warmup_alerts = _produce(client, rate, WARMUP_S, symbols, seqs, accounts)
        alerts_sent += warmup_alerts
        clients.signal(signal.SIGUSR1)
        cpu0, client_cpu0, busy0 = _cpu_s(pids), _cpu_s(clients.pids), _machine_busy_s()
        _, alerts = _produce(client, rate, seconds, symbols, seqs, accounts)
        cpus.append(
            (_cpu_s(pids) - cpu0, _cpu_s(clients.pids) - client_cpu0, _machine_busy_s() - busy0)
        )
        time.sleep(0.5)  # in flight
        clients.signal(signal.SIGUSR2)
        alerts_sent += alerts
    time.sleep(1.0)
    result = clients.finish()
    for rate, (cpu, client_cpu, busy), step in zip(rates, cpus, result["steps"], strict=False):
        figures.append(_step_figures(step, rate, seconds, cpu, client_cpu, busy))
    return figures, alerts_sent, result["alerts"]


def _configurations(args: argparse.Namespace) -> list[tuple[int, list[float], float]]:
    """(clients, rates, p99 goal ms) of each configuration to run."""
    if args.edge_clients is None and args.edge_rates is None:
        return [(n, [rate], goal) for n, rate, goal in GOALS]
    n = args.edge_clients or 500
    rates = [float(r) for r in (args.edge_rates or "1000,5000,10000").split(",") if r.strip()]
    goal = next((g for clients, _, g in GOALS if clients == n), GOAL_P99_MS)
    return [(n, rates, goal)]


def _start_edge(url: str, port: int, args: argparse.Namespace, tmp: Path) -> subprocess.Popen:
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


def _release_bench_redis(client: redis.Redis, lock: redis.Redis, token: str) -> None:
    client.flushdb()
    client.close()
    if lock.get(f"brokerflow:test-db-lock:{BENCH_REDIS_DB}") == token.encode():
        lock.delete(f"brokerflow:test-db-lock:{BENCH_REDIS_DB}")
    lock.close()


def _measure(
    url: str,
    client: redis.Redis,
    tmp: Path,
    tokens: list[str],
    accounts: list[str],
    n: int,
    rates: list[float],
    goal: float,
    args: argparse.Namespace,
) -> dict:
    """One configuration: the edge at each rate, then the bare loop at the last rate."""
    port = _free_port()
    _say(
        f"edge: {args.edge_processes} process(es) on :{port}, {n} clients x 20 of 500 "
        f"symbols, rates {rates} updates/s, {args.edge_seconds:g} s each"
    )
    server = _start_edge(url, port, args, tmp)
    try:
        _wait_port(port)
        time.sleep(0.5)
        clients = _Clients(
            f"ws://127.0.0.1:{port}/ws", n, args.edge_client_processes, tokens[:n], tmp
        )
        steps, alerts_sent, alerts_received = _run_steps(
            client, clients, rates, args.edge_seconds, [server.pid], accounts[:n]
        )
    finally:
        server.terminate()
        server.wait(15)
    yardstick = None
    if not args.edge_no_yardstick:
        yardstick = _yardstick(n, rates[-1], args, tmp, tokens[:n])
    expected_per_update = n * 20 / 500
    saturated_at = None
    for step in steps:
        wanted = step["rate_in"] * expected_per_update
        step["delivered_share"] = round(step["delivered_updates_per_s"] / wanted, 3)
        # Not delivery: conflation lowers it by design (two updates of a symbol in one flush).
        if saturated_at is None and step["p99_ms"] > goal:
            saturated_at = step["rate_in"]
    config = {"clients": n, "rates": rates, "goal_p99_ms": goal}
    _print_table(config, steps, yardstick, alerts_sent, alerts_received, saturated_at)
    return {
        **config,
        "steps": steps,
        "yardstick": yardstick,
        "saturated_at_rate": saturated_at,
        "alerts": {"sent": alerts_sent, "received": alerts_received},
    }


PATHS = ("quotes", "orders")


def run(settings, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """Run the paths asked for (`--edge-paths`); return the last one's result."""
    paths = [p.strip() for p in (args.edge_paths or "quotes,orders").split(",") if p.strip()]
    unknown = sorted(set(paths) - set(PATHS))
    if unknown or not paths:
        raise SystemExit(f"error: --edge-paths: unknown path {', '.join(unknown)} (quotes, orders)")
    doc: dict = {}
    if "quotes" in paths:
        doc = run_quotes(settings, args)
    if "orders" in paths:
        doc = run_orders(settings, args)
    return doc


def run_quotes(settings, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """The quote path; print the tables; write bench/results/edge.json; return the result."""
    from edge.tokens import issue_token

    _raise_fd_limit()
    configurations = _configurations(args)
    most = max(n for n, _, _ in configurations)
    url, lock, lock_token = _bench_redis(settings)
    client = redis.Redis.from_url(url)
    client.flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="bf-bench-edge-"))
    runs = []
    try:
        pipe = client.pipeline(transaction=False)
        for k in range(500):
            pipe.set(f"quote:S{k:03d}", '{"symbol":"S%03d","bid":100.0,"ts":0,"seq":1}' % k)
        pipe.execute()
        accounts = [f"ACC{i}" for i in range(most)]
        now = int(time.time())
        tokens = [
            issue_token(SECRET.encode(), f"u{i}", "trader", [accounts[i]], now, 86_400)
            for i in range(most)
        ]
        for n, rates, goal in configurations:
            runs.append(_measure(url, client, tmp, tokens, accounts, n, rates, goal, args))
    finally:
        _release_bench_redis(client, lock, lock_token)

    head = runs[0]
    last = head["steps"][-1]
    yardsticks: dict[str, object] = {
        "bare picows broadcast p99 ms": head["yardstick"]["p99_ms"] if head["yardstick"] else None,
        "bare picows broadcast p50 ms": head["yardstick"]["p50_ms"] if head["yardstick"] else None,
    }
    # Every configuration's figures, keyed `<clients>x<rate>` (the summary's second edge row).
    for r in runs:
        step, bare = r["steps"][-1], r["yardstick"] or {}
        key = f"{r['clients']}x{step['rate_in']:g}"
        yardsticks.update({
            f"p99_ms_{key}": step["p99_ms"],
            f"p50_ms_{key}": step["p50_ms"],
            f"goal_p99_ms_{key}": r["goal_p99_ms"],
            f"delivered_per_s_{key}": step["delivered_updates_per_s"],
            f"frames_per_s_{key}": step["frames_per_s"],
            f"bare_p99_ms_{key}": bare.get("p99_ms"),
            f"bare_p50_ms_{key}": bare.get("p50_ms"),
            f"bare_delivered_per_s_{key}": bare.get("delivered_updates_per_s"),
        })  # fmt: skip
    path = write_result(
        "edge",
        f"p99 ms XADD->client, {head['clients']} clients x {last['rate_in']:g}/s",
        last["p99_ms"],
        head["goal_p99_ms"],
        yardsticks,
    )
    doc = json.loads(path.read_text())
    doc.update({
        "config": {
            "symbols": 500, "per_client": 20, "seconds": args.edge_seconds,
            "warmup_s": WARMUP_S, "processes": args.edge_processes,
            "client_processes": args.edge_client_processes, "flush_ms": args.edge_flush_ms,
            "max_frames_per_s": args.edge_max_frames_per_s,
        },
        "runs": runs,
        # The headline configuration's, as before the runs were several.
        "steps": head["steps"], "yardstick": head["yardstick"],
        "saturated_at_rate": head["saturated_at_rate"],
        "alerts": {
            "sent": sum(r["alerts"]["sent"] for r in runs),
            "received": sum(r["alerts"]["received"] for r in runs),
        },
        "command": "brokerflow bench edge " + " ".join(sys.argv[3:]),
    })  # fmt: skip
    path.write_text(json.dumps(doc, indent=2) + "\n")
    _say(f"wrote {path}")
    return doc


# -- the order-status path ---------------------------------------------------------------------


class _OrderFlows:
    """Each account's own order flow, one execution report at a time: new, partial fill, fill,
    new, cancel, and again (a new ClOrdID each order); frames as the ledger flow writes them."""

    CYCLE = (("0", "0", 0), ("F", "1", 40), ("F", "2", 60), ("0", "0", 0), ("4", "4", 0))

    def __init__(self, accounts: list[str]) -> None:
        self.accounts = accounts
        self.step = [0] * len(accounts)

    def report(self, index: int, ts_ns: int) -> tuple:
        from decimal import Decimal

        from domain.events import ExecutionReport
        from domain.order_status import open_order_keys, order_frame, order_status

        account = self.accounts[index]
        step = self.step[index]
        self.step[index] = step + 1
        cycle, at = divmod(step, len(self.CYCLE))
        exec_type, ord_status, last = self.CYCLE[at]
        order = 2 * cycle + (at >= 3)  # steps 0-2 of a cycle one order, 3-4 the next
        cum = (0, 40, 100, 0, 0)[at]
        cl_ord_id = f"{account}-{order}"
        px = Decimal("100.25")
        report = ExecutionReport(
            f"{account}-E{step}", f"O-{cl_ord_id}", cl_ord_id, None, exec_type, ord_status,
            account, "ACME", "1", Decimal(100), "2", px, None, Decimal(last),
            px if last else Decimal(0), Decimal(cum),
            Decimal(0) if ord_status in ("2", "4") else Decimal(100 - cum),
            px if cum else Decimal(0), ts_ns,
        )  # fmt: skip
        data = order_frame(report)
        keys = open_order_keys(order_status(report), cl_ord_id, None)
        return (report.exec_id, account, data, *keys)


def _produce_orders(writer, flows: _OrderFlows, rate: float, seconds: float) -> int:  # noqa: ANN001
    """Write execution reports of random accounts at `rate`/s for `seconds`, one writer call
    (one script) per 10 ms tick, as the ledger flow's sink does per batch; return how many."""
    tick = 0.01
    carry = 0.0
    sent = 0
    rng = random.Random(11)
    n = len(flows.accounts)
    started = time.perf_counter()
    next_at = started
    while time.perf_counter() - started < seconds:
        carry += rate * tick
        k, carry = int(carry), carry - int(carry)
        ts_ns = time.time_ns()  # the report's event time: when it is written
        batch = [flows.report(rng.randrange(n), ts_ns) for _ in range(k)]
        sent += writer.write(batch)
        next_at += tick
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return sent


def run_orders(settings, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """The order-status path; print it next to the goal; write bench/results/edge-orders.json."""
    from edge.tokens import issue_token
    from sinks.order_status import OrderStatusWriter

    _raise_fd_limit()
    n, rate, seconds = args.edge_order_traders, args.edge_order_rate, args.edge_seconds
    url, lock, lock_token = _bench_redis(settings)
    client = redis.Redis.from_url(url)
    client.flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="bf-bench-edge-orders-"))
    accounts = [f"ACC{i}" for i in range(n)]
    now = int(time.time())
    tokens = [
        issue_token(SECRET.encode(), f"t{i}", "trader", [accounts[i]], now, 86_400)
        for i in range(n)
    ]
    port = _free_port()
    _say(
        f"edge orders: {args.edge_processes} process(es) on :{port}, {n} traders each with its "
        f"own account and order flow, {rate:g} execution reports/s, {seconds:g} s"
    )
    server = _start_edge(url, port, args, tmp)
    writer = OrderStatusWriter(url)
    flows = _OrderFlows(accounts)
    try:
        _wait_port(port)
        time.sleep(0.5)
        clients = _Clients(
            f"ws://127.0.0.1:{port}/ws", n, args.edge_client_processes, tokens, tmp, ("--orders",)
        )
        written = _produce_orders(writer, flows, rate, WARMUP_S)
        clients.signal(signal.SIGUSR1)
        cpu0, client_cpu0, busy0 = _cpu_s([server.pid]), _cpu_s(clients.pids), _machine_busy_s()
        written += _produce_orders(writer, flows, rate, seconds)
        cpu = _cpu_s([server.pid]) - cpu0
        client_cpu = _cpu_s(clients.pids) - client_cpu0
        busy = _machine_busy_s() - busy0
        time.sleep(0.5)  # in flight
        clients.signal(signal.SIGUSR2)
        time.sleep(1.0)
        result = clients.finish()
    finally:
        writer.close()
        server.terminate()
        server.wait(15)
        _release_bench_redis(client, lock, lock_token)
    step = _step_figures(result["steps"][0], rate, seconds, cpu, client_cpu, busy)
    received, wrong = result["orders"], result["wrong"]
    met = step["p99_ms"] < ORDER_GOAL_P99_MS and wrong == 0
    print(f"edge orders: {n} traders x own order flow, {rate:g} execution reports/s in")
    print(
        f"  report written -> order frame at the trader: p50 {step['p50_ms']} ms, "
        f"p99 {step['p99_ms']} ms (goal p99 < {ORDER_GOAL_P99_MS:g} ms: "
        f"{'met' if step['p99_ms'] < ORDER_GOAL_P99_MS else 'NOT met'})"
    )
    print(
        f"  frames: {written:,} written, {received:,} delivered ({written - received:,} lost), "
        f"{wrong} to the wrong trader (goal 0: {'met' if wrong == 0 else 'NOT met'}); "
        f"{result['snapshots']} open-order snapshots"
    )
    print(
        f"  edge cpu/s {step['server_cpu_s_per_s']} ({step['server_us_per_frame']} us/frame), "
        f"clients cpu/s {step['clients_cpu_s_per_s']}, other cpu/s {step['other_cpu_s_per_s']}"
    )
    path = write_result(
        "edge-orders",
        f"p99 ms execution report written -> order frame at the trader, {n} traders",
        step["p99_ms"],
        ORDER_GOAL_P99_MS,
        {
            "p50_ms": step["p50_ms"],
            "wrong_trader_frames": wrong,
            "written": written,
            "delivered": received,
            "lost": written - received,
        },
    )
    doc = json.loads(path.read_text())
    doc.update({
        "met": met,
        "config": {"traders": n, "reports_per_s": rate, "seconds": seconds, "warmup_s": WARMUP_S,
                   "processes": args.edge_processes,
                   "client_processes": args.edge_client_processes},
        "step": step,
        "snapshots": result["snapshots"],
        "command": "brokerflow bench edge " + " ".join(sys.argv[3:]),
    })  # fmt: skip
    path.write_text(json.dumps(doc, indent=2) + "\n")
    _say(f"wrote {path}")
    return doc


def _yardstick(n: int, rate: float, args: argparse.Namespace, tmp: Path, tokens: list[str]) -> dict:
    from edge.config import EdgeConfig

    budget = args.edge_max_frames_per_s or EdgeConfig(redis_url="", secret=b"").max_frames_per_s
    port = _free_port()
    _say(f"yardstick: bare picows broadcast loop, {n} clients, {rate:g} updates/s")
    bare = subprocess.Popen(
        [
            sys.executable, "-m", "bench.edge", "bare", "--port", str(port), "--rate", str(rate),
            "--flush-ms", str(args.edge_flush_ms),
            # One process sends what the edge's processes send together.
            "--max-frames-per-s", str(budget * args.edge_processes),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port)
        clients = _Clients(f"ws://127.0.0.1:{port}/ws", n, args.edge_client_processes, tokens, tmp)
        time.sleep(WARMUP_S)
        clients.signal(signal.SIGUSR1)
        cpu0, client_cpu0, busy0 = _cpu_s([bare.pid]), _cpu_s(clients.pids), _machine_busy_s()
        time.sleep(args.edge_seconds)
        cpu = _cpu_s([bare.pid]) - cpu0
        client_cpu = _cpu_s(clients.pids) - client_cpu0
        busy = _machine_busy_s() - busy0
        clients.signal(signal.SIGUSR2)
        result = clients.finish()
    finally:
        bare.terminate()
        bare.wait(10)
    return _step_figures(result["steps"][0], rate, args.edge_seconds, cpu, client_cpu, busy)


def _print_table(
    config: dict,
    steps: list[dict],
    yardstick: dict | None,
    sent: int,
    received: int,
    saturated_at: float | None,
) -> None:
    print(
        f"edge: {config['clients']} clients x 20 of 500 symbols "
        f"(goal p99 < {config['goal_p99_ms']:g} ms)"
    )
    print(
        f"{'in/s':>8} {'delivered/s':>12} {'share':>6} {'frames/s':>9} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'cpu/s':>6} {'us/frame':>9} {'clients cpu/s':>13} {'other cpu/s':>11}"
    )
    rows = [(f"{s['rate_in']:.0f}", s) for s in steps]
    if yardstick:
        rows.append(("bare", {**yardstick, "delivered_share": None}))
    for label, s in rows:
        share = "" if s.get("delivered_share") is None else f"{s['delivered_share']:.2f}"
        print(
            f"{label:>8} {s['delivered_updates_per_s']:>12,} {share:>6} "
            f"{s['frames_per_s']:>9,} {s['p50_ms']:>7} {s['p99_ms']:>7} "
            f"{s['server_cpu_s_per_s']:>6} {s['server_us_per_frame']!s:>9} "
            f"{s.get('clients_cpu_s_per_s', '-')!s:>13} {s.get('other_cpu_s_per_s', '-')!s:>11}"
        )
    print(f"alerts: {sent} sent, {received} received ({sent - received} lost)")
    print(
        "saturates at: "
        + (f"{saturated_at:g} updates/s in" if saturated_at else "not within the rates run")
    )


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "clients":
        clients_entry(rest)
    elif mode == "bare":
        bare_entry(rest)
    elif mode == "edge":
        edge_entry(rest)
    else:
        raise SystemExit(f"unknown mode {mode}")
