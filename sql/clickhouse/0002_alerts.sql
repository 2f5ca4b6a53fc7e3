-- alerts: every surveillance alert, for analytics next to the audit trail (PostgreSQL `alerts`
-- stays the record analysts work on). Keyed on the input-derived alert_id, so a replayed alert
-- collapses into one row (ReplacingMergeTree; query with FINAL or LIMIT 1 BY alert_id).
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id   UUID,
    event_time DateTime64(6, 'UTC'),
    kind       LowCardinality(String),
    severity   LowCardinality(String),
    account    String,
    owner      String,
    symbol     String,
    details    String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (kind, event_time, alert_id);
