"""asyncio transport for FIX sessions: an acceptor serving many sessions and an initiator.

The only socket code of the session layer. Each connection is an `asyncio.Protocol`: a received
chunk (up to 256 KiB) is framed at once and every frame goes through the session state before
anything is written, so the inbound path costs one callback per chunk, not per message. One
ticker per engine drives heartbeats and timeouts for all its connections.

`Acceptor` finds the session of a connection from its first message (BeginString, and the
CompIDs seen from our side); an unknown session, a second connection for a session already
logged on, or garbage before the Logon is logged and disconnected without touching the
other sessions.

`Initiator` connects, logs on, reconnects with exponential backoff, and hands the application
messages it receives to the caller in batches (see the package docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from connectors.fix.session.config import SessionConfig
from connectors.fix.session.dictionary import (
    DEFAULT_DICTIONARY_DIR,
    DICTIONARY_DIR_ENV,
    DataDictionary,
    dictionary_path,
    load_dictionary,
)
from connectors.fix.session.registry import track
from connectors.fix.session.state import Application, SessionState, ignore_application
from connectors.fix.session.store import FileStore, MemoryStore, MessageStore
from connectors.fix.session.wire import Frame, Framer, Garbled, Message, parse, show
from domain.errors import ConfigError

log = logging.getLogger("brokerflow.fix.engine")

TICK_S = 0.1
READ_CHUNK = 256 * 1024


def open_store(config: SessionConfig) -> MessageStore:
    """A file store under `store_dir`, or a memory store when none is configured."""
    if config.store_dir:
        return FileStore(Path(config.store_dir), config.name)
    return MemoryStore()


def session_dictionary(config: SessionConfig) -> DataDictionary | None:
    """The data dictionary for a session; None when it does not validate.

    Raises:
        ConfigError: the session validates and no dictionary is found for its version: it
            refuses to start rather than check the header only (which let malformed messages
            through with one warning, easily missed).
    """
    if not config.validate:
        return None
    path = dictionary_path(config.begin_string, config.default_appl_ver_id, config.dictionary)
    if path is None:
        version = config.default_appl_ver_id or config.begin_string
        where = config.dictionary or os.environ.get(DICTIONARY_DIR_ENV) or DEFAULT_DICTIONARY_DIR
        msg = (f"FIX session {config.name}: validate = true but no dictionary for {version} in "
               f"{where} (shipped: FIX.4.2, FIX.4.4); set `dictionary` or {DICTIONARY_DIR_ENV}, "
               "or validate = false")  # fmt: skip
        raise ConfigError(msg)
    return load_dictionary(path)


CLOSE_GRACE_S = 2.0  # how long a closing connection may take to flush before it is dropped


class Connection(asyncio.Protocol):
    """One TCP connection carrying one session (bound on the first frame for an acceptor)."""

    def __init__(self, engine: _Engine, state: SessionState | None = None) -> None:
        self.engine = engine
        self.state = state
        self.framer = Framer(state.config.max_message_size if state else engine.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        with contextlib.suppress(OSError, AttributeError):
            import socket

            transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
        self.engine.connections.add(self)
        if self.state is not None:
            self.state.connected_at = time.time()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        frames = self.framer.feed(data)
        if self.framer.skipped:
            log.warning("%s: %d bytes of garbage before a message dropped", self.peer,
                        self.framer.skipped)
            self.framer.skipped = 0
        if not frames:
            return
        state = self.state
        if state is None:
            state = self.state = self.engine.bind(self, frames[0], now)
            if state is None:
                self.close()
                return
        on_frame = state.on_frame
        for frame in frames:
            on_frame(frame, now)
            if state.closed:
                break
        self.flush()

    def flush(self) -> None:
        """Write what the session produced; close the connection if the session ended."""
        state = self.state
        if state is None or self.transport is None:
            return
        out = state.take_output()
        if out:
            self.transport.write(b"".join(out))
        state.store.flush()
        self.engine.after_batch(self)
        if state.closed:
            self.close()

    def tick(self, now: float) -> None:
        if self.state is not None:
            self.state.on_timer(now)
            self.flush()
        elif now - self.engine.started_at(self) > 10.0:
            log.warning("%s: no message within 10 s of connecting: disconnecting", self.peer)
            self.close()

    def close(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            # close() waits for the write buffer to drain: a peer that stopped reading (a
            # half-open connection) would keep it open for ever. Drop it after a grace period.
            asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self._abort)
        self.engine.release(self)

    def _abort(self) -> None:
        if not self.closed.done() and self.transport is not None:
            log.warning("%s: the peer does not read: connection dropped", self.peer)
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        state = self.state
        if state is not None and not state.closed:
            state.closed = f"connection lost ({exc or 'closed by the peer'})"
            log.warning("%s: %s", state.config.name, state.closed)
        if state is not None:
            state.store.flush()
        self.engine.connections.discard(self)
        self.engine.release(self)
        if not self.closed.done():
            self.closed.set_result(None)


class _Engine:
    """What acceptor and initiator share: the live connections and the ticker."""

    max_message_size = 1 << 20

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._connected_at: dict[Connection, float] = {}

    def start_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop_ticker(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.time()
            for connection in list(self.connections):
                connection.tick(now)

    def started_at(self, connection: Connection) -> float:
        return self._connected_at.setdefault(connection, time.time())

    def bind(self, connection: Connection, first: Frame, now: float) -> SessionState | None:
        raise NotImplementedError

    def release(self, connection: Connection) -> None:
        self._connected_at.pop(connection, None)

    def after_batch(self, connection: Connection) -> None:
        """Hook: called after each batch of frames (and each tick) was handled."""


class Acceptor(_Engine):
    """Accept connections for a set of sessions (each `role = "acceptor"` config).

    Args:
        sessions: the sessions served, found by (BeginString, SenderCompID, TargetCompID).
        application: builds the application of a session for each new connection.
    """

    def __init__(
        self,
        sessions: list[SessionConfig],
        application: Callable[[SessionConfig], Application] = lambda config: ignore_application,
    ) -> None:
        super().__init__()
        self.sessions = {config.key: config for config in sessions}
        self.application = application
        self.stores = {config.key: open_store(config) for config in sessions}
        self.dictionaries = {config.key: session_dictionary(config) for config in sessions}
        self.max_message_size = max((c.max_message_size for c in sessions), default=1 << 20)
        self.active: dict[tuple[str, str, str], Connection] = {}
        self.server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; return the port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Connection(self), host, port)
        self.start_ticker()
        bound = self.server.sockets[0].getsockname()[1]
        log.info("FIX acceptor listening on %s:%d for %d session(s)", host, bound,
                 len(self.sessions))
        return int(bound)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.close()
        await self.stop_ticker()
        if self.server is not None:
            await self.server.wait_closed()
        for store in self.stores.values():
            if isinstance(store, FileStore):
                store.close()

    def bind(self, connection: Connection, first: Frame, now: float) -> SessionState | None:
        if first.garbled:
            log.warning("%s: first message garbled (%s): disconnecting", connection.peer,
                        first.garbled)
            return None
        try:
            message = parse(first.raw)
        except Garbled as exc:
            log.warning("%s: first message garbled (%s): disconnecting", connection.peer, exc)
            return None
        key = _key_of(message)
        config = self.sessions.get(key)
        if config is None:
            log.warning("%s: no session %s -> %s on %s (first message %s): disconnecting",
                        connection.peer, key[2], key[1], key[0], show(first.raw, 80))
            return None
        current = self.active.get(key)
        if current is not None and current is not connection:
            log.warning("%s: session %s already has a connection (%s): second one dropped",
                        connection.peer, config.name, current.peer)
            return None
        self.active[key] = connection
        return track(SessionState(
            config, self.stores[key], self.dictionaries[key], self.application(config),
            initiator=False, now=now,
        ))  # fmt: skip

    def release(self, connection: Connection) -> None:
        super().release(connection)
        state = connection.state
        if state is not None and self.active.get(state.config.key) is connection:
            del self.active[state.config.key]


def _key_of(message: Message) -> tuple[str, str, str]:
    def text(tag: int) -> str:
        return (message.get(tag) or b"").decode("ascii", "replace")

    return (message.begin_string.decode("ascii", "replace"), text(56), text(49))


class AppBatch:
    """Application messages received in one read, in order.

    Attributes:
        seqs: their MsgSeqNum (34).
        messages: their raw bytes (from `8=` through CheckSum (10)).
        gaps: messages the session lost (`SessionState.on_gap`): (how many of `messages` came
            before, first and last MsgSeqNum lost, why); a batch may hold only gaps.
    """

    __slots__ = ("seqs", "messages", "gaps")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.messages: list[bytes] = []
        self.gaps: list[tuple[int, int, int, str]] = []

    def __len__(self) -> int:
        return len(self.messages)


class Initiator(_Engine):
    """Connect to a counterparty, log on, stay connected (reconnecting with backoff).

    Args:
        config: the session (`role = "initiator"`).
        store: defaults to `open_store(config)`.
        max_batches: bound of the queue of received batches (backpressure: reading pauses
            while it is full).
    """

    def __init__(
        self, config: SessionConfig, store: MessageStore | None = None, max_batches: int = 64
    ) -> None:
        super().__init__()
        self.config = config
        self.store = store if store is not None else open_store(config)
        self.dictionary = session_dictionary(config)
        self.max_message_size = config.max_message_size
        self._batches: asyncio.Queue[AppBatch] = asyncio.Queue(max_batches)
        self._pending = AppBatch()
        self._connection: Connection | None = None
        self._logged_on = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.connects = 0

    # ------------------------------------------------------------------ API
    def start(self) -> None:
        """Start connecting in the background (see `wait_logged_on`)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
            self.start_ticker()

    async def wait_logged_on(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._logged_on.wait(), timeout)

    @property
    def logged_on(self) -> bool:
        connection = self._connection
        return connection is not None and connection.state is not None and (
            connection.state.logged_on
        )

    @property
    def session(self) -> SessionState | None:
        return self._connection.state if self._connection is not None else None

    def send(self, message: object) -> int:
        """Send an application message; return its MsgSeqNum.

        Args:
            message: a `simplefix.FixMessage` (its header fields are replaced by the session's),
                or a `(msg_type, [(tag, value), ...])` pair of bytes/str values.

        Raises:
            ConnectionError: not logged on (the message is not sent).
        """
        msg_type, body = _outbound(message)
        state = self.session
        if state is None or not state.logged_on:
            msg = f"{self.config.name}: not logged on, message not sent"
            raise ConnectionError(msg)
        seq = state.send(msg_type, body, now=time.time())
        assert self._connection is not None
        self._connection.flush()
        return seq

    async def batches(self) -> AsyncIterator[AppBatch]:
        """Received application messages, one `AppBatch` per read, until `stop()`."""
        while True:
            batch = await self._batches.get()
            if not batch.messages and self._stopping:
                return
            yield batch

    async def stop(self, timeout: float = 2.0) -> None:
        """Log out (waiting up to `timeout` for the answer), disconnect, stop reconnecting."""
        self._stopping = True
        connection = self._connection
        if connection is not None and connection.state is not None and connection.state.logged_on:
            connection.state.logout("session stopped", time.time())
            connection.flush()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(connection.closed), timeout)
        if connection is not None:
            connection.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.stop_ticker()
        if isinstance(self.store, FileStore):
            self.store.close()
        with contextlib.suppress(asyncio.QueueFull):
            self._batches.put_nowait(AppBatch())

    # ------------------------------------------------------------------ internals
    def _application(self, state: SessionState, message: Message) -> None:
        self._pending.seqs.append(message.seq)
        self._pending.messages.append(message.raw)

    def _gap(self, first: int, last: int, why: str) -> None:
        pending = self._pending
        pending.gaps.append((len(pending.messages), first, last, why))

    def after_batch(self, connection: Connection) -> None:
        state = connection.state
        if state is not None and state.logged_on and not self._logged_on.is_set():
            self._logged_on.set()
        elif (state is None or not state.logged_on) and self._logged_on.is_set():
            self._logged_on.clear()  # logged out: waiters must not see a stale logon
        pending = self._pending
        if pending.messages or pending.gaps:
            self._pending = AppBatch()
            try:
                self._batches.put_nowait(pending)
            except asyncio.QueueFull:
                # Backpressure: stop reading until the consumer catches up.
                if connection.transport is not None:
                    connection.transport.pause_reading()
                asyncio.get_running_loop().create_task(self._put(pending, connection))

    async def _put(self, batch: AppBatch, connection: Connection) -> None:
        await self._batches.put(batch)
        if connection.transport is not None and not connection.transport.is_closing():
            connection.transport.resume_reading()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        config = self.config
        backoff = config.reconnect_backoff
        while not self._stopping:
            state = track(SessionState(
                config, self.store, self.dictionary, self._application, initiator=True,
                now=time.time(),
            ))  # fmt: skip
            state.on_gap = self._gap
            try:
                _transport, connection = await loop.create_connection(
                    lambda state=state: Connection(self, state), config.host, config.port
                )
            except OSError as exc:
                failures += 1
                delay = backoff.delay(failures)
                log.warning("%s: connect to %s:%d failed (%s): retrying in %.1f s", config.name,
                            config.host, config.port, exc, delay)
                await asyncio.sleep(delay)
                continue
            self.connects += 1
            self._connection = connection
            state.start_logon(time.time())
            connection.flush()
            await connection.closed
            state.abandon_resend("the connection closed before the resend arrived")
            if self._pending.gaps:
                self.after_batch(connection)
            self._logged_on.clear()
            if state.received_logon:
                failures = 0
            if self._stopping:
                break
            failures += 1
            delay = backoff.delay(failures)
            log.warning("%s: disconnected (%s): reconnecting in %.1f s", config.name,
                        state.closed or "connection closed", delay)
            await asyncio.sleep(delay)


def _outbound(message: object) -> tuple[bytes, list[tuple[int, bytes]]]:
    """(MsgType, body fields) of a simplefix message or a (msg_type, fields) pair."""
    pairs = getattr(message, "pairs", None)
    if pairs is not None:
        msg_type = b""
        body: list[tuple[int, bytes]] = []
        for tag, value in pairs:
            tag_number = int(tag)
            if tag_number == 35:
                msg_type = value
            elif tag_number not in (8, 9, 10, 34, 49, 52, 56):
                body.append((tag_number, value))
        return msg_type, body
    msg_type, fields = message  # type: ignore[misc]
    return _bytes(msg_type), [(int(tag), _bytes(value)) for tag, value in fields]


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()
