"""`brokerflow price-alerts add/list/delete`: output, the store, bad input in one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brokerflow.cli import main


@pytest.fixture
def cli(pg_dsn: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", pg_dsn)
    monkeypatch.setenv("BROKERFLOW_INSTRUMENTS", "AAPL,MSFT")
    monkeypatch.setenv("BROKERFLOW_PRICE_ALERTS_MAX_PER_USER", "2")

    def run(*argv: str) -> int:
        return main(["price-alerts", *argv, "--data-dir", str(data_dir)])

    return run


def _listed(cli, capsys, *argv: str) -> list[dict]:
    capsys.readouterr()
    assert cli("list", "--format", "json", *argv) == 0
    return json.loads(capsys.readouterr().out)


def test_price_alerts_command_add_list_delete(cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("add", "--user", "u1", "--account", "A1", "--symbol", "aapl",
               "--condition", "ltp_above", "--value", "190.5") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("price alert ") and "AAPL ltp_above 190.5" in out
    assert cli("add", "--user", "u2", "--symbol", "MSFT", "--condition", "change_pct_below",
               "--value", "-2") == 0  # fmt: skip
    rows = _listed(cli, capsys, "--user", "u1")
    assert [(r["symbol"], r["condition"], r["value"], r["status"], r["account"])
            for r in rows] == [("AAPL", "ltp_above", 190.5, "ACTIVE", "A1")]  # fmt: skip
    assert len(_listed(cli, capsys)) == 2
    assert cli("delete", str(rows[0]["id"])) == 0
    assert capsys.readouterr().out == f"price alert {rows[0]['id']} deleted\n"
    assert _listed(cli, capsys, "--user", "u1") == []
    assert [r["status"] for r in _listed(cli, capsys, "--user", "u1", "--all")] == ["DELETED"]
    assert cli("list", "--user", "u2") == 0
    assert "change_pct_below" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--symbol", "NOPE", "--condition", "ltp_above", "--value", "1"], "symbol"),
        (["--symbol", "AAPL", "--condition", "ltp_sideways", "--value", "1"], "condition"),
        (["--symbol", "AAPL", "--condition", "ltp_above", "--value", "abc"], "value"),
        (["--symbol", "AAPL", "--condition", "ltp_above", "--value", "-5"], "value"),
    ],
)
def test_price_alerts_command_bad_input_one_line(
    cli, capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    assert cli("add", "--user", "u1", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"brokerflow: error: {field}: ") and err.count("\n") == 1
    assert _listed(cli, capsys) == []


def test_price_alerts_command_limit_and_unknown_id(
    cli, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in ("1", "2"):
        assert cli("add", "--user", "u1", "--symbol", "AAPL", "--condition", "ltp_below",
                   "--value", value) == 0  # fmt: skip
    capsys.readouterr()
    assert cli("add", "--user", "u1", "--symbol", "AAPL", "--condition", "ltp_below",
               "--value", "3") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("brokerflow: error: limit: ") and "2 active" in err
    assert err.count("\n") == 1
    assert cli("delete", "999999") == 2
    assert capsys.readouterr().err == "brokerflow: error: id: no price alert 999999\n"
