"""Edge layer: `market_status` frames (issue 19; docs/edge.md, "Market status").

Every entry of `stream:market_status` (`sinks.market_status`: fields `scope`, `data` = the
frame's JSON) goes at once, as it is, to every connection, whatever its role and whatever it
subscribed: the market's and a symbol's alike (halts are rare, a banner shows every halted
symbol, and a trader may hold a stop on a symbol it does not watch). On connect, after the
hello, a connection gets the current statuses as `market_status` frames: the market's
(`market:status`), then each symbol that is not OPEN (`market:halted_symbols`,
`symbol:status:{SYMBOL}`), read in one script with the stream's last id; live frames that
arrive meanwhile wait, and those the snapshot already covers (entry id not after that id) are
dropped, so a client sees each status once, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as aioredis

from edge import protocol

MARKET_STATUS_STREAM = "stream:market_status"
MARKET_KEY = "market:status"
HALTED_SYMBOLS = "market:halted_symbols"

# KEYS[1] market:status, KEYS[2] the halted set, KEYS[3] the stream: the stream's last id
# (or false), the market's status (or false), then each halted symbol's status, by name.
_SNAPSHOT = """
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local out = {last[1] and last[1][1] or false, redis.call('GET', KEYS[1]) or false}
local symbols = redis.call('SMEMBERS', KEYS[2])
table.sort(symbols)
for _, symbol in ipairs(symbols) do
  out[#out + 1] = redis.call('GET', 'symbol:status:' .. symbol) or false
end
return out
"""

Held = list[tuple[tuple[int, int], bytes]]


class MarketStatusFeed:
    """The market-status frames of one edge process (`Hub` holds one).

    Args:
        client: the hub's Redis.
        send: sends a frame that must not be lost (`Hub._send_or_queue(session, frame)`).
        sessions: the open connections.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        send: Callable[[Any, bytes], None],
        sessions: Callable[[], Iterable[Any]],
    ) -> None:
        self.redis = client
        self.send = send
        self.sessions = sessions
        self.waiting: dict[Any, Held] = {}  # connections whose snapshot is being read

    def hold(self, session: Any) -> None:
        """A new connection: live frames wait for its snapshot."""
        self.waiting[session] = []

    def forget(self, session: Any) -> None:
        self.waiting.pop(session, None)

    async def snapshot(self, session: Any) -> None:
        """Send the current statuses, then the live frames held meanwhile that are newer."""
        held = self.waiting.get(session)
        if held is None:
            held = self.waiting[session] = []
        upto = (0, 0)
        try:
            last, *docs = await self.redis.eval(
                _SNAPSHOT, 3, MARKET_KEY, HALTED_SYMBOLS, MARKET_STATUS_STREAM
            )
        except aioredis.RedisError as exc:
            self.send(session, protocol.error_frame(f"market status unavailable: {exc}"))
            docs = []
        else:
            if last:
                upto = protocol.stream_id_key(last)
        if getattr(session, "closed", False):
            self.waiting.pop(session, None)
            return
        for doc in docs:
            if doc:
                self.send(session, doc)
        self.waiting.pop(session, None)
        for key, frame in held:
            if key > upto:
                self.send(session, frame)

    def on_entries(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Each entry's frame to every connection at once (held for those being greeted)."""
        waiting = self.waiting
        for entry_id, fields in entries:
            frame = fields.get(b"data")
            if not frame:
                continue
            key = protocol.stream_id_key(entry_id)
            for session in list(self.sessions()):
                held = waiting.get(session)
                if held is not None:
                    held.append((key, frame))
                else:
                    self.send(session, frame)
