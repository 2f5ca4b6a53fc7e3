"""Tests of `brokerflow simulate` through `brokerflow.cli.main`."""

from __future__ import annotations

from pathlib import Path

import pytest

from brokerflow.cli import main
from simulator.market import MarketSimulator


def test_simulate_writes_file_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "day.fix"
    rc = main(["simulate", "--symbols", "3", "--minutes", "0.5", "--out", str(out), "--seed", "4"])
    assert rc == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) > 3 * 30 * 5
    assert all(line.startswith(b"8=FIX.4.4\x01") for line in lines)
    assert all(line[-8:-4] == b"\x0110=" and line.endswith(b"\x01") for line in lines)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{len(lines):,} messages" in err[0] and "3 symbols" in err[0]


def test_simulate_same_as_api_and_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.fix", tmp_path / "b.fix", tmp_path / "c.fix"
    args = ["simulate", "--symbols", "2", "--minutes", "0.2", "--rate", "3"]
    assert main([*args, "--out", str(a)]) == 0
    assert main([*args, "--out", str(b), "--seed", "1", "--start", "2026-11-25T14:30:00Z"]) == 0
    MarketSimulator(2, rate_per_symbol=3).write_file(c, minutes=0.2)
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()


def test_simulate_start_option(tmp_path: Path) -> None:
    out = tmp_path / "s.fix"
    argv = ["simulate", "--symbols", "1", "--minutes", "0.1", "--out", str(out)]
    assert main([*argv, "--start", "2027-01-04T09:30:00-05:00"]) == 0
    assert b"\x0152=20270104-14:30:00.000\x01" in out.read_bytes().splitlines()[0]


@pytest.mark.parametrize(
    "extra",
    [
        ["--symbols", "0", "--minutes", "1"],
        ["--symbols", "-3", "--minutes", "1"],
        ["--symbols", "x", "--minutes", "1"],
        ["--symbols", "2", "--minutes", "0"],
        ["--symbols", "2", "--minutes", "-1"],
        ["--symbols", "2", "--minutes", "1", "--rate", "0"],
        ["--symbols", "2", "--minutes", "1", "--start", "2026-11-25T14:30:00"],
        ["--symbols", "2"],
    ],
)
def test_simulate_bad_arguments_exit_2_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str]
) -> None:
    out = tmp_path / "x.fix"
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *extra, "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "error" in err
    assert not out.exists()


def test_simulate_missing_out_directory_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "nope" / "x.fix"
    rc = main(["simulate", "--symbols", "1", "--minutes", "1", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "does not exist" in err
