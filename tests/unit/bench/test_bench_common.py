"""bench/common.py: every result records the commit it was measured at."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import bench.common
from bench.common import git_commit, write_result


def _git(root: Path, *argv: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv],
        cwd=root, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def _checkout(root: Path) -> str:
    """A git checkout with a product file, a results file and a README; return HEAD."""
    (root / "flows").mkdir(parents=True)
    (root / "bench" / "results").mkdir(parents=True)
    (root / "flows" / "margin.py").write_text("x = 1\n")
    (root / "bench" / "results" / "margin.json").write_text("{}\n")
    (root / "README.md").write_text("readme\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "first")
    return _git(root, "rev-parse", "HEAD")


def test_git_commit_is_head_while_the_product_files_are_committed(tmp_path):
    head = _checkout(tmp_path)
    assert git_commit(tmp_path) == head
    # Results, docs and files git does not track do not make the measured code dirty.
    (tmp_path / "bench" / "results" / "margin.json").write_text('{"value": 1}\n')
    (tmp_path / "README.md").write_text("edited\n")
    (tmp_path / "flows" / "new_untracked.py").write_text("y = 2\n")
    assert git_commit(tmp_path) == head


def test_git_commit_is_dirty_with_an_uncommitted_product_change(tmp_path):
    head = _checkout(tmp_path)
    (tmp_path / "flows" / "margin.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == f"{head}-dirty"
    _git(tmp_path, "add", "flows/margin.py")  # staged is still not committed
    assert git_commit(tmp_path) == f"{head}-dirty"
    _git(tmp_path, "commit", "-q", "-m", "second")
    assert git_commit(tmp_path) == _git(tmp_path, "rev-parse", "HEAD")


def test_git_commit_is_none_outside_a_checkout(tmp_path):
    assert git_commit(tmp_path) is None


def test_write_result_records_the_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    root = Path(bench.common.__file__).parents[1]
    before = _git(root, "rev-parse", "HEAD")
    doc = json.loads(write_result("x", "messages/s", 1.0, 2.0, {}).read_text())
    after = _git(root, "rev-parse", "HEAD")  # others commit to this checkout meanwhile
    # This checkout's commit ("-dirty" or not: others edit the tree at the same time).
    assert doc["commit"].removesuffix("-dirty") in {before, after}
