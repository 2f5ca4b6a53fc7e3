"""Surveillance end to end: FIX files -> replay -> alerts with evidence in PostgreSQL and Redis."""

from __future__ import annotations

import json

import psycopg
import pytest
import redis

from brokerflow.commands.replay import replay
from tests.flows.test_executions_flow import load
from tests.flows.test_quotes_flow import fix, ts, write_file

FLOWS = ("ledger", "surveillance")


def report(exec_id, account, side, exec_type="F", qty=100, px="10.00", at_ms=0, seq=1,
           match=None, cl_ord_id=None, leaves=0, price=None):  # fmt: skip
    cl = cl_ord_id or f"C-{exec_id}"
    pairs = [(37, f"O-{cl}"), (11, cl), (17, exec_id), (150, exec_type),
             (39, {"F": "2", "0": "0", "4": "4", "5": "5"}[exec_type]), (1, account),
             (55, "ACME"), (54, side), (38, qty if exec_type == "F" else qty),
             (32, qty if exec_type == "F" else 0), (31, px if exec_type == "F" else 0),
             (14, qty if exec_type == "F" else 0), (151, leaves), (6, px),
             (60, ts(at_ms))]  # fmt: skip
    if price is not None:
        pairs += [(40, "2"), (44, price)]
    if match:
        pairs.append((880, match))
    return fix("8", pairs, seq, ts(at_ms))


@pytest.fixture
def settings(settings_factory, tmp_path, monkeypatch):
    s = settings_factory()
    (tmp_path / "accounts.csv").write_text(
        "account,owner,cash\nA1,alice,1000000\nA2,alice,1000000\nB1,bob,1000000\n"
        "C1,carol,1000000\n"
    )
    load(s, "accounts", tmp_path / "accounts.csv", monkeypatch)
    return s


def alerts(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT kind, severity, account, owner, details FROM alerts ORDER BY kind, alert_id"
        ).fetchall()


def test_self_match_between_accounts_of_one_owner_is_alerted_once(tmp_path, settings):
    lines = [
        report("E1", "A1", "1", match="T1", seq=1),
        report("E2", "A2", "2", match="T1", at_ms=100, seq=2),
        # the look-alike: two unrelated clients trading with each other
        report("E3", "B1", "1", match="T2", at_ms=200, seq=3),
        report("E4", "C1", "2", match="T2", at_ms=300, seq=4),
    ]
    path = write_file(tmp_path / "day.fix", lines)
    summary = replay([path], settings, progress=False, flows=FLOWS).as_dict()
    [(kind, severity, account, owner, details)] = alerts(settings.postgres_dsn)
    assert (kind, account, owner) == ("WASH_TRADE", None, "alice")
    assert details["exec_ids"] == ["E1", "E2"] and details["accounts"] == ["A1", "A2"]
    assert int(severity) == details["score"] == 80
    assert summary["alerts"] == {"WASH_TRADE": 1}
    r = redis.Redis.from_url(settings.redis_url)
    [(_, fields)] = r.xrange("stream:alerts")
    assert json.loads(fields[b"data"])["details"]["matched_by"] == "TrdMatchID(880)"
    r.close()

    replay([path], settings, progress=False, flows=FLOWS)  # the same day again
    assert len(alerts(settings.postgres_dsn)) == 1
    from tests.flows.test_executions_flow import audit_rows as clickhouse

    [(kind, owner, details)] = clickhouse(
        settings, "SELECT kind, owner, details FROM alerts FINAL"
    )  # the analytics copy, once
    assert (kind, owner, json.loads(details)["exec_ids"]) == ("WASH_TRADE", "alice", ["E1", "E2"])


def test_an_account_without_owner_is_alerted_not_dropped(tmp_path, settings):
    lines = [report("E1", "X9", "1", seq=1), report("E2", "X9", "2", px="10.50", at_ms=10, seq=2)]
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False, flows=FLOWS)
    got = alerts(settings.postgres_dsn)
    assert [(k, a, o, d.get("exec_id")) for k, _, a, o, d in got] == [
        ("OWNERSHIP_MISSING", "X9", None, "E1")
    ], got


def test_layering_from_execution_reports(tmp_path, settings):
    lines = []
    seq = 0
    for i, px in enumerate(("10.05", "10.06", "10.07")):
        seq += 1
        lines.append(report(f"N{i}", "B1", "2", exec_type="0", qty=2000, at_ms=i, seq=seq,
                            cl_ord_id=f"S{i}", leaves=2000, price=px))  # fmt: skip
    lines.append(report("F1", "B1", "1", qty=100, at_ms=1_000, seq=10))
    for i in range(3):
        lines.append(report(f"X{i}", "B1", "2", exec_type="4", qty=2000, at_ms=3_000 + i,
                            seq=20 + i, cl_ord_id=f"S{i}", price="10.05"))  # fmt: skip
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False, flows=FLOWS)
    kinds = {k: d for k, _, _, _, d in alerts(settings.postgres_dsn)}
    assert kinds["SPOOFING"]["pattern"] == "layering"
    assert kinds["SPOOFING"]["cancelled_cl_ord_ids"] == ["S0", "S1", "S2"]


def test_analyst_lists_shows_acks_and_closes_an_alert(tmp_path, settings, capsys, monkeypatch):
    from brokerflow.cli import main

    lines = [report("E1", "A1", "1", match="T1", seq=1),
             report("E2", "A2", "2", match="T1", at_ms=100, seq=2)]  # fmt: skip
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False, flows=FLOWS)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    dd = ["--data-dir", str(settings.data_dir)]
    capsys.readouterr()
    assert main(["alerts", "list", "--kind", "WASH_TRADE", "--format", "json", *dd]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["kind"], row["status"], row["owner"]) == ("WASH_TRADE", "OPEN", "alice")
    prefix = row["alert_id"][:8]
    assert main(["alerts", "show", prefix, *dd]) == 0
    shown = capsys.readouterr().out
    assert "exec_ids" in shown and '["E1", "E2"]' in shown and "TrdMatchID(880)" in shown
    assert main(["alerts", "ack", prefix, *dd]) == 0
    assert capsys.readouterr().out.strip().endswith("ACKED")
    assert main(["alerts", "close", prefix, "--note", "family accounts, reviewed", *dd]) == 0
    assert capsys.readouterr().out.strip().endswith("CLOSED")
    assert main(["alerts", "list", "--status", "OPEN", "--format", "json", *dd]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["alerts", "show", "ffffffff", *dd]) == 2  # one line, non-zero


def test_parameters_from_the_command_line_and_the_config_file_move_the_boundary(
    tmp_path, settings, capsys, monkeypatch
):
    from brokerflow.cli import main

    lines = []
    for i in range(3):  # three round trips of bob's in one symbol
        lines.append(report(f"B{i}", "B1", "1", at_ms=i * 1000, seq=2 * i + 1))
        lines.append(report(f"S{i}", "B1", "2", px="10.01", at_ms=i * 1000 + 500, seq=2 * i + 2))
    path = write_file(tmp_path / "day.fix", lines)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    base = ["replay", str(path), "-q", "--flows", "surveillance",
            "--data-dir", str(settings.data_dir)]  # fmt: skip
    assert main(base) == 0
    assert [k for k, *_ in alerts(settings.postgres_dsn)] == []  # 3 < 10 round trips
    config = tmp_path / "brokerflow.toml"
    config.write_text("[surveillance.round_trips]\nmin_round_trips = 3\n")
    assert main([*base, "--config", str(config)]) == 0
    [(kind, _, _, owner, details)] = alerts(settings.postgres_dsn)
    assert (kind, owner, details["round_trips"], details["min_round_trips"]) == (
        "WASH_TRADE", "bob", 3, 3
    )
    capsys.readouterr()
    assert main([*base, "--set", "round_trips.min_roundtrips=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown parameter round_trips.min_roundtrips" in err and "\n" not in err


def test_late_execution_reports_within_the_bound_count_beyond_it_are_dead_letters(
    tmp_path, settings_factory, monkeypatch
):
    s = settings_factory(surveillance_late_s=10)
    (tmp_path / "accounts.csv").write_text("account,owner,cash\nA1,alice,1\nA2,alice,1\n")
    load(s, "accounts", tmp_path / "accounts.csv", monkeypatch)
    lines = [
        report("E9", "B7", "1", px="20.00", at_ms=60_000, seq=1),  # advances event time
        report("E1", "A1", "1", match="T1", at_ms=55_000, seq=2),  # 5 s late: taken
        report("E2", "A2", "2", match="T1", at_ms=55_100, seq=3),
        report("E3", "A1", "1", match="T3", at_ms=1_000, seq=4),  # 59 s late: dead letter
    ]
    summary = replay(
        [write_file(tmp_path / "day.fix", lines)], s, progress=False, flows=FLOWS
    ).as_dict()
    kinds = sorted(k for k, *_ in alerts(s.postgres_dsn))
    assert kinds == ["OWNERSHIP_MISSING", "WASH_TRADE"]  # B7 has no owner; E1/E2 self-match
    with psycopg.connect(s.postgres_dsn) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters")]
    late = [r for r in reasons if "E3" in r]
    assert len(late) == 1 and "59.000 s older" in late[0] and "bound 10 s" in late[0]
    assert summary["dead_letters"] >= 1


def _score_scenario(tmp_path, settings_factory, monkeypatch, capsys, *sets: str) -> dict:
    """Replay the labelled scenario into a fresh database; return the scores by model."""
    from brokerflow.cli import main
    from simulator.surveillance import write_scenario

    s = settings_factory()
    day, accounts, labels = tmp_path / "day.fix", tmp_path / "acc.csv", tmp_path / "labels.csv"
    write_scenario(day, accounts, labels)
    load(s, "accounts", accounts, monkeypatch)
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", s.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", s.redis_url)
    capsys.readouterr()
    options = [arg for value in sets for arg in ("--set", value)]
    assert main(["replay", str(day), "-q", "--only", "surveillance", "--labels", str(labels),
                 "--data-dir", str(s.data_dir), *options]) == 0  # fmt: skip
    return {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()
            if line.split() and line.split()[0].isupper()}  # fmt: skip


def test_labelled_scenario_scores_every_model(tmp_path, settings_factory, monkeypatch, capsys):
    table = _score_scenario(tmp_path, settings_factory, monkeypatch, capsys)
    # model: alerts, true, labelled, precision, recall
    assert table["WASH_TRADE"] == ["2", "2", "2", "1.00", "1.00"]
    assert table["SPOOFING"] == ["1", "1", "1", "1.00", "1.00"]
    assert table["EXCESSIVE_OTR"] == ["1", "1", "1", "1.00", "1.00"]
    assert table["PUMP_AND_DUMP"] == ["1", "1", "1", "1.00", "1.00"]
    assert table["MARKING_THE_CLOSE"] == ["1", "1", "1", "1.00", "1.00"]
    assert table["OWNERSHIP_MISSING"] == ["2", "2", "2", "1.00", "1.00"]


def test_thresholds_move_the_scenario_scores(tmp_path, settings_factory, monkeypatch, capsys):
    """Lower the pump share to 1 %: liam's 2 % (and oscar's 4 %) buys are flagged too;
    raise the closing-window share to 10 %: nina's 7 % is missed."""
    table = _score_scenario(
        tmp_path, settings_factory, monkeypatch, capsys,
        "pump_and_dump.volume_share=0.01", "marking_the_close.window_share=0.10",
    )  # fmt: skip
    assert table["PUMP_AND_DUMP"] == ["3", "1", "1", "0.33", "1.00"]
    assert table["MARKING_THE_CLOSE"][1:] == ["0", "1", "-", "0.00"]  # no alert: no precision
