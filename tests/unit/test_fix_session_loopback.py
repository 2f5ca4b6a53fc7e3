"""FIX sessions over loopback: our initiator against our acceptor and scripted counterparties."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from connectors.fix.session.config import SessionConfig
from connectors.fix.session.engine import Acceptor, Initiator
from connectors.fix.session.state import SessionState
from connectors.fix.session.wire import Clock, Framer, Message, encode, parse
from tests.eventually import eventually_async


def venue(*, sender: str = "VENUE", target: str = "BF", **overrides) -> SessionConfig:
    return SessionConfig(
        sender_comp_id=sender, target_comp_id=target, role="acceptor", validate=False, **overrides
    )


def broker(port: int, *, sender: str = "BF", **overrides) -> SessionConfig:
    values = {
        "heartbeat_s": 1,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
        "logon_timeout_s": 2.0,
        "validate": False,
    }
    values.update(overrides)
    return SessionConfig(sender_comp_id=sender, target_comp_id="VENUE", port=port, **values)


class Orders:
    """A venue application recording the ClOrdIDs it receives."""

    def __init__(self) -> None:
        self.cl_ord_ids: list[bytes] = []

    def __call__(self, session: SessionState, message: Message) -> None:
        self.cl_ord_ids.append(message.get(11) or b"")


def test_logon_heartbeats_orders_and_logout() -> None:
    async def scenario() -> None:
        orders = Orders()
        acceptor = Acceptor([venue()], application=lambda config: orders)
        port = await acceptor.start()
        initiator = Initiator(broker(port))
        initiator.start()
        await initiator.wait_logged_on(5)
        # Not a wait for a condition: 2.3 s of idle time must pass (HeartBtInt 1 s) so that
        # both sides heartbeat while idle.
        await asyncio.sleep(2.3)
        store = acceptor.stores[venue().key]
        assert store.next_target >= 3 and initiator.store.next_target >= 3
        assert initiator.logged_on
        seq = initiator.send((b"D", [(11, b"ord-1"), (54, b"1")]))
        await eventually_async(lambda: orders.cl_ord_ids == [b"ord-1"])
        assert seq == initiator.store.next_sender - 1
        await initiator.stop()
        await eventually_async(lambda: not acceptor.active)
        session = initiator.session
        assert session is not None and session.closed == "Logout handshake complete"
        await acceptor.close()

    asyncio.run(scenario())


def test_wrong_password_is_refused() -> None:
    async def scenario() -> None:
        acceptor = Acceptor([venue(password="right")])
        port = await acceptor.start()
        initiator = Initiator(broker(port, password="wrong", reconnect_min_s=5))
        initiator.start()
        await eventually_async(lambda: initiator.session is not None and initiator.session.closed)
        session = initiator.session
        assert session is not None and not session.received_logon
        assert "invalid Password (554)" in session.closed
        await initiator.stop()
        await acceptor.close()

    asyncio.run(scenario())


def test_dropped_connection_is_reconnected_and_numbering_continues() -> None:
    async def scenario() -> None:
        acceptor = Acceptor([venue()])
        port = await acceptor.start()
        initiator = Initiator(broker(port))
        initiator.start()
        await initiator.wait_logged_on(5)
        initiator.send((b"D", [(11, b"before")]))
        sent_before = initiator.store.next_sender
        acceptor.active[venue().key].close()  # the venue drops us
        await eventually_async(lambda: initiator.connects == 2 and initiator.logged_on)
        assert initiator.store.next_sender == sent_before + 1  # the new Logon, no reset
        await initiator.stop()
        await acceptor.close()

    asyncio.run(scenario())


def test_restarted_initiator_continues_its_sequence_numbers(tmp_path: Path) -> None:
    async def scenario() -> None:
        orders = Orders()
        acceptor = Acceptor([venue()], application=lambda config: orders)
        port = await acceptor.start()
        first = Initiator(broker(port, store_dir=str(tmp_path)))
        first.start()
        await first.wait_logged_on(5)
        first.send((b"D", [(11, b"a")]))
        first.send((b"D", [(11, b"b")]))
        await eventually_async(lambda: len(orders.cl_ord_ids) == 2)
        await first.stop()
        second = Initiator(broker(port, store_dir=str(tmp_path)))
        assert second.store.next_sender == 5  # Logon 1, orders 2-3, Logout 4
        second.start()
        await second.wait_logged_on(5)
        second.send((b"D", [(11, b"c")]))
        await eventually_async(lambda: orders.cl_ord_ids == [b"a", b"b", b"c"])
        # No gap on either side: the venue asked for no resend.
        assert acceptor.stores[venue().key].next_target == second.store.next_sender
        await second.stop()
        await acceptor.close()

    asyncio.run(scenario())


def test_silent_counterparty_gets_test_request_then_is_dropped_and_redialled() -> None:
    """A scripted venue answers the Logon, then never says anything again."""
    connections: list[list[bytes]] = []

    async def silent_venue(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received: list[bytes] = []
        connections.append(received)
        framer = Framer()
        clock = Clock()
        while data := await reader.read(65536):
            for frame in framer.feed(data):
                message = parse(frame.raw)
                received.append(message.msg_type)
                if message.msg_type == b"A":
                    header = [
                        (34, b"1"),
                        (49, b"VENUE"),
                        (52, clock.stamp(time.time())),
                        (56, b"BF"),
                    ]
                    writer.write(encode(b"FIX.4.4", b"A", header, [(98, b"0"), (108, b"1")]))
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(silent_venue, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        initiator = Initiator(broker(port))
        initiator.start()
        await eventually_async(lambda: len(connections) >= 2, timeout=6)
        assert b"1" in connections[0]  # the TestRequest before giving up
        await initiator.stop(timeout=0.2)
        server.close()

    asyncio.run(scenario())


def test_garbage_oversize_and_wrong_comp_ids_leave_other_sessions_alone() -> None:
    async def rogue(port: int, payload: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        data = await asyncio.wait_for(reader.read(), 3)  # the acceptor hangs up
        writer.close()
        return data

    async def scenario() -> None:
        orders = Orders()
        acceptor = Acceptor(
            [venue(), venue(target="BF2", max_message_size=4096)],
            application=lambda config: orders,
        )
        port = await acceptor.start()
        initiator = Initiator(broker(port))
        initiator.start()
        await initiator.wait_logged_on(5)
        stamp = Clock().stamp(time.time())
        wrong_ids = encode(
            b"FIX.4.4",
            b"A",
            [(34, b"1"), (49, b"NOBODY"), (52, stamp), (56, b"VENUE")],
            [(98, b"0"), (108, b"1")],
        )
        answers = await asyncio.gather(
            rogue(port, b"8=FIX.4.4\x019=5\x01junk\x0110=000\x01"),  # bad CheckSum
            rogue(port, b"8=FIX.4.4\x019=99999999\x0135=A\x01"),
            rogue(port, wrong_ids),
        )
        assert answers == [b"", b"", b""]  # each dropped without a word
        initiator.send((b"D", [(11, b"still-here")]))
        await eventually_async(lambda: orders.cl_ord_ids == [b"still-here"])
        assert initiator.logged_on and initiator.connects == 1
        await initiator.stop()
        await acceptor.close()

    asyncio.run(scenario())


class _StuckTransport(asyncio.Transport):
    """A transport whose peer stopped reading: close() never completes by itself."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False
        self.aborted = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True  # the write buffer never drains: no connection_lost

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name, default=None):
        return default

    def write(self, data) -> None:
        pass


def test_a_peer_that_stops_reading_is_dropped_after_the_close_grace(monkeypatch) -> None:
    import connectors.fix.session.engine as engine

    monkeypatch.setattr(engine, "CLOSE_GRACE_S", 0.1)

    async def scenario() -> None:
        initiator = Initiator(broker(1))
        connection = engine.Connection(initiator)
        transport = _StuckTransport()
        connection.connection_made(transport)
        connection.close()
        # not left half-open for ever
        await eventually_async(lambda: transport.closing and transport.aborted, timeout=1.0,
                               what="the stuck transport closed and aborted")  # fmt: skip

    asyncio.run(scenario())


def test_the_metrics_show_each_sessions_state_sequence_numbers_and_resends() -> None:
    """A gap on our side: the venue asks for a resend; /metrics shows it, both ways, and who is
    logged on, across the reconnect that follows."""
    import socket

    from brokerflow.metrics import FlowStats
    from brokerflow.observability import serve_metrics, stop_metrics
    from tests.scrape import Samples
    from tests.scrape import scrape as scrape_url

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port_metrics = s.getsockname()[1]
    serve_metrics(port_metrics, FlowStats(), host="127.0.0.1")

    def scrape() -> Samples:
        return scrape_url(f"127.0.0.1:{port_metrics}")

    async def scenario() -> dict[tuple[str, tuple], float]:
        acceptor = Acceptor([venue(target="BFM")])
        port = await acceptor.start()
        initiator = Initiator(broker(port, sender="BFM"))
        initiator.start()
        await initiator.wait_logged_on(5)
        initiator.send((b"D", [(11, b"one")]))
        initiator.store.next_sender += 3  # three numbers skipped: the venue sees a gap
        initiator.send((b"D", [(11, b"two")]))
        ours, theirs = "FIX.4.4-BFM-VENUE", "FIX.4.4-VENUE-BFM"
        resend = "brokerflow_fix_session_resend_requests_total"
        await eventually_async(lambda: scrape().get((resend, (("direction", "received"),
                                                       ("session", ours))), 0) == 1)  # fmt: skip
        m = await asyncio.to_thread(scrape)
        await initiator.stop()
        await acceptor.close()
        assert m[(resend, (("direction", "sent"), ("session", theirs)))] == 1
        assert m[("brokerflow_fix_session_logged_on", (("session", ours),))] == 1
        # every FIX session metric the alert rules read is one this exports
        rules = Path(__file__).resolve().parents[2] / "deploy" / "prometheus-rules.yml"
        read = set(re.findall(r"\bbrokerflow_fix_\w+", rules.read_text()))
        assert read and read <= {name for name, _labels in m}
        # Logon 1, "one" 2, three skipped, "two" 6: the next is 7 at least (heartbeats go on)
        assert m[("brokerflow_fix_session_next_sender_seq", (("session", ours),))] >= 7
        return scrape()

    try:
        after = asyncio.run(scenario())
    finally:
        stop_metrics(port_metrics)
    assert after[("brokerflow_fix_session_logged_on", (("session", "FIX.4.4-BFM-VENUE"),))] == 0
