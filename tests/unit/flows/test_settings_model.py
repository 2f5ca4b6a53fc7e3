"""The one configuration model (flows.settings): the `--config` file read once, its
`[[fix.session]]`, `[reference]` and `[surveillance.*]` tables reached through `Settings` with
the errors their connectors and models always gave."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from connectors.fix.live import load_live_sessions
from connectors.reference_inbox import load_reference_inbox
from domain.errors import ConfigError
from flows.settings import Settings, load_settings
from flows.surveillance_parameters import model_parameters

SESSION = """
[[fix.session]]
name = "venue"
sender_comp_id = "BF"
target_comp_id = "VENUE"
port = 9878
symbols = ["AAPL"]
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BROKERFLOW_"):
            monkeypatch.delenv(name)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "brokerflow.toml"
    path.write_text(text)
    return path


def test_settings_read_the_config_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = _toml(tmp_path, f'coalesce_ms = 50\n[reference]\ninbox = "{inbox}"\n{SESSION}')
    reads: list[str] = []
    for name in ("load", "loads"):
        real = getattr(tomllib, name)
        monkeypatch.setattr(
            tomllib,
            name,
            lambda *a, _real=real, _n=name, **k: (reads.append(_n), _real(*a, **k))[1],
        )
    settings = load_settings(config)
    [session] = settings.fix_sessions()
    assert settings.reference_inbox() == inbox
    assert len(reads) == 1
    assert settings.coalesce_ms == 50
    assert session.name == "venue" and session.symbols == ("AAPL",)
    assert session.config.port == 9878


def test_settings_fix_sessions_match_the_connectors_reading(tmp_path: Path) -> None:
    config = _toml(tmp_path, SESSION)
    assert load_settings(config).fix_sessions() == load_live_sessions(config)


@pytest.mark.parametrize(
    "table",
    [
        'sender_comp_id = "BF"\nport = 1\nsymbols = ["X"]\n',  # target_comp_id missing
        'sender_comp_id = "BF"\ntarget_comp_id = "V"\nheartbeat = 5\nsymbols = ["X"]\n',
        'sender_comp_id = "BF"\ntarget_comp_id = "V"\nport = "x"\nsymbols = ["X"]\n',
        'sender_comp_id = "BF"\ntarget_comp_id = "V"\n',  # market data without symbols
    ],
)
def test_settings_fix_session_errors_are_the_connectors_one_liners(
    tmp_path: Path, table: str
) -> None:
    config = _toml(tmp_path, "[[fix.session]]\n" + table)
    settings = load_settings(config)  # the session is checked when a command asks for it
    with pytest.raises(ConfigError) as ours:
        settings.fix_sessions()
    with pytest.raises(ConfigError) as theirs:
        load_live_sessions(config)
    assert str(ours.value) == str(theirs.value)
    assert str(ours.value).startswith(f"{config} [[fix.session]] #1: ")
    assert "\n" not in str(ours.value)


def test_settings_reference_inbox_errors_match(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[reference]\ninbox = "/no/such/folder"\n')
    with pytest.raises(ConfigError) as ours:
        load_settings(config).reference_inbox()
    with pytest.raises(ConfigError) as theirs:
        load_reference_inbox(config)
    assert str(ours.value) == str(theirs.value)


def test_settings_without_a_config_file_have_no_sessions_or_inbox() -> None:
    settings = load_settings()
    assert settings.fix_sessions() == []
    assert settings.reference_inbox() is None
    assert Settings().fix_sessions() == []


def test_settings_surveillance_parameters_from_toml(tmp_path: Path) -> None:
    settings = load_settings(_toml(tmp_path, "[surveillance.round_trips]\nmin_round_trips = 12\n"))
    params = settings.surveillance_parameters()
    assert params == model_parameters({"round_trips": {"min_round_trips": 12}})
    assert params["round_trips"]
    assert load_settings().surveillance_parameters() == model_parameters({})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[surveillance.nope]\nx = 1\n", "unknown surveillance model 'nope'"),
        ("[surveillance.round_trips]\nmin_trips = 1\n", "unknown parameter round_trips.min_trips"),
    ],
)
def test_settings_surveillance_parameters_errors(tmp_path: Path, text: str, error: str) -> None:
    settings = load_settings(_toml(tmp_path, text))
    with pytest.raises(ConfigError, match=error):
        settings.surveillance_parameters()


def test_settings_keep_their_tables_through_overrides(tmp_path: Path) -> None:
    settings = load_settings(_toml(tmp_path, SESSION))
    copy = settings.model_copy(update={"surveillance": {"round_trips": {}}})
    assert copy.fix_sessions() == settings.fix_sessions()
