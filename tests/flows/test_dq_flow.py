"""Data quality end to end: a FIX file with bad rows -> replay -> dq_results, dead letters naming
the expectation, the run's counters; good rows still land in Redis.

Runs against real PostgreSQL and Redis (tests/conftest.py). The decoder already rejects some bad
fills on its own (CumQty > OrderQty, LeavesQty off while working); the ones it lets through
(LastQty > OrderQty, LeavesQty off while a cancel is pending, LastPx far from the market) and
the bad quotes it does not judge (crossed, negative size) are the suites' work.
"""

from __future__ import annotations

import psycopg
import pytest
import redis

from brokerflow.cli import main
from brokerflow.commands.replay import replay
from tests.flows.test_quotes_flow import fix, quote, snapshot, ts, write_file


@pytest.fixture
def settings(settings_factory):
    # Every micro-batch validated: a small file must not be sampled away.
    return settings_factory(dq=True, dq_budget_share=1.0, dq_batch_rows=1_000)


def fill(seq: int, **fields: object) -> bytes:
    """A fill of ACME (35=8, ExecType F); keyword arguments replace tags by FIX name."""
    tags = {"order_qty": 38, "last_qty": 32, "last_px": 31, "cum_qty": 14, "leaves_qty": 151,
            "ord_status": 39}  # fmt: skip
    values = {37: "O1", 11: f"C{seq}", 17: f"E{seq}", 150: "F", 39: "1", 1: "ACC1",
              55: "ACME", 54: 1, 38: 100, 32: 10, 31: "10.00", 14: 10, 151: 90, 6: "10.00",
              60: ts(seq)}  # fmt: skip
    for name, value in fields.items():
        values[tags[name]] = value
    return fix("8", list(values.items()), seq, ts(seq))


def bad_day() -> list[bytes]:
    return [
        snapshot("ACME", 0, "9.99", 500, "10.01", 400),
        snapshot("GOOD", 1, "20.00", 100, "20.02", 100),
        snapshot("CROS", 2, "30.05", 100, "30.00", 100),  # crossed: bid > ask
        snapshot("NEGS", 3, "40.00", -5, "40.02", 100),  # negative size
        fill(10),  # good
        fill(11, last_qty=150, cum_qty=20, leaves_qty=80),  # LastQty > OrderQty
        fill(12, ord_status="6", cum_qty=30, leaves_qty=10),  # LeavesQty != 100 - 30 (39=6)
        fill(13, last_px="25.00", cum_qty=40, leaves_qty=60),  # 150 % away from 10.00
        fill(14, cum_qty=50, leaves_qty=50),  # good
    ]


def test_dq_bad_rows_become_results_dead_letters_and_counts_and_good_rows_land(tmp_path, settings):
    path = write_file(tmp_path / "bad.fix", bad_day())

    summary = replay([path], settings, progress=False, flows=("quotes",)).as_dict()

    with psycopg.connect(settings.postgres_dsn) as conn:
        results = conn.execute(
            "SELECT suite, rows_validated, rows_failed, success, results FROM dq_results"
        ).fetchall()
        letters = dict(
            conn.execute(
                "SELECT source, reason FROM dead_letters WHERE step_id = 'check_data_quality'"
            ).fetchall()
        )
    by_suite = {suite: (rows, failed, ok, checks) for suite, rows, failed, ok, checks in results}
    assert set(by_suite) == {"quotes", "fills"}, results
    assert by_suite["quotes"][:3] == (4, 2, False)
    assert by_suite["fills"][:3] == (5, 3, False)
    failed_checks = {c["check"] for *_, checks in results for c in checks if not c["success"]}
    assert failed_checks == {
        "bid_le_ask", "bid_size_non_negative", "last_qty_le_order_qty",
        "leaves_qty_is_order_qty_minus_cum_qty", "last_px_near_market",
    }  # fmt: skip

    by_source = {src.rsplit(":", 1)[-1]: reason for src, reason in letters.items()}
    assert "bid_le_ask" in by_source["CROS#1"]
    assert "bid_size_non_negative" in by_source["NEGS#1"]
    assert "last_qty_le_order_qty" in by_source["6"]  # file:…:6, the line of fill 11
    assert "leaves_qty_is_order_qty_minus_cum_qty" in by_source["7"]
    assert "last_px_near_market" in by_source["8"]
    assert len(letters) == 5

    counts = summary["data_quality"]
    assert counts["rows_failed"] == {"quotes": 2, "fills": 3}
    assert counts["coverage"] == {"quotes": 1.0, "fills": 1.0}
    # The five rows data quality failed, and the decoder's own dead letter of the crossed 35=W
    # (issue 21: a crossed snapshot is published flagged and named).
    assert summary["dead_letters"] == 6

    r = redis.Redis.from_url(settings.redis_url)
    assert quote(r, "GOOD")["bid"] == 20.0  # the stream went on
    crossed = quote(r, "CROS")
    assert crossed["bid"] == 30.05  # a failing row is reported, not withheld
    assert crossed["stale"] is True and crossed["stale_reason"] == "crossed_snapshot"


def test_dq_off_adds_no_step_and_no_results(tmp_path, settings_factory):
    settings = settings_factory(dq=False)
    path = write_file(tmp_path / "bad.fix", bad_day())

    summary = replay([path], settings, progress=False, flows=("quotes",)).as_dict()

    with psycopg.connect(settings.postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM dq_results").fetchone()[0] == 0
    assert summary["dead_letters"] == 1  # the decoder's: the 35=W of CROS is crossed


def test_dq_docs_builds_data_docs_of_the_stored_validations(
    tmp_path, settings, monkeypatch, capsys
):
    replay([write_file(tmp_path / "bad.fix", bad_day())], settings, progress=False,
           flows=("quotes",))  # fmt: skip
    monkeypatch.setenv("BROKERFLOW_POSTGRES_DSN", settings.postgres_dsn)
    monkeypatch.setenv("BROKERFLOW_REDIS_URL", settings.redis_url)
    out = tmp_path / "docs"

    assert main(["dq", "docs", "--out", str(out), "--data-dir", str(settings.data_dir)]) == 0

    assert str(out / "index.html") in capsys.readouterr().out
    pages = [p.read_text() for p in out.rglob("*.html")]
    assert any("bid_size" in page for page in pages)  # the quotes suite's expectations
    validations = list((out / "validations").rglob("*.html"))
    assert len(validations) == 2  # one per suite: quotes and fills
