"""Simulator layer: `ExchangeCore` served over FIX sessions by the session layer's `Acceptor`.

Each logged-on session can:
* subscribe to market data (35=V): it gets a 35=W per symbol, then the 35=X of those symbols
  as the simulated market produces them, paced by the wall clock (`tick_s`), and the market's
  periodic 35=W of those symbols, if it sends any; a 35=V with 263=0 gets the snapshots only
  (a consumer recovering a book);
* send orders (35=D, 35=F): the reports (35=8, 35=9) come back on the same session;
* receive drop copies (`drop_copy`): every 35=8 of the synthetic order flow and a copy of the
  reports of the orders other sessions send.

`ExchangeThread` runs a server in a background thread with its own event loop (the demo and
the tests start one beside the flows).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from connectors.fix.session import Acceptor, SessionConfig, UnsupportedMessageType
from connectors.fix.session.state import SessionState
from connectors.fix.session.wire import Message
from simulator.exchange import STATUS_TYPES, Body, ExchangeCore, Routed
from simulator.market_status import StatusScenario

log = logging.getLogger("brokerflow.exchange")

EXCHANGE_COMP_ID = "SIMX"
Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class ExchangeSession:
    """A session the exchange accepts; `drop_copy`: it receives every execution report."""

    config: SessionConfig
    drop_copy: bool = True


def default_sessions(store_dir: str = "") -> list[ExchangeSession]:
    """`BROKERFLOW` (market data, drop copy, orders) and `BROKERFLOW-OE` (orders only)."""
    return [
        ExchangeSession(SessionConfig(EXCHANGE_COMP_ID, client, name=f"simx-{client.lower()}",
                                      role="acceptor", store_dir=store_dir),
                        drop_copy=client == "BROKERFLOW")
        for client in ("BROKERFLOW", "BROKERFLOW-OE")
    ]  # fmt: skip


class _SessionApp:
    """The application of one connection: its subscription, and what it sends us."""

    def __init__(self, server: ExchangeServer, session: ExchangeSession) -> None:
        self.server = server
        self.key: Key = session.config.key
        self.name = session.config.name
        self.drop_copy = session.drop_copy
        self.subscribed: set[bytes] = set()
        self.state: SessionState | None = None

    def __call__(self, state: SessionState, message: Message) -> None:
        self.state = state
        core = self.server.core
        msg_type = message.msg_type
        now_ns = time.time_ns()
        if msg_type == b"V":
            replies, symbols = core.market_data_request(message.body())
            if message.get(263) == b"2":
                self.subscribed.clear()
            self.subscribed.update(symbols)
            log.info("%s: MarketDataRequest %s for %d symbol(s): %s", self.name,
                     (message.get(262) or b"?").decode(errors="replace"),
                     len([t for t, _ in message.fields if t == 55]),
                     ", ".join(f"35={t.decode()}" for t in sorted({t for t, _ in replies}))
                     or "unsubscribed")  # fmt: skip
            for reply_type, body in replies:
                self.server.send(self, reply_type, body)
        elif msg_type == b"D":
            routed = core.new_order(self.key, message.body(), now_ns)
            log.info(
                "%s: NewOrderSingle %s -> %s",
                self.name,
                (message.get(11) or b"?").decode(errors="replace"),
                ", ".join(_describe(r) for r in routed) or "duplicate ClOrdID, ignored",
            )
            self.server.deliver(routed)
        elif msg_type == b"F":
            routed = core.cancel_order(self.key, message.body(), now_ns)
            log.info(
                "%s: OrderCancelRequest %s -> %s",
                self.name,
                (message.get(41) or b"?").decode(errors="replace"),
                ", ".join(_describe(r) for r in routed),
            )
            self.server.deliver(routed)
        else:
            raise UnsupportedMessageType


def _describe(routed: Routed) -> str:
    values = dict(routed.body)
    if routed.msg_type == b"8":
        kind = {b"0": "new", b"F": "filled", b"4": "cancelled", b"8": "rejected"}.get(
            values.get(150, b""), "?"
        )
        if kind == "filled":
            kind += f" {values[32].decode()} @ {values[31].decode()}"
        elif kind == "rejected":
            kind += f" ({values.get(58, b'').decode(errors='replace')})"
        return kind
    return f"35={routed.msg_type.decode()}"


class ExchangeServer:
    """An `Acceptor` serving `core` to `sessions` (see the module docstring).

    Args:
        core: the simulated venue.
        sessions: the sessions accepted.
        tick_s: how often the market is advanced to the wall clock.
    """

    def __init__(
        self, core: ExchangeCore, sessions: list[ExchangeSession], tick_s: float = 0.02
    ) -> None:
        self.core = core
        self.sessions = {s.config.key: s for s in sessions}
        self.tick_s = tick_s
        self.apps: dict[Key, _SessionApp] = {}
        self.acceptor = Acceptor([s.config for s in sessions], self._application)
        self.sent: dict[str, int] = {}
        self._logged_on: set[Key] = set()
        self._pacer: asyncio.Task[None] | None = None
        self._dirty: set[Key] = set()
        self.quiet = False

    def set_quiet(self, quiet: bool) -> None:
        """Quiet: no market data and no synthetic order flow (the sessions stay logged on and
        heartbeat; orders sent are still answered), as a market after its close. Back to
        normal, the market skips what it would have sent meanwhile (no burst of old events)."""
        if self.quiet and not quiet:
            self.core.advance(time.time_ns())  # the backlog, dropped
        self.quiet = quiet
        log.info("market %s", "quiet (heartbeats only)" if quiet else "live again")

    def _application(self, config: SessionConfig) -> _SessionApp:
        app = _SessionApp(self, self.sessions[config.key])
        self.apps[config.key] = app
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen and start pacing the market; return the port."""
        bound = await self.acceptor.start(host, port)
        self._pacer = asyncio.get_running_loop().create_task(self._pace())
        return bound

    async def close(self) -> None:
        if self._pacer is not None:
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pacer
        await self.acceptor.close()

    # ------------------------------------------------------------------ sending
    def _live(self, key: Key) -> SessionState | None:
        connection = self.acceptor.active.get(key)
        state = connection.state if connection is not None else None
        return state if state is not None and state.logged_on else None

    def send(self, app: _SessionApp, msg_type: bytes, body: Body) -> None:
        state = self._live(app.key) or app.state
        if state is None or state.closed:
            return
        state.send(msg_type, body, now=time.time())
        self._dirty.add(app.key)
        name = msg_type.decode()
        self.sent[name] = self.sent.get(name, 0) + 1

    def deliver(self, routed: list[Routed]) -> None:
        """Send each message to its session, and 35=8 copies to the drop-copy sessions."""
        apps = [a for k, a in self.apps.items() if self._live(k) is not None]
        for item in routed:
            if item.to is not None:
                app = self.apps.get(item.to)
                if app is not None:
                    self.send(app, item.msg_type, item.body)
            if item.msg_type == b"X":
                # the index (a status scenario's) goes to every subscriber, asked or not
                everyone = bool(item.symbols) and item.symbols <= self.core.broadcast
                for app in apps:
                    if app.subscribed:
                        body = (
                            item.body if everyone
                            else self.core.filter_incremental(item.body, app.subscribed)
                        )  # fmt: skip
                        if body is not None:
                            self.send(app, b"X", body)
            elif item.msg_type in STATUS_TYPES:
                for app in apps:
                    if app.subscribed:
                        self.send(app, item.msg_type, item.body)
            elif item.msg_type == b"W":  # a periodic snapshot: unsolicited, to its subscribers
                for app in apps:
                    if item.symbols & app.subscribed:
                        self.send(app, b"W", item.body)
            elif item.to is None or item.msg_type == b"8":
                for app in apps:
                    if app.drop_copy and app.key != item.to:
                        self.send(app, item.msg_type, item.body)

    def flush(self) -> None:
        """Write what the sessions have to send (the pacer does it every tick)."""
        self._flush()

    def _flush(self) -> None:
        for key in self._dirty:
            connection = self.acceptor.active.get(key)
            if connection is not None:
                connection.flush()
        self._dirty.clear()

    async def _pace(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self._log_sessions()
            if not self.quiet:
                self.deliver(self.core.advance(time.time_ns()))
            self._flush()

    def _log_sessions(self) -> None:
        live = {k for k in self.sessions if self._live(k) is not None}
        for key in live - self._logged_on:
            log.info("%s: logged on (%s -> %s)", self.sessions[key].config.name, key[2], key[1])
        for key in self._logged_on - live:
            log.info("%s: logged off", self.sessions[key].config.name)
        self._logged_on = live


class ExchangeThread:
    """An `ExchangeServer` in a daemon thread with its own event loop.

    `start()` returns the port once listening; `stop()` closes the sessions and joins.
    """

    def __init__(self, core: ExchangeCore, sessions: list[ExchangeSession],
                 host: str = "127.0.0.1", port: int = 0) -> None:  # fmt: skip
        self.server = ExchangeServer(core, sessions)
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="exchange", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.port = self._loop.run_until_complete(self.server.start(self.host, self.port))
        except BaseException as exc:  # noqa: BLE001 - handed to start()'s caller
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.close())
        self._loop.close()

    def start(self) -> int:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self.port

    def inject(self, msg_type: bytes, body: Body) -> None:
        """Send a message to every drop-copy session (e.g. a client's stop order, 35=D), or a
        35=X to the sessions subscribed to its symbols."""
        symbols = frozenset(v for t, v in body if t == 55)

        def deliver() -> None:
            self.server.deliver([Routed(None, msg_type, body, symbols)])
            self.server.flush()

        self._loop.call_soon_threadsafe(deliver)

    def inject_built(self, build: Callable[[], list[tuple[bytes, Body]]]) -> None:
        """Like `inject`, for messages `build()` makes on the exchange's own thread: it sees the
        market exactly as the messages already sent left it (a stop priced off the last trade
        cannot arrive behind a later trade that passed it)."""

        def deliver() -> None:
            routed = [Routed(None, msg_type, body, frozenset(v for t, v in body if t == 55))
                      for msg_type, body in build()]  # fmt: skip
            if routed:
                self.server.deliver(routed)
                self.server.flush()

        self._loop.call_soon_threadsafe(deliver)

    def add_status(self, status: StatusScenario) -> None:
        """`ExchangeCore.add_status` on the exchange's own thread."""
        self._loop.call_soon_threadsafe(self.server.core.add_status, status)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
