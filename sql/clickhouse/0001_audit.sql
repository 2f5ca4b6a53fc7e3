-- Audit trail and market ticks (CONTRACT.md, "ClickHouse"). Applied once by
-- sinks.clickhouse.migrate_clickhouse; shared by the chdb and the server backend.
-- Statements are separated by a ';' at the end of a line (the server takes one per request).

-- audit_log: one row per order event, never updated in normal operation.
--
-- ReplacingMergeTree deduplicates rows with the same sorting key, and every column of the key
-- is derived from the input (event_id = UUIDv5 of the event's natural key, timestamp = the
-- event's TransactTime), so a re-delivered event collapses into one row. Dedup is eventual
-- (at merge time), so reports also dedupe at query time (FINAL or LIMIT 1 BY event_id).
--
-- Sorting key (timestamp, event_id), not (account, ...): `account` must stay outside the key
-- because `brokerflow gdpr pseudonymise` rewrites it with ALTER TABLE ... UPDATE, and
-- ClickHouse cannot update key columns. Every named report is a time-range scan, which the key
-- and the monthly partitions prune; per-account lookups use the bloom-filter skip index on
-- `account` (granules without the account are skipped). symbol/event_type have set indexes.
CREATE TABLE IF NOT EXISTS audit_log
(
    event_id        UUID,
    timestamp       DateTime64(6, 'UTC'),
    event_type      LowCardinality(String),
    account         String,
    order_id        String,
    cl_ord_id       String,
    orig_cl_ord_id  String,
    exec_id         String,
    symbol          LowCardinality(String),
    side            LowCardinality(String),
    ord_type        LowCardinality(String),
    ord_status      LowCardinality(String),
    quantity        Nullable(Decimal(38, 10)),
    price           Nullable(Decimal(38, 10)),
    last_qty        Decimal(38, 10),
    last_px         Decimal(38, 10),
    order_details   String CODEC(ZSTD(3)),
    market_snapshot String CODEC(ZSTD(3)),
    raw_fix         String CODEC(ZSTD(3)),
    source          String CODEC(ZSTD(3)),
    INDEX idx_account account TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_symbol symbol TYPE set(1024) GRANULARITY 4,
    INDEX idx_event_type event_type TYPE set(32) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (timestamp, event_id);

-- market_ticks: the coalesced L1 quotes, for best-execution analysis (arrival quotes, interval
-- VWAP of trades). A re-sent quote (same symbol, ts, seq) collapses into one row as well.
CREATE TABLE IF NOT EXISTS market_ticks
(
    symbol    LowCardinality(String),
    ts        DateTime64(6, 'UTC'),
    seq       UInt64,
    bid       Nullable(Float64),
    bid_size  Nullable(Float64),
    ask       Nullable(Float64),
    ask_size  Nullable(Float64),
    ltp       Nullable(Float64),
    ltq       Nullable(Float64),
    volume    Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (symbol, ts, seq);

-- pseudonym_map: account -> pseudonym of `brokerflow gdpr pseudonymise`. Kept apart from the
-- audit trail so that dropping it (or deleting a row) makes the pseudonym irreversible.
CREATE TABLE IF NOT EXISTS pseudonym_map
(
    account    String,
    pseudonym  String,
    created_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY account;
