"""A trader's fired price alert (PRICE_ALERT) is a notice to that trader, not an analyst's case:
the analysts' queue and its counts leave it out (real PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from console import queries
from console.access import ANALYST_SCOPE, alert_scope
from console.filters import AlertFilter
from domain.alerts import WASH_TRADE, make_alert
from domain.price_alerts import LTP_ABOVE, PriceAlert, PriceAlertFired
from edge.claims import Claims
from sinks.alerts import write_alerts_postgres
from sinks.postgres import migrate


def test_price_alerts_are_not_in_the_analysts_queue_nor_its_counts(pg_dsn: str) -> None:
    migrate(pg_dsn)
    fired = PriceAlertFired(PriceAlert(1, "tom", "K1", "AAPL", LTP_ABOVE, Decimal("10")),
                            10.5, 10.0, 1_764_000_000_000).to_alert()  # fmt: skip
    finding = make_alert(WASH_TRADE, "wash:1", "70", 1_764_000_000_000_000_000, account="K1",
                         symbol="AAPL", details={"exec_ids": ["E1", "E2"]})  # fmt: skip
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        write_alerts_postgres(conn, [fired, finding])
        for scope in (ANALYST_SCOPE, alert_scope(Claims("ann", "analyst", frozenset(), 0))):
            page = queries.list_alerts(conn, scope, AlertFilter())
            assert [a["kind"] for a in page["alerts"]] == [WASH_TRADE]
            assert page["counts"]["open_by_kind"] == {WASH_TRADE: 1}
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (2,)  # both recorded
