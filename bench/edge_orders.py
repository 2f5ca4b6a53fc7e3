"""The edge benchmark's order-status path (issue 19): each trader's own order flow written as
the ledger flow writes it, the `order` frames' latency to their traders;
bench/results/edge-orders.json.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
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

ORDER_GOAL_P99_MS = 100.0  # issue 19: execution report in -> order frame at the client


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

    raise_fd_limit()
    n, rate, seconds = args.edge_order_traders, args.edge_order_rate, args.edge_seconds
    url, lock, lock_token = bench_redis(settings)
    client = redis.Redis.from_url(url)
    client.flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="bf-bench-edge-orders-"))
    accounts = [f"ACC{i}" for i in range(n)]
    now = int(time.time())
    tokens = [
        issue_token(SECRET.encode(), f"t{i}", "trader", [accounts[i]], now, 86_400)
        for i in range(n)
    ]
    port = free_port()
    say(
        f"edge orders: {args.edge_processes} process(es) on :{port}, {n} traders each with its "
        f"own account and order flow, {rate:g} execution reports/s, {seconds:g} s"
    )
    server = start_edge(url, port, args, tmp)
    writer = OrderStatusWriter(url)
    flows = _OrderFlows(accounts)
    try:
        await_port(port)
        time.sleep(0.5)
        clients = Clients(
            f"ws://127.0.0.1:{port}/ws", n, args.edge_client_processes, tokens, tmp, ("--orders",)
        )
        written = _produce_orders(writer, flows, rate, WARMUP_S)
        clients.signal(signal.SIGUSR1)
        cpu0, client_cpu0, busy0 = cpu_s([server.pid]), cpu_s(clients.pids), machine_busy_s()
        written += _produce_orders(writer, flows, rate, seconds)
        cpu = cpu_s([server.pid]) - cpu0
        client_cpu = cpu_s(clients.pids) - client_cpu0
        busy = machine_busy_s() - busy0
        time.sleep(0.5)  # in flight
        clients.signal(signal.SIGUSR2)
        time.sleep(1.0)
        result = clients.finish()
    finally:
        writer.close()
        server.terminate()
        server.wait(15)
        release_bench_redis(client, lock, lock_token)
    step = step_figures(result["steps"][0], rate, seconds, cpu, client_cpu, busy)
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
    say(f"wrote {path}")
    return doc
