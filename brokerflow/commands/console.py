"""`brokerflow console [--port 8766]`: the analysts' workbench (pages and `/api/`) in the
foreground, on the configured PostgreSQL and ClickHouse.

Its own process, not part of `brokerflow edge`: the edge is a latency-bound WebSocket fan-out
(picows, no ASGI on its path); the console makes database queries that take milliseconds to
seconds. Kept apart, a slow report never delays a quote, and each scales on its own.

An embedded chdb store can be opened by one process at a time. While `brokerflow demo` or
`run` holds it, use the console that process serves (`demo` starts one); against a ClickHouse
server, run as many consoles as you like.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_PORT = 8766


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `console` subcommand."""
    p = sub.add_parser(
        "console",
        parents=[common],
        help="run the analysts' workbench and its HTTP API",
        description="Serves the workbench at http://HOST:PORT/?token=… and the API under /api/.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument(
        "--edge-url", help="the WebSocket edge the pages open for live alerts (ws://host:8765/ws)"
    )
    p.set_defaults(func=run)


def build_config(settings, edge_url: str | None = None, clickhouse=None):  # noqa: ANN001, ANN201
    """The console's configuration from settings; starts an embedded PostgreSQL if unset.

    `clickhouse`: a store the caller already holds (the demo's); else one is opened.
    """
    from brokerflow.services import ensure_services
    from console.app import ConsoleConfig
    from domain.errors import ConfigError
    from edge.tokens import edge_secret
    from sinks.clickhouse import ClickHouseError, is_embedded, migrate_clickhouse, open_store
    from sinks.postgres import migrate

    dsn = ensure_services(settings, {"postgres"}).postgres_dsn
    assert dsn is not None
    migrate(dsn)
    if clickhouse is None:
        try:
            clickhouse = open_store(settings.clickhouse_url, settings.data_dir)
        except ClickHouseError as exc:
            if not is_embedded(settings.clickhouse_url):
                raise
            msg = (
                f"the embedded ClickHouse under {settings.data_dir} is open in another process "
                "(a running demo or run): use the workbench that process serves, or set "
                f"BROKERFLOW_CLICKHOUSE_URL to a ClickHouse server ({exc})"
            )
            raise ConfigError(msg) from None
        migrate_clickhouse(clickhouse)
    configured = settings.edge_secret.get_secret_value() if settings.edge_secret else None
    return ConsoleConfig(
        postgres_dsn=dsn,
        secret=edge_secret(configured, settings.data_dir),
        clickhouse=clickhouse,
        edge_url=edge_url,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from brokerflow.settings import load_settings
    from console.server import serve

    settings = load_settings(args.config, args.data_dir)
    config = build_config(settings, args.edge_url)
    print(
        f"console: http://{args.host}:{args.port}/?token=…  API: /api/ (schema "
        f"/api/openapi.json)  live alerts from: {args.edge_url or 'ws://<this host>:8765/ws'}",
        file=sys.stderr,
        flush=True,
    )
    try:
        serve(config, args.host, args.port)
    finally:
        config.clickhouse.close()
    return 0
