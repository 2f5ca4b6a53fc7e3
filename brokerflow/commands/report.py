"""`brokerflow report NAME [--param k=v…] [--format table,csv,json]` and `report --list`: the
named compliance reports of `sql/reports/`, run on the configured ClickHouse store.

A report is one SQL file, `sql/reports/NAME.sql`. Its parameters are its ClickHouse query
parameters (`{account:String}`), passed to the engine as such (never formatted into the SQL); a
`-- @param name: what it means` comment line documents one. The first comment line is the
report's one-line description.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from console.reports import (
    Report,
    ReportError,
    bind_params,
    default_reports_dir,
    load_reports,
    parse_report,
    run_report,
)
from console.tables import FORMATS, write_result

__all__ = [
    "Report",
    "ReportError",
    "bind_params",
    "default_reports_dir",
    "load_reports",
    "parse_report",
    "run_report",
]


def parse_param_args(values: Sequence[str]) -> dict[str, str]:
    """Turn `--param k=v` values into a dict; a value may contain '='."""
    params: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            msg = f"--param {value!r}: expected NAME=VALUE"
            raise ReportError(msg)
        if key.strip() in params:
            msg = f"--param {key.strip()} given twice"
            raise ReportError(msg)
        params[key.strip()] = text
    return params


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add the `report` subcommand."""
    p = sub.add_parser(
        "report",
        parents=[common],
        help="run a named compliance report on ClickHouse",
        description="Run a named report from sql/reports/ on the configured ClickHouse store.",
    )
    p.add_argument("name", nargs="?", help="the report, e.g. trading_history")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a report parameter (repeatable)",
    )
    p.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    p.add_argument("--list", action="store_true", help="list the reports and their parameters")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List the reports, or run one and print its rows."""
    from brokerflow.stores import open_clickhouse

    if args.list:
        write_listing(load_reports(), sys.stdout)
        return 0
    if not args.name:
        msg = "name a report (brokerflow report --list shows them)"
        raise ReportError(msg)
    params = parse_param_args(args.param)
    reports = load_reports()
    report = reports.get(args.name)
    if report is None:
        msg = f"no report named {args.name!r} (known: {', '.join(reports) or 'none'})"
        raise ReportError(msg)
    bound = bind_params(report, params)  # before opening the store: bad input fails fast
    store = open_clickhouse(args)
    try:
        columns, rows = store.query(report.sql, bound)
    finally:
        store.close()
    write_result(columns, rows, args.format, sys.stdout)
    return 0


def write_listing(reports: Mapping[str, Report], out: Any) -> None:
    """Print each report's name, description and parameters."""
    for report in reports.values():
        out.write(f"{report.name}: {report.description}\n")
        for name, doc in report.params.items():
            out.write(f"    --param {name}=…  {doc}\n")
