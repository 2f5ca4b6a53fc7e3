"""The `[market_status]` settings (the index circuit breaker, issue 19)."""

from __future__ import annotations

import pytest

from brokerflow.settings import load_settings
from domain.errors import ConfigError


def settings_of(tmp_path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_settings(path).market_status


def test_index_symbol_or_basket_from_a_toml_table(tmp_path, monkeypatch):
    monkeypatch.delenv("BROKERFLOW_MARKET_STATUS", raising=False)
    assert settings_of(tmp_path, '[market_status]\nindex_symbol = "NIFTY50"\n').index_symbol == (
        "NIFTY50"
    )
    equal = settings_of(tmp_path, '[market_status]\nbasket = ["A", "B"]\n')
    assert equal.basket == {"A": 1.0, "B": 1.0}  # a list: equal weights
    weighted = settings_of(tmp_path, "[market_status]\nbasket = { A = 3, B = 1 }\n")
    assert weighted.basket == {"A": 3.0, "B": 1.0} and weighted.index_symbol is None


def test_environment_json_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("BROKERFLOW_MARKET_STATUS", '{"index_symbol": "IDX"}')
    assert settings_of(tmp_path, '[market_status]\nindex_symbol = "X"\n').index_symbol == "IDX"


@pytest.mark.parametrize(
    ("table", "named"),
    [("index = 'X'", "market_status.index"), ("basket = { A = -1 }", "market_status")],
)
def test_bad_table_is_one_line_naming_the_key(tmp_path, monkeypatch, table, named):
    monkeypatch.delenv("BROKERFLOW_MARKET_STATUS", raising=False)
    with pytest.raises(ConfigError) as error:
        settings_of(tmp_path, f"[market_status]\n{table}\n")
    assert named in str(error.value) and "\n" not in str(error.value)
