"""The FIX session state machine without sockets: time is an argument, so no test waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.fix.session.config import SessionConfig, load_sessions
from connectors.fix.session.dictionary import DEFAULT_DICTIONARY_DIR, load_dictionary
from connectors.fix.session.state import SessionState
from connectors.fix.session.store import FileStore, MemoryStore
from connectors.fix.session.wire import Clock, Frame, Framer, Message, encode, parse
from domain.errors import ConfigError

NOW = 1_700_000_000.0
CLOCK = Clock()
FIX44 = DEFAULT_DICTIONARY_DIR / "FIX44.xml"


def config(**overrides) -> SessionConfig:
    values = {"sender_comp_id": "BF", "target_comp_id": "VENUE", "heartbeat_s": 1}
    values.update(overrides)
    return SessionConfig(**values)


def peer(msg_type: bytes, seq: int, body=(), *, now: float = NOW, header=(), sender=b"VENUE",
         target=b"BF") -> Frame:
    """A message from the counterparty, framed as received."""
    fields = [(34, b"%d" % seq), (49, sender), (52, CLOCK.stamp(now)), (56, target), *header]
    return Frame(encode(b"FIX.4.4", msg_type, fields, body))


class Session:
    """A logged-on initiator session and what it delivered to the application."""

    def __init__(self, dictionary=None, store=None, **overrides) -> None:
        self.delivered: list[int] = []
        self.state = SessionState(
            config(**overrides), store or MemoryStore(), dictionary,
            lambda session, msg: self.delivered.append(msg.seq), initiator=True, now=NOW,
        )
        self.state.start_logon(NOW)
        self.state.on_frame(peer(b"A", 1, [(98, b"0"), (108, b"1")]), NOW)
        assert self.state.logged_on
        self.state.take_output()

    def feed(self, frame: Frame, now: float = NOW) -> list[Message]:
        self.state.on_frame(frame, now)
        return [parse(raw) for raw in self.state.take_output()]

    def tick(self, now: float) -> list[Message]:
        self.state.on_timer(now)
        return [parse(raw) for raw in self.state.take_output()]


def test_idle_session_sends_heartbeat_then_test_request_then_disconnects() -> None:
    session = Session()
    assert session.tick(NOW + 0.5) == []
    [heartbeat] = session.tick(NOW + 1.0)
    assert heartbeat.msg_type == b"0"
    [test_request] = session.tick(NOW + 1.5)
    assert (test_request.msg_type, test_request.get(112)) == (b"1", b"TEST")
    assert session.tick(NOW + 2.0) == []
    session.tick(NOW + 2.4)
    assert "TestRequest unanswered" in session.state.closed


def test_test_request_is_answered_with_its_id() -> None:
    session = Session()
    [answer] = session.feed(peer(b"1", 2, [(112, b"ping-7")]))
    assert (answer.msg_type, answer.get(112), answer.seq) == (b"0", b"ping-7", 2)


def test_gap_sends_one_resend_request_and_delivers_in_order_after_gap_fill() -> None:
    session = Session()
    assert session.feed(peer(b"8", 2)) == []
    [resend] = session.feed(peer(b"8", 5))
    assert (resend.msg_type, resend.get(7), resend.get(16)) == (b"2", b"3", b"0")
    assert session.feed(peer(b"8", 6)) == []  # the ResendRequest already covers it
    gap_fill = [(36, b"4"), (123, b"Y")]
    session.feed(peer(b"4", 3, gap_fill, header=[(43, b"Y"), (122, CLOCK.stamp(NOW))]))
    session.feed(peer(b"8", 4, header=[(43, b"Y"), (122, CLOCK.stamp(NOW))]))
    assert session.delivered == [2, 4, 5, 6]
    assert session.state.store.next_target == 7


def test_resend_request_is_answered_with_stored_messages_and_gap_fills() -> None:
    session = Session()  # our Logon was 1
    session.state.send(b"D", [(11, b"A")], now=NOW)  # 2
    session.state.send(b"0", [], now=NOW)  # 3: admin, never resent
    session.state.send(b"D", [(11, b"B")], now=NOW)  # 4
    session.state.take_output()
    answer = session.feed(peer(b"2", 2, [(7, b"1"), (16, b"0")], now=NOW + 5), now=NOW + 5)
    assert [(m.msg_type, m.seq) for m in answer] == [(b"4", 1), (b"D", 2), (b"4", 3), (b"D", 4)]
    assert [m.get(36) for m in answer if m.msg_type == b"4"] == [b"2", b"4"]
    resent = answer[1]
    assert (resent.get(43), resent.get(11)) == (b"Y", b"A")
    assert resent.get(122) == CLOCK.stamp(NOW)  # OrigSendingTime: when it was first sent
    assert resent.get(52) == CLOCK.stamp(NOW + 5)
    assert session.state.store.next_sender == 5  # resends use no new numbers


def test_poss_dup_duplicate_is_ignored() -> None:
    session = Session()
    session.feed(peer(b"8", 2))
    duplicate = peer(b"8", 2, header=[(43, b"Y"), (122, CLOCK.stamp(NOW - 1))])
    assert session.feed(duplicate) == []
    session.feed(peer(b"8", 3))
    assert session.delivered == [2, 3]
    assert session.state.logged_on


def test_sequence_number_too_low_without_poss_dup_logs_out_and_disconnects() -> None:
    session = Session()
    session.feed(peer(b"8", 2))
    [logout] = session.feed(peer(b"8", 2))
    assert logout.msg_type == b"5"
    assert logout.get(58) == b"MsgSeqNum too low, expecting 3 but received 2"
    assert "too low" in session.state.closed


def test_garbled_message_is_ignored_and_its_gap_recovered() -> None:
    session = Session()
    framer = Framer()
    good = peer(b"8", 2).raw
    wrong = b"001" if good.endswith(b"000\x01") else b"000"
    bad_checksum = good[:-4] + wrong + b"\x01"
    frames = framer.feed(bad_checksum + peer(b"8", 3).raw)
    assert "CheckSum(10)" in frames[0].garbled
    assert session.feed(frames[0]) == []
    [resend] = session.feed(frames[1])
    assert (resend.msg_type, resend.get(7)) == (b"2", b"2")


def test_missing_comp_id_is_rejected_with_the_reason_and_tag() -> None:
    session = Session()
    raw = encode(b"FIX.4.4", b"0", [(34, b"2"), (49, b"VENUE"), (52, CLOCK.stamp(NOW))], [])
    [reject] = session.feed(Frame(raw))
    assert (reject.msg_type, reject.get(45), reject.get(371), reject.get(373)) == (
        b"3", b"2", b"56", b"1"
    )
    assert reject.get(58) == b"Required tag missing"
    assert session.state.store.next_target == 3  # a rejected message still used its number


@pytest.mark.parametrize(
    ("msg_type", "body", "tag", "reason"),
    [
        (b"D", [(11, b"1"), (40, b"Z"), (54, b"1"), (60, CLOCK.stamp(NOW))], b"40", b"5"),
        (b"D", [(11, b"1"), (38, b"+5"), (40, b"1"), (54, b"1"), (60, CLOCK.stamp(NOW))],
         b"38", b"6"),
        (b"D", [(40, b"1"), (54, b"1"), (60, CLOCK.stamp(NOW))], b"11", b"1"),
        (b"0", [(55, b"IBM")], b"55", b"2"),
        (b"0", [(9999, b"x")], b"9999", b"0"),
    ],
    ids=["bad-enum", "bad-format", "required-missing", "not-in-message", "unknown-tag"],
)
def test_dictionary_rejects_name_reason_and_tag(msg_type, body, tag, reason) -> None:
    session = Session(dictionary=load_dictionary(FIX44))
    [reject] = session.feed(peer(msg_type, 2, body))
    assert (reject.msg_type, reject.get(371), reject.get(373)) == (b"3", tag, reason)
    assert session.delivered == []


def test_wrong_comp_id_and_stale_sending_time_are_rejected_then_logged_out() -> None:
    session = Session()
    reject, logout = session.feed(peer(b"8", 2, sender=b"INTRUDER"))
    assert (reject.get(373), logout.msg_type) == (b"9", b"5")
    session = Session()
    reject, logout = session.feed(peer(b"8", 2, now=NOW - 121))
    assert (reject.get(373), logout.msg_type) == (b"10", b"5")


def test_acceptor_refuses_a_wrong_password() -> None:
    state = SessionState(config(role="acceptor", password="right"), MemoryStore(), None,
                         initiator=False, now=NOW)
    state.on_frame(peer(b"A", 1, [(98, b"0"), (108, b"1"), (554, b"wrong")]), NOW)
    [logout] = [parse(raw) for raw in state.take_output()]
    assert (logout.msg_type, logout.get(58)) == (b"5", b"invalid Password (554)")
    assert "Logon refused" in state.closed and not state.received_logon


def test_file_store_survives_a_restart(tmp_path: Path) -> None:
    store = FileStore(tmp_path, "s")
    store.save(7, b"8=FIX.4.4\x01...")
    store.next_sender, store.next_target = 8, 12
    store.close()
    with (tmp_path / "s.messages").open("ab") as fh:
        fh.write(b"9 500\npartial")  # a record cut short by a crash
    again = FileStore(tmp_path, "s")
    assert (again.next_sender, again.next_target) == (8, 12)
    assert again.get(1, 10) == [(7, b"8=FIX.4.4\x01...")]


def test_restarted_session_continues_its_sequence_numbers(tmp_path: Path) -> None:
    session = Session(store=FileStore(tmp_path, "s"))
    session.state.send(b"D", [(11, b"A")], now=NOW)
    session.feed(peer(b"8", 2))
    session.state.store.flush()
    restarted = SessionState(config(), FileStore(tmp_path, "s"), None, initiator=True, now=NOW)
    restarted.start_logon(NOW)
    [logon] = [parse(raw) for raw in restarted.take_output()]
    assert logon.seq == 3
    assert restarted.store.next_target == 3


def test_framer_drops_oversize_messages_and_counts_garbage() -> None:
    framer = Framer(max_message_size=200)
    frames = framer.feed(b"noise" + b"8=FIX.4.4\x019=5000\x0135=0\x01" + peer(b"0", 2).raw)
    assert "over the 200-byte limit" in frames[0].garbled
    assert frames[-1].garbled == "" and parse(frames[-1].raw).seq == 2
    assert framer.skipped == 10  # "noise" and the oversize message's "35=0|"


def test_session_config_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "fix.toml"
    path.write_text(
        '[[fix.session]]\nsender_comp_id = "BF"\ntarget_comp_id = "VENUE"\n'
        'begin_string = "FIXT.1.1"\ndefault_appl_ver_id = "9"\nheartbeat_s = 5\n'
    )
    [session] = load_sessions(path)
    assert (session.begin_string, session.heartbeat_s, session.name) == (
        "FIXT.1.1", 5, "FIXT.1.1-BF-VENUE"
    )
    path.write_text('[[fix.session]]\nsender_comp_id = "BF"\ntarget_comp_id = "V"\nhost = 1\n')
    with pytest.raises(ConfigError, match="host = 1 is not a str"):
        load_sessions(path)
    path.write_text('[[fix.session]]\nsender_comp_id = "BF"\ntarget_comp_id = "V"\nport_ = 1\n')
    with pytest.raises(ConfigError, match="unknown key 'port_'"):
        load_sessions(path)
