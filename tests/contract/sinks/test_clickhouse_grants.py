"""Least privilege on a ClickHouse server (`brokerflow audit grants`): chdb has no users to
apply it to, so each statement is parsed by chdb's own parser (EXPLAIN AST), and the grants are
checked against what the project's code does: every table the flows insert into is granted to
the flows' role, which may not alter, delete or drop; analysts only read; the one sanctioned
mutation (GDPR) is granted its columns and nothing more. And the project's code never updates or
deletes `audit_log` outside `brokerflow gdpr pseudonymise`."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from brokerflow.cli import main
from brokerflow.commands import gdpr
from sinks.clickhouse import ChdbStore, ClickHouseSink, _PipelinedSink, open_store
from sinks.clickhouse_grants import (
    ANALYST_ROLE,
    COMPLIANCE_ROLE,
    FLOWS_ROLE,
    grant_statements,
)

ROOT = Path(__file__).resolve().parents[3]
_GRANT = re.compile(r"^GRANT (?P<privs>.+) ON `?\w+`?\.(?P<table>`?[\w*]+`?) TO (?P<role>\w+)$")


def grants_of(statements: list[str], role: str) -> dict[str, str]:
    """`{table: privileges}` granted to a role."""
    out = {}
    for s in statements:
        m = _GRANT.match(s)
        if m and m["role"] == role:
            out[m["table"].strip("`")] = m["privs"]
    return out


def flows_tables() -> set[str]:
    """Every ClickHouse table a sink of the flows, or a command of the project, inserts into."""
    tables = {cls.table for cls in _PipelinedSink.__subclasses__()}
    for cls in ClickHouseSink.__subclasses__():
        tables.add(cls(None, Path("."))._table)
    sources = [p for d in ("brokerflow", "console", "flows", "sinks", "edge") for p in
               (ROOT / d).rglob("*.py")]  # fmt: skip
    for path in sources:
        if path.name in ("gdpr.py", "audit.py", "audit_archive.py"):  # compliance commands
            continue
        for m in re.finditer(r"\.insert(?:_columns|_arrow)?\(\s*\"(\w+)\"", path.read_text()):
            tables.add(m[1])
    return tables | {"schema_migrations"}  # every start migrates


def test_every_statement_parses_on_chdb(tmp_path: Path) -> None:
    statements = grant_statements(
        "default", {"flows": "f", "analyst": "a", "compliance": "c"},
        {"flows": "pw1", "analyst": "pw2", "compliance": None},
    )  # fmt: skip
    store = open_store(f"chdb://{tmp_path}/ch", tmp_path)
    assert isinstance(store, ChdbStore)
    try:
        for statement in statements:
            if statement.startswith("--"):
                continue
            _, ast = store.query("EXPLAIN AST " + statement)
            assert ast, statement
    finally:
        store.close()
    assert any(s.startswith("CREATE USER IF NOT EXISTS `f` IDENTIFIED WITH sha256_hash") for s in
               statements)  # fmt: skip
    assert "-- CREATE USER c: give its password" in "\n".join(statements)


def test_the_flows_may_insert_where_they_write_and_never_alter_delete_or_drop() -> None:
    statements = grant_statements()
    flows = grants_of(statements, FLOWS_ROLE)
    for table in flows_tables():
        assert "INSERT" in flows.get(table, ""), f"the flows insert into {table}: not granted"
    text = " ".join(s for s in statements if s.endswith(f"TO {FLOWS_ROLE}"))
    for forbidden in ("ALTER", "DELETE", "DROP", "TRUNCATE", "OPTIMIZE", "UPDATE", "ALL"):
        assert forbidden not in text
    analyst = grants_of(statements, ANALYST_ROLE)
    assert set(analyst.values()) == {"SELECT"} and "pseudonym_map" not in analyst
    assert "CREATE SETTINGS PROFILE IF NOT EXISTS brokerflow_readonly SETTINGS readonly = 1" in (
        statements
    )


def test_the_compliance_role_may_update_exactly_the_columns_gdpr_rewrites() -> None:
    compliance = grants_of(grant_statements(), COMPLIANCE_ROLE)
    for sql, table in ((gdpr._UPDATE_AUDIT_LOG, "audit_log"), (gdpr._UPDATE_ALERTS, "alerts")):
        body = sql.split("UPDATE", 1)[1].split("WHERE", 1)[0]
        columns = set(re.findall(r"^\s*(\w+) = ", body, re.M))
        assert columns, table
        granted = re.search(r"ALTER UPDATE\(([^)]*)\)", compliance[table])
        assert granted and set(granted[1].split(", ")) == columns
    assert "DELETE" not in str(compliance) and "DROP" not in str(compliance)


def code_of(path: Path) -> str:
    """The SQL a file can run: a .sql file without comments, or the string constants of a
    Python file but its docstrings (prose may name a statement)."""
    text = path.read_text()
    if path.suffix == ".sql":
        return re.sub(r"--[^\n]*", "", text)
    tree = ast.parse(text)
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            docstrings.add(id(body[0].value))
    return "\n".join(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    )


def test_the_project_never_updates_or_deletes_audit_log_but_for_gdpr() -> None:
    mutation = re.compile(
        r"ALTER\s+TABLE\s+`?audit_log`?\s+(UPDATE|DELETE)|DELETE\s+FROM\s+`?audit_log"
        r"|TRUNCATE\s+(TABLE\s+)?`?audit_log|DROP\s+(TABLE\s+)?`?audit_log"
        r"|ALTER\s+TABLE\s+`?audit_log`?\s+DROP\s+PARTITION",
        re.I,
    )
    found = []
    for d in ("brokerflow", "console", "flows", "sinks", "edge", "domain", "connectors", "sql"):
        for path in (ROOT / d).rglob("*"):
            if path.suffix not in (".py", ".sql") or not path.is_file():
                continue
            if mutation.search(code_of(path)):
                found.append(str(path.relative_to(ROOT)))
    assert found == ["brokerflow/commands/gdpr.py"]


def test_audit_grants_prints_the_hash_never_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BROKERFLOW_CLICKHOUSE_ANALYST_PASSWORD", "s3cret-analyst")
    assert main(["audit", "grants", "--database", "brokerflow", "--analyst-user", "sue"]) == 0
    out = capsys.readouterr().out
    assert "s3cret-analyst" not in out
    created = (
        r"CREATE USER IF NOT EXISTS `sue` IDENTIFIED WITH sha256_hash BY '[0-9a-f]{64}' "
        r"SALT '[0-9a-f]{32}' SETTINGS PROFILE 'brokerflow_readonly';"
    )
    assert re.search(created, out)
    assert "GRANT SELECT, INSERT ON `brokerflow`.`audit_log` TO brokerflow_flows;" in out
    assert main(["audit", "grants", "--flows-user", "bad name"]) == 2
    assert capsys.readouterr().err == "brokerflow: error: not a plain ClickHouse name: 'bad name'\n"
