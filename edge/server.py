"""Edge layer: the picows server: `/ws` (the WebSocket edge) and the console's static files.

Routing happens on the upgrade request, before any WebSocket work: `/` and `/static/*` are
answered as plain HTTP from `edge/static/`; `/ws?token=…[&last_alert_id=…][&compress=1]` is
upgraded, then closed at once with 4401 if the token is missing or bad. ASGI stays off this
path: picows sends a frame in ~11-15 µs of CPU against ~17-24 µs for `websockets`
(bench/edge.py measures both).

Several processes can share the port (SO_REUSEPORT), each with its own reader and hub.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import mimetypes
import multiprocessing
import signal
import time
from multiprocessing import resource_tracker
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from picows import (
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)
from prometheus_client import CONTENT_TYPE_LATEST

from edge import deflate, protocol
from edge.claims import TokenError
from edge.config import EdgeConfig
from edge.connection import ClientConnection, RejectedConnection
from edge.health import health_forever
from edge.hub import Hub
from edge.metrics import exposition, serve_metrics
from edge.positions import positions_forever
from edge.reader import read_streams
from edge.tokens import read_token

log = logging.getLogger("brokerflow.edge")

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _static(path: str) -> WSUpgradeResponseWithListener:
    name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
    file = (STATIC_DIR / name).resolve()
    if not file.is_relative_to(STATIC_DIR) or not file.is_file():
        response = WSUpgradeResponse.create_error_response(404, b"not found\n")
        return WSUpgradeResponseWithListener(response, None)
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind == "application/javascript":
        kind += "; charset=utf-8"
    response = WSUpgradeResponse.create_ok_response(
        file.read_bytes(), {"Content-Type": kind, "Cache-Control": "no-cache"}
    )
    return WSUpgradeResponseWithListener(response, None)


def listener_factory(hub: Hub):  # noqa: ANN201 - a picows factory
    """Return the picows router of one server: static files, or a WebSocket listener."""
    secret = hub.config.secret

    def route(request: WSUpgradeRequest):  # noqa: ANN202
        target = urlsplit(request.path.decode("latin-1"))
        path = unquote(target.path)
        if path == "/metrics":  # Prometheus: counts and the flush period, no client data
            response = WSUpgradeResponse.create_ok_response(
                exposition(hub), {"Content-Type": CONTENT_TYPE_LATEST}
            )
            return WSUpgradeResponseWithListener(response, None)
        if path != "/ws":
            return _static(path)
        query = parse_qs(target.query)
        token = (query.get("token") or [None])[0]
        try:
            claims = read_token(secret, token, time.time())
        except TokenError as exc:
            return RejectedConnection(str(exc))
        resume_from = (query.get("last_alert_id") or [None])[0]
        if resume_from is not None:
            try:
                resume_from = protocol.check_alert_cursor(resume_from)
            except protocol.ProtocolError as exc:
                return _bad_request(str(exc))
        wants = (query.get("compress") or ["0"])[0] in ("1", "true", "yes")
        compressed = wants and deflate.offered(request.headers.get("Sec-WebSocket-Extensions"))
        listener = ClientConnection(hub, claims, resume_from, compressed)
        if not compressed:
            return listener
        response = WSUpgradeResponse.create_101_response(
            {"Sec-WebSocket-Extensions": deflate.RESPONSE_HEADER}
        )
        return WSUpgradeResponseWithListener(response, listener)

    return route


def _bad_request(reason: str) -> WSUpgradeResponseWithListener:
    response = WSUpgradeResponse.create_error_response(400, reason.encode() + b"\n")
    return WSUpgradeResponseWithListener(response, None)


async def serve(
    config: EdgeConfig, started: asyncio.Event | None = None, reuse_port: bool = False
) -> None:
    """Run one edge server until cancelled."""
    # A bounded pool that waits: thousands of clients connecting at once must queue for a
    # connection (snapshots, watchlists), not fail with "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(
        config.redis_url, max_connections=64, timeout=30
    )
    client = aioredis.Redis(connection_pool=pool)
    hub = Hub(config, client)
    metrics = (
        await serve_metrics(hub, config.host, config.metrics_port) if config.metrics_port else None
    )
    ready = asyncio.Event()
    tasks = [
        asyncio.create_task(read_streams(config.redis_url, hub, ready), name="edge-reader"),
        asyncio.create_task(hub.flush_forever(), name="edge-flusher"),
        asyncio.create_task(health_forever(hub), name="edge-health"),
        asyncio.create_task(
            positions_forever(client, hub.positions, hub.send_due_positions), name="edge-positions"
        ),
    ]
    server = await ws_create_server(
        listener_factory(hub),
        config.host,
        config.port,
        reuse_port=reuse_port,
        max_frame_size=config.max_message_bytes * 16,
        enable_auto_ping=True,
        auto_ping_idle_timeout=config.ping_idle_s,
        auto_ping_reply_timeout=config.ping_reply_s,
        enable_auto_pong=True,
        websocket_handshake_timeout=10,
    )
    try:
        await ready.wait()
        if started is not None:
            started.set()
        await asyncio.gather(*tasks)
    finally:
        server.close()
        if metrics is not None:
            metrics.close()
        for task in tasks:
            task.cancel()
        hub.price_alerts.close()
        await client.aclose()


async def _serve_until_terminated(config: EdgeConfig, reuse_port: bool) -> None:
    # SIGTERM and Ctrl-C cancel the server. A Python-level handler that raises
    # KeyboardInterrupt lands in whatever code runs at that moment: inside picows' auto-ping
    # task it was caught and logged ("Auto-ping loop failed"), and the process served on.
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # a worker leaves Ctrl-C to the first
            loop.add_signal_handler(signum, main.cancel)
    try:
        await serve(config, reuse_port=reuse_port)
    except asyncio.CancelledError:
        return


def _run_one(config: EdgeConfig, reuse_port: bool) -> None:
    import gc

    # Frames are short-lived bytes; collections of the young generation every 700 allocations
    # cost more than they free here. Long-lived objects (the hub) are frozen out of them.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        import uvloop
    except ImportError:  # optional: the edge runs on the stock loop too
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_serve_until_terminated(config, reuse_port))
    except KeyboardInterrupt:
        pass


def _run_worker(config: EdgeConfig) -> None:
    """A second edge process: Ctrl-C reaches the whole process group, and the first process
    stops this one (SIGTERM) once it has stopped itself. Started with SIGINT blocked, so one
    sent during its start-up is dropped here rather than raised."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _run_one(config, reuse_port=True)


def _nth(config: EdgeConfig, index: int) -> EdgeConfig:
    """The configuration of edge process `index`: its own metrics port, next to the first's."""
    if not config.metrics_port:
        return config
    return dataclasses.replace(config, metrics_port=config.metrics_port + index)


def run_edge(config: EdgeConfig, processes: int = 1) -> None:
    """Run the edge in the foreground with `processes` servers sharing the port.

    SIGTERM or Ctrl-C stops it; the first process then stops the others.
    """
    if processes <= 1:
        _run_one(config, reuse_port=False)
        return
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_run_worker, args=(_nth(config, i),), daemon=True)
        for i in range(1, processes)
    ]
    # SIGINT blocked while they start (see _run_worker); the resource tracker first, as
    # starting it unblocks SIGINT.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for child in children:
            child.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    try:
        _run_one(config, reuse_port=True)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(5)
