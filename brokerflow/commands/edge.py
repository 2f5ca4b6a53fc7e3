"""`brokerflow edge [--port 8765]`: the WebSocket edge and the web console, in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `edge` subcommand."""
    p = sub.add_parser(
        "edge",
        parents=[common],
        help="run the WebSocket edge and the web console",
        description=(
            "Serves ws://HOST:PORT/ws?token=… (quotes, alerts, health) and the console at "
            "http://HOST:PORT/?token=… from Redis streams."
        ),
    )
    p.add_argument("--host", default="0.0.0.0", help="interface to listen on (default: all)")
    p.add_argument("--port", type=int, help="port (default: BROKERFLOW_EDGE_PORT, 8765)")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT), each with its own reader",
    )
    p.add_argument("--flush-ms", type=int, help="quote flush period (default: 25)")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):  # noqa: ANN201 - EdgeConfig, imported lazily
    """The edge's configuration from settings and flags; starts an embedded Redis if unset."""
    from brokerflow.services import ensure_services
    from brokerflow.settings import load_settings
    from domain.errors import ConfigError
    from edge.config import EdgeConfig
    from edge.tokens import edge_secret

    settings = load_settings(args.config, args.data_dir)
    if args.processes < 1:
        msg = f"--processes must be at least 1; value was {args.processes}"
        raise ConfigError(msg)
    endpoints = ensure_services(settings, {"redis"})
    assert endpoints.redis_url is not None
    if settings.postgres_dsn:  # the price_alerts table, for alert.* before any flow has run
        from sinks.postgres import migrate

        migrate(settings.postgres_dsn)
    configured = settings.edge_secret.get_secret_value() if settings.edge_secret else None
    return EdgeConfig(
        redis_url=endpoints.redis_url,
        secret=edge_secret(configured, settings.data_dir),
        host=args.host,
        port=args.port or settings.edge_port,
        postgres_dsn=settings.postgres_dsn,
        flush_ms=args.flush_ms or settings.edge_flush_ms,
        price_alerts_max_per_user=settings.price_alerts_max_per_user,
        metrics_port=settings.metrics_port,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from brokerflow.settings import mask_url
    from edge.server import run_edge

    config = build_config(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    print(
        f"edge: ws://{config.host}:{config.port}/ws?token=…  console: "
        f"http://{config.host}:{config.port}/?token=…  redis: {mask_url(config.redis_url)}  "
        f"processes: {args.processes}",
        file=sys.stderr,
        flush=True,
    )
    run_edge(config, args.processes)
    return 0
