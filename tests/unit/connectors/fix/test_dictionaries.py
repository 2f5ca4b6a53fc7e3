"""The FIX data dictionaries ship with the package: used by default, overridden for a venue, in
the wheel with QuickFIX's licence, and a validating session without one refuses to start."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from connectors.fix.live import load_live_sessions
from connectors.fix.session import SessionConfig
from connectors.fix.session.dictionary import (
    DEFAULT_DICTIONARY_DIR,
    DICTIONARY_DIR_ENV,
    dictionary_path,
    load_dictionary,
)
from connectors.fix.session.engine import session_dictionary
from connectors.fix.session.wire import parse
from domain.errors import ConfigError

REPO = Path(__file__).resolve().parents[4]


def test_the_shipped_dictionaries_are_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DICTIONARY_DIR_ENV, raising=False)
    assert dictionary_path("FIX.4.4") == DEFAULT_DICTIONARY_DIR / "FIX44.xml"
    assert dictionary_path("FIX.4.2") == DEFAULT_DICTIONARY_DIR / "FIX42.xml"
    assert "QuickFIX Software License" in (DEFAULT_DICTIONARY_DIR / "LICENSE.quickfix").read_text()
    # and they validate: a NewOrderSingle without ClOrdID (11) is refused, naming the tag
    dictionary = session_dictionary(SessionConfig("BF", "VENUE"))
    assert dictionary is not None
    stamp = b"20261207-10:00:00"
    raw = (b"8=FIX.4.4\x019=60\x0135=D\x0149=VENUE\x0156=BF\x0134=2\x0152=" + stamp
           + b"\x0154=1\x0140=1\x0160=" + stamp + b"\x0110=000\x01")  # fmt: skip
    with pytest.raises(Exception, match="Required tag missing: 11"):
        dictionary.validate(parse(raw))


@pytest.mark.parametrize("begin_string", ["FIX.4.4", "FIX.4.2"])
def test_rptseq_is_allowed_where_market_data_venues_send_it(begin_string: str) -> None:
    """RptSeq (83) in each 35=X entry and in the 35=W body (issue 21), which QuickFIX's
    dictionaries omit; still not in a message that has no use for it."""
    dictionary = session_dictionary(SessionConfig("BF", "VENUE", begin_string=begin_string))
    assert dictionary is not None
    head = begin_string.encode() + b"\x019=1\x0135="
    common = b"\x0149=VENUE\x0156=BF\x0134=2\x0152=20261207-10:00:00\x01"
    incremental = (
        head + b"X" + common + b"268=2\x01279=0\x01269=0\x0155=AAPL\x01270=1.5\x01"
        b"83=7\x01279=1\x01269=1\x0155=AAPL\x01270=1.6\x0183=8\x0110=000\x01"
    )
    snapshot = (head + b"W" + common + b"55=AAPL\x0183=8\x01268=1\x01269=0\x01270=1.5\x01"
                b"10=000\x01")  # fmt: skip
    dictionary.validate(parse(incremental))
    dictionary.validate(parse(snapshot))
    order = (head + b"D" + common + b"11=A\x0121=1\x0155=AAPL\x0154=1\x0160=20261207-10:00:00"
             b"\x0138=1\x0140=1\x0183=1\x0110=000\x01")  # fmt: skip
    with pytest.raises(Exception, match="83"):
        dictionary.validate(parse(order))


def test_a_venue_dictionary_directory_overrides_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(DEFAULT_DICTIONARY_DIR / "FIX44.xml", tmp_path / "FIX44.xml")
    monkeypatch.setenv(DICTIONARY_DIR_ENV, str(tmp_path))
    assert dictionary_path("FIX.4.4") == tmp_path / "FIX44.xml"
    assert load_dictionary(tmp_path / "FIX44.xml") is not None
    # a session's own `dictionary` setting wins over both
    assert dictionary_path("FIX.4.4", configured=DEFAULT_DICTIONARY_DIR / "FIX42.xml") == (
        DEFAULT_DICTIONARY_DIR / "FIX42.xml"
    )


def test_a_validating_session_without_a_dictionary_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DICTIONARY_DIR_ENV, raising=False)
    fix50 = SessionConfig("BF", "VENUE", begin_string="FIXT.1.1", default_appl_ver_id="9")
    with pytest.raises(ConfigError) as info:
        session_dictionary(fix50)
    message = str(info.value)
    assert "\n" not in message
    assert "validate = true but no dictionary for 9" in message and "validate = false" in message
    no_validation = SessionConfig("BF", "VENUE", begin_string="FIXT.1.1",
                                  default_appl_ver_id="9", validate=False)  # fmt: skip
    assert session_dictionary(no_validation) is None
    # A configuration file with such a session fails when it is read, as one line.
    config = tmp_path / "fix.toml"
    config.write_text('[[fix.session]]\nsender_comp_id = "BF"\ntarget_comp_id = "VENUE"\n'
                      'begin_string = "FIXT.1.1"\ndefault_appl_ver_id = "9"\n'
                      'purpose = "drop-copy"\n')  # fmt: skip
    with pytest.raises(ConfigError, match="no dictionary for 9"):
        load_live_sessions(config)
    done = subprocess.run(
        [sys.executable, "-m", "brokerflow.cli", "gateway", "--config", str(config),
         "--seconds", "1"],
        capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    [line] = [x for x in done.stderr.splitlines() if "no dictionary" in x]
    assert line.startswith("brokerflow: error:")


def test_the_wheel_carries_the_dictionaries_and_the_licence(tmp_path: Path) -> None:
    """What a pip install (and the Docker image) gets: the wheel, built as pip builds it, from a
    copy of the sources (setuptools leaves a build/ directory where it builds)."""
    source = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "data", "results", "*.egg-info")
    for top in ("brokerflow", "domain", "connectors", "sinks", "flows", "simulator", "edge",
                "bench", "quality", "console"):  # fmt: skip
        shutil.copytree(REPO / top, source / top, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    [wheel] = tmp_path.glob("brokerflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("FIX42.xml", "FIX44.xml", "LICENSE.quickfix"):
        assert f"connectors/fix/dictionaries/{name}" in names
