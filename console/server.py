"""Console layer: serving the app with uvicorn — in the foreground (`brokerflow console`) or on a
thread of a process that already holds the stores (`brokerflow demo`: an embedded chdb can be
opened by one process only, so the console that reads it must live in that process)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from console.app import ConsoleConfig, create_app


def _server(config: ConsoleConfig, host: str, port: int) -> uvicorn.Server:
    settings = uvicorn.Config(
        create_app(config), host=host, port=port, log_level="warning", access_log=False,
        lifespan="on", loop="asyncio",
    )  # fmt: skip
    return uvicorn.Server(settings)


def serve(config: ConsoleConfig, host: str, port: int) -> None:
    """Serve until interrupted (SIGINT/SIGTERM stop it cleanly)."""
    _server(config, host, port).run()


class BackgroundConsole:
    """The console on a daemon thread; `stop()` ends it. `port` is the bound port."""

    def __init__(self, config: ConsoleConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        if port == 0:
            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.host, self.port = host, port
        self._server = _server(config, host, port)
        # Signals belong to the process's main thread (the flows), not to this server.
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve()), name="console", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> BackgroundConsole:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                msg = f"the console did not start on {self.host}:{self.port}"
                raise RuntimeError(msg)
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
