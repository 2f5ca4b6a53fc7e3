"""A git worktree of another commit, to run its code beside this checkout's.

`bench compare` and the golden replay's regeneration (`tests/golden/regenerate.py`) run a
commit's code as `python -m ...` with the worktree as the working directory: Python puts the
working directory first on sys.path, so the worktree's packages shadow the editable install's
(this checkout's). `imports_from` checks that they do.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from domain.errors import BrokerflowError

ROOT = Path(__file__).resolve().parents[1]


class WorktreeError(BrokerflowError):
    """A revision cannot be checked out beside this one; one line says why."""


def _git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        msg = f"git {' '.join(args)}: {last}"
        raise WorktreeError(msg)
    return done.stdout.strip()


def resolve(rev: str) -> str:
    """The full commit id of `rev` in this repository."""
    return _git("rev-parse", "--verify", f"{rev}^{{commit}}")


def head() -> str:
    """This checkout's commit, with "+dirty" when its tracked files have changes."""
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return commit + ("+dirty" if dirty else "")


def default_path(commit: str) -> Path:
    return Path(tempfile.gettempdir()) / f"base-{commit[:7]}"


def ensure(rev: str, path: Path | None = None) -> tuple[Path, str]:
    """A clean worktree of `rev` (at `path`, default /tmp/base-<short id>), reused when one is
    there at that commit; return its path and the commit id."""
    commit = resolve(rev)
    path = path or default_path(commit)
    if path.exists():
        try:
            there = _git("rev-parse", "HEAD", cwd=path)
            changed = _git("status", "--porcelain", "--untracked-files=no", cwd=path)
        except WorktreeError:
            there, changed = "", ""
        if there != commit or changed:
            msg = (f"{path} exists but is not a clean checkout of {commit[:12]}; remove it "
                   "(git worktree remove) or give another path")  # fmt: skip
            raise WorktreeError(msg)
        return path, commit
    _git("worktree", "add", "--detach", str(path), commit)
    return path, commit


def imports_from(cwd: Path, module: str = "domain") -> Path:
    """Where `python -m` started in `cwd` imports `module` from (its package directory)."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__file__)"],
        cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        msg = f"cannot import {module} in {cwd}: {done.stderr.strip()[-300:]}"
        raise WorktreeError(msg)
    return Path(done.stdout.strip()).resolve().parent


def check_shadows(cwd: Path) -> None:
    """Raise unless code started in `cwd` imports that checkout's packages."""
    for module in ("domain", "brokerflow", "bench"):
        found = imports_from(cwd, module)
        if not found.is_relative_to(cwd.resolve()):
            msg = f"python in {cwd} imports {module} from {found}, not from the worktree"
            raise WorktreeError(msg)
