"""Grafana dashboards: every panel's SQL runs on the real stores (chdb and PostgreSQL).

Grafana's macros are replaced with real conditions over a wide period; a macro the test does
not know fails the test rather than slipping through. A few rows are inserted first so that
the queries also run over data, not only over empty tables.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import secrets
from pathlib import Path

import psycopg
import pytest
import yaml

from sinks.clickhouse import migrate_clickhouse, open_store

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "dashboards" / "grafana"
FROM, TO = "2000-01-01 00:00:00", "2100-01-01 00:00:00"


def _dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(GRAFANA.glob("*.json"))}


PROMETHEUS_UID = "brokerflow-prometheus"


def _targets() -> list[tuple[str, str, str, str]]:
    """The SQL panels' (dashboard, title, datasource uid, SQL); PromQL ones: `promql()`."""
    out = []
    for name, doc in _dashboards().items():
        for panel in doc["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["uid"] != PROMETHEUS_UID:
                    out.append((name, panel["title"], target["datasource"]["uid"],
                                target["rawSql"]))  # fmt: skip
    return out


def promql() -> list[tuple[str, str]]:
    """Every Prometheus panel's (title, PromQL): run on a real Prometheus scraping a run by
    tests/faults/test_prometheus_alerts.py."""
    panels = [panel for doc in _dashboards().values() for panel in doc["panels"]]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]
            if target["datasource"]["uid"] == PROMETHEUS_UID]  # fmt: skip


def _clickhouse_sql(sql: str) -> str:
    since, until = f"toDateTime('{FROM}', 'UTC')", f"toDateTime('{TO}', 'UTC')"
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"(\1 >= {since} AND \1 <= {until})", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)",
                 r"toStartOfInterval(toDateTime(\1), INTERVAL 60 second)", sql)
    sql = sql.replace("$__fromTime", since).replace("$__toTime", until)
    return sql


def _postgres_sql(sql: str) -> str:
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 rf"\1 BETWEEN '{FROM}+00' AND '{TO}+00'", sql)
    sql = re.sub(r"\$__timeGroupAlias\((\w+), *'1m'\)",
                 r"date_trunc('minute', \1) AS time", sql)
    return sql


TARGETS = _targets()


def test_dashboards_are_the_generators_output():
    spec = importlib.util.spec_from_file_location("generate", GRAFANA / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    for name, doc in generate.DASHBOARDS.items():
        assert (GRAFANA / name).read_text() == generate.render(doc), f"{name}: run generate.py"
    assert set(generate.DASHBOARDS) == set(_dashboards())


def test_dashboards_name_provisioned_datasources_and_are_provisioned():
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/brokerflow.yaml").read_text())
    uids = {ds["uid"]: ds["type"] for ds in provisioned["datasources"]}
    assert uids == {
        "brokerflow-clickhouse": "grafana-clickhouse-datasource",
        "brokerflow-postgres": "grafana-postgresql-datasource",
        PROMETHEUS_UID: "prometheus",
    }
    prometheus = next(ds for ds in provisioned["datasources"] if ds["uid"] == PROMETHEUS_UID)
    assert prometheus["url"] == "http://prometheus:9090"  # the compose service
    for name, title, uid, _sql in TARGETS:
        assert uid in uids, f"{name} / {title}: datasource {uid} is not provisioned"
    assert len(promql()) >= 10
    titles = {doc["title"] for doc in _dashboards().values()}
    assert {"brokerflow: surveillance overview", "brokerflow: best execution",
            "brokerflow: flow operations", "brokerflow: pipeline metrics"} <= titles
    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = " ".join(grafana["volumes"])
    assert "dashboards/grafana/provisioning:/etc/grafana/provisioning" in mounts
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash-ch")
    store = open_store(f"chdb://{path}/ch", path)
    migrate_clickhouse(store)
    ts = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    store.command(
        "INSERT INTO alerts VALUES (generateUUIDv4(), %s, 'WASH_TRADE', '80', 'A1', 'ann', "
        "'AAPL', '{\"exec_ids\":[\"E1\",\"E2\"]}')" % f"'{ts:%Y-%m-%d %H:%M:%S}'"
    )
    snapshot = '{"bid":100.0,"ask":100.1}'
    for event, side, px in (("ORDER_PLACED", "1", "0"), ("ORDER_FILLED", "1", "100.2")):
        store.command(
            "INSERT INTO audit_log (event_id, timestamp, event_type, account, order_id, "
            "cl_ord_id, exec_id, symbol, side, last_qty, last_px, order_details, "
            f"market_snapshot) VALUES (generateUUIDv4(), '{ts:%Y-%m-%d %H:%M:%S}', '{event}', "
            f"'A1', 'O1', 'C1', '{'E1' if px != '0' else ''}', 'AAPL', '{side}', 10, {px}, "
            f"'{{}}', '{snapshot}')"
        )
    store.command(
        "INSERT INTO market_ticks (symbol, ts, seq, bid, ask, ltp, volume) VALUES "
        f"('AAPL', '{ts:%Y-%m-%d %H:%M:%S}', 1, 100.0, 100.1, 100.05, 500)"
    )
    yield store
    store.close()


@pytest.fixture(scope="module")
def postgres(postgres_dsn):
    from psycopg import sql

    from bench.common import scratch_database

    name = f"bf_test_dash_{secrets.token_hex(4)}"
    dsn = scratch_database(postgres_dsn, name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO alerts (alert_id, kind, severity, account, event_time, details) "
            "VALUES ('a1', 'MARGIN_CALL', 'HIGH', 'A1', now(), '{\"ratio\": \"0.2\"}')"
        )
        conn.execute(
            "INSERT INTO dead_letters (source, reason, raw, raw_text, dedup_key) "
            "VALUES ('file', 'CheckSum(10) was 000', 'x', 'x', 'k1')"
        )
    yield dsn
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        conn.execute(drop)


@pytest.mark.parametrize(("dashboard", "title", "uid", "sql"), TARGETS,
                         ids=[f"{d}:{t}" for d, t, _, _ in TARGETS])
def test_dashboard_panel_sql_runs(dashboard, title, uid, sql, clickhouse, postgres):
    if uid == "brokerflow-clickhouse":
        query = _clickhouse_sql(sql)
        assert "$__" not in query, f"unknown Grafana macro in {title}"
        columns, rows = clickhouse.query(query, readonly=True)
    else:
        query = _postgres_sql(sql)
        assert "$__" not in query, f"unknown Grafana macro in {title}"
        with psycopg.connect(postgres) as conn, conn.cursor() as cur:
            cur.execute(query)
            columns = [c.name for c in cur.description]
            rows = cur.fetchall()
    assert columns
    assert rows or title in EMPTY_BY_DESIGN, f"{title}: no rows over the seeded data"


# Panels over tables the seed leaves empty.
EMPTY_BY_DESIGN = {"Executions stored", "Accounts by margin state"}
