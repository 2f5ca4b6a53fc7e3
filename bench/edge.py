"""The edge benchmark: N WebSocket clients, each on 20 of 500 symbols, quotes entering Redis.

Printed in one run, for each input rate (updates/s XADDed to `stream:quotes`):
    delivered   quote updates/s received by all clients, and WebSocket frames/s
    latency     p50/p99 ms from the XADD (the quote's `ts` is the wall clock at XADD) to the
                client's read; ms resolution
    server CPU  of the edge processes, per frame and per update delivered
    alerts      STOP_TRIGGERED alerts XADDed (20/s) for the clients' accounts vs received
The run saturates at the first rate whose p99 passes the goal or whose delivery falls under 90 %
of what was sent. Yardstick, same run: a bare picows broadcast loop (no Redis, no subscription
map) sending each client the same-sized batch frame every flush period, to the same clients.

Processes: the edge (`brokerflow edge`, or the bare server), the clients (picows, `--client-
processes` of them), and this one producing. All share the machine's cores.
"""

from __future__ import annotations

import argparse
import array
import asyncio
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

from bench.common import percentile, write_result

BENCH_REDIS_DB = 14  # flushed; reserved through the test suite's lock key while running
SECRET = "bench-edge-secret-of-at-least-32-bytes"
ALERTS_PER_S = 20
GOAL_P99_MS = 50.0
_TS = re.compile(rb'"ts":(\d+)')


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--edge-clients", type=int, default=500, help="edge: WebSocket clients")
    p.add_argument(
        "--edge-rates",
        default="1000,5000,10000",
        help="edge: input rates to step through, updates/s (comma-separated)",
    )
    p.add_argument("--edge-seconds", type=float, default=8.0, help="edge: seconds per rate")
    p.add_argument("--edge-processes", type=int, default=1, help="edge: server processes")
    p.add_argument("--edge-client-processes", type=int, default=1, help="edge: client processes")
    p.add_argument("--edge-flush-ms", type=int, default=25, help="edge: quote flush period")
    p.add_argument("--edge-no-yardstick", action="store_true", help="edge: skip the bare loop")


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
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


# -- clients (a separate process) -----------------------------------------------------------------


class _ClientStats:
    def __init__(self) -> None:
        self.recording = False
        self.frames = 0
        self.updates = 0
        self.latencies = array.array("l")
        self.alerts = 0
        self.steps: list[dict] = []

    def start(self) -> None:
        self.frames = self.updates = 0
        self.latencies = array.array("l")
        self.recording = True

    def stop(self) -> None:
        self.recording = False
        lat = sorted(self.latencies)
        # Send percentiles plus the sorted sample's size; the parent merges by weighting.
        self.steps.append({
            "frames": self.frames, "updates": self.updates, "n": len(lat),
            "sample": lat[:: max(1, len(lat) // 20_000)],
        })


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
    args = p.parse_args(argv)
    args.tokens = Path(args.tokens_file).read_text().split() if args.tokens_file else []
    _raise_fd_limit()
    import uvloop

    uvloop.run(_clients_main(args))


# -- the yardstick server: a bare picows broadcast loop (separate process) ------------------------


async def _bare_main(port: int, rate: float, flush_ms: int, symbols: int, per_client: int) -> None:
    from picows import WSListener, WSMsgType, ws_create_server

    clients: set = set()

    class Listener(WSListener):
        def on_ws_connected(self, transport) -> None:  # noqa: ANN001
            clients.add(transport)

        def on_ws_disconnected(self, transport) -> None:  # noqa: ANN001
            clients.discard(transport)

    server = await ws_create_server(lambda _request: Listener(), "127.0.0.1", port)
    per_tick = rate * flush_ms / 1000 * per_client / symbols  # updates per client per flush
    carry = 0.0
    text = WSMsgType.TEXT
    loop = asyncio.get_running_loop()
    try:
        while True:
            started = loop.time()
            carry += per_tick
            k, carry = int(carry), carry - int(carry)
            if k and clients:
                # Stamped as if the updates had arrived through the flush period, as in the
                # edge, so that both latencies include the wait for the flush.
                now = time.time_ns() // 1_000_000
                quotes = [
                    b'{"type":"quote","symbol":"S001","bid":100.0,"bid_size":100.0,"ask":100.01,'
                    b'"ask_size":100.0,"ltp":100.0,"ltq":10.0,"volume":12345.0,"ts":%d,"seq":1}'
                    % (now - flush_ms * j // k)
                    for j in range(k)
                ]
                frame = (
                    quotes[0] if k == 1 else b'{"type":"quotes","quotes":[' + b",".join(quotes)
                    + b"]}"
                )
                for n, transport in enumerate(list(clients), 1):
                    transport.send(text, frame)
                    if n % 250 == 0:
                        await asyncio.sleep(0)
            await asyncio.sleep(max(0.0, flush_ms / 1000 - (loop.time() - started)))
    finally:
        server.close()


def bare_entry(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int)
    p.add_argument("--rate", type=float)
    p.add_argument("--flush-ms", type=int)
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument("--per-client", type=int, default=20)
    args = p.parse_args(argv)
    _raise_fd_limit()
    import uvloop

    uvloop.run(_bare_main(args.port, args.rate, args.flush_ms, args.symbols, args.per_client))


def edge_entry(argv: list[str]) -> None:
    """The edge as `brokerflow edge` runs it, on the benchmark's Redis db and secret."""
    from edge.config import EdgeConfig
    from edge.server import run_edge

    p = argparse.ArgumentParser()
    p.add_argument("--redis-url")
    p.add_argument("--port", type=int)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--flush-ms", type=int, default=25)
    args = p.parse_args(argv)
    _raise_fd_limit()
    config = EdgeConfig(redis_url=args.redis_url, secret=SECRET.encode(), host="127.0.0.1",
                        port=args.port, flush_ms=args.flush_ms)
    run_edge(config, args.processes)


# -- the run ------------------------------------------------------------------------------


def _bench_redis(settings) -> tuple[str, redis.Redis, str]:  # noqa: ANN001
    from brokerflow.services import ensure_services

    base = urlsplit(ensure_services(settings, {"redis"}).redis_url)
    url = urlunsplit(base._replace(path=f"/{BENCH_REDIS_DB}"))
    lock_client = redis.Redis.from_url(urlunsplit(base._replace(path="/0")))
    token = secrets.token_hex(8)
    deadline = time.monotonic() + 120
    while not lock_client.set(f"brokerflow:test-db-lock:{BENCH_REDIS_DB}", token, nx=True,
                              px=30 * 60 * 1000):
        if time.monotonic() > deadline:
            raise SystemExit(f"error: Redis db {BENCH_REDIS_DB} stays reserved by tests")
        time.sleep(0.5)
    return url, lock_client, token


class _Clients:
    """The client processes; signals start and stop the recording of each step."""

    def __init__(self, url: str, n: int, processes: int, tokens: list[str], tmp: Path) -> None:
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
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.edge", "clients", "--url", url,
                 "--offset", str(offset), "--count", str(count), "--tokens-file",
                 str(tokens_file), "--result-file", str(result)],
                stdout=subprocess.PIPE, text=True,
            ))
        for proc in self.procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise SystemExit("error: the benchmark clients did not connect")

    def signal(self, sig: int) -> None:
        for proc in self.procs:
            proc.send_signal(sig)

    def finish(self) -> dict:
        self.signal(signal.SIGTERM)
        alerts, steps = 0, []
        for proc, path in zip(self.procs, self.files, strict=True):
            proc.wait(60)
            doc = json.loads(path.read_text())
            alerts += doc["alerts"]
            for i, step in enumerate(doc["steps"]):
                if i == len(steps):
                    steps.append({"frames": 0, "updates": 0, "sample": []})
                steps[i]["frames"] += step["frames"]
                steps[i]["updates"] += step["updates"]
                steps[i]["sample"] += step["sample"]
        return {"alerts": alerts, "steps": steps}


def _produce(client: redis.Redis, rate: float, seconds: float, symbols: list[str],
             seqs: dict[str, int], accounts: list[str]) -> tuple[int, int]:
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
            pipe.xadd("stream:quotes", {"symbol": symbol, "data": data}, maxlen=100_000,
                      approximate=True)
        alert_carry += ALERTS_PER_S * tick
        while alert_carry >= 1:
            alert_carry -= 1
            alerts += 1
            account = accounts[rng.randrange(len(accounts))]
            data = json.dumps({"alert_id": f"bench-{ts}-{alerts}", "kind": "STOP_TRIGGERED",
                               "account": account, "details": {}})
            pipe.xadd("stream:alerts", {"kind": "STOP_TRIGGERED", "account": account,
                                        "data": data})
        pipe.execute()
        sent += k
        next_at += tick
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def _step_figures(step: dict, rate: float, seconds: float, cpu: float) -> dict:
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
    }


def _run_steps(url: str, client: redis.Redis, clients: _Clients, rates: list[float],
               seconds: float, pids: list[int], accounts: list[str]) -> tuple[list[dict], int]:
    symbols = [f"S{n:03d}" for n in range(500)]
    seqs = dict.fromkeys(symbols, 1)
    figures, cpus, alerts_sent = [], [], 0
    for rate in rates:
        _, warmup_alerts = _produce(client, rate, 1.0, symbols, seqs, accounts)  # not recorded
        alerts_sent += warmup_alerts
        clients.signal(signal.SIGUSR1)
        cpu0 = _cpu_s(pids)
        _, alerts = _produce(client, rate, seconds, symbols, seqs, accounts)
        cpus.append(_cpu_s(pids) - cpu0)
        time.sleep(0.5)  # in flight
        clients.signal(signal.SIGUSR2)
        alerts_sent += alerts
    time.sleep(1.0)
    result = clients.finish()
    for rate, cpu, step in zip(rates, cpus, result["steps"], strict=False):
        figures.append(_step_figures(step, rate, seconds, cpu))
    return figures, alerts_sent, result["alerts"]


def run(settings, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """Run the benchmark; print the table; write bench/results/edge.json; return the result."""
    from edge.tokens import issue_token

    _raise_fd_limit()
    n = args.edge_clients
    rates = [float(r) for r in args.edge_rates.split(",") if r.strip()]
    url, lock, lock_token = _bench_redis(settings)
    client = redis.Redis.from_url(url)
    client.flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="bf-bench-edge-"))
    try:
        pipe = client.pipeline(transaction=False)
        for k in range(500):
            pipe.set(f"quote:S{k:03d}", '{"symbol":"S%03d","bid":100.0,"ts":0,"seq":1}' % k)
        pipe.execute()
        accounts = [f"ACC{i}" for i in range(n)]
        now = int(time.time())
        tokens = [issue_token(SECRET.encode(), f"u{i}", "trader", [accounts[i]], now, 86_400)
                  for i in range(n)]
        port = _free_port()
        env = {**os.environ, "BROKERFLOW_REDIS_URL": url, "BROKERFLOW_EDGE_SECRET": SECRET,
               "BROKERFLOW_DATA_DIR": str(tmp)}
        _say(f"edge: {args.edge_processes} process(es) on :{port}, {n} clients x 20 of 500 "
             f"symbols, rates {rates} updates/s, {args.edge_seconds:g} s each")
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.edge", "edge", "--redis-url", url, "--port", str(port),
             "--processes", str(args.edge_processes), "--flush-ms", str(args.edge_flush_ms)],
            env=env, stdout=subprocess.DEVNULL,
        )
        try:
            _wait_port(port)
            time.sleep(0.5)
            clients = _Clients(f"ws://127.0.0.1:{port}/ws", n, args.edge_client_processes,
                               tokens, tmp)
            steps, alerts_sent, alerts_received = _run_steps(
                url, client, clients, rates, args.edge_seconds, [server.pid], accounts
            )
        finally:
            server.terminate()
            server.wait(15)
        yardstick = None
        if not args.edge_no_yardstick:
            yardstick = _yardstick(n, rates[-1], args, tmp, tokens)
    finally:
        client.flushdb()
        client.close()
        if lock.get(f"brokerflow:test-db-lock:{BENCH_REDIS_DB}") == lock_token.encode():
            lock.delete(f"brokerflow:test-db-lock:{BENCH_REDIS_DB}")
        lock.close()

    expected_per_update = n * 20 / 500
    saturated_at = None
    for step in steps:
        wanted = step["rate_in"] * expected_per_update
        step["delivered_share"] = round(step["delivered_updates_per_s"] / wanted, 3)
        # Not delivery: conflation lowers it by design (two updates of a symbol in one flush).
        if saturated_at is None and step["p99_ms"] > GOAL_P99_MS:
            saturated_at = step["rate_in"]
    _print_table(n, steps, yardstick, alerts_sent, alerts_received, saturated_at)
    head = steps[-1]
    yardsticks = {"bare picows broadcast p99 ms": yardstick["p99_ms"] if yardstick else None,
                  "bare picows broadcast p50 ms": yardstick["p50_ms"] if yardstick else None}
    path = write_result("edge", f"p99 ms XADD->client, {n} clients x {head['rate_in']:g}/s",
                        head["p99_ms"], GOAL_P99_MS, yardsticks)
    doc = json.loads(path.read_text())
    doc.update({
        "config": {"clients": n, "symbols": 500, "per_client": 20, "rates": rates,
                   "seconds": args.edge_seconds, "processes": args.edge_processes,
                   "client_processes": args.edge_client_processes,
                   "flush_ms": args.edge_flush_ms},
        "steps": steps, "yardstick": yardstick, "saturated_at_rate": saturated_at,
        "alerts": {"sent": alerts_sent, "received": alerts_received},
        "command": "brokerflow bench edge " + " ".join(sys.argv[3:]),
    })
    path.write_text(json.dumps(doc, indent=2) + "\n")
    _say(f"wrote {path}")
    return doc


def _yardstick(n: int, rate: float, args: argparse.Namespace, tmp: Path,
               tokens: list[str]) -> dict:
    port = _free_port()
    _say(f"yardstick: bare picows broadcast loop, {n} clients, {rate:g} updates/s")
    bare = subprocess.Popen(
        [sys.executable, "-m", "bench.edge", "bare", "--port", str(port), "--rate", str(rate),
         "--flush-ms", str(args.edge_flush_ms)],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        clients = _Clients(f"ws://127.0.0.1:{port}/ws", n, args.edge_client_processes, tokens,
                           tmp)
        time.sleep(1.0)
        clients.signal(signal.SIGUSR1)
        cpu0 = _cpu_s([bare.pid])
        time.sleep(args.edge_seconds)
        cpu = _cpu_s([bare.pid]) - cpu0
        clients.signal(signal.SIGUSR2)
        result = clients.finish()
    finally:
        bare.terminate()
        bare.wait(10)
    return _step_figures(result["steps"][0], rate, args.edge_seconds, cpu)


def _print_table(n: int, steps: list[dict], yardstick: dict | None, sent: int, received: int,
                 saturated_at: float | None) -> None:
    print(f"edge: {n} clients x 20 of 500 symbols")
    print(f"{'in/s':>8} {'delivered/s':>12} {'share':>6} {'frames/s':>9} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'cpu/s':>6} {'us/frame':>9}")
    rows = [(f"{s['rate_in']:.0f}", s) for s in steps]
    if yardstick:
        rows.append(("bare", {**yardstick, "delivered_share": None}))
    for label, s in rows:
        share = "" if s.get("delivered_share") is None else f"{s['delivered_share']:.2f}"
        print(f"{label:>8} {s['delivered_updates_per_s']:>12,} {share:>6} "
              f"{s['frames_per_s']:>9,} {s['p50_ms']:>7} {s['p99_ms']:>7} "
              f"{s['server_cpu_s_per_s']:>6} {s['server_us_per_frame']!s:>9}")
    print(f"alerts: {sent} sent, {received} received ({sent - received} lost)")
    print("saturates at: " + (f"{saturated_at:g} updates/s in" if saturated_at else
                              "not within the rates run"))


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
