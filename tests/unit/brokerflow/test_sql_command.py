"""`brokerflow sql`: table, CSV and JSON output; read-only; one-line errors with exit 2."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import psycopg
import pytest

from brokerflow.cli import main
from domain.dead_letters import DeadLetter
from sinks.postgres import migrate, write_dead_letters

QUERY = (
    "SELECT id, source, raw, tag, 12.50::numeric AS px, received_at FROM dead_letters ORDER BY id"
)


@pytest.fixture
def dsn(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated test database holding two dead letters, configured through the environment."""
    migrate(pg_dsn)
    letters = [
        DeadLetter("file:a.fix:1", "CheckSum(10) bad", b"8=FIX.4.4\x0135=X\x01", "decode", "E", 10),
        DeadLetter("file:a.fix:2", "Symbol(55) missing", b"8=FIX.4.4\x01", "decode", "E"),
    ]
    with psycopg.connect(pg_dsn) as conn:
        write_dead_letters(conn, letters)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", pg_dsn)
    return pg_dsn


def _sql(data_dir: Path, *args: str) -> int:
    return main(["sql", "postgres", *args, "--data-dir", str(data_dir)])


def test_sql_postgres_table_output(
    dsn: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sql(data_dir, QUERY) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [c.strip() for c in lines[0].split("|")] == [
        "id",
        "source",
        "raw",
        "tag",
        "px",
        "received_at",
    ]
    assert set(lines[1]) <= {"-", "+"}
    assert "8=FIX.4.4|35=X|" in lines[2] and "file:a.fix:1" in lines[2]
    assert lines[-1] == "(2 rows)"
    # Aligned: every separator sits in the same column on every line.
    assert len({line.index("|") for line in lines[:1] + lines[2:4]}) == 1


def test_sql_postgres_csv_output(
    dsn: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sql(data_dir, QUERY, "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["source"] for r in rows] == ["file:a.fix:1", "file:a.fix:2"]
    assert rows[0]["raw"] == "8=FIX.4.4|35=X|"
    assert rows[0]["tag"] == "10" and rows[1]["tag"] == ""
    assert rows[0]["px"] == "12.50"


def test_sql_postgres_json_output(
    dsn: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sql(data_dir, QUERY, "--format", "json") == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in records] == ["file:a.fix:1", "file:a.fix:2"]
    assert records[0]["raw"] == "8=FIX.4.4|35=X|"
    assert records[0]["tag"] == 10 and records[1]["tag"] is None
    assert records[0]["px"] == 12.5
    assert "T" in records[0]["received_at"]  # ISO 8601


def test_sql_postgres_json_keeps_every_decimal_digit(
    dsn: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT 0.1::numeric AS a, 12345678901234567890.123456789::numeric AS b, 7::numeric c"
    assert _sql(data_dir, query, "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"a": 0.1, "b": "12345678901234567890.123456789", "c": 7}
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM dead_letters",
        "INSERT INTO dead_letters (source) VALUES ('x')",
        "CREATE TABLE sneaky (id int)",
        "COMMIT; DELETE FROM dead_letters",
    ],
)
def test_sql_postgres_refuses_writes(
    dsn: str, data_dir: Path, capsys: pytest.CaptureFixture[str], statement: str
) -> None:
    assert _sql(data_dir, statement) == 2
    err = capsys.readouterr().err
    assert err.startswith("brokerflow: error: ") and err.count("\n") == 1
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (2,)


def test_sql_postgres_bad_sql_is_one_line_exit_2(
    dsn: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sql(data_dir, "SELEC * FROM nowhere") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("brokerflow: error: ") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    assert _sql(data_dir, "SELECT * FROM no_such_table") == 2
    assert "no_such_table" in capsys.readouterr().err


def test_sql_postgres_percent_signs_are_not_placeholders(
    dsn: str, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sql(data_dir, "SELECT 'a%s' AS v", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [{"v": "a%s"}]
