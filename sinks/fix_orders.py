"""Sinks layer: outbound orders sent over an order-entry FIX session, once each, in order.

Items are `(cl_ord_id, order)` pairs, as for `sinks.order_file`; the writer encodes each new one
with the encoder it is given and hands the bytes to a sender (the connectors layer's
`OrderEntrySession`, passed in so this layer stays free of FIX sessions): the session replaces
the header (MsgSeqNum, CompIDs, SendingTime) and stores the message before it goes out.

Exactly once by ClOrdID across restarts: the ClOrdIDs the session's store already holds count
as sent (`sender.sent_cl_ord_ids()`), and `sinks.stops` writes the `stop_orders` state before
calling `write`, so a replay after a crash re-decides the same children and this writer skips
those already sent. `OrdersToKafka` copies the same children to the `orders.outbound` topic
(delivery-checked: `write` returns once Kafka acknowledged them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sinks.retry import RetryPolicy, retry_policy_call

ORDERS_TOPIC = "orders.outbound"
Counter = Callable[[str, int], None]


class OrderSender(Protocol):
    """What the writer needs of an order-entry session."""

    def sent_cl_ord_ids(self) -> set[str]:
        """ClOrdIDs of the orders the session already sent (from its store)."""

    def send(self, raw: bytes) -> None:
        """Send one encoded order; ConnectionError when the session is not logged on."""

    def close(self) -> None:
        """Log out."""


class FixOrderWriter:
    """Sends orders over a session, skipping ClOrdIDs it already sent.

    Args:
        sender: the session (opened by the caller).
        encode: `encode(order, seq) -> bytes` (the header is the session's; `seq` is ignored).
        count: called as `count("orders_out", n)` after each write.
        policy: how long to keep trying while the session is down before the flow stops.
    """

    def __init__(
        self,
        sender: OrderSender,
        encode: Callable[[Any, int], bytes],
        count: Counter | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._sender = sender
        self._sent = sender.sent_cl_ord_ids()
        self._encode = encode
        self._count = count
        self._policy = policy or RetryPolicy.lasting(30.0)

    @property
    def sent(self) -> int:
        return len(self._sent)

    def write(self, items: Sequence[tuple[str, Any]]) -> int:
        """Send the orders not yet sent, in order; return how many."""
        sent = 0
        for cl_ord_id, order in items:
            if cl_ord_id in self._sent:
                continue
            raw = self._encode(order, 0)
            retry_policy_call(lambda raw=raw: self._sender.send(raw), self._policy,
                              (ConnectionError, TimeoutError))  # fmt: skip
            self._sent.add(cl_ord_id)
            sent += 1
        if sent and self._count is not None:
            self._count("orders_out", sent)
        return sent

    def close(self) -> None:
        self._sender.close()


class OrdersToKafka:
    """Copies orders to the `orders.outbound` topic, keyed by ClOrdID (delivery-checked)."""

    def __init__(self, bootstrap: str, encode: Callable[[Any, int], bytes]) -> None:
        from sinks.kafka import CheckedProducer

        self._producer = CheckedProducer(bootstrap)
        self._encode = encode

    def write(self, items: Sequence[tuple[str, Any]]) -> int:
        for cl_ord_id, order in items:
            self._producer.produce(ORDERS_TOPIC, self._encode(order, 0), cl_ord_id.encode())
        self._producer.flush()
        return len(items)

    def close(self) -> None:
        self._producer.flush()
