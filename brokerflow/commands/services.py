"""`brokerflow services {status,start,stop}`: the embedded Redis and PostgreSQL of the data dir."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `services` subcommand."""
    p = sub.add_parser(
        "services",
        parents=[common],
        help="status, start or stop the embedded Redis and PostgreSQL",
        description=(
            "Embedded servers run under the data dir for stores with no configured URL. A "
            "command that starts one stops it when it ends, unless another command still uses "
            "it; servers started here keep running between commands until `services stop`."
        ),
    )
    p.add_argument("action", choices=("status", "start", "stop"), help="what to do")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the status of, start, or stop the embedded servers."""
    from brokerflow.services import ensure_services, service_status, stop_services
    from brokerflow.settings import load_settings, mask_url

    settings = load_settings(args.config, args.data_dir)
    if args.action == "stop":
        stopped = stop_services(settings.data_dir)
        for name in stopped:
            print(f"stopped embedded {name}")
        if not stopped:
            print(f"no embedded service was running under {settings.data_dir}")
        return 0
    if args.action == "start":
        need = {"redis", "postgres"}
        endpoints = ensure_services(settings, need, keep=True)  # until `services stop`
        print(f"redis: {mask_url(endpoints.redis_url or '')}")
        print(f"postgres: {mask_url(endpoints.postgres_dsn or '')}")
        return 0
    configured = {"redis": settings.redis_url, "postgres": settings.postgres_dsn}
    for status in service_status(settings.data_dir):
        state = (
            f"running on 127.0.0.1:{status.port} (pid {status.pid}) url {status.url}"
            if status.running
            else "not running"
        )
        note = " [not used: URL configured]" if configured.get(status.name) else ""
        print(f"{status.name}: {state}; data {status.data}{note}")
    return 0
