-- Order-to-trade ratio per account and UTC day: order messages sent (new orders 35=D,
-- cancel/replace requests 35=G, cancel requests 35=F) divided by fills.
-- @param from: start of the period, inclusive (UTC)
-- @param to: end of the period, exclusive (UTC)
-- Requests are the ORDER_PLACED, ORDER_CANCEL_REQUESTED and request-side ORDER_MODIFIED events
-- (exec_id empty; an ExecType 5 report is the venue's answer, not a message of the client).
-- Fills are ORDER_FILLED events with LastQty > 0 not cancelled by a TRADE_CANCELLED (ExecRefID).
-- Every event is counted once (FINAL). ratio is NULL on a day without fills.
WITH
    busted AS (
        SELECT JSONExtractString(order_details, 'exec_ref_id') AS exec_id
        FROM audit_log FINAL
        WHERE event_type = 'TRADE_CANCELLED'
    )
SELECT
    account,
    toDate(timestamp) AS day,
    countIf(event_type = 'ORDER_PLACED') AS placed,
    countIf(event_type = 'ORDER_MODIFIED' AND exec_id = '') AS modified,
    countIf(event_type = 'ORDER_CANCEL_REQUESTED') AS cancelled,
    placed + modified + cancelled AS order_messages,
    countIf(event_type = 'ORDER_FILLED' AND last_qty > 0
            AND exec_id NOT IN (SELECT exec_id FROM busted)) AS fills,
    if(fills = 0, NULL, round(order_messages / fills, 4)) AS ratio
FROM audit_log FINAL
WHERE timestamp >= parseDateTime64BestEffort({from:String}, 6, 'UTC')
  AND timestamp < parseDateTime64BestEffort({to:String}, 6, 'UTC')
  AND event_type IN ('ORDER_PLACED', 'ORDER_MODIFIED', 'ORDER_CANCEL_REQUESTED', 'ORDER_FILLED')
GROUP BY account, day
ORDER BY account, day
