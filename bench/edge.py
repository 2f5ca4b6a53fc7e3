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

Modules: this one (options, the paths to run, the child processes' entry), `bench.edge_quotes`
(the quote path and its yardstick), `bench.edge_orders` (the order-status path),
`bench.edge_harness` (what both use: the reserved Redis db, the edge and client processes, CPU
and step figures) and `bench.edge_processes` (the child processes: clients, bare loop, edge).
"""

from __future__ import annotations

import argparse
import sys

from bench.edge_harness import BENCH_REDIS_DB, SECRET, WARMUP_S
from bench.edge_orders import ORDER_GOAL_P99_MS, run_orders
from bench.edge_quotes import GOAL_P99_MS, GOALS, run_quotes

__all__ = [
    "BENCH_REDIS_DB", "GOALS", "GOAL_P99_MS", "ORDER_GOAL_P99_MS", "PATHS", "SECRET", "WARMUP_S",
    "add_arguments", "run", "run_orders", "run_quotes",
]  # fmt: skip


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


if __name__ == "__main__":
    from bench.edge_processes import bare_entry, clients_entry, edge_entry

    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "clients":
        clients_entry(rest)
    elif mode == "bare":
        bare_entry(rest)
    elif mode == "edge":
        edge_entry(rest)
    else:
        raise SystemExit(f"unknown mode {mode}")
