"""Write the brokerflow Grafana dashboards (surveillance, best execution, flow operations).

Run `python dashboards/grafana/generate.py` after editing; the JSON files beside it are its
output and are what Grafana loads. Every panel's SQL is run against real stores by
tests/test_dashboards.py, with Grafana's time macros replaced by real conditions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "brokerflow-clickhouse"}
POSTGRES = {"type": "grafana-postgresql-datasource", "uid": "brokerflow-postgres"}
PROMETHEUS = {"type": "prometheus", "uid": "brokerflow-prometheus"}


def _target(datasource: dict, sql: str, table: bool) -> dict:
    sql = sql.strip()
    if datasource is PROMETHEUS:  # `sql` is PromQL here
        return {"refId": "A", "datasource": datasource, "expr": sql, "instant": table}
    if datasource is CLICKHOUSE:
        return {
            "refId": "A", "datasource": datasource, "editorType": "sql", "queryType": "sql",
            "format": 1 if table else 0, "rawSql": sql,
        }
    return {
        "refId": "A", "datasource": datasource, "editorMode": "code", "rawQuery": True,
        "format": "table" if table else "time_series", "rawSql": sql,
    }


def panel(title: str, datasource: dict, sql: str, kind: str = "timeseries", **extra) -> dict:
    table = kind != "timeseries"
    out = {
        "title": title, "type": kind, "datasource": datasource,
        "targets": [_target(datasource, sql, table)],
        "fieldConfig": {"defaults": {}, "overrides": []}, "options": {},
    }
    if kind == "timeseries":
        out["fieldConfig"]["defaults"]["custom"] = {"drawStyle": extra.pop("draw", "line")}
    out.update(extra)
    return out


def dashboard(uid: str, title: str, panels: list[dict], refresh: str = "30s") -> dict:
    placed = []
    x = y = 0
    for n, p in enumerate(panels, start=1):
        width = p.pop("width", 12)
        height = p.pop("height", 8)
        if x + width > 24:
            x, y = 0, y + height
        placed.append({"id": n, "gridPos": {"x": x, "y": y, "w": width, "h": height}, **p})
        x += width
    return {
        "uid": uid, "title": title, "tags": ["brokerflow"], "timezone": "utc",
        "schemaVersion": 39, "version": 1, "editable": False, "refresh": refresh,
        "time": {"from": "now-24h", "to": "now"}, "panels": placed,
        "templating": {"list": []}, "annotations": {"list": []},
    }


def best_execution_sql() -> str:
    """The named report's SQL with its period bound to the dashboard's time range."""
    sql = (ROOT / "sql" / "reports" / "best_execution.sql").read_text()
    sql = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    sql = sql.replace("parseDateTime64BestEffort({from:String}, 6, 'UTC')",
                      "toDateTime64($__fromTime, 6, 'UTC')")
    sql = sql.replace("parseDateTime64BestEffort({to:String}, 6, 'UTC')",
                      "toDateTime64($__toTime, 6, 'UTC')")
    assert "{" not in re.sub(r"\$__\w+", "", sql), "report parameters left unbound"
    return sql.strip()


SURVEILLANCE = dashboard("brokerflow-surveillance", "brokerflow: surveillance overview", [
    # One row per finding: an alert whose episode went on has several (same alert_id).
    panel("Alerts by kind", CLICKHOUSE, """
SELECT $__timeInterval(event_time) AS time, kind, uniqExact(alert_id) AS alerts
FROM alerts FINAL
WHERE $__timeFilter(event_time)
GROUP BY time, kind
ORDER BY time""", draw="bars", width=16),
    panel("Open alerts by kind", POSTGRES, """
SELECT kind, count(*) AS open_alerts
FROM alerts
WHERE status <> 'CLOSED'
GROUP BY kind
ORDER BY open_alerts DESC""", kind="barchart", width=8),
    panel("Top accounts", CLICKHOUSE, """
SELECT account, any(owner) AS owner, uniqExact(alert_id) AS alerts,
       arrayStringConcat(arraySort(groupUniqArray(kind)), ', ') AS kinds,
       max(event_time) AS last_alert
FROM alerts FINAL
WHERE $__timeFilter(event_time) AND account != ''
GROUP BY account
ORDER BY alerts DESC, account
LIMIT 20""", kind="table"),
    panel("Open alerts", POSTGRES, """
SELECT event_time, kind, score, account, owner, symbol, status, assignee,
       details::text AS evidence
FROM alerts
WHERE status <> 'CLOSED' AND $__timeFilter(event_time)
ORDER BY score DESC, event_time DESC
LIMIT 200""", kind="table"),
])

BEST_EXECUTION = dashboard("brokerflow-best-execution", "brokerflow: best execution", [
    panel("Fills", CLICKHOUSE, """
SELECT $__timeInterval(timestamp) AS time, count() AS fills
FROM audit_log FINAL
WHERE event_type = 'ORDER_FILLED' AND $__timeFilter(timestamp)
GROUP BY time
ORDER BY time""", draw="bars"),
    panel("Quoted spread at fill (bps)", CLICKHOUSE, """
SELECT $__timeInterval(timestamp) AS time,
       avg((JSONExtractFloat(market_snapshot, 'ask') - JSONExtractFloat(market_snapshot, 'bid'))
           / ((JSONExtractFloat(market_snapshot, 'ask')
               + JSONExtractFloat(market_snapshot, 'bid')) / 2) * 10000) AS spread_bps
FROM audit_log FINAL
WHERE event_type = 'ORDER_FILLED' AND $__timeFilter(timestamp)
  AND JSONExtractFloat(market_snapshot, 'bid') > 0
  AND JSONExtractFloat(market_snapshot, 'ask') > 0
GROUP BY time
ORDER BY time"""),
    panel("Slippage by symbol and side (arrival mid, interval VWAP)", CLICKHOUSE,
          best_execution_sql(), kind="table", width=24),
    panel("Fills outside the quote at fill time", CLICKHOUSE, """
SELECT symbol, count() AS fills,
       countIf((side = '1' AND toFloat64(last_px) > JSONExtractFloat(market_snapshot, 'ask'))
            OR (side != '1' AND toFloat64(last_px) < JSONExtractFloat(market_snapshot, 'bid')))
           AS outside_quote,
       round(outside_quote / fills * 100, 2) AS outside_pct
FROM audit_log FINAL
WHERE event_type = 'ORDER_FILLED' AND $__timeFilter(timestamp)
  AND JSONExtractFloat(market_snapshot, 'bid') > 0
GROUP BY symbol
ORDER BY outside_pct DESC, symbol
LIMIT 50""", kind="table", width=24),
])

FLOW_OPERATIONS = dashboard("brokerflow-flow-operations", "brokerflow: flow operations", [
    panel("Market ticks stored per interval", CLICKHOUSE, """
SELECT $__timeInterval(ts) AS time, count() AS ticks
FROM market_ticks
WHERE $__timeFilter(ts)
GROUP BY time
ORDER BY time"""),
    panel("Order events per interval", CLICKHOUSE, """
SELECT $__timeInterval(timestamp) AS time, event_type, count() AS events
FROM audit_log
WHERE $__timeFilter(timestamp)
GROUP BY time, event_type
ORDER BY time"""),
    panel("Dead letters", POSTGRES, """
SELECT $__timeGroupAlias(received_at, '1m'), count(*) AS dead_letters
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY 1
ORDER BY 1""", draw="bars"),
    panel("Dead letters by reason", POSTGRES, """
SELECT coalesce(error, '') AS error, left(reason, 120) AS reason, count(*) AS dead_letters,
       max(received_at) AS last_seen
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY dead_letters DESC
LIMIT 20""", kind="table"),
    panel("Executions stored", POSTGRES, """
SELECT $__timeGroupAlias(transact_time, '1m'), count(*) AS executions
FROM executions
WHERE $__timeFilter(transact_time)
GROUP BY 1
ORDER BY 1"""),
    panel("Accounts by margin state", POSTGRES, """
SELECT state, count(*) AS accounts
FROM account_margin
GROUP BY state
ORDER BY state""", kind="barchart", width=6),
    panel("Active stops", POSTGRES, """
SELECT count(*) AS active_stops
FROM stop_orders
WHERE status = 'ACTIVE'""", kind="stat", width=6),
])

# The metrics the alert rules watch (deploy/prometheus-rules.yml), as graphs: each PromQL is
# run on a real Prometheus scraping a run by tests/faults/test_prometheus_alerts.py.
PIPELINE_METRICS = dashboard("brokerflow-metrics", "brokerflow: pipeline metrics", [
    panel("Messages in per second, by source", PROMETHEUS,
          "sum by (source) (rate(brokerflow_messages_in_total[1m]))"),
    panel("Quote latency p99 (event time to Redis), seconds", PROMETHEUS,
          'histogram_quantile(0.99, sum by (le) (rate('
          'brokerflow_end_to_end_latency_seconds_bucket{step="write_quotes"}[5m])))'),
    panel("Dead letters per second, by reason", PROMETHEUS,
          "sum by (reason) (rate(brokerflow_dead_letters_total[5m]))"),
    panel("Store writes retried and given up, per minute", PROMETHEUS,
          "sum by (store) (increase(brokerflow_sink_retries_total[1m])) "
          "or sum by (store) (increase(brokerflow_sink_gave_up_total[1m]))"),
    panel("Kafka lag, seconds late, by topic", PROMETHEUS,
          "max by (topic) (brokerflow_kafka_lag_seconds)"),
    panel("Kafka lag, messages, by topic", PROMETHEUS,
          "sum by (topic) (brokerflow_kafka_lag_messages)"),
    panel("Data-quality rows failed per minute, by suite", PROMETHEUS,
          'sum by (suite) (increase(brokerflow_dq_rows_total{outcome="failed"}[1m]))'),
    panel("Alerts raised per minute, by kind", PROMETHEUS,
          "sum by (kind) (increase(brokerflow_alerts_total[1m]))"),
    panel("FIX sessions logged on", PROMETHEUS, "brokerflow_fix_session_logged_on",
          kind="stat", width=6),
    panel("FIX ResendRequests per minute", PROMETHEUS,
          "sum by (session, direction) "
          "(increase(brokerflow_fix_session_resend_requests_total[1m]))",
          width=6),
    panel("Edge connections, by role", PROMETHEUS,
          "sum by (role) (brokerflow_edge_connections)", width=6),
    panel("Edge slow-consumer closes per minute", PROMETHEUS,
          "sum(increase(brokerflow_edge_slow_consumer_closes_total[1m]))", width=6),
    panel("Scrape targets up", PROMETHEUS, 'up{job=~"brokerflow.*"}', kind="stat", width=24),
])

DASHBOARDS = {
    "surveillance.json": SURVEILLANCE,
    "best_execution.json": BEST_EXECUTION,
    "flow_operations.json": FLOW_OPERATIONS,
    "pipeline_metrics.json": PIPELINE_METRICS,
}


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


if __name__ == "__main__":
    for name, doc in DASHBOARDS.items():
        (HERE / name).write_text(render(doc))
        print(f"wrote {HERE / name}")
