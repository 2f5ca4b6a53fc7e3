"""The edge benchmark's child processes (`python -m bench.edge MODE`): the WebSocket clients
(picows; `clients`), the yardstick's bare picows broadcast loop (`bare`) and the edge as
`brokerflow edge` runs it (`edge`).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import random
import re
import signal
import time
from pathlib import Path

from bench.edge_harness import SECRET, raise_fd_limit

_TS = re.compile(rb'"ts":(\d+)')


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
    raise_fd_limit()
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
    raise_fd_limit()
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
    raise_fd_limit()
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
