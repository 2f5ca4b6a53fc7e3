"""The edge's pure parts alone: claims, roles, protocol, subscriptions, conflation."""

from __future__ import annotations

import json

import pytest

from edge import deflate, protocol
from edge.claims import Claims, TokenError, check_claims
from edge.conflation import AlertBacklogError, PendingFrames
from edge.hub import frame_seq
from edge.roles import alert_visible, receives_health
from edge.subscriptions import SubscriptionLimitError, SubscriptionMap
from edge.tokens import issue_token, read_token

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"role": "trader", "accounts": ["A"], "exp": 99}, "no user"),
        ({"sub": "u", "role": "admin", "exp": 99}, "role was 'admin'"),
        ({"sub": "u", "role": "analyst"}, "no expiry"),
        ({"sub": "u", "role": "analyst", "exp": 5}, "expired"),
        ({"sub": "u", "role": "trader", "exp": 99}, "names no account"),
        ({"sub": "u", "role": "trader", "accounts": "A1", "exp": 99}, "list of account"),
    ],
)
def test_check_claims_refuses_with_the_reason(payload, problem):
    with pytest.raises(TokenError, match=problem):
        check_claims(payload, now_s=10)


def test_check_claims_keeps_accounts_of_traders_only():
    trader = check_claims({"sub": "t", "role": "trader", "accounts": ["A", "B"], "exp": 99}, 10)
    analyst = check_claims({"sub": "a", "role": "analyst", "accounts": ["A"], "exp": 99}, 10)
    assert trader.accounts == {"A", "B"} and analyst.accounts == frozenset()


def test_tokens_round_trip_and_refuse_tampering():
    token = issue_token(KEY, "bob", "trader", ["A1"], now_s=1000, ttl_s=60)
    assert read_token(KEY, token, now_s=1001) == Claims("bob", "trader", frozenset({"A1"}), 1060)
    with pytest.raises(TokenError, match="expired"):
        read_token(KEY, token, now_s=1061)
    with pytest.raises(TokenError, match="bad token"):
        read_token(b"x" * 32, token, now_s=1001)
    with pytest.raises(TokenError, match="no token"):
        read_token(KEY, "", now_s=1001)


@pytest.mark.parametrize(
    ("role", "accounts", "kind", "account", "visible"),
    [
        ("trader", {"A1"}, "STOP_TRIGGERED", "A1", True),
        ("trader", {"A1"}, "MARGIN_CALL", "A2", False),
        ("trader", {"A1"}, "WASH_TRADE", "A1", False),  # no tipping-off
        ("analyst", set(), "SPOOFING", "A9", True),
        ("analyst", set(), "MARGIN_CALL", "A9", False),
        ("operator", set(), "WASH_TRADE", "A9", False),
    ],
)
def test_alert_visible_by_role(role, accounts, kind, account, visible):
    claims = Claims("u", role, frozenset(accounts), 0)
    assert alert_visible(claims, kind, account) is visible


def test_only_operators_receive_health():
    assert receives_health(Claims("o", "operator", frozenset(), 0))
    assert not receives_health(Claims("a", "analyst", frozenset(), 0))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"[1]", "JSON object"),
        (b"{", "not JSON"),
        (b'{"action":"subscribe"}', "non-empty list"),
        (b'{"action":"subscribe","symbols":["A B"]}', "not a symbol"),
        (b'{"action":"subscribe","symbols":["A","B","C"]}', "limit is 2"),
        (b'{"action":"resume"}', "last_alert_id"),
        (b'{"action":"dance"}', "unknown action"),
        (b'{"action":"ping","pad":"' + b"x" * 200 + b'"}', "over the 100-byte limit"),
    ],
)
def test_parse_client_message_refuses_bad_input(raw, problem):
    with pytest.raises(protocol.ProtocolError, match=problem):
        protocol.parse_client_message(raw, max_bytes=100, max_symbols=2)


def test_parse_client_message_actions():
    parse = protocol.parse_client_message
    assert parse(b'{"action":"ping"}', 100, 5) == protocol.Ping()
    assert parse(b'{"action":"unsubscribe","symbols":["A","A"]}', 100, 5) == protocol.Unsubscribe(
        ("A",)
    )
    assert parse(b'{"action":"resume","last_alert_id":"5-1"}', 100, 5) == protocol.Resume("5-1")


def test_frames_are_valid_json_built_from_redis_bytes():
    data = b'{"symbol":"AAPL","bid":1.5,"seq":7}'
    quote = protocol.quote_frame(data)
    # A quote written before the change fields existed (an older flow) gets them as null.
    assert json.loads(quote) == {"type": "quote", "symbol": "AAPL", "bid": 1.5, "seq": 7,
                                 "prev_close": None, "change": None, "change_pct": None}
    assert json.loads(protocol.quote_frame(data, b"snapshot"))["type"] == "snapshot"
    batch = json.loads(protocol.quotes_frame([quote, protocol.quote_frame(data)]))
    assert batch["type"] == "quotes" and len(batch["quotes"]) == 2
    assert protocol.quotes_frame([quote]) is quote
    alert = json.loads(protocol.alert_frame(b"9-0", b'{"alert_id":"x","kind":"SPOOFING"}'))
    assert alert == {"type": "alert", "stream_id": "9-0", "alert_id": "x", "kind": "SPOOFING"}
    assert frame_seq(quote) == 7
    assert protocol.stream_id_key(b"10-2") > protocol.stream_id_key("9-5")


def test_subscription_map_limits_and_cleans_up():
    subs: SubscriptionMap[str] = SubscriptionMap(max_per_connection=2)
    assert subs.subscribe("c1", ["A", "B", "A"]) == ["A", "B"]
    assert subs.subscribe("c2", ["A"]) == ["A"]
    with pytest.raises(SubscriptionLimitError, match="limit is 2"):
        subs.subscribe("c1", ["C"])
    assert subs.subscribers("A") == {"c1", "c2"}
    assert subs.unsubscribe("c1", ["A", "Z"]) == ["A"]
    subs.remove_connection("c2")
    assert subs.subscribers("A") == set() and len(subs) == 1  # only B (c1) is left


def test_pending_frames_conflate_quotes_and_bound_alerts():
    pending = PendingFrames(max_alerts=2)
    for n in range(100):
        pending.add_quote("AAPL", b"a%d" % n)
    pending.add_quote("MSFT", b"m")
    pending.add_quote("AAPL", b"latest")
    assert pending.take_quotes() == [b"m", b"latest"]
    assert pending.conflated == 100
    pending.add_alert(b"1")
    pending.add_alert(b"2")
    with pytest.raises(AlertBacklogError, match="2 alerts undelivered"):
        pending.add_alert(b"3")
    assert pending.take_alerts() == [b"1", b"2"]


def test_deflate_round_trip_and_bomb_limit():
    payload = b'{"type":"quote","symbol":"AAPL"}' * 20
    packed = deflate.compress(payload)
    assert len(packed) < len(payload)
    assert deflate.decompress(packed, max_bytes=10_000) == payload
    with pytest.raises(ValueError, match="inflates past"):
        deflate.decompress(deflate.compress(b"0" * 100_000), max_bytes=1000)
    assert deflate.offered("permessage-deflate; client_max_window_bits")
    assert not deflate.offered("x-webkit-deflate-frame")


# -- flushing: phases and pacing (edge.hub, edge.pacing) ---------------------------------------


class _FakeSender:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send_frame(self, payload: bytes) -> None:
        self.frames.append(payload)

    def close(self, code: int, reason: str) -> None:
        pass


def _hub(**overrides: object):  # noqa: ANN202
    from edge.config import EdgeConfig
    from edge.hub import Hub

    config = EdgeConfig(redis_url="redis://unused", secret=b"x" * 32, **overrides)
    return Hub(config, None)  # the flush paths never touch Redis


def _quote_entry(symbol: str, seq: int) -> tuple[bytes, dict[bytes, bytes]]:
    data = json.dumps({"symbol": symbol, "bid": 1.0, "ts": 0, "seq": seq}).encode()
    return b"1-%d" % seq, {b"symbol": symbol.encode(), b"data": data}


def test_next_flush_period_follows_the_frame_budget():
    from edge.pacing import next_flush_period

    assert next_flush_period(0.025, 50_000, 25_000, 0.025, 0.2) == pytest.approx(0.05)
    assert next_flush_period(0.025, 1e6, 25_000, 0.025, 0.2) == pytest.approx(0.1)  # 4x at most
    assert next_flush_period(0.1, 1e6, 25_000, 0.025, 0.2) == pytest.approx(0.2)  # the ceiling
    assert next_flush_period(0.1, 24_000, 25_000, 0.025, 0.2) == 0.1  # within 10 %: kept
    assert next_flush_period(0.1, 1_000, 25_000, 0.025, 0.2) == pytest.approx(0.05)  # 2x down
    assert next_flush_period(0.03, 0, 25_000, 0.025, 0.2) == pytest.approx(0.025)  # the floor


def test_hub_spreads_connections_over_flush_phases():
    from edge.claims import Claims

    hub = _hub(flush_phases=4)
    senders = [_FakeSender() for _ in range(10)]
    sessions = [hub.add(s, Claims("u", "trader", frozenset({"A1"}), 0)) for s in senders]
    assert sorted(len(group) for group in hub.phases) == [2, 2, 3, 3]
    hub.remove(senders[0])
    assert sum(len(group) for group in hub.phases) == 9
    assert sessions[0] not in hub.phases[sessions[0].phase]


def test_hub_flush_sends_one_frame_of_the_latest_quotes_per_connection():
    from edge.claims import Claims

    hub = _hub(flush_phases=1)
    quiet, busy = _FakeSender(), _FakeSender()
    for sender, symbols in ((quiet, ["ZZZ"]), (busy, ["AAA", "BBB"])):
        session = hub.add(sender, Claims("u", "trader", frozenset({"A1"}), 0))
        hub.subs.subscribe(session, symbols)
    hub.on_quotes([_quote_entry("AAA", 1), _quote_entry("BBB", 1), _quote_entry("AAA", 2)])
    ready = hub.flush_phase(hub.phases[0])
    assert [s.sender for s in ready] == [busy]  # nothing pending for the quiet one
    for session in ready:
        hub.flush_session(session)
    assert quiet.frames == []
    (frame,) = busy.frames
    doc = json.loads(frame)
    assert doc["type"] == "quotes"
    assert [(q["symbol"], q["seq"]) for q in doc["quotes"]] == [("AAA", 2), ("BBB", 1)]
    assert hub.flush_phase(hub.phases[0]) == []


def test_hub_flush_period_lengthens_over_the_frame_budget_and_comes_back():
    import asyncio

    from edge.claims import Claims

    hub = _hub(flush_ms=10, flush_max_ms=80, max_frames_per_s=200, flush_phases=5)
    for _ in range(20):
        session = hub.add(_FakeSender(), Claims("u", "trader", frozenset({"A1"}), 0))
        hub.subs.subscribe(session, ["AAA"])

    async def run(seconds: float, busy: bool) -> None:
        flusher = asyncio.create_task(hub.flush_forever())
        loop = asyncio.get_running_loop()
        end, seq = loop.time() + seconds, 0
        while loop.time() < end:
            if busy:  # an update for every connection every 2 ms: 2,000 frames/s unpaced
                seq += 1
                hub.on_quotes([_quote_entry("AAA", seq)])
            await asyncio.sleep(0.002)
        flusher.cancel()

    asyncio.run(run(1.6, busy=True))
    assert hub.flush_period_s == pytest.approx(0.08)
    asyncio.run(run(2.1, busy=False))
    assert hub.flush_period_s == pytest.approx(0.01)


def test_hub_holds_live_alerts_until_the_connection_is_greeted():
    """An alert the reader delivers between a connection's registration and its hello would
    reach the client before the hello, and a replay would then skip it as already sent."""
    from edge.claims import Claims

    hub = _hub()
    sender = _FakeSender()
    session = hub.add(sender, Claims("u", "trader", frozenset({"A1"}), 0))
    data = b'{"alert_id":"a1"}'
    hub.on_alerts([(b"7-1", {b"kind": b"STOP_TRIGGERED", b"account": b"A1", b"data": data})])
    assert sender.frames == []
    hub.go_live(session)
    assert [json.loads(f)["alert_id"] for f in sender.frames] == ["a1"]


def test_hub_alerts_queued_while_paused_all_arrive_when_the_socket_fills_again():
    from edge.claims import Claims

    hub = _hub()
    sent: list[bytes] = []

    class FillsAfterOne(_FakeSender):
        def send_frame(self, payload: bytes) -> None:
            sent.append(payload)
            hub.pause(self)  # the socket is full again after each frame

    sender = FillsAfterOne()
    hub.go_live(hub.add(sender, Claims("u", "trader", frozenset({"A1"}), 0)))  # greeted
    hub.pause(sender)
    entries = [
        (b"5-%d" % i, {b"kind": b"STOP_TRIGGERED", b"account": b"A1", b"data": b'{"n":%d}' % i})
        for i in range(3)
    ]
    hub.on_alerts(entries)
    assert sent == []
    for _ in range(3):
        hub.resume_writing(sender)
    assert [json.loads(f)["n"] for f in sent] == [0, 1, 2]


def test_hub_positions_wait_for_a_full_socket_and_go_out_as_they_then_stand():
    from edge.claims import Claims

    hub = _hub()
    reading, stuck = _FakeSender(), _FakeSender()
    for sender in (reading, stuck):
        hub.add(sender, Claims("u", "trader", frozenset({"A1"}), 0))
    doc = b'{"account":"A1","cash":%d,"holdings":[],"ts":%d}'
    hub.positions.set_holdings("A1", doc % (100, 1))
    hub.pause(stuck)
    for account, frame in hub.positions.take_due():
        hub.send_due_positions(account, frame)
    assert len(reading.frames) == 1 and stuck.frames == []
    hub.positions.set_holdings("A1", doc % (250, 2))  # changes while the socket is full
    hub.resume_writing(stuck)
    for account, frame in hub.positions.take_due():
        hub.send_due_positions(account, frame)
    assert [json.loads(f)["cash"] for f in stuck.frames] == [250]  # the latest, no backlog
    assert [json.loads(f)["cash"] for f in reading.frames] == [100, 250]
