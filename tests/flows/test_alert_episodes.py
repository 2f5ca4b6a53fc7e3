"""Triage that scales: a spoofer who layers again within the hour has one SPOOFING alert that
gathers the evidence of every round, not an alert per round; after the gap, a new one."""

from __future__ import annotations

import psycopg

from brokerflow.commands.replay import replay
from tests.flows.test_quotes_flow import DAY, write_file
from tests.flows.test_surveillance_flow import FLOWS, report
from tests.flows.test_surveillance_flow import settings as settings  # noqa: F401 - fixture

MIN_MS = 60_000


def _at(ms: int) -> str:
    """TransactTime (60) `ms` after 10:00:00 on the test day (rounds hours apart)."""
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{DAY}-{10 + h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _layering_round(tag: str, start_ms: int, seq: int) -> list[bytes]:
    """B1 rests 3 x 2,000 to sell at three prices, buys 100, then cancels the sells."""
    lines = [report(f"{tag}N{i}", "B1", "2", exec_type="0", qty=2000, stamp=_at(start_ms + i),
                    seq=seq + i, cl_ord_id=f"{tag}S{i}", leaves=2000, price=px,
                    order_id=f"V-{tag}S{i}")
             for i, px in enumerate(("10.05", "10.06", "10.07"))]  # fmt: skip
    lines.append(report(f"{tag}F", "B1", "1", qty=100, stamp=_at(start_ms + 1_000), seq=seq + 5))
    lines += [report(f"{tag}X{i}", "B1", "2", exec_type="4", qty=2000,
                     stamp=_at(start_ms + 3_000 + i),
                     seq=seq + 10 + i, price="10.05", cl_ord_id=f"{tag}S{i}",
                     order_id=f"V-{tag}S{i}")
              for i in range(3)]  # fmt: skip
    return lines


def test_a_pattern_repeated_within_the_hour_is_one_alert_with_every_rounds_evidence(
    tmp_path, settings  # noqa: F811
):
    lines = (_layering_round("a", 0, 1) + _layering_round("b", 20 * MIN_MS, 100)
             + _layering_round("c", 70 * MIN_MS, 200)  # within the hour of the last round
             + _layering_round("d", 200 * MIN_MS, 300))  # fmt: skip
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False, flows=FLOWS)
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute(
            "SELECT details, status FROM alerts WHERE kind = 'SPOOFING' ORDER BY event_time"
        ).fetchall()
        history = conn.execute("SELECT actor, action FROM alert_actions").fetchall()
    assert len(rows) == 2
    first, second = (details for details, _ in rows)
    assert first["fill_exec_id"] == "aF"  # the opening round's evidence heads the alert
    fills = sorted(o.get("fill_exec_id", first["fill_exec_id"])
                   for o in first["occurrences"].values())  # fmt: skip
    assert fills == ["aF", "bF", "cF"]
    assert [o.get("fill_exec_id", "dF") for o in second["occurrences"].values()] == ["dF"]
    # Rounds written in one batch are folded before the insert; later ones leave a history row
    # each (tests/contract/sinks/test_alerts.py).
    assert set(history) <= {("pipeline", "evidence")}

    # A replay of the same day adds nothing anywhere.
    replay([write_file(tmp_path / "day.fix", lines)], settings, progress=False, flows=FLOWS)
    with psycopg.connect(settings.postgres_dsn) as conn:
        again = conn.execute("SELECT count(*) FROM alerts WHERE kind = 'SPOOFING'").fetchone()
        history_again = conn.execute("SELECT count(*) FROM alert_actions").fetchone()
    assert (again[0], history_again[0]) == (2, len(history))
