"""Edge layer: one WebSocket connection on picows, between its socket and the hub.

picows calls `on_ws_frame` for each frame as it is read; text messages are parsed by
`edge.protocol` and become hub calls. Its `pause_writing`/`resume_writing` (the socket's write
buffer above/below its high-water mark) are how the hub learns that a client is not reading.
"""

from __future__ import annotations

import asyncio
import logging

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from edge import deflate, protocol
from edge.claims import Claims
from edge.hub import Hub

log = logging.getLogger("brokerflow.edge")

CLOSE_BAD_TOKEN = 4401
_TEXT = WSMsgType.TEXT


class ClientConnection(WSListener):
    """A client that passed the token check (see `RejectedConnection` for the others)."""

    def __init__(
        self, hub: Hub, claims: Claims, resume_from: str | None, compressed: bool
    ) -> None:
        self.hub = hub
        self.claims = claims
        self.resume_from = resume_from
        self.compressed = compressed
        self.transport: WSTransport | None = None
        self.session = None
        self._tasks: set[asyncio.Task] = set()

    # -- picows callbacks ------------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.session = self.hub.add(self, self.claims)
        self._spawn(self.hub.start(self.session, self.resume_from))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.hub.remove(self)
        for task in self._tasks:
            task.cancel()

    def pause_writing(self) -> None:
        self.hub.pause(self)

    def resume_writing(self) -> None:
        self.hub.resume_writing(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        if msg_type == WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if msg_type not in (WSMsgType.TEXT, WSMsgType.BINARY) or not frame.fin:
            self.send_frame(protocol.error_frame("send each message as one unfragmented frame"))
            return
        limit = self.hub.config.max_message_bytes
        size = frame.payload_size
        if size > limit:
            self.send_frame(
                protocol.error_frame(f"message of {size} bytes is over the {limit}-byte limit")
            )
            return
        raw = frame.get_payload_as_bytes()
        if frame.rsv1:
            if not self.compressed:
                self.close(1002, "compressed frame without permessage-deflate")
                return
            try:
                raw = deflate.decompress(raw, limit)
            except ValueError as exc:
                self.send_frame(protocol.error_frame(str(exc)))
                return
        try:
            action = protocol.parse_client_message(raw, limit, self.hub.config.max_symbols)
        except protocol.ProtocolError as exc:
            self.send_frame(protocol.error_frame(str(exc)))
            return
        self._act(action)

    # -- what the hub calls ----------------------------------------------------------------------

    def send_frame(self, payload: bytes) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.compressed:
            transport.send(_TEXT, deflate.compress(payload), True, True)
        else:
            transport.send(_TEXT, payload)

    def close(self, code: int, reason: str) -> None:
        transport = self.transport
        if transport is not None:
            transport.send_close(code, reason.encode()[:120])
            transport.disconnect(graceful=True)

    # -- actions ---------------------------------------------------------------------------------

    def _act(self, action: protocol.Action) -> None:
        hub, session = self.hub, self.session
        if session is None:
            return
        if isinstance(action, protocol.Ping):
            self.send_frame(b'{"type":"pong"}')
        elif isinstance(action, protocol.Subscribe):
            self._spawn(hub.subscribe(session, action.symbols, action.mode))
        elif isinstance(action, protocol.Unsubscribe):
            hub.unsubscribe(session, action.symbols)
        elif isinstance(action, protocol.Watch):
            self._spawn(hub.watch(session, action.add, action.symbols))
        elif isinstance(action, protocol.Resume):
            self._spawn(hub.resume(session, action.last_alert_id))
        elif isinstance(action, protocol.PRICE_ALERT_ACTIONS):
            self._spawn(self._price_alert(action))

    async def _price_alert(self, action: protocol.Action) -> None:
        frame = await self.hub.price_alerts.act(self.claims, action)
        self.send_frame(frame)

    def _spawn(self, coro) -> None:  # noqa: ANN001 - a coroutine
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("edge task failed", exc_info=task.exception())
            self.close(WSCloseCode.INTERNAL_ERROR.value, "internal error")


class RejectedConnection(WSListener):
    """A client whose token was missing or bad: closed at once with 4401 and the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.send_close(CLOSE_BAD_TOKEN, self.reason.encode()[:120])
        transport.disconnect(graceful=True)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        pass
