"""`brokerflow report`, `brokerflow sql clickhouse` and `brokerflow gdpr pseudonymise` on the
embedded default (chdb under the data dir): formats, listing, one-line errors with exit 2.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from brokerflow.cli import main
from brokerflow.commands.gdpr import load_or_create_key, pseudonym_of
from brokerflow.commands.report import load_reports, parse_param_args, parse_report
from domain.audit import audit_record
from domain.events import ExecutionReport
from sinks.clickhouse import AUDIT_COLUMNS, audit_rows, migrate_clickhouse, open_store

TS = 1_709_546_400_000_000_000  # 2024-03-04 10:00:00 UTC


def fill(exec_id: str, account: str, side: str, offset_s: int, px: str) -> ExecutionReport:
    return ExecutionReport(
        exec_id, "O" + exec_id, "C" + exec_id, None, "F", "2", account, "AAPL", side,
        Decimal(10), "2", Decimal(px), None, Decimal(10), Decimal(px), Decimal(10), Decimal(0),
        Decimal(px), TS + offset_s * 1_000_000_000,
        raw=f"8=FIX.4.4|35=8|1={account}|17={exec_id}|".encode(), source="file:t.fix:1",
    )  # fmt: skip


@pytest.fixture
def ch_data_dir(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose embedded ClickHouse holds three fills (two of ACC1, one of ACC2)."""
    monkeypatch.delenv("BROKERFLOW_CLICKHOUSE_URL", raising=False)
    store = open_store(None, data_dir)
    try:
        migrate_clickhouse(store)
        records = [
            audit_record(fill("F1", "ACC1", "1", 0, "100.5"), None),
            audit_record(fill("F2", "ACC1", "2", 60, "101.25"), None),
            audit_record(fill("F3", "ACC2", "1", 120, "99"), None),
        ]
        store.insert("audit_log", AUDIT_COLUMNS, audit_rows(records + records[:1]))
    finally:
        store.close()
    return data_dir


def _run(data_dir: Path, *args: str) -> int:
    return main([*args, "--data-dir", str(data_dir)])


HISTORY = ("report", "trading_history", "--param", "account=ACC1",
           "--param", "from=2024-03-04", "--param", "to=2024-03-05")  # fmt: skip


def test_report_list_names_reports_and_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("best_execution", "order_to_trade", "trading_history", "wash_sales"):
        assert f"{name}: " in out
    assert "--param account=" in out and "--param from=" in out


def test_report_table_output(ch_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(ch_data_dir, *HISTORY) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("|")[0].strip() == "timestamp"
    assert lines[-1] == "(2 rows)"  # F1 delivered twice, counted once


def test_report_csv_output(ch_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(ch_data_dir, *HISTORY, "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["exec_id"] for r in rows] == ["F1", "F2"]
    assert rows[0]["last_px"] == "100.5" and rows[0]["timestamp"].startswith("2024-03-04T10:00")


def test_report_json_output(ch_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(ch_data_dir, *HISTORY, "--format", "json") == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["exec_id"], r["side"], r["last_px"]) for r in records] == [
        ("F1", "1", 100.5),
        ("F2", "2", 101.25),
    ]


def test_report_missing_param_exit_2(ch_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(ch_data_dir, "report", "trading_history", "--param", "from=2024-03-04") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing parameter 'account'" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "nope"), "no report named 'nope'"),
        (("report",), "name a report"),
        (("report", "wash_sales", "--param", "from"), "expected NAME=VALUE"),
        (("report", "wash_sales", "--param", "from=a", "--param", "to=b", "--param", "x=1"),
         "has no parameter 'x'"),
    ],
)  # fmt: skip
def test_report_bad_input_exit_2(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert _run(data_dir, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_report_bad_date_is_one_line(ch_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(ch_data_dir, "report", "wash_sales", "--param", "from=soon",
                "--param", "to=later") == 2  # fmt: skip
    assert capsys.readouterr().err.count("\n") == 1


def test_parse_report_params_and_docs() -> None:
    report = parse_report(
        "r", "-- What it does.\n-- @param b: the b\nSELECT {a:String}, {b:UInt8}, {a:String}"
    )
    assert report.description == "What it does."
    assert dict(report.params) == {"a": "", "b": "the b"}


def test_every_report_documents_its_params() -> None:
    for report in load_reports().values():
        assert report.description
        assert all(report.params.values()), report.name


def test_parse_param_args_keeps_equals_in_values() -> None:
    assert parse_param_args(["a=x=y", "b="]) == {"a": "x=y", "b": ""}


# -- sql clickhouse ---------------------------------------------------------------------------


def test_sql_clickhouse_select(ch_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = "SELECT account, count() AS n FROM audit_log FINAL GROUP BY account ORDER BY account"
    assert _run(ch_data_dir, "sql", "clickhouse", query, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"account": "ACC1", "n": 2},
        {"account": "ACC2", "n": 1},
    ]


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO pseudonym_map (account) VALUES ('x')",
        "SELECT 1; DROP TABLE audit_log",
        "ALTER TABLE audit_log DELETE WHERE 1",
    ],
)
def test_sql_clickhouse_refuses_writes(
    ch_data_dir: Path, capsys: pytest.CaptureFixture[str], query: str
) -> None:
    assert _run(ch_data_dir, "sql", "clickhouse", query) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_sql_clickhouse_readonly_engine_setting(
    ch_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Past the verb check, the engine's readonly=1 still holds: it cannot be switched off.
    code = _run(ch_data_dir, "sql", "clickhouse", "WITH 1 AS x SELECT x SETTINGS readonly = 0")
    assert code == 2
    assert "readonly" in capsys.readouterr().err.lower()


# -- gdpr -----------------------------------------------------------------------------------


def test_gdpr_pseudonymise_cli(
    ch_data_dir: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The session's PostgreSQL: without one the command starts an embedded server under the
    # test's data dir, which nothing stops (it outlived the test run).
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", pg_dsn)
    assert _run(ch_data_dir, "gdpr", "pseudonymise", "ACC1") == 0
    pseudonym = pseudonym_of("ACC1", load_or_create_key(ch_data_dir))
    assert pseudonym in capsys.readouterr().out
    assert (ch_data_dir / "pseudonym.key").stat().st_mode & 0o777 == 0o600
    history = [f"account={pseudonym}" if a == "account=ACC1" else a for a in HISTORY]
    assert _run(ch_data_dir, *history, "--format", "json") == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["exec_id"] for r in records] == ["F1", "F2"]
    query = "SELECT raw_fix FROM audit_log FINAL WHERE exec_id = 'F1'"
    assert _run(ch_data_dir, "sql", "clickhouse", query, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"raw_fix": f"8=FIX.4.4|35=8|1={pseudonym}|17=F1|"}
    ]
