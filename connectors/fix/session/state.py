"""The FIX session state machine, without sockets (sans-I/O).

`SessionState` is fed frames (`on_frame(frame, now)`) and clock ticks (`on_timer(now)`); it
appends the bytes to send to `output` (taken with `take_output()`), hands application messages
to the `application` callback, and sets `closed` to the reason when the connection must be
dropped. Time is always an argument (epoch seconds), so tests drive it without waiting.

The behaviour follows QuickFIX's Session (the reference the acceptance suite was written
against): Logon with HeartBtInt (108), ResetSeqNumFlag (141) and Username/Password (553/554);
Heartbeat/TestRequest and a disconnect after an unanswered TestRequest; MsgSeqNum too high ->
queue the message and send one ResendRequest (35=2) for the gap; too low without PossDupFlag
(43) -> Logout and disconnect; PossDup duplicates ignored (after checking OrigSendingTime (122));
answering a ResendRequest with the stored application messages (43=Y, 122) and
SequenceReset-GapFill (35=4, 123=Y) for everything else; SequenceReset-Reset; session Rejects
(35=3) with SessionRejectReason (373) and RefTagID (371); SendingTime and CompID checks (Reject
then Logout); the Logout handshake. Every reject, logout and disconnect writes one log line
saying why.

Lost messages (`on_gap`, issue 21): a gap we asked to be resent and that came back as gap fills
only (no application message resent: the peer does not keep them, so what it skipped may have
been market data), a resend that does not come within `RESEND_WAIT_S` or before the connection
closes (`abandon_resend`), and a SequenceReset-Reset that jumps ahead. From the wire alone a gap
fill over admin messages looks the same as one over unkept application messages; a peer that
resends some application messages in its answer keeps them, so its gap fills there are taken to
cover admin messages only (no report).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from connectors.fix.session.config import SessionConfig
from connectors.fix.session.dictionary import DataDictionary, MessageRejected, RejectReason
from connectors.fix.session.store import MessageStore
from connectors.fix.session.wire import (
    Clock,
    Frame,
    Garbled,
    Message,
    encode,
    parse,
    parse_timestamp,
    show,
)

log = logging.getLogger("brokerflow.fix.session")

ADMIN_TYPES = frozenset((b"0", b"1", b"2", b"3", b"4", b"5", b"A"))
# Routing fields a Reject sends back swapped (OnBehalfOf <-> DeliverTo).
RESEND_WAIT_S = 10.0  # a resend not complete by then is reported lost (`on_gap`), once
_REVERSE_ROUTE = ((115, 128), (128, 115), (116, 129), (129, 116), (144, 145), (145, 144))
_Field = tuple[int, bytes]


class UnsupportedMessageType(Exception):  # noqa: N818 - QuickFIX's name for the condition
    """Raised by an application for a MsgType it does not handle: answered with 35=j 380=3."""


Application = Callable[["SessionState", Message], None]


def ignore_application(session: SessionState, message: Message) -> None:
    """An application that accepts every message and does nothing with it."""


class SessionState:
    """One FIX session over one connection (see the module docstring).

    Args:
        config: the session's configuration.
        store: sequence numbers and sent application messages (survive reconnects).
        dictionary: validates inbound messages; None checks the standard header only.
        application: called with each in-sequence application message.
        initiator: we send the Logon (else we answer one).
        now: the time the connection was made.
    """

    def __init__(
        self,
        config: SessionConfig,
        store: MessageStore,
        dictionary: DataDictionary | None,
        application: Application = ignore_application,
        *,
        initiator: bool,
        now: float,
    ) -> None:
        self.config = config
        self.store = store
        self.dictionary = dictionary if config.validate else None
        self.application = application
        self.initiator = initiator
        self.begin_string = config.begin_string.encode()
        self.sender = config.sender_comp_id.encode()
        self.target = config.target_comp_id.encode()
        self.heartbeat_s = config.heartbeat_s if initiator else 0
        self.received_logon = False
        self.sent_logon = False
        self.sent_logout = False
        self.sent_reset = False
        self.closed = ""
        self.output: list[bytes] = []
        self.queue: dict[int, Message] = {}
        self.resend_range: tuple[int, int] | None = None
        # Messages lost for good: called with (first, last MsgSeqNum, why); None: not watched.
        self.on_gap: Callable[[int, int, str], None] | None = None
        self._resend_at = 0.0
        self._resend_skipped: list[tuple[int, int]] = []  # gap-filled within the resend
        self._resend_resent = 0  # application messages resent within it
        self._resend_reported = False
        self._resend_done = False
        self.connected_at = now
        self.last_sent = now
        self.last_received = now
        self.logout_sent_at = 0.0
        self.test_requests = 0
        # What the metrics count (`connectors.fix.session.registry`): resend requests and
        # session-level rejects, each way.
        self.resend_requests_sent = 0
        self.resend_requests_received = 0
        self.rejects_sent = 0
        self.rejects_received = 0
        self._clock = Clock()
        self._label = config.name

    # ----------------------------------------------------------------- public API
    @property
    def logged_on(self) -> bool:
        return self.received_logon and self.sent_logon and not self.closed

    def take_output(self) -> list[bytes]:
        """The bytes to write, in order, since the last call."""
        out = self.output
        self.output = []
        return out

    def start_logon(self, now: float) -> None:
        """Initiator: send our Logon (with 141=Y first resetting the store if configured)."""
        body: list[_Field] = [(98, b"0"), (108, b"%d" % self.config.heartbeat_s)]
        if self.config.reset_on_logon:
            self.store.reset()
            self.sent_reset = True
            body.append((141, b"Y"))
        if self.config.username:
            body.append((553, self.config.username.encode()))
        if self.config.password:
            body.append((554, self.config.password.encode()))
        if self.config.begin_string == "FIXT.1.1":
            body.append((1137, self.config.default_appl_ver_id.encode()))
        self.sent_logon = True
        self.send(b"A", body, now=now)

    def send(
        self,
        msg_type: bytes,
        body: Iterable[_Field],
        header: Iterable[_Field] = (),
        *,
        now: float,
    ) -> int:
        """Send a message with the next MsgSeqNum; return that number.

        Application messages are stored for resends; while not logged on they are stored but
        not transmitted (a ResendRequest after logon brings them), as QuickFIX does.
        """
        seq = self.store.next_sender
        header_fields = [
            (34, b"%d" % seq), (49, self.sender), (52, self._clock.stamp(now)), (56, self.target),
            *header,
        ]
        raw = encode(self.begin_string, msg_type, header_fields, body)
        self.store.next_sender = seq + 1
        admin = msg_type in ADMIN_TYPES
        if not admin:
            self.store.save(seq, raw)
        if admin or self.logged_on:
            self.output.append(raw)
            self.last_sent = now
        else:
            log.info("%s: application message %d stored, not sent: not logged on", self._label, seq)
        return seq

    def logout(self, text: str, now: float) -> None:
        """Start the Logout handshake (the connection closes on the answer or a timeout)."""
        if self.closed or self.sent_logout:
            return
        self._send_logout(text.encode(), now, level=logging.INFO)  # asked for: an orderly stop

    def on_frame(self, frame: Frame, now: float) -> None:
        """Handle one received frame."""
        if self.closed:
            return
        if frame.garbled:
            self._garbled(frame.garbled, frame.raw)
            return
        try:
            message = parse(frame.raw)
        except Garbled as exc:
            self._garbled(str(exc), frame.raw)
            return
        self._next(message, now, queued=False)

    def on_timer(self, now: float) -> None:
        """Heartbeats, TestRequests and timeouts; call about every 0.1-0.5 s."""
        if self.closed:
            return
        if not self.received_logon:
            if now - self.connected_at >= self.config.logon_timeout_s:
                self._disconnect(f"no Logon within {self.config.logon_timeout_s:g} s")
            return
        if (self.resend_range is not None and not self._resend_reported
                and now - self._resend_at >= RESEND_WAIT_S):
            self._resend_reported = True
            self._lost(*self.resend_range, f"no resend within {RESEND_WAIT_S:g} s")
        if self.sent_logout and now - self.logout_sent_at >= self.config.logout_timeout_s:
            self._disconnect(
                f"no Logout answer within {self.config.logout_timeout_s:g} s of ours"
            )
            return
        interval = self.heartbeat_s
        if interval <= 0:
            return
        since_received = now - self.last_received
        if since_received >= 2.4 * interval:
            self._disconnect(
                f"nothing received for {since_received:.1f} s (HeartBtInt {interval} s, "
                f"TestRequest unanswered)"
            )
        elif since_received >= 1.5 * (self.test_requests + 1) * interval:
            self.test_requests += 1
            log.info("%s: nothing received for %.1f s: sending TestRequest", self._label,
                     since_received)
            self.send(b"1", [(112, b"TEST")], now=now)
        elif now - self.last_sent >= interval and self.test_requests == 0:
            self.send(b"0", (), now=now)

    # ----------------------------------------------------------------- inbound
    def _garbled(self, reason: str, raw: bytes) -> None:
        if not self.received_logon:
            self._disconnect(f"garbled message before Logon ({reason}): {show(raw, 60)}")
        else:
            log.warning("%s: garbled message ignored (%s): %s", self._label, reason, show(raw))

    def _next(self, msg: Message, now: float, *, queued: bool) -> None:
        msg_type = msg.msg_type
        if msg.begin_string != self.begin_string:
            if not self.received_logon:
                self._disconnect(
                    f"BeginString {msg.begin_string.decode(errors='replace')} on Logon, "
                    f"expected {self.config.begin_string}"
                )
            elif msg_type == b"5":
                self._on_logout(msg, now)
            else:
                self._send_logout(
                    b"Incorrect BeginString", now,
                    f"BeginString {msg.begin_string.decode(errors='replace')}, expected "
                    f"{self.config.begin_string}",
                )
                self.store.next_target += 1
            return
        if not self.received_logon and msg_type == b"5":
            text = (msg.get(58) or b"no reason given").decode(errors="replace")
            self._disconnect(f"Logout instead of Logon: {text}")
            return
        if not self.received_logon and msg_type != b"A":
            self._disconnect(f"first message was MsgType {msg_type.decode(errors='replace')}, "
                             f"not Logon (A)")
            return
        try:
            if self.dictionary is not None:
                self.dictionary.validate(msg)
            else:
                self._check_header(msg)
        except MessageRejected as exc:
            self._reject(msg, exc.code, exc.tag, now)
            if not queued:
                self._process_queue(now)
            return
        if msg_type == b"0":
            if self._verify(msg, now):
                self.store.next_target += 1
        elif msg_type == b"A":
            self._on_logon(msg, now)
        elif msg_type == b"1":
            if self._verify(msg, now):
                test_req_id = msg.get(112)
                self.send(b"0", [(112, test_req_id)] if test_req_id is not None else (), now=now)
                self.store.next_target += 1
        elif msg_type == b"2":
            self._on_resend_request(msg, now)
        elif msg_type == b"3":
            if self._verify(msg, now):
                self.rejects_received += 1
                log.warning("%s: peer rejected our message %s: %s", self._label,
                            (msg.get(45) or b"?").decode(errors="replace"),
                            (msg.get(58) or b"(no text)").decode(errors="replace"))
                self.store.next_target += 1
        elif msg_type == b"4":
            self._on_sequence_reset(msg, now)
        elif msg_type == b"5":
            self._on_logout(msg, now)
        elif self._verify(msg, now):
            try:
                self.application(self, msg)
            except UnsupportedMessageType:
                self._business_reject(msg, now)
            else:
                self.store.next_target += 1
        if self._resend_done:
            self._judge_resend()
        if not queued:
            self._process_queue(now)

    def _check_header(self, msg: Message) -> None:
        """Without a dictionary: the standard header must still be there."""
        for tag in (34, 49, 52, 56):
            value = msg.get(tag)
            if value is None:
                raise MessageRejected(RejectReason.REQUIRED_TAG_MISSING, tag)
            if not value:
                raise MessageRejected(RejectReason.TAG_SPECIFIED_WITHOUT_A_VALUE, tag)
        if not msg.get(34).isdigit():  # type: ignore[union-attr]
            raise MessageRejected(RejectReason.INCORRECT_DATA_FORMAT, 34)

    def _process_queue(self, now: float) -> None:
        queue = self.queue
        while queue and not self.closed:
            expected = self.store.next_target
            for stale in [seq for seq in queue if seq < expected]:
                del queue[stale]
            msg = queue.pop(expected, None)
            if msg is None:
                return
            if msg.msg_type in (b"A", b"2"):
                self.store.next_target += 1
            else:
                self._next(msg, now, queued=True)

    def _verify(
        self, msg: Message, now: float, *, check_high: bool = True, check_low: bool = True
    ) -> bool:
        """QuickFIX's Session::verify: SendingTime, CompIDs, then MsgSeqNum."""
        sending_time = parse_timestamp(msg.get(52) or b"")
        if sending_time is None or abs(now - sending_time) > self.config.max_latency_s:
            self._reject(msg, RejectReason.SENDINGTIME_ACCURACY_PROBLEM, 0, now)
            self._send_logout(b"", now, "SendingTime accuracy problem")
            return False
        if msg.get(49) != self.target or msg.get(56) != self.sender:
            self._reject(msg, RejectReason.COMPID_PROBLEM, 0, now)
            self._send_logout(b"", now, "CompID problem")
            return False
        self.last_received = now
        self.test_requests = 0
        seq = msg.seq
        expected = self.store.next_target
        if check_high and seq > expected:
            self._target_too_high(msg, seq, now)
            return False
        if check_low and seq < expected:
            if msg.get(43) != b"Y":
                text = f"MsgSeqNum too low, expecting {expected} but received {seq}"
                self._send_logout(text.encode(), now)
                self._disconnect(text)
            else:
                self._poss_dup(msg, seq, now)
            return False
        if (check_high or check_low) and self.resend_range:
            if msg.get(43) == b"Y" and msg.msg_type not in ADMIN_TYPES:
                self._resend_resent += 1
            if seq >= self.resend_range[1]:
                log.info("%s: ResendRequest %d..%d satisfied", self._label, *self.resend_range)
                self._resend_done = True  # judged once this message is handled
        return True

    def _judge_resend(self) -> None:
        """The resend is complete: report what gap fills alone answered (see the module
        docstring)."""
        self._resend_done = False
        skipped, resent = self._resend_skipped, self._resend_resent
        self.resend_range = None
        self._resend_skipped = []
        self._resend_resent = 0
        if skipped and not resent and not self._resend_reported:
            self._lost(skipped[0][0], skipped[-1][1], "gap-filled, no message resent")
        self._resend_reported = False

    def abandon_resend(self, why: str) -> None:
        """The connection ended with a resend outstanding: report it (once)."""
        if self.resend_range is not None and not self._resend_reported:
            self._resend_reported = True
            self._lost(*self.resend_range, why)

    def _lost(self, first: int, last: int, why: str) -> None:
        log.warning("%s: MsgSeqNum %d..%d lost (%s)", self._label, first, last, why)
        if self.on_gap is not None:
            self.on_gap(first, last, why)

    def _target_too_high(self, msg: Message, seq: int, now: float) -> None:
        expected = self.store.next_target
        self.queue[seq] = msg
        if self.resend_range and seq >= self.resend_range[0]:
            log.info("%s: MsgSeqNum %d too high (expecting %d), queued; ResendRequest %d..%d "
                     "already sent", self._label, seq, expected, *self.resend_range)
            return
        log.info("%s: MsgSeqNum %d too high, expecting %d: queued, sending ResendRequest",
                 self._label, seq, expected)
        self.resend_range = (expected, seq - 1)
        self._resend_at = now
        self._resend_skipped = []
        self._resend_resent = 0
        self._resend_reported = False
        self.resend_requests_sent += 1
        self.send(b"2", [(7, b"%d" % expected), (16, b"0")], now=now)

    def _poss_dup(self, msg: Message, seq: int, now: float) -> None:
        if msg.msg_type != b"4":
            orig = msg.get(122)
            if orig is None:
                self._reject(msg, RejectReason.REQUIRED_TAG_MISSING, 122, now)
                return
            orig_time = parse_timestamp(orig)
            sending_time = parse_timestamp(msg.get(52) or b"")
            if orig_time is None or (sending_time is not None and orig_time > sending_time):
                self._reject(msg, RejectReason.SENDINGTIME_ACCURACY_PROBLEM, 0, now)
                self._send_logout(b"", now, "OrigSendingTime (122) after SendingTime (52)")
                return
        log.info("%s: PossDup MsgSeqNum %d already received: ignored", self._label, seq)

    def _on_logon(self, msg: Message, now: float) -> None:
        reset = msg.get(141) == b"Y"
        if self.received_logon and not reset:
            self._disconnect("Logon received while already logged on")
            return
        if self.initiator:
            if not self.sent_logon:
                self._disconnect("Logon answer received before we sent a Logon")
                return
            if reset and not self.sent_reset:
                self.store.reset()
        else:
            failure = self._check_credentials(msg)
            if failure:
                log.warning("%s: Logon refused: %s", self._label, failure)
                self.send(b"5", [(58, failure.encode())], now=now)
                self._disconnect(f"Logon refused: {failure}")
                return
            if reset or self.config.reset_on_logon:
                log.info("%s: Logon with %s: sequence numbers reset to 1", self._label,
                         "ResetSeqNumFlag=Y" if reset else "reset_on_logon")
                self.store.reset()
                self.queue.clear()
                self.resend_range = None
                self.received_logon = self.sent_logon = False
        if not self._verify(msg, now, check_high=False, check_low=True):
            if not self.received_logon and not self.closed:
                self._disconnect("Logon failed its checks")
            return
        self.received_logon = True
        if not self.initiator:
            interval = msg.get(108) or b"0"
            self.heartbeat_s = int(interval) if interval.isdigit() else 0
            body: list[_Field] = [(98, b"0"), (108, b"%d" % self.heartbeat_s)]
            if reset:
                body.append((141, b"Y"))
            if self.config.begin_string == "FIXT.1.1":
                body.append((1137, self.config.default_appl_ver_id.encode()))
            self.sent_logon = True
            self.send(b"A", body, now=now)
        self.sent_reset = False
        seq = msg.seq
        if seq > self.store.next_target:
            self._target_too_high(msg, seq, now)
        else:
            self.store.next_target += 1
        log.info("%s: logged on (HeartBtInt %d s, next MsgSeqNum out %d, in %d)", self._label,
                 self.heartbeat_s, self.store.next_sender, self.store.next_target)

    def _check_credentials(self, msg: Message) -> str:
        config = self.config
        if config.username and msg.get(553) != config.username.encode():
            return "invalid Username (553)"
        if config.password and msg.get(554) != config.password.encode():
            return "invalid Password (554)"
        return ""

    def _on_resend_request(self, msg: Message, now: float) -> None:
        if not self._verify(msg, now, check_high=False, check_low=False):
            return
        self.resend_requests_received += 1
        begin = int(msg.get(7) or b"0")
        end = int(msg.get(16) or b"0")
        last = self.store.next_sender - 1
        if end == 0 or end > last:
            end = last
        log.info("%s: ResendRequest %d..%d", self._label, begin, end)
        cursor = max(begin, 1)
        for seq, raw in self.store.get(cursor, end):
            if seq > cursor:
                self._gap_fill(cursor, seq, now)
            self._resend(raw, now)
            cursor = seq + 1
        if cursor <= end:
            self._gap_fill(cursor, end + 1, now)
        if msg.seq == self.store.next_target:
            self.store.next_target += 1

    def _gap_fill(self, seq: int, new_seq: int, now: float) -> None:
        stamp = self._clock.stamp(now)
        header = [(34, b"%d" % seq), (43, b"Y"), (49, self.sender), (52, stamp), (56, self.target),
                  (122, stamp)]
        self.output.append(
            encode(self.begin_string, b"4", header, [(36, b"%d" % new_seq), (123, b"Y")])
        )
        self.last_sent = now

    def _resend(self, raw: bytes, now: float) -> None:
        original = parse(raw)
        header = [
            (34, original.get(34) or b"0"), (43, b"Y"), (49, self.sender),
            (52, self._clock.stamp(now)), (56, self.target),
            (122, original.get(52) or self._clock.stamp(now)),
            *original.header_extras(),
        ]
        self.output.append(encode(self.begin_string, original.msg_type, header, original.body()))
        self.last_sent = now

    def _on_sequence_reset(self, msg: Message, now: float) -> None:
        gap_fill = msg.get(123) == b"Y"
        if not self._verify(msg, now, check_high=gap_fill, check_low=gap_fill):
            return
        new_text = msg.get(36) or b""
        new_seq = int(new_text) if new_text.isdigit() else 0
        expected = self.store.next_target
        if new_seq > expected:
            log.info("%s: SequenceReset%s from %d to %d", self._label,
                     "-GapFill" if gap_fill else "-Reset", expected, new_seq)
            self.store.next_target = new_seq
            if not gap_fill:
                self._lost(expected, new_seq - 1, "SequenceReset-Reset skipped them")
            elif self.resend_range is not None:
                end = min(new_seq - 1, self.resend_range[1])
                if end >= expected:
                    self._resend_skipped.append((expected, end))
                if new_seq - 1 >= self.resend_range[1]:
                    self._resend_done = True
        elif new_seq < expected:
            self._reject(msg, RejectReason.VALUE_IS_INCORRECT, 0, now)

    def _on_logout(self, msg: Message, now: float) -> None:
        if not self._verify(msg, now, check_high=False, check_low=False):
            return
        text = (msg.get(58) or b"").decode(errors="replace")
        if not self.sent_logout:
            said = f" ({text})" if text else ""
            self._send_logout(b"", now, f"answering the peer's Logout{said}", logging.INFO)
            reason = f"Logout by the peer{said}"
        else:
            reason = "Logout handshake complete"
        self.store.next_target += 1
        self._disconnect(reason)

    # ----------------------------------------------------------------- outbound helpers
    def _reject(self, msg: Message, code: RejectReason, tag: int, now: float) -> None:
        self.rejects_sent += 1
        seq_text = msg.get(34)
        if not self.received_logon:
            self._disconnect(f"Logon rejected: {code.text}" + (f" ({tag})" if tag else ""))
            return
        body: list[_Field] = []
        if seq_text:
            body.append((45, seq_text))
        body.append((58, code.text.encode()))
        if tag or code == RejectReason.INVALID_TAG_NUMBER:
            body.append((371, b"%d" % tag))
        if msg.msg_type:
            body.append((372, msg.msg_type))
        if self.config.begin_string != "FIX.4.2" or code <= RejectReason.INVALID_MSGTYPE:
            body.append((373, b"%d" % code))
        route = [(to_tag, value) for from_tag, to_tag in _REVERSE_ROUTE
                 if (value := msg.get(from_tag))]
        if msg.msg_type not in (b"A", b"4") and msg.seq == self.store.next_target:
            self.store.next_target += 1
        log.warning("%s: Reject of MsgSeqNum %s MsgType %s: %s%s", self._label,
                    (seq_text or b"?").decode(errors="replace"),
                    msg.msg_type.decode(errors="replace"), code.text,
                    f" (RefTagID {tag})" if tag or code == RejectReason.INVALID_TAG_NUMBER else "")
        self.send(b"3", body, route, now=now)

    def _business_reject(self, msg: Message, now: float) -> None:
        body = [(45, msg.get(34) or b"0"), (58, b"Unsupported Message Type"),
                (372, msg.msg_type), (380, b"3")]
        self.store.next_target += 1
        log.warning("%s: BusinessMessageReject of MsgSeqNum %d: unsupported MsgType %s",
                    self._label, msg.seq, msg.msg_type.decode(errors="replace"))
        self.send(b"j", body, now=now)

    def _send_logout(
        self, text: bytes, now: float, why: str = "", level: int = logging.WARNING
    ) -> None:
        """Send a Logout; a warning unless it is the orderly end of the session (asked for by
        us, or answering the peer's)."""
        if self.closed:
            return
        log.log(level, "%s: sending Logout: %s", self._label,
                why or text.decode(errors="replace") or "answering the peer's Logout")
        self.send(b"5", [(58, text)] if text else (), now=now)
        self.sent_logout = True
        self.logout_sent_at = now

    def _disconnect(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = reason
        self.queue.clear()
        log.warning("%s: disconnecting: %s", self._label, reason)
