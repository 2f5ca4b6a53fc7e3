"""`brokerflow token issue`: a token the edge accepts, signed with the data dir's key."""

from __future__ import annotations

import time

from brokerflow.cli import main
from edge.tokens import edge_secret, read_token


def test_edge_token_issue_prints_a_token_the_edge_accepts(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BROKERFLOW_EDGE_SECRET", raising=False)
    argv = ["--data-dir", str(tmp_path), "token", "issue", "--user", "bob", "--role", "trader"]
    assert main([*argv, "--account", "A1", "--account", "A2"]) == 0
    token = capsys.readouterr().out.strip()
    claims = read_token(edge_secret(None, tmp_path), token, time.time())
    assert (claims.user, claims.role, claims.accounts) == ("bob", "trader", {"A1", "A2"})
    assert (tmp_path / "edge_secret").stat().st_mode & 0o777 == 0o600


def test_edge_token_issue_refuses_a_trader_without_accounts(tmp_path, capsys):
    argv = ["--data-dir", str(tmp_path), "token", "issue", "--user", "bob", "--role", "trader"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "brokerflow: error: a trader token names no account"


def test_edge_token_uses_the_configured_secret(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BROKERFLOW_EDGE_SECRET", "s" * 32)
    argv = ["--data-dir", str(tmp_path), "token", "issue", "--user", "al", "--role", "analyst"]
    assert main(argv) == 0
    token = capsys.readouterr().out.strip()
    assert read_token(b"s" * 32, token, time.time()).role == "analyst"
    assert not (tmp_path / "edge_secret").exists()
