"""The FIX session layer: what real brokers expect of a FIX engine, proven by QuickFIX's suite.

Modules:
    wire.py        framing by BodyLength (QuickFIX's rules for garbled input), tolerant parsing,
                   encoding (header sorted by tag, as QuickFIX writes it)
    state.py       `SessionState`, the sans-I/O state machine (`on_frame`, `on_timer`, `send`)
    dictionary.py  validation against QuickFIX's XML data dictionaries, read at run time
    store.py       `MemoryStore`, `FileStore` (sequence numbers + sent messages, survive restarts)
    config.py      `SessionConfig` and `load_sessions(path)` for `[[fix.session]]` TOML tables
    engine.py      asyncio `Acceptor` (many sessions) and `Initiator` (reconnects with backoff)

The API a Bytewax source (or anything else) uses::

    from connectors.fix.session import Initiator, SessionConfig

    config = SessionConfig(sender_comp_id="BROKERFLOW", target_comp_id="VENUE",
                           host="127.0.0.1", port=9878, heartbeat_s=30,
                           store_dir=".brokerflow/fix")
    initiator = Initiator(config)
    initiator.start()                        # connects, logs on, reconnects with backoff
    await initiator.wait_logged_on(10)
    async for batch in initiator.batches():  # one AppBatch per socket read, in order
        for seq, raw in zip(batch.seqs, batch.messages):
            ...                              # raw: b"8=FIX.4.4\\x019=...\\x0110=...\\x01"
        initiator.send(order)                # simplefix.FixMessage or (b"D", [(11, b"id"), ...])
    await initiator.stop()                   # Logout handshake, then disconnect

`batches()` yields `AppBatch(seqs: list[int], messages: list[bytes])`: only in-sequence
application messages that passed the session checks (and the dictionary, when one is found);
admin messages, duplicates and rejected messages never reach it. Reading pauses while the
consumer is `max_batches` behind. `send` raises `ConnectionError` when not logged on.
"""

from connectors.fix.session.config import SessionConfig, load_sessions
from connectors.fix.session.engine import Acceptor, AppBatch, Initiator
from connectors.fix.session.state import SessionState, UnsupportedMessageType

__all__ = [
    "Acceptor",
    "AppBatch",
    "Initiator",
    "SessionConfig",
    "SessionState",
    "UnsupportedMessageType",
    "load_sessions",
]
