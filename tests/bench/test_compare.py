"""`brokerflow bench compare`: base and current back to back, one table with both commits. No
timing is asserted: the machine is shared, and the figures are whatever it gave."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import bench.common
from bench import worktree
from bench.compare import Figure, render
from brokerflow.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_a_figure_is_within_noise_when_the_ranges_overlap() -> None:
    fig = Figure("stops", "stops end to end", "quotes/s", "higher", False, [100, 110], [105, 120])
    assert fig.verdict() == (pytest.approx((112.5 - 105) / 105 * 100), "within noise")
    slower = Figure("edge", "edge", "ms p99", "lower", False, [10, 11], [13, 14])
    assert slower.verdict()[1] == "worse"
    assert Figure("x", "x", "u", "higher", False, [1], [2]).verdict()[1] == "one run: no spread"
    assert Figure("x", "x", "u", "higher", False, [1], []).verdict() == (
        None,
        "missing on one side",
    )


@pytest.fixture
def head_worktree(tmp_path: Path):
    path = tmp_path / "base"
    yield path
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def test_bench_compare_runs_both_commits_and_prints_one_table(
    head_worktree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(bench.common, "DATA_DIR", tmp_path / "data")  # the runs' logs
    out = tmp_path / "compare.json"
    code = main(["bench", "compare", "--base", "HEAD", "--only", "fix-session", "--repeat", "1",
                 "--bench-args", "--fix-messages 2000", "--worktree", str(head_worktree),
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    record = json.loads(out.read_text())
    head = worktree.resolve("HEAD")
    assert record["base"] == head and record["current"].startswith(head)
    assert record["benchmarks"] == ["fix-session"] and record["repeat"] == 1
    figures = {(r["benchmark"], r["figure"]) for r in record["rows"]}
    assert figures == {("fix-session", "fix-session"),
                       ("fix-session", "fix-session: yardstick, file decoder")}  # fmt: skip
    for row in record["rows"]:
        assert len(row["base_samples"]) == len(row["current_samples"]) == 1
        assert row["verdict"] == "one run: no spread"
    text = capsys.readouterr().out
    assert f"base {head}" in text and "current median" in text and "2 figures" in text
    # the base ran from its worktree, and neither checkout's results were touched
    assert worktree.imports_from(head_worktree) == head_worktree.resolve() / "domain"


def test_bench_compare_refuses_an_unknown_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "compare", "--base", "HEAD", "--only", "nope"]) == 2
    assert "no benchmark named nope" in capsys.readouterr().err


def test_render_ends_with_the_summary_in_numbers() -> None:
    fig = Figure("codec", "decode_lines, engine only", "msg/s", "higher", True, [100.0, 104.0],
                 [90.0, 91.0])  # fmt: skip
    change, verdict = fig.verdict()
    record = {"base": "a" * 40, "current": "b" * 40, "machine": "m", "repeat": 2,
              "sizes": "quick", "benchmarks": ["codec"], "seconds": 12.0,
              "rows": [{"benchmark": "codec", "figure": fig.label, "unit": "msg/s",
                        "base_median": 102.0, "current_median": 90.5,
                        "change_pct": round(change, 2), "verdict": verdict}]}  # fmt: skip
    text = render(record)
    assert "codec" in text and "-11.3 %" in text and "worse" in text
    assert text.splitlines()[-2].startswith("1 figures from 1 benchmarks in 12 s: 1 worse")
