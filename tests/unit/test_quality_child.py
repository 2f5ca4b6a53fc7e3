"""The data-quality validator process does not outlive its run: a run killed with SIGTERM or
SIGKILL (its cleanup never runs) leaves no validator behind holding its pipes open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.eventually import eventually

ROOT = Path(__file__).resolve().parents[2]
RUN = """
import sys, time
from quality.runner import DataQualityRunner, DqPolicy
runner = DataQualityRunner(DqPolicy(), lambda name, n: None, sys.argv[1])
runner.start()
print(runner._process.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, the test's subprocess, is dead).
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\\tZ" not in status.read_text()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_run_leaves_no_validator_behind(pg_dsn: str, how: signal.Signals) -> None:
    run = subprocess.Popen([sys.executable, "-c", RUN, pg_dsn], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        child = int(run.stdout.readline())
        assert _alive(child)
        run.send_signal(how)
        run.wait(10)
        # 60 s: the validator may still be importing
        eventually(lambda: not _alive(child), 60, 0.2, "the validator to end with its run")
    finally:
        if run.poll() is None:
            run.kill()
