"""The `brokerflow` command line.

Each subcommand lives in `brokerflow/commands/<name>.py` (or, for the benchmarks, in the module
PLUGIN_COMMANDS names) and exposes `register(subparsers, common)`; this module only dispatches
and turns errors into one line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from brokerflow.interrupts import terminate_as_interrupt
from brokerflow.logs import configure_logging
from brokerflow.services import services_released
from domain.errors import BrokerflowError

# Order is the order of `brokerflow --help`.
COMMANDS = (
    "demo", "replay", "run", "gateway", "simulate", "load", "sql", "report", "alerts", "gdpr",
    "audit", "services", "bench", "dq", "edge", "console", "token", "fix-test-acceptor",
    "simulate-exchange", "price-alerts", "halt",
)

# Commands whose module is not brokerflow/commands/<name>.py. `bench` is the benchmarks' own
# command (bench/command.py): bench sits above the CLI, so the CLI never imports it; it is
# loaded here by module name at run time, a plug-in that import-linter rightly does not count
# as brokerflow importing bench.
PLUGIN_COMMANDS = {"bench": "bench.command"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brokerflow",
        description="FIX in; quotes, stops, margin, surveillance and audit out.",
    )
    parser.add_argument("--config", type=Path, help="TOML file with BROKERFLOW_* keys")
    parser.add_argument("--data-dir", type=Path, help="where embedded services keep their data")
    parser.add_argument(
        "--log-json",
        action="store_true",
        help="log events as JSON lines on stderr (also BROKERFLOW_LOG_FORMAT=json)",
    )
    # The same options after the command; SUPPRESS keeps a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    common.add_argument(
        "--log-json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # A command name may hold "-"; its module name has "_" instead.
        path = PLUGIN_COMMANDS.get(name) or f"brokerflow.commands.{name.replace('-', '_')}"
        module = importlib.import_module(path)
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    json_logs = args.log_json or os.environ.get("BROKERFLOW_LOG_FORMAT", "").lower() == "json"
    configure_logging("json" if json_logs else "text")
    try:
        # SIGTERM as Ctrl-C where the command does not turn them into a stop request itself
        # (`brokerflow.interrupts`); the embedded servers the command started are stopped as
        # it ends, however it ends (`brokerflow.services`).
        with terminate_as_interrupt(), services_released():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("brokerflow: interrupted", file=sys.stderr)
        return 130
    except (BrokerflowError, OSError) as exc:
        # Bad input or an unreachable service: one line, never a traceback.
        print(f"brokerflow: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
