"""Edge layer: the edge's Prometheus metrics, served at `/metrics` on its own port.

Read from the hub when scraped (nothing on the hot path): connections by role, the entries read
from the streams, frames and updates sent, the flush period in force (lengthened under load:
`edge.pacing`) and the connections closed for being too slow. Each edge process answers for
itself: on the shared WebSocket port a scrape reaches one of them, so with `--processes N` and
`BROKERFLOW_METRICS_PORT=P` process i (0 … N-1) also serves its own `/metrics` on port P + i,
the targets Prometheus scrapes (deploy/prometheus.yml).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.claims import ROLES
from edge.hub import Hub

PREFIX = "brokerflow_edge_"


class _HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        hub, stats = self.hub, self.hub.stats
        roles = Counter(session.claims.role for session in list(hub.sessions.values()))
        fam = GaugeMetricFamily(PREFIX + "connections", "open WebSocket connections, by role",
                                labels=["role"])  # fmt: skip
        for role in ROLES:
            fam.add_metric([role], roles.get(role, 0))
        yield fam
        for name, doc, value in (
            ("quotes_in", "quote entries read from stream:quotes", stats.quotes_in),
            ("alerts_in", "alert entries read from stream:alerts", stats.alerts_in),
            ("orders_in", "order-status entries read", stats.orders_in),
            ("frames_out", "frames sent to clients", stats.frames_out),
            ("updates_out", "quote updates sent (several per frame when batched)",
             stats.updates_out),
            ("slow_consumer_closes", "connections closed for being too slow (4008)",
             stats.slow_closes),
        ):  # fmt: skip
            yield CounterMetricFamily(PREFIX + name, doc, value=value)
        yield GaugeMetricFamily(PREFIX + "flush_period_seconds",
                                "the flush period in force (lengthened under load)",
                                value=hub.flush_period_s)  # fmt: skip


def exposition(hub: Hub) -> bytes:
    """The text a Prometheus scrape of this edge process gets."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HubCollector(hub))
    return generate_latest(registry)


async def serve_metrics(hub: Hub, host: str, port: int) -> asyncio.Server:
    """A bare HTTP/1.0 server answering every request with this process's exposition: the
    scrape target of one edge process (nothing else is served on it)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = exposition(hub)
            head = (
                f"HTTP/1.0 200 OK\r\nContent-Type: {CONTENT_TYPE_LATEST}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):  # fmt: skip
            pass  # a client that hung up or sent no request: nothing to answer
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port)
