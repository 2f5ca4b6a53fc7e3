-- Trading history of one account over a period: every order event, oldest first.
-- @param account: the account (or its pseudonym after `brokerflow gdpr pseudonymise`)
-- @param from: start of the period, inclusive (UTC; "2024-03-01" or "2024-03-01 09:30:00")
-- @param to: end of the period, exclusive (UTC)
-- A re-delivered event is one row: FINAL collapses rows of the same event_id (and timestamp).
SELECT
    timestamp,
    event_type,
    symbol,
    side,
    order_id,
    cl_ord_id,
    orig_cl_ord_id,
    exec_id,
    ord_status,
    quantity,
    price,
    last_qty,
    last_px,
    JSONExtract(market_snapshot, 'bid', 'Nullable(Float64)') AS bid,
    JSONExtract(market_snapshot, 'ask', 'Nullable(Float64)') AS ask,
    event_id
FROM audit_log FINAL
WHERE account = {account:String}
  AND timestamp >= parseDateTime64BestEffort({from:String}, 6, 'UTC')
  AND timestamp < parseDateTime64BestEffort({to:String}, 6, 'UTC')
ORDER BY timestamp, event_id
