"""`brokerflow load accounts|positions`: validated, all or nothing, idempotent upserts."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from brokerflow.cli import main
from sinks.postgres import migrate


@pytest.fixture
def dsn(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", pg_dsn)
    migrate(pg_dsn)  # so "nothing loaded" can be checked even when the load stops early
    return pg_dsn


def _load(data_dir: Path, kind: str, path: Path) -> int:
    return main(["load", kind, str(path), "--data-dir", str(data_dir)])


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


ACCOUNTS = (
    "account,owner,cash,initial_margin,maintenance_margin\n"
    "A1,alice,1000.50,0.6,0.35\n"
    "A2,bob,20000,,\n"
)


def test_load_accounts_upserts_and_reload_changes_nothing(
    dsn: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "accounts.csv", ACCOUNTS)
    assert _load(data_dir, "accounts", path) == 0
    assert capsys.readouterr().out.strip() == "loaded 2 accounts (2 new, 0 updated)"
    rows = _rows(
        dsn,
        "SELECT account, owner, cash, initial_margin, maintenance_margin FROM accounts ORDER BY 1",
    )
    assert rows == [
        ("A1", "alice", Decimal("1000.50"), Decimal("0.6"), Decimal("0.35")),
        ("A2", "bob", Decimal(20000), Decimal("0.50"), Decimal("0.30")),
    ]
    assert _load(data_dir, "accounts", path) == 0
    assert capsys.readouterr().out.strip() == "loaded 2 accounts (0 new, 0 updated, 2 unchanged)"
    _write(tmp_path, "accounts.csv", ACCOUNTS.replace("bob,20000", "bob,25000"))
    assert _load(data_dir, "accounts", path) == 0
    assert capsys.readouterr().out.strip() == "loaded 2 accounts (0 new, 1 updated, 1 unchanged)"


def test_load_accounts_without_margin_columns(
    dsn: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "accounts.csv", "account,owner,cash\nA1,alice,5\n")
    assert _load(data_dir, "accounts", path) == 0
    assert _rows(dsn, "SELECT initial_margin, maintenance_margin FROM accounts") == [
        (Decimal("0.50"), Decimal("0.30"))
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (ACCOUNTS + "A3,carol,abc,,\n", "accounts.csv:4: column cash: 'abc' is not a number"),
        (ACCOUNTS + "A3,,1,,\n", "accounts.csv:4: column owner: empty"),
        (ACCOUNTS + "A1,dup,1,,\n", "accounts.csv:4: A1 repeats line 2"),
        (
            ACCOUNTS + "A3,c,1,1.5,\n",
            "accounts.csv:4: column initial_margin: 1.5 is not a fraction",
        ),
        (ACCOUNTS + "A3,c,1,0.2,0.3\n", "accounts.csv:4: column maintenance_margin: 0.3 is above"),
        (ACCOUNTS + "A3,c\n", "accounts.csv:4: 2 fields, the header has 5"),
        ("account,owner\nA1,x\n", "accounts.csv:1: column cash missing"),
        ("account,owner,cash,colour\n", "accounts.csv:1: unknown column 'colour'"),
    ],
)
def test_load_accounts_bad_row_names_line_and_column_and_loads_nothing(
    dsn: str,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    error: str,
) -> None:
    path = _write(tmp_path, "accounts.csv", text)
    assert _load(data_dir, "accounts", path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"brokerflow: error: {tmp_path / error}")
    assert len(err.splitlines()) == 1
    assert _rows(dsn, "SELECT count(*) FROM accounts") == [(0,)]


def test_load_positions_upsert_and_unknown_account(
    dsn: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _load(data_dir, "accounts", _write(tmp_path, "accounts.csv", ACCOUNTS))
    capsys.readouterr()
    positions = "account,symbol,quantity,avg_price\nA1,AAPL,100,150.25\nA2,MSFT,-10,300\n"
    path = _write(tmp_path, "positions.csv", positions)
    assert _load(data_dir, "positions", path) == 0
    assert capsys.readouterr().out.strip() == "loaded 2 positions (2 new, 0 updated)"
    assert _load(data_dir, "positions", path) == 0
    assert "0 new, 0 updated, 2 unchanged" in capsys.readouterr().out
    assert _rows(dsn, "SELECT account, symbol, quantity, avg_price FROM holdings ORDER BY 1") == [
        ("A1", "AAPL", Decimal(100), Decimal("150.25")),
        ("A2", "MSFT", Decimal(-10), Decimal(300)),
    ]
    bad = _write(tmp_path, "bad.csv", positions.replace("100,", "200,") + "ZZ,AAPL,1,1\n")
    assert _load(data_dir, "positions", bad) == 2
    assert capsys.readouterr().err.strip() == (
        f"brokerflow: error: {bad}:4: column account: 'ZZ' is not a known account"
    )
    assert _rows(dsn, "SELECT quantity FROM holdings WHERE symbol = 'AAPL'") == [(Decimal(100),)]


def test_load_missing_file_is_one_line(
    dsn: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _load(data_dir, "accounts", tmp_path / "nope.csv") == 2
    assert "nope.csv" in capsys.readouterr().err


def test_load_reference_directory_is_all_or_nothing(
    dsn: str, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stack's start-of-day load: accounts and positions from one directory, in one
    transaction; a bad position (an account in neither file nor store) leaves the accounts
    unloaded too."""
    ref = tmp_path / "reference"
    ref.mkdir()
    _write(ref, "accounts.csv", ACCOUNTS)
    _write(ref, "positions.csv", "account,symbol,quantity,avg_price\nA1,AAPL,5,10\nZZ,MSFT,1,1\n")
    assert _load(data_dir, "reference", ref) == 2
    assert capsys.readouterr().err.strip() == (
        f"brokerflow: error: {ref / 'positions.csv'}:3: column account: 'ZZ' is not a known account"
    )
    assert _rows(dsn, "SELECT count(*) FROM accounts") == [(0,)]

    _write(ref, "positions.csv", "account,symbol,quantity,avg_price\nA1,AAPL,5,10\n")
    assert _load(data_dir, "reference", ref) == 0
    assert capsys.readouterr().out.splitlines() == [
        "loaded 2 accounts (2 new, 0 updated)",
        "loaded 1 positions (1 new, 0 updated)",
    ]
    assert _rows(dsn, "SELECT account, symbol, quantity FROM holdings") == [("A1", "AAPL", 5)]

    (ref / "positions.csv").unlink()  # positions are optional
    assert _load(data_dir, "reference", ref) == 0
    assert "2 unchanged" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("layout", "error"),
    [("file", "not a directory"), ("empty", "no accounts.csv")],
)
def test_load_reference_needs_a_directory_with_accounts(
    dsn: str,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    layout: str,
    error: str,
) -> None:
    target = tmp_path / "reference"
    if layout == "file":
        target.write_text("account,owner,cash\n")
    else:
        target.mkdir()
    assert _load(data_dir, "reference", target) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"brokerflow: error: {target}: {error}" + (
        " (load reference takes a directory with accounts.csv)" if layout == "file" else ""
    )
