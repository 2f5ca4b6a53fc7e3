"""The FIX session benchmark: market data received and parsed by our initiator over loopback.

An acceptor in a child process (its own core) answers a MarketDataRequest (35=V) by streaming
N MarketDataIncrementalRefresh (35=X, two entries each) messages over one session; the
initiator in this process frames them, runs each through the session state (sequence number,
CompIDs, SendingTime, dictionary validation) and hands them out in batches. The figure is
application messages per second from the first to the last batch.

Printed next to it, over the same bytes:
    header checks only   the initiator without dictionary validation (validate = false)
    socket bytes alone   a bare asyncio protocol that only counts the bytes (the transport
                         ceiling, as messages/s)
    file decoder         `connectors.fix.decode_lines` over the same messages as log lines
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
import time
from typing import Any

from bench.common import write_result
from connectors.fix import decode_lines
from connectors.fix.session.config import SessionConfig
from connectors.fix.session.engine import Acceptor, Initiator
from connectors.fix.session.state import SessionState
from connectors.fix.session.wire import Clock, Message, encode

GOAL_MSGS_PER_S = 50_000
DESIGN_MSGS_PER_S = 10_000
SYMBOLS = [f"SYM{i:03d}".encode() for i in range(100)]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def market_data(first_seq: int, count: int, sender: bytes, target: bytes) -> bytes:
    """`count` 35=X messages numbered from `first_seq`, as one blob."""
    clock = Clock()
    now = time.time()
    stamp = clock.stamp(now)
    parts = []
    for i in range(count):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        price = 100 + (i % 500) / 100
        body = [
            (268, b"2"),
            (279, b"1"), (269, b"0"), (55, symbol), (270, b"%.2f" % price),
            (271, b"%d" % (100 + i % 7)),
            (279, b"1"), (269, b"1"), (55, symbol), (270, b"%.2f" % (price + 0.01)), (271, b"200"),
        ]
        header = [(34, b"%d" % (first_seq + i)), (49, sender), (52, stamp), (56, target)]
        parts.append(encode(b"FIX.4.4", b"X", header, body))
    return b"".join(parts)


def _acceptor_config(port: int) -> SessionConfig:
    return SessionConfig(
        sender_comp_id="VENUE", target_comp_id="BROKERFLOW", role="acceptor", port=port,
        name="bench-venue",
    )


def _initiator_config(port: int, validate: bool) -> SessionConfig:
    return SessionConfig(
        sender_comp_id="BROKERFLOW", target_comp_id="VENUE", port=port, heartbeat_s=30,
        reset_on_logon=True, validate=validate, name="bench-broker",
    )


class _Streamer:
    """The venue's application: on 35=V, stream `count` 35=X in one write."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self, session: SessionState, message: Message) -> None:
        if message.msg_type != b"V":
            return
        first = session.store.next_sender
        blob = market_data(first, self.count, session.sender, session.target)
        session.store.next_sender = first + self.count
        session.output.append(blob)


def _serve(port_queue: Any, count: int) -> None:
    async def serve() -> None:
        acceptor = Acceptor([_acceptor_config(0)], application=lambda config: _Streamer(count))
        port_queue.put(await acceptor.start("127.0.0.1", 0))
        await asyncio.Event().wait()

    asyncio.run(serve())


async def _receive(port: int, count: int, validate: bool) -> float:
    """Log on, ask for the stream, return application messages/s received."""
    initiator = Initiator(_initiator_config(port, validate))
    initiator.start()
    await initiator.wait_logged_on(10)
    initiator.send((b"V", [(262, b"bench"), (263, b"1"), (264, b"1"), (267, b"1"), (269, b"0"),
                           (146, b"1"), (55, b"SYM000")]))
    received = 0
    first = last = 0.0
    batches = initiator.batches()
    while True:
        batch = await asyncio.wait_for(anext(batches), 60)
        if not received:
            first = time.perf_counter()
        received += len(batch)
        if received >= count:
            last = time.perf_counter()
            break
    session = initiator.session
    assert session is not None and session.store.next_target >= count, "messages lost"
    await initiator.stop()
    # The first batch's own handling is not timed; count the messages after it.
    return (count - 1) / (last - first) if last > first else float("nan")


class _Counter(asyncio.Protocol):
    def __init__(self, total: int, done: asyncio.Future[float]) -> None:
        self.total = total
        self.seen = 0
        self.started = 0.0
        self.done = done

    def data_received(self, data: bytes) -> None:
        if not self.seen:
            self.started = time.perf_counter()
        self.seen += len(data)
        if self.seen >= self.total and not self.done.done():
            self.done.set_result(time.perf_counter() - self.started)


async def _socket_rate(blob: bytes, count: int) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    server = await loop.create_server(lambda: _Counter(len(blob), done), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(blob)
    seconds = await done
    writer.close()
    server.close()
    return count / seconds


def _decoder_rate(blob: bytes, count: int) -> float:
    lines = []
    pos = 0
    while pos < len(blob):
        end = blob.index(b"\x0110=", pos) + 8
        lines.append(blob[pos:end] + b"\n")
        pos = end
    started = time.perf_counter()
    for start in range(0, len(lines), 2_000):
        decode_lines(lines[start : start + 2_000], "bench", start + 1)
    return count / (time.perf_counter() - started)


def run(count: int = 200_000) -> dict[str, Any]:
    """Run the benchmark; print the table; write bench/results/fix-session.json."""
    logging.getLogger("brokerflow.fix").setLevel(logging.ERROR)  # logon/logout lines
    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    child = context.Process(target=_serve, args=(ports, count), daemon=True)
    child.start()
    try:
        port = ports.get(timeout=30)
        _say(f"fix-session: venue acceptor on port {port}, streaming {count:,} 35=X per run")
        validated = asyncio.run(_receive(port, count, validate=True))
        header_only = asyncio.run(_receive(port, count, validate=False))
    finally:
        child.terminate()
        child.join(5)
    blob = market_data(2, count, b"VENUE", b"BROKERFLOW")
    socket_rate = asyncio.run(_socket_rate(blob, count))
    decoder_rate = _decoder_rate(blob, count)
    yardsticks = {
        "header checks only (validate = false), messages/s": round(header_only),
        "socket bytes alone, messages/s": round(socket_rate),
        "file decoder (decode_lines), messages/s": round(decoder_rate),
        "design figure per session, messages/s": DESIGN_MSGS_PER_S,
        "message size, bytes": round(len(blob) / count),
    }
    out = write_result("fix-session", "messages/s", round(validated), GOAL_MSGS_PER_S, yardsticks)
    print(f"fix-session: {count:,} 35=X messages ({len(blob) / count:.0f} bytes each) over "
          "loopback, one session")
    print(f"  {'initiator, dictionary-validated':<52} {validated:>12,.0f} messages/s")
    for name, value in yardsticks.items():
        print(f"  {name:<52} {value:>12,}")
    verdict = "meets" if validated >= GOAL_MSGS_PER_S else "misses"
    print(f"  {verdict} the goal of {GOAL_MSGS_PER_S:,}/s; results in {out}")
    return {"value": validated, **yardsticks}


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
