"""Console layer: the named compliance reports of `sql/reports/` — their catalogue,
parameters and checks — shared by `brokerflow report` and the console's `/api/reports`.

A report is one SQL file, `sql/reports/NAME.sql`. Its parameters are its ClickHouse query
parameters (`{account:String}`), passed to the engine as such (never formatted into the SQL); a
`-- @param name: what it means` comment line documents one. The first comment line is the
report's one-line description.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.errors import BrokerflowError

if TYPE_CHECKING:
    from sinks.clickhouse import ClickHouseStore

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}")
_PARAM_DOC = re.compile(r"^--\s*@param\s+([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ReportError(BrokerflowError):
    """An unknown report, or a missing or unknown parameter."""


@dataclass(frozen=True, slots=True)
class Report:
    """One named report.

    Attributes:
        name: the file name without `.sql`.
        description: the first comment line.
        params: parameter name → its documentation, in order of first use in the SQL.
        sql: the query text.
    """

    name: str
    description: str
    params: Mapping[str, str]
    sql: str


def default_reports_dir() -> Path:
    """Return the repository's `sql/reports` directory."""
    return Path(__file__).resolve().parents[1] / "sql" / "reports"


def parse_report(name: str, sql: str) -> Report:
    """Build a `Report` from its SQL text: description, parameters and their documentation."""
    docs: dict[str, str] = {}
    description = ""
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            continue
        match = _PARAM_DOC.match(stripped)
        if match:
            docs[match[1]] = match[2].strip()
        elif not description:
            description = stripped.lstrip("-").strip()
    params: dict[str, str] = {}
    for match in _PLACEHOLDER.finditer(sql):
        params.setdefault(match[1], docs.get(match[1], ""))
    return Report(name, description, params, sql)


def load_reports(reports_dir: Path | None = None) -> dict[str, Report]:
    """Read every `NAME.sql` of the reports directory, by name."""
    directory = reports_dir if reports_dir is not None else default_reports_dir()
    reports: dict[str, Report] = {}
    for path in sorted(directory.glob("*.sql")):
        if _NAME.match(path.stem):
            reports[path.stem] = parse_report(path.stem, path.read_text(encoding="utf-8"))
    return reports


def bind_params(report: Report, given: Mapping[str, str]) -> dict[str, str]:
    """Check the given parameters against the report's; return them as query parameters.

    Raises:
        ReportError: a parameter is missing or unknown; the message names it.
    """
    for name in given:
        if name not in report.params:
            known = ", ".join(report.params) or "none"
            msg = f"report {report.name} has no parameter {name!r} (it takes: {known})"
            raise ReportError(msg)
    for name in report.params:
        if name not in given:
            msg = f"report {report.name}: missing parameter {name!r} (--param {name}=…)"
            raise ReportError(msg)
    return {name: given[name] for name in report.params}


def run_report(
    store: ClickHouseStore,
    name: str,
    params: Mapping[str, str],
    reports_dir: Path | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a named report with its parameters; return its column names and rows.

    Raises:
        ReportError: no such report, or a missing or unknown parameter.
        ClickHouseError: the store failed the query.
    """
    reports = load_reports(reports_dir)
    report = reports.get(name)
    if report is None:
        msg = f"no report named {name!r} (known: {', '.join(reports) or 'none'})"
        raise ReportError(msg)
    return store.query(report.sql, bind_params(report, params))
