-- Wash sales: a sell and a buy of the same symbol by the same account within 30 days of each
-- other (before or after), one row per (sell fill, buy fill) pair.
-- @param from: sells from this time, inclusive (UTC)
-- @param to: sells before this time, exclusive (UTC); buys are looked for 30 days either side
-- Fills are ORDER_FILLED events with LastQty > 0, counted once (FINAL), without fills a
-- TRADE_CANCELLED (ExecType H) refers to through ExecRefID (19). Sell sides: 2, 5, 6; buy: 1.
-- days_apart = (buy time - sell time) in days, negative when the buy came first.
WITH
    parseDateTime64BestEffort({from:String}, 6, 'UTC') AS period_start,
    parseDateTime64BestEffort({to:String}, 6, 'UTC') AS period_end,
    busted AS (
        SELECT JSONExtractString(order_details, 'exec_ref_id') AS exec_id
        FROM audit_log FINAL
        WHERE event_type = 'TRADE_CANCELLED'
    ),
    fills AS (
        SELECT account, symbol, side, exec_id, timestamp, last_qty, last_px
        FROM audit_log FINAL
        WHERE event_type = 'ORDER_FILLED'
          AND last_qty > 0
          AND timestamp >= period_start - INTERVAL 30 DAY
          AND timestamp < period_end + INTERVAL 30 DAY
          AND exec_id NOT IN (SELECT exec_id FROM busted)
    )
SELECT
    s.account AS account,
    s.symbol AS symbol,
    s.exec_id AS sell_exec_id,
    s.timestamp AS sell_time,
    s.last_qty AS sell_qty,
    s.last_px AS sell_px,
    b.exec_id AS buy_exec_id,
    b.timestamp AS buy_time,
    b.last_qty AS buy_qty,
    b.last_px AS buy_px,
    round(dateDiff('second', s.timestamp, b.timestamp) / 86400, 2) AS days_apart
FROM fills AS s
INNER JOIN fills AS b ON b.account = s.account AND b.symbol = s.symbol
WHERE s.side IN ('2', '5', '6')
  AND b.side = '1'
  AND s.timestamp >= period_start
  AND s.timestamp < period_end
  AND abs(dateDiff('second', s.timestamp, b.timestamp)) <= 30 * 86400
ORDER BY account, symbol, sell_time, buy_time, sell_exec_id, buy_exec_id
