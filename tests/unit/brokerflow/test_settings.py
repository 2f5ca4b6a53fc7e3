"""Settings: precedence (flag > env > TOML > default), key spellings, one-line errors; the one
configuration model: the `--config` file read once, its `[[fix.session]]`, `[reference]` and
`[surveillance.*]` tables reached through `Settings` with the errors their connectors and models
always gave."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from brokerflow.settings import Settings, load_settings, mask_url
from connectors.fix.live import load_live_sessions
from connectors.reference_inbox import load_reference_inbox
from domain.errors import ConfigError
from flows.surveillance_parameters import model_parameters


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BROKERFLOW_"):
            monkeypatch.delenv(name)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "brokerflow.toml"
    path.write_text(text)
    return path


def test_load_settings_defaults() -> None:
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.postgres_dsn is None
    assert settings.data_dir == Path(".brokerflow")
    assert settings.coalesce_ms == 100
    assert settings.coalesce_min_move_bps == 0.0
    assert settings.instruments is None
    assert settings.redis_stream_maxlen == 100_000


def test_load_settings_toml_accepts_both_key_spellings(tmp_path: Path) -> None:
    config = _toml(
        tmp_path,
        'BROKERFLOW_REDIS_URL = "redis://toml:1/0"\n'
        'postgres_dsn = "postgresql://toml/db"\n'
        "Coalesce_MS = 250\n"
        'instruments = ["AAPL", "MSFT"]\n',
    )
    settings = load_settings(config)
    assert settings.redis_url == "redis://toml:1/0"
    assert settings.postgres_dsn == "postgresql://toml/db"
    assert settings.coalesce_ms == 250
    assert settings.instruments == ["AAPL", "MSFT"]


def test_load_settings_env_wins_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _toml(tmp_path, 'redis_url = "redis://toml:1/0"\ncoalesce_ms = 250\n')
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", "redis://env:2/0")
    settings = load_settings(config)
    assert settings.redis_url == "redis://env:2/0"
    assert settings.coalesce_ms == 250  # not in the environment: the TOML value stands


def test_load_settings_data_dir_flag_wins_over_env_and_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _toml(tmp_path, 'data_dir = "/from/toml"\n')
    monkeypatch.setenv("BROKERFLOW_DATA_DIR", "/from/env")
    assert load_settings(config).data_dir == Path("/from/env")
    assert load_settings(config, tmp_path / "flag").data_dir == tmp_path / "flag"


def test_load_settings_instruments_from_env_comma_separated_or_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKERFLOW_INSTRUMENTS", "AAPL, MSFT ,IBM")
    assert load_settings().instruments == ["AAPL", "MSFT", "IBM"]
    monkeypatch.setenv("BROKERFLOW_INSTRUMENTS", '["VOD.L"]')
    assert load_settings().instruments == ["VOD.L"]


def test_load_settings_empty_env_value_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", "")
    assert load_settings().redis_url is None


def test_load_settings_unknown_toml_key_raises_config_error_naming_it(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'redis_url = "redis://x/0"\ncoalesce_msec = 5\n')
    with pytest.raises(ConfigError, match="coalesce_msec") as info:
        load_settings(config)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("coalesce_ms", "0"),
        ("coalesce_ms", "-5"),
        ("coalesce_min_move_bps", "-0.5"),
        ("redis_stream_maxlen", '"many"'),
    ],
)
def test_load_settings_bad_toml_value_raises_config_error_naming_key(
    tmp_path: Path, key: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        load_settings(_toml(tmp_path, f"{key} = {value}\n"))
    assert "\n" not in str(info.value)


def test_load_settings_bad_env_value_raises_config_error_naming_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKERFLOW_COALESCE_MS", "fast")
    with pytest.raises(ConfigError, match="BROKERFLOW_COALESCE_MS"):
        load_settings()


def test_load_settings_unreadable_toml_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_toml(tmp_path, "redis_url = \n"))


def test_settings_are_frozen_and_forbid_unknown_fields() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.coalesce_ms = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(no_such_field=1)  # type: ignore[call-arg]


def test_settings_masked_hides_secret_and_url_passwords() -> None:
    settings = Settings(
        edge_secret="s3cret",
        postgres_dsn="postgresql://bob:hunter2@db:5432/x",
        redis_url="redis://:pw@cache:6379/0",
    )
    masked = settings.masked()
    assert masked["edge_secret"] == "***"
    assert masked["postgres_dsn"] == "postgresql://bob:***@db:5432/x"
    assert masked["redis_url"] == "redis://:***@cache:6379/0"
    line = settings.describe()
    assert "s3cret" not in line and "hunter2" not in line and "pw@" not in line
    assert settings.edge_secret is not None
    assert settings.edge_secret.get_secret_value() == "s3cret"


def test_mask_url_libpq_keyword_form() -> None:
    assert (
        mask_url("host=db user=bob password=x dbname=y") == "host=db user=bob password=*** dbname=y"
    )
    assert mask_url("redis://cache:6379/0") == "redis://cache:6379/0"


SESSION = """
[[fix.session]]
name = "venue"
sender_comp_id = "BF"
target_comp_id = "VENUE"
port = 9878
symbols = ["AAPL"]
"""


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
