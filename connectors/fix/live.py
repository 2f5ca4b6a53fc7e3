"""Connectors layer: live FIX sessions as Bytewax sources, and an order-entry session.

Configuration: the session layer's `[[fix.session]]` tables (`connectors.fix.session.config`)
with three more keys for what a session is used for::

    [[fix.session]]
    name = "simx"
    sender_comp_id = "BROKERFLOW"
    target_comp_id = "SIMX"
    port = 9878
    store_dir = ".brokerflow/fix"
    purpose = ["market-data", "drop-copy"]   # and/or "order-entry"
    symbols = ["AAPL", "MSFT"]               # market-data: subscribed with one 35=V per logon
    drop_copy = true                          # simulate-exchange's acceptor side only
    snapshot_min_interval_s = 2.0             # book recovery: a symbol's 35=V 263=0 at most
    snapshot_max_symbols = 50                 #   once per 2 s, 50 symbols a message at most

`FixSessionSource`: one partition per market-data / drop-copy session. The partition runs an
`Initiator` on an asyncio loop in a background thread (Bytewax's `next_batch` is synchronous)
and takes its `AppBatch`es from a bounded thread-safe queue: everything queued since the last
call is merged into one `RawChunk` (up to `MAX_LINES`), so the flows pay per chunk, not per
message. After every logon a market-data session sends its MarketDataRequest (35=V: 263=1
snapshot + updates, 264=1 top of book, 265=1 incremental, 267 entry types 0/1/2, 146 symbols).

Waiting for input: while messages come, an empty queue is looked at again every `IDLE_S`. Once
no session of the source has received anything for `QUIET_AFTER_S` (a quiet market), an empty
`next_batch` waits for the next message instead, up to `QUIET_WAIT_S`, woken by the session
thread that queues it (`_Doorbell`). The worker then sleeps there rather than in Bytewax's
own loop, which looks for work every millisecond (its cooldown): on an idle market that loop
was most of what `brokerflow run` cost (`bench run-cpu`). The flow's other timers (a quote
shard's quiet flush, an epoch end) run between two waits, so at most `QUIET_WAIT_S` late, and
only on a market that has been quiet for a second; the first message after the quiet goes in
at once.

Book integrity (issue 21, docs/book-integrity.md): the flows call `FixSessionSource.
request_snapshot(symbols)` (`FlowContext.request_snapshot`, from a worker thread) when books turn
stale; the request is handed to the loop of the market-data session that subscribed to each
symbol, which sends a MarketDataRequest (35=V) 263=0, rate-limited
(`connectors.fix.snapshot_requests`). And when a market-data session has a MsgSeqNum gap it could
not fill (the ResendRequest answered by gap fills alone, or not answered:
`SessionState.on_gap`), its partition emits `BookDamaged(symbol, now, "session_gap")` for every
symbol of the subscription, at that place in its stream, so the flows mark them stale.

Resuming (Bytewax recovery): a partition's snapshot is the last MsgSeqNum (34) it delivered.
On resume, the session store's expected inbound number is set back to that + 1, so the
counterparty's Logon shows a gap and the session asks for a resend (ResendRequest) of what was
received but not processed before the crash. Guaranteed: with recovery and a file store, no
application message the counterparty still holds is skipped, and a message delivered twice is
absorbed by the sinks (every write is keyed by the input). Not guaranteed: a counterparty
that does not keep its sent messages answers with a gap fill and those messages are lost
(logged by the session layer); without recovery the session continues after the last message
it received, so what was received but not yet processed at a crash is lost; with
`reset_on_logon` sequence numbers restart at 1 and nothing can be resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.fix.session import AppBatch, Initiator, SessionConfig
from connectors.fix.session.config import session_from_mapping, session_tables
from connectors.fix.session.engine import open_store, session_dictionary
from connectors.fix.session.store import MessageStore
from connectors.fix.snapshot_requests import (
    DEFAULT_MAX_SYMBOLS,
    DEFAULT_MIN_INTERVAL_S,
    SnapshotLimiter,
    snapshot_request,
)
from connectors.raw import RawChunk
from domain.book_integrity import SESSION_GAP
from domain.errors import ConfigError
from domain.events import BookDamaged

log = logging.getLogger("brokerflow.fix.live")

PURPOSES = ("market-data", "drop-copy", "order-entry")
MAX_LINES = 5_000
IDLE_S = 0.02
QUIET_AFTER_S = 1.0
QUIET_WAIT_S = 0.05
_QUEUE_BATCHES = 256
SOH = b"\x01"
_HEADER_TAGS = frozenset((8, 9, 10, 34, 35, 43, 49, 52, 56, 97, 122))


@dataclass(frozen=True, slots=True)
class LiveSession:
    """A configured session and what it is used for (see the module docstring)."""

    config: SessionConfig
    purposes: frozenset[str] = frozenset(("market-data", "drop-copy"))
    symbols: tuple[str, ...] = ()
    drop_copy: bool = True
    snapshot_min_interval_s: float = DEFAULT_MIN_INTERVAL_S
    snapshot_max_symbols: int = DEFAULT_MAX_SYMBOLS

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def is_source(self) -> bool:
        return bool(self.purposes & {"market-data", "drop-copy"})


def live_session_from_mapping(table: dict[str, Any], where: str = "session") -> LiveSession:
    """A `LiveSession` from a `[[fix.session]]` table; ConfigError names the key at fault."""
    values = dict(table)
    purpose = values.pop("purpose", ["market-data", "drop-copy"])
    symbols = values.pop("symbols", [])
    drop_copy = values.pop("drop_copy", True)
    interval = values.pop("snapshot_min_interval_s", DEFAULT_MIN_INTERVAL_S)
    max_symbols = values.pop("snapshot_max_symbols", DEFAULT_MAX_SYMBOLS)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval < 0:
        msg = f"{where}: snapshot_min_interval_s = {interval!r} is not a number of seconds >= 0"
        raise ConfigError(msg)
    if isinstance(max_symbols, bool) or not isinstance(max_symbols, int) or max_symbols < 1:
        msg = f"{where}: snapshot_max_symbols = {max_symbols!r} is not a whole number >= 1"
        raise ConfigError(msg)
    purposes = [purpose] if isinstance(purpose, str) else purpose
    if not isinstance(purposes, list) or not purposes or any(p not in PURPOSES for p in purposes):
        msg = f"{where}: purpose = {purpose!r}: use one or more of {', '.join(PURPOSES)}"
        raise ConfigError(msg)
    if not isinstance(symbols, list) or not all(isinstance(s, str) and s for s in symbols):
        msg = f"{where}: symbols = {symbols!r} is not a list of symbols"
        raise ConfigError(msg)
    if "market-data" in purposes and not symbols and values.get("role") != "acceptor":
        msg = f"{where}: a market-data session needs symbols = [\"...\"] to subscribe to"
        raise ConfigError(msg)
    if not isinstance(drop_copy, bool):
        msg = f"{where}: drop_copy = {drop_copy!r} is not true or false"
        raise ConfigError(msg)
    config = session_from_mapping(values, where)
    # Its dictionary now (loaded once, cached): a session that validates with none found is
    # a one-line error when the command starts, not a failure later inside the flow.
    session_dictionary(config)
    return LiveSession(
        config, frozenset(purposes), tuple(symbols), drop_copy, float(interval), max_symbols
    )


def load_live_sessions(path: Path, document: dict[str, Any] | None = None) -> list[LiveSession]:
    """The `[[fix.session]]` tables of a TOML file (none when it has no [fix] table); `document`:
    the file already parsed (`flows.settings.Settings.fix_sessions`), None reads it."""
    tables = session_tables(path, document)
    sessions = [live_session_from_mapping(table, where) for table, where in tables]
    names = [s.name for s in sessions]
    if len(set(names)) != len(names):
        msg = f"{path}: two [[fix.session]] tables have the same name"
        raise ConfigError(msg)
    return sessions


def market_data_request(req_id: str, symbols: tuple[str, ...]) -> tuple[bytes, list]:
    """A MarketDataRequest (35=V) for top of book and trades, snapshot + updates."""
    fields: list[tuple[int, bytes | str]] = [
        (262, req_id), (263, b"1"), (264, b"1"), (265, b"1"),
        (267, b"3"), (269, b"0"), (269, b"1"), (269, b"2"),
        (146, str(len(symbols))),
    ]  # fmt: skip
    fields += [(55, symbol) for symbol in symbols]
    return b"V", fields


def outbound_fields(raw: bytes) -> tuple[bytes, list[tuple[int, bytes]]]:
    """(MsgType, body fields) of an encoded message: what `Initiator.send` takes."""
    msg_type = b""
    body = []
    for item in raw.rstrip(SOH).split(SOH):
        tag_text, _, value = item.partition(b"=")
        tag = int(tag_text)
        if tag == 35:
            msg_type = value
        elif tag not in _HEADER_TAGS:
            body.append((tag, value))
    return msg_type, body


class SessionThread:
    """An `Initiator` on its own event loop in a daemon thread.

    Args:
        session: the session.
        store: its message store (opened by the caller, e.g. to rewind it before logon).
        deliver: called on the loop thread with each received `AppBatch`; None drops them.
            It returns False to say "full, retry shortly" (backpressure: the initiator stops
            reading while its own queue is full).
    """

    def __init__(
        self,
        session: LiveSession,
        store: MessageStore,
        deliver: Callable[[AppBatch], bool] | None = None,
    ) -> None:
        self.session = session
        self.store = store
        self._deliver = deliver
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"fix-{session.name}", daemon=True)
        self.initiator: Initiator | None = None
        self._done = asyncio.Event()
        self.received = 0
        self.snapshots = SnapshotLimiter(
            session.snapshot_min_interval_s, session.snapshot_max_symbols
        )
        self._subscribed = frozenset(session.symbols)
        self._snapshot_timer: asyncio.TimerHandle | None = None
        self._snapshot_requests = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        initiator = self.initiator = Initiator(self.session.config, self.store)
        initiator.start()
        tasks = [asyncio.create_task(self._consume(initiator))]
        if "market-data" in self.session.purposes and self.session.symbols:
            tasks.append(asyncio.create_task(self._subscribe(initiator)))
        await self._done.wait()
        await initiator.stop()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _subscribe(self, initiator: Initiator) -> None:
        logons = 0
        while True:
            await initiator.wait_logged_on()
            if not initiator.logged_on:  # logged out, the connection not closed yet
                await asyncio.sleep(0.1)
                continue
            logons += 1
            req_id = f"{self.session.name}-{int(time.time())}-{logons}"
            with contextlib.suppress(ConnectionError):
                initiator.send(market_data_request(req_id, self.session.symbols))
                log.info("%s: MarketDataRequest %s sent for %d symbol(s)", self.session.name,
                         req_id, len(self.session.symbols))
            while initiator.logged_on:
                await asyncio.sleep(0.1)

    def request_snapshot(self, symbols: list[str]) -> None:
        """Ask for 35=W snapshots (263=0) of those of `symbols` this session subscribed to.

        Any thread (a Bytewax worker's): the request is handed to the session's loop, which
        sends it when the rate limit (`SnapshotLimiter`) and the logon allow.
        """
        wanted = [s for s in symbols if s in self._subscribed]
        if not wanted or "market-data" not in self.session.purposes:
            return
        with contextlib.suppress(RuntimeError):  # the loop has stopped: the run is ending
            self._loop.call_soon_threadsafe(self._ask_snapshots, wanted)

    def _ask_snapshots(self, symbols: list[str]) -> None:
        self.snapshots.ask(symbols)
        self._send_snapshots()

    def _send_snapshots(self) -> None:
        """On the loop: send what the limiter lets go now; come back for what has to wait."""
        self._snapshot_timer = None
        initiator = self.initiator
        now = time.monotonic()
        if initiator is None or not initiator.logged_on:
            wait = 0.5  # the next logon subscribes afresh; until then, keep them waiting
        else:
            for symbols in self.snapshots.take(now):
                self._snapshot_requests += 1
                req_id = f"{self.session.name}-snap-{int(time.time())}-{self._snapshot_requests}"
                try:
                    initiator.send(snapshot_request(req_id, symbols))
                except ConnectionError:
                    self.snapshots.ask(symbols)  # logged out meanwhile: later
                    break
                log.info("%s: stale books: snapshot request %s sent for %d symbol(s): %s",
                         self.session.name, req_id, len(symbols), ", ".join(symbols[:10]))
            due = self.snapshots.next_due()
            wait = None if due is None else max(0.05, due - now)
        if wait is not None and self.snapshots.waiting and self._snapshot_timer is None:
            self._snapshot_timer = self._loop.call_later(wait, self._send_snapshots)

    async def _consume(self, initiator: Initiator) -> None:
        deliver = self._deliver
        async for batch in initiator.batches():
            self.received += len(batch)
            if deliver is None:
                continue
            while not deliver(batch):
                await asyncio.sleep(IDLE_S)

    def wait_logged_on(self, timeout: float) -> bool:
        """Block until logged on (True) or `timeout` seconds passed (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            initiator = self.initiator
            if initiator is not None and initiator.logged_on:
                return True
            time.sleep(0.02)
        return False

    def send(self, raw: bytes, logon_timeout: float = 10.0) -> int:
        """Send an encoded application message (its header is the session's); its MsgSeqNum.

        Raises:
            ConnectionError: not logged on within `logon_timeout` (the message is not sent).
        """
        if not self.wait_logged_on(logon_timeout):
            msg = f"{self.session.name}: not logged on within {logon_timeout:g} s"
            raise ConnectionError(msg)
        initiator = self.initiator
        assert initiator is not None
        message = outbound_fields(raw)

        async def send() -> int:
            return initiator.send(message)

        return asyncio.run_coroutine_threadsafe(send(), self._loop).result(logon_timeout)

    def stop(self) -> None:
        """Log out and stop the thread (idempotent)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._done.set)
            self._thread.join(10)


class _Doorbell:
    """Rung by the session threads of one source with each batch they queue; a partition with
    nothing to read waits on it once the whole source has been quiet for `QUIET_AFTER_S`."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._waiting = 0
        self.last_ring = time.monotonic()

    def ring(self) -> None:
        self.last_ring = time.monotonic()
        if self._waiting:  # no lock taken while messages flow and nobody waits
            with self._cond:
                self._cond.notify_all()

    def quiet(self) -> bool:
        """No batch queued for `QUIET_AFTER_S`."""
        return time.monotonic() - self.last_ring >= QUIET_AFTER_S

    def wait(self, seen: float, timeout: float) -> None:
        """Until a ring after `seen` (a `last_ring` value), or `timeout` seconds."""
        with self._cond:
            self._waiting += 1
            try:
                # `last_ring` is checked under the lock after `_waiting` counts us: a ring
                # either is seen here or finds us waiting and notifies.
                if self.last_ring == seen:
                    self._cond.wait(timeout)
            finally:
                self._waiting -= 1


class _LivePartition(StatefulSourcePartition[RawChunk, int]):
    def __init__(
        self,
        session: LiveSession,
        resume: int | None,
        stop: threading.Event,
        until: float | None,
        doorbell: _Doorbell | None = None,
    ) -> None:
        store = open_store(session.config)
        if resume is not None and store.next_target > resume + 1:
            # Received before the crash but not processed: have the counterparty resend it.
            log.info("%s: resuming after MsgSeqNum %d (the store had %d): asking for a resend",
                     session.name, resume, store.next_target - 1)
            store.next_target = resume + 1
            store.flush()
        self._queue: queue.Queue[AppBatch] = queue.Queue(_QUEUE_BATCHES)
        self._name = f"fix:{session.name}"
        self._last = resume or 0
        self._stop = stop
        self._until = until
        self._awake: datetime | None = None
        self._doorbell = doorbell or _Doorbell()
        # A market-data session's lost messages damage the books of all its symbols.
        self._damaged_symbols = session.symbols if "market-data" in session.purposes else ()
        self._thread = SessionThread(session, store, self._offer)
        self._thread.start()

    def _offer(self, batch: AppBatch) -> bool:
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            return False
        self._doorbell.ring()
        return True

    def next_batch(self) -> list[RawChunk]:
        if self._stop.is_set() or (self._until is not None and time.monotonic() >= self._until):
            self._thread.stop()
            raise StopIteration
        doorbell = self._doorbell
        seen = doorbell.last_ring  # before looking at the queue: a batch queued after it rings
        if self._queue.empty() and doorbell.quiet():
            # A quiet market: wait here for the next message (see the module docstring), then
            # be asked again at once (no next_awake) while it stays quiet.
            doorbell.wait(seen, QUIET_WAIT_S)
            chunks = self._take()
            self._awake = None
            return chunks
        chunks = self._take()
        self._awake = None if chunks else datetime.now(UTC) + timedelta(seconds=IDLE_S)
        return chunks

    def _take(self) -> list[RawChunk]:
        """Everything queued, merged into one chunk (up to `MAX_LINES` lines); [] if none."""
        lines: list[bytes] = []
        damaged: list[tuple[int, BookDamaged]] = []
        first = 0
        get = self._queue.get_nowait
        while len(lines) < MAX_LINES:
            try:
                batch = get()
            except queue.Empty:
                break
            if batch.gaps:
                damaged += self._damage(len(lines), batch.gaps)
            if not batch.seqs:
                continue
            if not lines:
                first = batch.seqs[0]
            lines.extend(batch.messages)
            self._last = batch.seqs[-1]
        if not lines and not damaged:
            return []
        return [RawChunk(self._name, first or self._last + 1, lines, tuple(damaged))]

    def _damage(
        self, offset: int, gaps: list[tuple[int, int, int, str]]
    ) -> list[tuple[int, BookDamaged]]:
        """BookDamaged of every subscribed symbol for each gap, placed before the line that
        followed it."""
        now = time.time_ns()
        out = []
        for position, first, last, why in gaps:
            detail = f"MsgSeqNum {first}..{last} lost: {why}"
            log.warning("%s: %s: the books of its %d symbol(s) are stale until their next "
                        "snapshot", self._name, detail, len(self._damaged_symbols))
            out += [(offset + position, BookDamaged(symbol, now, SESSION_GAP, detail))
                    for symbol in self._damaged_symbols]  # fmt: skip
        return out

    def next_awake(self) -> datetime | None:
        return self._awake

    @property
    def session_thread(self) -> SessionThread:
        return self._thread

    def snapshot(self) -> int:
        return self._last

    def close(self) -> None:
        self._thread.stop()


class FixSessionSource(FixedPartitionedSource[RawChunk, int]):
    """The application messages (35=W/X/8...) of live FIX sessions, one partition each.

    `RawChunk.first_line_no` is the MsgSeqNum of the chunk's first message (the numbers of
    the later ones may skip the session's admin messages).

    Args:
        sessions: the sessions; those with purpose market-data or drop-copy are read.
        stop: set it to end the stream (each session logs out; the flow ends cleanly).
        seconds: stop by itself after this many seconds, if given.
    """

    def __init__(
        self,
        sessions: list[LiveSession],
        stop: threading.Event | None = None,
        seconds: float | None = None,
    ) -> None:
        self._sessions = {s.name: s for s in sessions if s.is_source}
        if not self._sessions:
            msg = "no FIX session with purpose market-data or drop-copy to read"
            raise ConfigError(msg)
        self._stop = stop or threading.Event()
        self._seconds = seconds
        self._started = time.monotonic()
        self._doorbell = _Doorbell()  # the partitions of this process share it
        self._threads: dict[str, SessionThread] = {}  # the partitions' sessions, by name

    def list_parts(self) -> list[str]:
        return list(self._sessions)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _LivePartition:
        until = None if self._seconds is None else self._started + self._seconds
        part = _LivePartition(
            self._sessions[for_part], resume_state, self._stop, until, self._doorbell
        )
        self._threads[for_part] = part.session_thread
        return part

    def request_snapshot(self, symbols: list[str]) -> None:
        """`FlowContext.request_snapshot`: a 35=V 263=0 for `symbols` on each market-data
        session of this process that subscribed to some of them (any thread; rate-limited per
        session, see `SnapshotLimiter`)."""
        for thread in list(self._threads.values()):
            thread.request_snapshot(symbols)


class OrderEntrySession:
    """An order-entry session for outbound orders (35=D/F), opened by a sink's partition.

    The ClOrdIDs (11) of the messages the session's store already holds count as sent, so a
    restarted sink skips them (the store is written when a message is sent, before it goes out).
    What the venue answers (35=8) is counted and dropped here: the flows take executions from
    the drop-copy session(s).
    """

    def __init__(self, session: LiveSession) -> None:
        store = open_store(session.config)
        self.sent = {
            _cl_ord_id(raw) for _, raw in store.get(1, store.next_sender) if _cl_ord_id(raw)
        }
        self._thread = SessionThread(session, store)
        self._thread.start()

    @property
    def received(self) -> int:
        return self._thread.received

    def sent_cl_ord_ids(self) -> set[str]:
        return set(self.sent)

    def send(self, raw: bytes) -> None:
        self._thread.send(raw)

    def close(self) -> None:
        """Log out (idempotent: the sink's partition and the command may both call it)."""
        self._thread.stop()


def _cl_ord_id(raw: bytes) -> str:
    start = raw.find(b"\x0111=")
    if start < 0:
        return ""
    end = raw.find(SOH, start + 4)
    return raw[start + 4:end].decode("utf-8", "replace")


class SessionFeed:
    """The gateway's input from live FIX sessions: `chunks()` yields each session's application
    messages as `RawChunk`s (batches merged up to `MAX_LINES`) until `stop()` or `seconds`.

    At least once across restarts: the gateway calls `acknowledge(chunk)` once Kafka has
    acknowledged every message of the chunk, and the feed records the session's last published
    MsgSeqNum in `state_path`; a restarted gateway sets the session store's expected inbound
    number back to that + 1, so the counterparty resends what was received but not published.
    A crash between the acknowledgement and the record republishes at most that chunk.
    """

    def __init__(
        self, sessions: list[LiveSession], state_path: Path, seconds: float | None = None
    ) -> None:
        self._sessions = [s for s in sessions if s.is_source]
        if not self._sessions:
            msg = "no FIX session with purpose market-data or drop-copy to read"
            raise ConfigError(msg)
        self._state_path = state_path
        self._published: dict[str, int] = self._read_state()
        self._until = None if seconds is None else time.monotonic() + seconds
        self._stop = threading.Event()
        self._queue: queue.Queue[tuple[str, AppBatch]] = queue.Queue(_QUEUE_BATCHES)
        self._last_of: dict[int, tuple[str, int]] = {}  # id(chunk) -> (session, last seq)
        self._threads: list[SessionThread] = []

    def _read_state(self) -> dict[str, int]:
        try:
            state = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            msg = f"{self._state_path}: unreadable gateway state ({exc})"
            raise ConfigError(msg) from exc
        return {str(k): int(v) for k, v in state.items()}

    def _start(self) -> None:
        for session in self._sessions:
            store = open_store(session.config)
            last = self._published.get(session.name)
            if last is not None and store.next_target > last + 1:
                log.info("%s: resuming after MsgSeqNum %d (the store had %d): asking for a resend",
                         session.name, last, store.next_target - 1)  # fmt: skip
                store.next_target = last + 1
                store.flush()
            name = session.name

            def offer(batch: AppBatch, name: str = name) -> bool:
                try:
                    self._queue.put_nowait((name, batch))
                except queue.Full:
                    return False
                return True

            thread = SessionThread(session, store, offer)
            thread.start()
            self._threads.append(thread)

    def chunks(self) -> Iterator[RawChunk]:
        self._start()
        try:
            while not self._stop.is_set():
                if self._until is not None and time.monotonic() >= self._until:
                    return
                try:
                    name, batch = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if not batch.messages:  # a gap report only (docs/book-integrity.md)
                    continue
                lines, first, last = list(batch.messages), batch.seqs[0], batch.seqs[-1]
                while len(lines) < MAX_LINES:  # merge what else this session has queued
                    try:
                        more_name, more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if not more.messages:
                        continue
                    if more_name != name:
                        yield self._chunk(name, first, last, lines)
                        name, lines, first = more_name, [], more.seqs[0]
                    lines.extend(more.messages)
                    last = more.seqs[-1]
                yield self._chunk(name, first, last, lines)
        finally:
            self.stop()

    def _chunk(self, name: str, first: int, last: int, lines: list[bytes]) -> RawChunk:
        chunk = RawChunk(f"fix:{name}", first, lines)
        self._last_of[id(chunk)] = (name, last)
        return chunk

    def acknowledge(self, chunk: RawChunk) -> None:
        """Every message of `chunk` is in Kafka: record its session's last MsgSeqNum."""
        name, last = self._last_of.pop(id(chunk))
        self._published[name] = max(last, self._published.get(name, 0))
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._published))
        tmp.replace(self._state_path)

    def stop(self) -> None:
        """Log every session out (idempotent)."""
        self._stop.set()
        for thread in self._threads:
            thread.stop()
