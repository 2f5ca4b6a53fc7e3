"""The edge benchmark's quote path (issue 8): quotes XADDed to `stream:quotes` at stepped
rates, the clients' latency and delivery at each, the bare broadcast loop as yardstick;
bench/results/edge.json.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench.common import write_result
from bench.edge_harness import (
    SECRET,
    WARMUP_S,
    Clients,
    await_port,
    bench_redis,
    cpu_s,
    free_port,
    machine_busy_s,
    raise_fd_limit,
    release_bench_redis,
    say,
    start_edge,
    step_figures,
)

ALERTS_PER_S = 20
GOAL_P99_MS = 50.0
# Issue 8's goals: (clients, updates/s in, p99 ms XADD -> client).
GOALS = ((1000, 10_000.0, 50.0), (5000, 1_000.0, 150.0))


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


def _run_steps(
    client: redis.Redis,
    clients: Clients,
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
        cpu0, client_cpu0, busy0 = cpu_s(pids), cpu_s(clients.pids), machine_busy_s()
        _, alerts = _produce(client, rate, seconds, symbols, seqs, accounts)
        cpus.append(
            (cpu_s(pids) - cpu0, cpu_s(clients.pids) - client_cpu0, machine_busy_s() - busy0)
        )
        time.sleep(0.5)  # in flight
        clients.signal(signal.SIGUSR2)
        alerts_sent += alerts
    time.sleep(1.0)
    result = clients.finish()
    for rate, (cpu, client_cpu, busy), step in zip(rates, cpus, result["steps"], strict=False):
        figures.append(step_figures(step, rate, seconds, cpu, client_cpu, busy))
    return figures, alerts_sent, result["alerts"]


def _configurations(args: argparse.Namespace) -> list[tuple[int, list[float], float]]:
    """(clients, rates, p99 goal ms) of each configuration to run."""
    if args.edge_clients is None and args.edge_rates is None:
        return [(n, [rate], goal) for n, rate, goal in GOALS]
    n = args.edge_clients or 500
    rates = [float(r) for r in (args.edge_rates or "1000,5000,10000").split(",") if r.strip()]
    goal = next((g for clients, _, g in GOALS if clients == n), GOAL_P99_MS)
    return [(n, rates, goal)]


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
    port = free_port()
    say(
        f"edge: {args.edge_processes} process(es) on :{port}, {n} clients x 20 of 500 "
        f"symbols, rates {rates} updates/s, {args.edge_seconds:g} s each"
    )
    server = start_edge(url, port, args, tmp)
    try:
        await_port(port)
        time.sleep(0.5)
        clients = Clients(
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


def run_quotes(settings, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """The quote path; print the tables; write bench/results/edge.json; return the result."""
    from edge.tokens import issue_token

    raise_fd_limit()
    configurations = _configurations(args)
    most = max(n for n, _, _ in configurations)
    url, lock, lock_token = bench_redis(settings)
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
        release_bench_redis(client, lock, lock_token)

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
    say(f"wrote {path}")
    return doc


def _yardstick(n: int, rate: float, args: argparse.Namespace, tmp: Path, tokens: list[str]) -> dict:
    from edge.config import EdgeConfig

    budget = args.edge_max_frames_per_s or EdgeConfig(redis_url="", secret=b"").max_frames_per_s
    port = free_port()
    say(f"yardstick: bare picows broadcast loop, {n} clients, {rate:g} updates/s")
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
        await_port(port)
        clients = Clients(f"ws://127.0.0.1:{port}/ws", n, args.edge_client_processes, tokens, tmp)
        time.sleep(WARMUP_S)
        clients.signal(signal.SIGUSR1)
        cpu0, client_cpu0, busy0 = cpu_s([bare.pid]), cpu_s(clients.pids), machine_busy_s()
        time.sleep(args.edge_seconds)
        cpu = cpu_s([bare.pid]) - cpu0
        client_cpu = cpu_s(clients.pids) - client_cpu0
        busy = machine_busy_s() - busy0
        clients.signal(signal.SIGUSR2)
        result = clients.finish()
    finally:
        bare.terminate()
        bare.wait(10)
    return step_figures(result["steps"][0], rate, args.edge_seconds, cpu, client_cpu, busy)


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
