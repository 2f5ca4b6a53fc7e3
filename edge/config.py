"""Edge layer: the knobs of one edge process (built by `brokerflow edge` from Settings)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """Limits and timings of the edge.

    Attributes:
        redis_url: where `quote:*`, `stream:quotes`, `stream:alerts` and `watchlist:*` live.
        secret: the HS256 key of edge tokens.
        host, port: where to listen.
        postgres_dsn: for the dead-letter figures of health frames and the price alerts
            (alert.*); None leaves the figures out and answers alert.* with an error.
        flush_ms: quotes are sent to each connection at most once per this many ms (the
            shortest flush period), several updates in one frame; alerts go at once.
        flush_max_ms: the longest flush period: while the process sends more than
            `max_frames_per_s`, the period grows from `flush_ms` up to this (`edge.pacing`).
        max_frames_per_s: frames per second one process sends before it lengthens the flush
            period (~12 µs of CPU each: 25,000/s is about a third of a core).
        flush_phases: each connection is flushed in one of this many ticks of the period, so
            the sends are spread over it rather than sent in one burst.
        flush_slice: connections flushed per event-loop pass, so that a flush of thousands of
            connections does not stall reading and alerts.
        max_symbols: subscriptions per connection.
        max_message_bytes: largest client message acted on (bigger ones get an `error` frame);
            frames over 16x this close the connection.
        max_pending_alerts: alerts queued for a client that is not reading; one more and it
            is disconnected with a reason (alerts are never dropped).
        ping_idle_s, ping_reply_s: WebSocket ping after this long without traffic; no pong
            within ping_reply_s closes the connection.
        health_s: period of the health frames sent to operators.
        replay_max: most alerts replayed to one resuming connection.
        price_alerts_max_per_user: ACTIVE price alerts one trader may hold (alert.create
            beyond it is refused; `BROKERFLOW_PRICE_ALERTS_MAX_PER_USER`).
        metrics_port: this process's own `/metrics` port (`BROKERFLOW_METRICS_PORT` plus the
            process index); 0: only `/metrics` on the WebSocket port.
    """

    redis_url: str
    secret: bytes
    host: str = "0.0.0.0"
    port: int = 8765
    postgres_dsn: str | None = None
    flush_ms: int = 25
    flush_max_ms: int = 200
    max_frames_per_s: int = 25_000
    flush_phases: int = 10
    flush_slice: int = 250
    max_symbols: int = 500
    max_message_bytes: int = 4096
    max_pending_alerts: int = 1000
    ping_idle_s: float = 20.0
    ping_reply_s: float = 10.0
    health_s: float = 2.0
    replay_max: int = 10_000
    price_alerts_max_per_user: int = 100
    metrics_port: int = 0
