"""Edge layer: the fan-out of one edge process.

One `Hub` per process holds every connection, the subscription map, and the routing of alerts
by role; the one stream reader (`edge.reader`) hands it batches of entries. For each quote update
one frame is built and the same bytes object is queued for every subscriber (conflated to the
latest per symbol). A flusher sends each connection what is pending once per flush period, in
one frame; the connections are spread over `flush_phases` phases and each tick of the period
flushes one phase, so the sends (~11-15 µs of CPU per frame) are spread evenly over the period
instead of one burst of every connection that stalls the loop and the clients. The period is
`flush_ms`, lengthened up to `flush_max_ms` while the process sends more than
`max_frames_per_s` (`edge.pacing`). Alerts are sent at once, or queued (bounded) while a
client's socket is full.

Subscription modes (ltp, quote, full; docs/edge.md): a connection's symbols in a mode other than
quote are kept in `Hub.moded` (symbol -> {session: mode}), so an update of a symbol nobody takes
in another mode costs what it did before modes existed; otherwise each mode's frame is built once
per update. Watchlists (`watch.add`/`watch.remove`) are `watchlist:{user}` lists in Redis with a
30-day TTL refreshed on each write (`WATCHLIST_TTL_S`).

Order status (docs/edge.md, "Order status"): each `stream:orders` entry's frame goes at once to
the trader connections of its account (`traders_by_account`) only, queued like alerts. A trader
connection gets its accounts' open orders (`orders:open:{account}`) as one `orders` frame after
the hello and on each resume; live order frames are held meanwhile and those the snapshot
already holds dropped (`open_orders`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aioredis

from edge import protocol
from edge.claims import ANALYST, OPERATOR, TRADER, Claims
from edge.config import EdgeConfig
from edge.conflation import AlertBacklogError, PendingFrames
from edge.market_status import MarketStatusFeed
from edge.pacing import next_flush_period
from edge.positions import PositionsBook, load_accounts
from edge.price_alerts import PriceAlerts
from edge.roles import ACCOUNT_KINDS, NOTICE_KINDS, SURVEILLANCE_KINDS, alert_visible
from edge.subscriptions import SubscriptionLimitError, SubscriptionMap

log = logging.getLogger("brokerflow.edge")

QUOTE_STREAM = "stream:quotes"
ALERT_STREAM = "stream:alerts"
ORDER_STREAM = "stream:orders"
OPEN_ORDERS = "orders:open:"  # + account: ClOrdID -> latest order frame (sinks.order_status)
CLOSE_TOO_SLOW = 4008
# A batch of stream entries as XREAD returns them: (entry_id, fields), in stream order.
Entries = list[tuple[bytes, dict[bytes, bytes]]]
WATCHLIST_TTL_S = 30 * 86_400
_SEQ = b'"seq":'


class Sender(Protocol):
    """The socket side of a connection (`edge.connection.ClientConnection`)."""

    def send_frame(self, payload: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


def frame_seq(frame: bytes) -> int:
    """The `seq` of a quote frame; -1 when it has none."""
    at = frame.rfind(_SEQ)
    if at >= 0:
        end = at + 6
        stop = end
        while stop < len(frame) and frame[stop : stop + 1].isdigit():
            stop += 1
        if stop > end:
            return int(frame[end:stop])
    try:
        return int(json.loads(frame).get("seq", -1))
    except (ValueError, TypeError, AttributeError):
        return -1


class Session:
    """A connection's state in the hub."""

    __slots__ = (
        "sender",
        "claims",
        "pending",
        "quotes",
        "paused",
        "closed",
        "resuming",
        "held",
        "alert_key",
        "snapshots_pending",
        "after_seq",
        "phase",
        "modes",
        "order_key",
        "order_hold",
        "__weakref__",
    )

    def __init__(self, sender: Sender, claims: Claims, max_pending_alerts: int) -> None:
        self.sender = sender
        self.claims = claims
        self.pending = PendingFrames(max_pending_alerts)
        self.quotes = self.pending.quotes  # the hot path writes here directly
        self.paused = False
        self.closed = False
        self.resuming = False
        self.held: list[tuple[tuple[int, int], bytes]] = []
        self.alert_key: tuple[int, int] = (0, 0)
        self.snapshots_pending = 0
        # symbol -> seq of the snapshot sent; updates not newer are dropped (first one only).
        self.after_seq: dict[str, int] = {}
        self.phase = 0  # which tick of the flush period flushes it (Hub.add)
        self.modes: dict[str, str] = {}  # symbol -> mode, for symbols not in mode quote
        # stream:orders id of the last order frame sent or of the open-order snapshot; while
        # `order_hold` is a list (a snapshot being read), live order frames wait in it.
        self.order_key: tuple[int, int] = (0, 0)
        self.order_hold: list[tuple[tuple[int, int], bytes]] | None = None


class EdgeStats:
    """Counters of one edge process, for health frames and the benchmark."""

    __slots__ = ("quotes_in", "alerts_in", "orders_in", "frames_out", "updates_out", "queued",
                 "slow_closes")  # fmt: skip

    def __init__(self) -> None:
        self.queued = 0  # updates queued for clients; minus updates_out = conflated
        self.quotes_in = 0
        self.alerts_in = 0
        self.orders_in = 0
        self.frames_out = 0
        self.updates_out = 0
        self.slow_closes = 0  # connections closed for being too slow (4008)


class Hub:
    """Connections, subscriptions and the routing of stream entries to them."""

    def __init__(self, config: EdgeConfig, client: aioredis.Redis) -> None:
        self.config = config
        self.redis = client
        self.sessions: dict[Sender, Session] = {}
        self.subs: SubscriptionMap[Session] = SubscriptionMap(config.max_symbols)
        self.traders_by_account: dict[str, set[Session]] = {}
        self.analysts: set[Session] = set()
        self.operators: set[Session] = set()
        self.stats = EdgeStats()
        # One group of connections per tick of the flush period; a tick flushes one group.
        self.phases: list[dict[Session, None]] = [{} for _ in range(max(1, config.flush_phases))]
        self._next_phase = 0
        self.flush_period_s = config.flush_ms / 1000  # lengthened under load (edge.pacing)
        # symbol -> {session: mode} of the subscriptions not in mode quote
        self.moded: dict[str, dict[Session, str]] = {}
        self.positions = PositionsBook()  # the traders' positions frames (edge.positions)
        self.price_alerts = PriceAlerts(config, client)  # alert.create/list/delete
        # market_status frames to every connection, a snapshot on connect (edge.market_status)
        self.market_status = MarketStatusFeed(client, self._send_or_queue, self.sessions.values)

    # -- connections -------------------------------------------------------------------------

    def add(self, sender: Sender, claims: Claims) -> Session:
        session = Session(sender, claims, self.config.max_pending_alerts)
        # Live alerts wait for the hello (and a replay, if asked): a reader catching up with the
        # stream must not send them first, or a replay would skip them as already sent.
        session.resuming = True
        self.sessions[sender] = session
        self.market_status.hold(session)
        session.phase = self._next_phase
        self.phases[session.phase][session] = None
        self._next_phase = (self._next_phase + 1) % len(self.phases)
        if claims.role == TRADER:
            session.order_hold = []  # live order frames wait for the open-order snapshot
            for account in claims.accounts:
                self.traders_by_account.setdefault(account, set()).add(session)
                self.positions.watch(account)
        elif claims.role == ANALYST:
            self.analysts.add(session)
        elif claims.role == OPERATOR:
            self.operators.add(session)
        return session

    def remove(self, sender: Sender) -> None:
        session = self.sessions.pop(sender, None)
        if session is None:
            return
        session.closed = True
        self.market_status.forget(session)
        for symbol in list(session.modes):
            self._set_mode(session, symbol, protocol.QUOTE)
        self.subs.remove_connection(session)
        for account in session.claims.accounts:
            group = self.traders_by_account.get(account)
            if group is not None:
                group.discard(session)
                if not group:
                    del self.traders_by_account[account]
            if session.claims.role == TRADER:
                self.positions.unwatch(account)
        self.analysts.discard(session)
        self.operators.discard(session)
        self.phases[session.phase].pop(session, None)

    async def start(self, session: Session, resume_from: str | None) -> None:
        """Greet a new connection (its watchlist) and replay missed alerts if it asked."""
        claims = session.claims
        try:
            raw = await self.redis.lrange(f"watchlist:{claims.user}", 0, self.config.max_symbols)
        except aioredis.RedisError as exc:
            log.warning("watchlist of %s unreadable: %s", claims.user, exc)
            raw = []
        if session.closed:
            return
        hello = protocol.json_frame(
            "hello",
            user=claims.user,
            role=claims.role,
            accounts=sorted(claims.accounts),
            watchlist=[s.decode() if isinstance(s, bytes) else s for s in raw],
            flush_ms=self.config.flush_ms,
            max_symbols=self.config.max_symbols,
        )
        session.sender.send_frame(hello)
        await self.market_status.snapshot(session)
        await self.send_positions(session)
        if resume_from is not None:
            await self.resume(session, resume_from)
        else:
            await self.open_orders(session)
            self.go_live(session)

    # -- client actions ----------------------------------------------------------------------

    def _set_mode(self, session: Session, symbol: str, mode: str) -> None:
        if mode == protocol.QUOTE:
            if session.modes.pop(symbol, None) is not None:
                group = self.moded.get(symbol)
                if group is not None:
                    group.pop(session, None)
                    if not group:
                        del self.moded[symbol]
            return
        session.modes[symbol] = mode
        self.moded.setdefault(symbol, {})[session] = mode

    async def subscribe(
        self, session: Session, symbols: Iterable[str], mode: str = protocol.QUOTE
    ) -> None:
        """Subscribe in `mode`, then send a snapshot of each new symbol from `quote:{SYMBOL}`;
        a symbol already held in another mode changes to `mode` and gets a snapshot in it.

        Updates are collected from the moment of subscribing; the flusher holds them until the
        snapshots are out, and those not newer than the snapshot are dropped, so the client
        sees snapshot, then updates with increasing seq.
        """
        symbols = list(dict.fromkeys(symbols))
        held = self.subs.symbols_of(session)
        changed = [
            s for s in symbols if s in held and session.modes.get(s, protocol.QUOTE) != mode
        ]
        try:
            new = self.subs.subscribe(session, symbols)
        except SubscriptionLimitError as exc:
            session.sender.send_frame(protocol.error_frame(str(exc)))
            return
        for symbol in changed:
            session.pending.drop_symbol(symbol)  # a frame of the old mode
            session.after_seq.pop(symbol, None)
        new += changed
        for symbol in new:
            self._set_mode(session, symbol, mode)
        if not new:
            return
        session.snapshots_pending += 1
        try:
            values = await self.redis.mget([f"quote:{s}" for s in new])
        except aioredis.RedisError as exc:
            self.unsubscribe(session, new, reply=False)
            session.sender.send_frame(protocol.error_frame(f"snapshot unavailable: {exc}"))
            return
        finally:
            session.snapshots_pending -= 1
        if session.closed:
            return
        send = session.sender.send_frame
        unknown = []
        for symbol, data in zip(new, values, strict=True):
            if data is None:
                unknown.append(symbol)
                continue
            snapshot = protocol.mode_frame(data, mode, b"snapshot")
            session.after_seq[symbol] = frame_seq(snapshot)
            send(snapshot)
        if unknown:
            self.unsubscribe(session, unknown, reply=False)
            send(protocol.error_frame(f"unknown symbol: {', '.join(unknown)}", symbols=unknown))

    def unsubscribe(self, session: Session, symbols: Iterable[str], reply: bool = True) -> None:
        removed = self.subs.unsubscribe(session, symbols)
        for symbol in removed:
            session.pending.drop_symbol(symbol)
            session.after_seq.pop(symbol, None)
            self._set_mode(session, symbol, protocol.QUOTE)
        if reply:
            session.sender.send_frame(protocol.json_frame("unsubscribed", symbols=removed))

    async def watch(self, session: Session, add: bool, symbols: Iterable[str]) -> None:
        """watch.add / watch.remove on `watchlist:{user}` (no duplicates, at most `max_symbols`,
        TTL refreshed), answered with the whole watchlist: `{"type":"watch","symbols":[...]}`."""
        names = list(symbols)
        action = "watch.add" if add else "watch.remove"
        try:
            raw = await self.redis.eval(
                _WATCH_SCRIPT, 1, f"watchlist:{session.claims.user}",
                self.config.max_symbols, WATCHLIST_TTL_S, "1" if add else "0", *names,
            )  # fmt: skip
        except aioredis.ResponseError as exc:
            text = str(exc)
            if text.startswith("LIMIT "):
                total = text.split()[1]
                message = (
                    f"{action}: symbols would make the watchlist {total} symbols, "
                    f"the limit is {self.config.max_symbols}"
                )
            else:
                message = f"{action} failed: {text}"
            session.sender.send_frame(protocol.error_frame(message))
            return
        except aioredis.RedisError as exc:
            session.sender.send_frame(protocol.error_frame(f"{action} failed: {exc}"))
            return
        if not session.closed:
            watchlist = [s.decode() if isinstance(s, bytes) else s for s in raw]
            session.sender.send_frame(protocol.json_frame("watch", symbols=watchlist))

    async def resume(self, session: Session, cursor: str) -> None:
        """Replay the visible alerts after `cursor` (a stream_id or an alert_id), then go live.

        Live alerts arriving meanwhile are held and sent after the replay, without duplicates.
        A trader first gets the open-order snapshot again (`open_orders`).
        """
        session.resuming = True
        await self.open_orders(session)
        try:
            start = cursor if protocol.is_stream_id(cursor) else await self._find_alert(cursor)
            if start is None:
                session.sender.send_frame(
                    protocol.error_frame(
                        f"last_alert_id {cursor} is not in {ALERT_STREAM}; nothing replayed",
                    )
                )
            else:
                await self._replay_after(session, start)
        except aioredis.RedisError as exc:
            session.sender.send_frame(protocol.error_frame(f"alert replay failed: {exc}"))
        finally:
            self.go_live(session)

    async def open_orders(self, session: Session) -> None:
        """Send a trader `{"type":"orders","orders":[…]}`: the open orders of its accounts.

        The hashes and the last id of `stream:orders` are read in one MULTI, and the sink
        changes both in one script, so the snapshot is the state after exactly the entries up to
        that id: live order frames held meanwhile, and those the reader delivers later, are
        sent only when their entry id is greater (none twice, none missed).
        """
        accounts = sorted(session.claims.accounts)
        if session.claims.role != TRADER or not accounts:
            return
        if session.order_hold is None:
            session.order_hold = []
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for account in accounts:
                    pipe.hgetall(OPEN_ORDERS + account)
                pipe.xrevrange(ORDER_STREAM, "+", "-", count=1)
                *hashes, last = await pipe.execute()
        except aioredis.RedisError as exc:
            session.sender.send_frame(protocol.error_frame(f"open orders unavailable: {exc}"))
            hashes, last = [], []
        if session.closed:
            return
        if last or hashes:
            upto = protocol.stream_id_key(last[0][0]) if last else (0, 0)
            session.order_key = max(session.order_key, upto)
            session.sender.send_frame(protocol.orders_frame(hashes))
        held, session.order_hold = session.order_hold, None
        for key, frame in held:
            self._deliver_order(session, key, frame)

    def go_live(self, session: Session) -> None:
        """Send the alerts held while the connection was greeted or resumed, then go live."""
        session.resuming = False
        held, session.held = session.held, []
        for key, frame in held:
            self._deliver_alert(session, key, frame)

    async def _find_alert(self, alert_id: str) -> str | None:
        needle = b'"' + alert_id.encode() + b'"'
        upper = "+"
        scanned = 0
        while scanned < 1_000_000:
            entries = await self.redis.xrevrange(ALERT_STREAM, upper, "-", count=1000)
            for entry_id, fields in entries:
                data = fields.get(b"data", b"")
                if needle in data and _alert_id_of(data) == alert_id:
                    return entry_id.decode()
            if len(entries) < 1000:
                return None
            scanned += len(entries)
            upper = "(" + entries[-1][0].decode()
        return None

    async def _replay_after(self, session: Session, start: str) -> None:
        lower = "(" + start
        replayed = 0
        while replayed < self.config.replay_max and not session.closed:
            entries = await self.redis.xrange(ALERT_STREAM, lower, "+", count=500)
            for entry_id, fields in entries:
                replayed += 1
                kind = fields.get(b"kind", b"").decode()
                account = fields.get(b"account", b"").decode()
                if alert_visible(session.claims, kind, account):
                    frame = _alert_frame(kind, entry_id, fields.get(b"data", b"{}"))
                    key = protocol.stream_id_key(entry_id)
                    self._deliver_alert(session, key, frame, replaying=True)
            if len(entries) < 500:
                return
            lower = "(" + entries[-1][0].decode()

    # -- stream entries ------------------------------------------------------------------------

    def on_quotes(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Queue each update's one frame for every subscriber of its symbol.

        The flusher finds what is pending by looking at each connection of a phase, so this
        loop, run once per update per subscriber, only stores the frame.
        """
        subscribers = self.subs.subscribers
        make = protocol.quote_frame
        by_mode = self.moded
        held = self.positions.by_symbol  # symbols of the watched accounts' open holdings
        queued = 0
        self.stats.quotes_in += len(entries)
        for _entry_id, fields in entries:
            raw_symbol = fields.get(b"symbol")
            if raw_symbol is None:
                continue
            symbol = raw_symbol.decode()
            if symbol in held:
                self.positions.on_quote(symbol, fields.get(b"data", b"{}"))
            sessions = subscribers(symbol)
            if not sessions:
                continue
            data = fields.get(b"data", b"{}")
            frame = make(data)
            queued += len(sessions)
            moded = by_mode.get(symbol) if by_mode else None
            if moded is None:
                # Inlined PendingFrames.add_quote: this loop runs once per update per subscriber.
                for session in sessions:
                    session.quotes[symbol] = frame
                continue
            frames = {}
            for session in sessions:
                mode = moded.get(session)
                if mode is None:
                    session.quotes[symbol] = frame
                    continue
                other = frames.get(mode)
                if other is None:
                    other = frames[mode] = protocol.mode_frame(data, mode)
                session.quotes[symbol] = other
        self.stats.queued += queued

    def on_alerts(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Send each alert at once to the connections whose role and accounts let them see it."""
        self.stats.alerts_in += len(entries)
        for entry_id, fields in entries:
            kind = fields.get(b"kind", b"").decode()
            if kind in ACCOUNT_KINDS or kind in NOTICE_KINDS:
                targets = self.traders_by_account.get(fields.get(b"account", b"").decode())
            elif kind in SURVEILLANCE_KINDS:
                targets = self.analysts
            else:
                continue
            if not targets:
                continue
            frame = _alert_frame(kind, entry_id, fields.get(b"data", b"{}"))
            key = protocol.stream_id_key(entry_id)
            for session in list(targets):
                self._deliver_alert(session, key, frame)

    def on_positions(self, entries: Entries) -> None:
        """Take the holdings and margin documents of the watched accounts (`stream:positions`);
        their frames go out with the next positions tick (`send_due_positions`)."""
        self.positions.on_entries(entries)

    async def send_positions(self, session: Session) -> None:
        """Send a trader connection a `positions` frame of each of its accounts (on connect)."""
        accounts = sorted(session.claims.accounts)
        if session.claims.role != TRADER or not accounts:
            return
        try:
            await load_accounts(self.redis, self.positions, accounts)
        except aioredis.RedisError as exc:
            session.sender.send_frame(protocol.error_frame(f"positions unavailable: {exc}"))
            return
        if not session.closed:
            for account in accounts:
                session.sender.send_frame(self.positions.frame(account))

    def send_due_positions(self, account: str, frame: bytes) -> None:
        """Send an account's due `positions` frame to its trader connections only. A connection
        whose socket is full is skipped and the account stays due: the next tick sends it the
        frame as it then stands (conflated, like quotes; never a backlog)."""
        for session in list(self.traders_by_account.get(account, ())):
            if session.closed:
                continue
            if session.paused:
                self.positions.due.add(account)
                continue
            session.sender.send_frame(frame)
            self.stats.frames_out += 1

    def on_market_status(self, entries: Entries) -> None:
        """`stream:market_status` entries: each frame at once to every connection."""
        self.market_status.on_entries(entries)

    def on_orders(self, entries: Entries) -> None:
        """Send each order frame at once to the trader connections of its account, in order."""
        self.stats.orders_in += len(entries)
        by_account = self.traders_by_account
        for entry_id, fields in entries:
            targets = by_account.get(fields.get(b"account", b"").decode())
            if not targets:
                continue
            frame = fields.get(b"data")
            if not frame:
                continue
            key = protocol.stream_id_key(entry_id)
            for session in list(targets):
                self._deliver_order(session, key, frame)

    def _deliver_order(self, session: Session, key: tuple[int, int], frame: bytes) -> None:
        if session.closed or key <= session.order_key:
            return  # in the open-order snapshot already, or sent
        hold = session.order_hold
        if hold is not None:
            hold.append((key, frame))
            return
        session.order_key = key
        self._send_or_queue(session, frame)

    def _deliver_alert(
        self, session: Session, key: tuple[int, int], frame: bytes, replaying: bool = False
    ) -> None:
        if session.closed or key <= session.alert_key:
            return  # already sent (a replay overlapping the live feed)
        if session.resuming and not replaying:
            session.held.append((key, frame))
            return
        session.alert_key = key
        self._send_or_queue(session, frame)

    def _send_or_queue(self, session: Session, frame: bytes) -> None:
        """Send a frame that must not be lost now, or queue it (bounded) behind the others."""
        pending = session.pending
        if session.paused or pending.alerts:
            try:
                pending.add_alert(frame)
            except AlertBacklogError as exc:
                self.drop_slow(session, str(exc))
            return
        session.sender.send_frame(frame)
        self.stats.frames_out += 1

    def drop_slow(self, session: Session, why: str) -> None:
        self.stats.slow_closes += 1
        session.sender.close(CLOSE_TOO_SLOW, f"too slow: {why}")
        self.remove(session.sender)

    # -- flow control and flushing -------------------------------------------------------------

    def pause(self, sender: Sender) -> None:
        session = self.sessions.get(sender)
        if session is not None:
            session.paused = True

    def resume_writing(self, sender: Sender) -> None:
        session = self.sessions.get(sender)
        if session is None:
            return
        session.paused = False
        send = sender.send_frame
        alerts = session.pending.alerts
        # One at a time: when the socket is full again the rest stay queued, in order.
        while alerts and not session.paused:
            send(alerts.popleft())
            self.stats.frames_out += 1

    def flush_session(self, session: Session) -> None:
        pending = session.pending
        if pending.alerts:
            self.resume_writing(session.sender)
            if session.paused:
                return
        # PendingFrames.take_quotes and protocol.quotes_frame, inlined: once per frame sent.
        quotes = session.quotes
        frames = list(quotes.values())
        quotes.clear()
        if session.after_seq:
            frames = self._newer_than_snapshots(session, frames)
        if frames:
            stats = self.stats
            stats.frames_out += 1
            n = len(frames)
            stats.updates_out += n
            session.sender.send_frame(
                frames[0] if n == 1 else b'{"type":"quotes","quotes":[' + b",".join(frames) + b"]}"
            )

    @staticmethod
    def _newer_than_snapshots(session: Session, frames: list[bytes]) -> list[bytes]:
        after = session.after_seq
        kept = []
        for frame in frames:
            symbol = _frame_symbol(frame)
            floor = after.get(symbol) if symbol is not None else None
            if floor is None:
                kept.append(frame)
                continue
            if frame_seq(frame) > floor:
                del after[symbol]
                kept.append(frame)
        return kept

    def flush_phase(self, group: dict[Session, None]) -> list[Session]:
        """The connections of one phase that have quotes to send now."""
        return [
            session
            for session in group
            if session.quotes and not session.paused and not session.snapshots_pending
        ]

    async def flush_forever(self) -> None:
        """Each tick, send the connections of one phase their pending quotes, in slices.

        A paused connection (its socket full) is skipped: its quotes stay conflated until a
        later tick finds it writable again. One waiting for its snapshots is skipped too, so
        its first updates come after them. Twice a second the period is set from the frames
        sent (`edge.pacing.next_flush_period`).
        """
        loop = asyncio.get_running_loop()
        config, stats = self.config, self.stats
        size = config.flush_slice
        lowest, highest = config.flush_ms / 1000, max(config.flush_ms, config.flush_max_ms) / 1000
        phases = self.phases
        k = 0
        due = measured_at = loop.time()
        frames_at = stats.frames_out
        while True:
            ready = self.flush_phase(phases[k])
            k = (k + 1) % len(phases)
            for done, session in enumerate(ready, 1):
                if not session.closed:
                    self.flush_session(session)
                if done % size == 0:
                    await asyncio.sleep(0)  # let reads, alerts and other tasks in
            now = loop.time()
            if now - measured_at >= 0.5:
                rate = (stats.frames_out - frames_at) / (now - measured_at)
                self.flush_period_s = next_flush_period(
                    self.flush_period_s, rate, config.max_frames_per_s, lowest, highest
                )
                measured_at, frames_at = now, stats.frames_out
            tick = self.flush_period_s / len(phases)
            due += tick
            if due < now - tick:
                due = now  # fell behind (a busy machine): go on from now, no catch-up burst
            await asyncio.sleep(max(0.0, due - now))


# KEYS[1] the watchlist; ARGV: limit, TTL s, "1" add / "0" remove, then the symbols. Adds only
# those not in the list (in order); refuses the whole add past the limit. Returns the list.
_WATCH_SCRIPT = """
local key = KEYS[1]
if ARGV[3] == '1' then
  local missing = {}
  local seen = {}
  for i = 4, #ARGV do
    local s = ARGV[i]
    if not seen[s] and not redis.call('LPOS', key, s) then
      missing[#missing + 1] = s
    end
    seen[s] = true
  end
  local total = redis.call('LLEN', key) + #missing
  if total > tonumber(ARGV[1]) then
    return redis.error_reply('LIMIT ' .. total)
  end
  if #missing > 0 then
    redis.call('RPUSH', key, unpack(missing))
  end
else
  for i = 4, #ARGV do
    redis.call('LREM', key, 0, ARGV[i])
  end
end
if redis.call('EXISTS', key) == 1 then
  redis.call('EXPIRE', key, ARGV[2])
end
return redis.call('LRANGE', key, 0, -1)
"""


def _alert_frame(kind: str, entry_id: bytes, data: bytes) -> bytes:
    """A `stream:alerts` entry's frame: a fired price alert is the trader's `price_alert`."""
    if kind in NOTICE_KINDS:
        return protocol.price_alert_frame(entry_id, data)
    return protocol.alert_frame(entry_id, data)


def _alert_id_of(data: bytes) -> str | None:
    try:
        return json.loads(data).get("alert_id")
    except (ValueError, AttributeError):
        return None


def _frame_symbol(frame: bytes) -> str | None:
    at = frame.find(b'"symbol":"')
    if at < 0:
        return None
    end = frame.find(b'"', at + 10)
    return frame[at + 10 : end].decode() if end > 0 else None


def now_ms() -> int:
    return time.time_ns() // 1_000_000
