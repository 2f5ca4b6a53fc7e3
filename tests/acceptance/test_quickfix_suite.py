"""QuickFIX's acceptance suite (../shared/fix-acceptance) against our session layer.

Every .def of server/fix44 and server/fix42 runs against its own in-process acceptor (the
`brokerflow fix-test-acceptor` engine) on a free port, all concurrently, in map mode (QuickFIX/J's
comparison) and strict mode (QuickFIX C++'s). The slowest cases wait on the HeartBtInt the .def
asks for (6_SendTestRequest: ~36 s), so the whole module takes about that long.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.fix.acceptance import (
    SUITE_DIR,
    DefResult,
    compare_map,
    compare_strict,
    def_files,
    fixify,
    run_def,
    run_suite,
    summarize,
)

SERVER_DIRS = [SUITE_DIR / "server" / "fix44", SUITE_DIR / "server" / "fix42"]
pytestmark = pytest.mark.skipif(
    not all(d.is_dir() for d in SERVER_DIRS),
    reason=f"QuickFIX acceptance suite not found at {SUITE_DIR} (../shared/fix-acceptance)",
)
DEFS = def_files(SERVER_DIRS) if all(d.is_dir() for d in SERVER_DIRS) else []
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite_results() -> dict[tuple[str, str, str], DefResult]:
    results = asyncio.run(run_suite(DEFS, ("map", "strict")))
    print("\n" + summarize(results))
    return {
        (path.parent.name, path.name, result.mode): result
        for path, result in zip(DEFS * 2, results, strict=True)
    }


def test_the_suite_has_all_its_files() -> None:
    assert len([p for p in DEFS if p.parent.name == "fix44"]) == 59
    assert len([p for p in DEFS if p.parent.name == "fix42"]) == 58


@pytest.mark.parametrize("path", DEFS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_def_passes_in_map_mode(path: Path, suite_results) -> None:
    result = suite_results[(path.parent.name, path.name, "map")]
    assert result.passed, result.detail


def test_strict_mode_count(suite_results) -> None:
    strict = [r for key, r in suite_results.items() if key[2] == "strict"]
    passed = sum(r.passed for r in strict)
    print(f"strict mode: {passed}/{len(strict)}")
    failures = [f"{r.name}: {r.detail}" for r in strict if not r.passed]
    assert not failures, "\n".join(failures)


def test_the_runner_notices_a_wrong_answer() -> None:
    """The comparisons fail on a real difference, so a passing suite means something."""
    expected = fixify(b"8=FIX.4.4\x0135=0\x0134=2\x0149=ISLD\x0152=00000000-00:00:00.000\x01"
                      b"56=TW44\x01112=HELLO\x0110=0\x01")
    right = fixify(b"8=FIX.4.4\x0135=0\x0134=2\x0149=ISLD\x0152=20240101-00:00:00.123\x01"
                   b"56=TW44\x01112=HELLO\x01")
    wrong_seq = right.replace(b"34=2", b"34=3")
    extra = fixify(b"8=FIX.4.4\x0135=0\x0134=2\x0149=ISLD\x0152=20240101-00:00:00.123\x01"
                   b"56=TW44\x01112=HELLO\x0158=x\x01")
    assert compare_map(expected, right) == ""
    assert compare_strict(expected, right) == ""
    assert "34=3" in compare_map(expected, wrong_seq)
    assert compare_strict(expected, wrong_seq)
    assert "unexpected 58" in compare_map(expected, extra)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_acceptor_serves_the_suite() -> None:
    """`brokerflow fix-test-acceptor` (the command users run) passes .defs over a real port."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "brokerflow.cli", "fix-test-acceptor", "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert f":{port}" in line, line
        chosen = ["1a_ValidLogonWithCorrectMsgSeqNum.def", "14e_IncorrectEnumValue.def",
                  "1c_InvalidTargetCompID.def", "8_AdminAndApplicationMessages.def"]
        started = time.monotonic()
        for name in chosen:
            result = asyncio.run(run_def(SERVER_DIRS[0] / name, "127.0.0.1", port, "map"))
            assert result.passed, f"{name}: {result.detail}"
        assert time.monotonic() - started < 10
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=10)
    # Every reject and disconnect is logged with its reason.
    assert b"Value is incorrect (out of range) for this tag (RefTagID 21)" in err
    assert b"no session TW44 -> DLSI" in err
