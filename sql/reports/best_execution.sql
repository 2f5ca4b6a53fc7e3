-- Best execution: slippage of fills per symbol and side, in basis points, against the arrival
-- quote and against the interval VWAP. Positive = worse for the client (paid more / got less).
-- @param from: fills from this time, inclusive (UTC)
-- @param to: fills before this time, exclusive (UTC)
--
-- Definitions (each fill counted once: FINAL; trade-cancelled fills, by ExecRefID, left out):
-- * arrival mid of an order = (bid + ask) / 2 of the market_snapshot of its earliest
--   ORDER_PLACED (35=D, matched to the order through any ClOrdID its execution reports carry)
--   or ORDER_ACCEPTED (ExecType 0, matched by OrderID) event with both bid and ask > 0; on a
--   tie of timestamps ORDER_PLACED wins. Orders placed up to 30 days before `from` are found.
--   ClOrdIDs are unique per account and day only: a 35=D's ClOrdID names the order of the
--   same account whose first report with it is the nearest one from a minute before the D on
--   (the minute: the venue's clock and ours differ), not one another account, or this account
--   on another day, placed with the same ClOrdID.
-- * interval VWAP of a fill = sum(ltp * traded) / sum(traded) over the market_ticks of the
--   symbol with arrival time < ts <= fill time, where traded = the rise of the day's cumulative
--   volume since the previous tick of the same UTC day (the day's first tick carries the
--   volume so far), ticks without a rise ignored. NULL when nothing traded in the interval.
-- * per fill, buy: (LastPx - benchmark) / benchmark * 10000; sell (sides 2, 5, 6): the negative.
-- * per symbol and side: LastQty-weighted mean of the per-fill figures over the fills that
--   have the benchmark, rounded to 2 decimals; fills_with_* say how many had it.
WITH
    parseDateTime64BestEffort({from:String}, 6, 'UTC') AS period_start,
    parseDateTime64BestEffort({to:String}, 6, 'UTC') AS period_end,
    busted AS (
        SELECT JSONExtractString(order_details, 'exec_ref_id') AS exec_id
        FROM audit_log FINAL
        WHERE event_type = 'TRADE_CANCELLED'
    ),
    fills AS (
        SELECT exec_id, order_id, symbol,
               if(side = '1', 'BUY', 'SELL') AS side_name,
               if(side = '1', 1.0, -1.0) AS sign,
               timestamp, last_qty, last_px
        FROM audit_log FINAL
        WHERE event_type = 'ORDER_FILLED'
          AND last_qty > 0
          AND side IN ('1', '2', '5', '6')
          AND timestamp >= period_start
          AND timestamp < period_end
          AND exec_id NOT IN (SELECT exec_id FROM busted)
    ),
    order_ids AS (
        SELECT account, cl_ord_id, order_id AS mapped_order_id,
               min(timestamp) + INTERVAL 1 MINUTE AS reach
        FROM audit_log FINAL
        WHERE exec_id != '' AND order_id != '' AND cl_ord_id != ''
          AND timestamp >= period_start - INTERVAL 30 DAY
          AND timestamp < period_end
        GROUP BY account, cl_ord_id, order_id
    ),
    arrival_events AS (
        SELECT if(e.order_id != '', e.order_id, m.mapped_order_id) AS order_id,
               e.timestamp AS timestamp,
               e.event_type = 'ORDER_ACCEPTED' AS later_kind,
               (JSONExtractFloat(e.market_snapshot, 'bid')
                + JSONExtractFloat(e.market_snapshot, 'ask')) / 2 AS mid
        FROM audit_log AS e FINAL
        ASOF LEFT JOIN order_ids AS m
            ON m.account = e.account AND m.cl_ord_id = e.cl_ord_id AND m.reach >= e.timestamp
        WHERE e.event_type IN ('ORDER_PLACED', 'ORDER_ACCEPTED')
          AND e.timestamp >= period_start - INTERVAL 30 DAY
          AND e.timestamp < period_end
          AND JSONExtractFloat(e.market_snapshot, 'bid') > 0
          AND JSONExtractFloat(e.market_snapshot, 'ask') > 0
    ),
    arrivals AS (
        SELECT order_id,
               argMin(mid, (timestamp, later_kind)) AS arrival_mid,
               min(timestamp) AS arrival_time,
               1 AS has_arrival
        FROM arrival_events
        WHERE order_id != ''
        GROUP BY order_id
    ),
    ticks AS (
        SELECT symbol, ts, ltp,
               greatest(volume - lagInFrame(volume, 1, 0.0) OVER (
                   PARTITION BY symbol, toDate(ts) ORDER BY ts, seq
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW), 0.0) AS traded
        FROM market_ticks FINAL
        WHERE ts >= toStartOfDay(period_start - INTERVAL 30 DAY)
          AND ts < period_end
          AND symbol IN (SELECT symbol FROM fills)
    ),
    fill_arrivals AS (
        SELECT f.*, a.arrival_mid AS arrival_mid, a.arrival_time AS arrival_time,
               a.has_arrival AS has_arrival
        FROM fills AS f
        LEFT JOIN arrivals AS a ON a.order_id = f.order_id
    ),
    fill_vwaps AS (
        SELECT f.exec_id AS exec_id,
               sumIf(t.ltp * t.traded, t.traded > 0 AND f.has_arrival = 1
                     AND t.ts > f.arrival_time AND t.ts <= f.timestamp) AS price_volume,
               sumIf(t.traded, t.traded > 0 AND f.has_arrival = 1
                     AND t.ts > f.arrival_time AND t.ts <= f.timestamp) AS traded
        FROM fill_arrivals AS f
        LEFT JOIN ticks AS t ON t.symbol = f.symbol
        GROUP BY f.exec_id
    ),
    per_fill AS (
        SELECT f.symbol AS symbol, f.side_name AS side_name, f.last_qty AS last_qty,
               f.last_px AS last_px, toFloat64(f.last_qty) AS qty,
               f.has_arrival = 1 AS with_arrival,
               v.traded > 0 AS with_vwap,
               if(with_arrival,
                  f.sign * (toFloat64(f.last_px) - f.arrival_mid) / f.arrival_mid * 10000,
                  0) AS arrival_bps,
               if(with_vwap, v.price_volume / v.traded, 0) AS vwap,
               if(with_vwap, f.sign * (toFloat64(f.last_px) - vwap) / vwap * 10000, 0) AS vwap_bps
        FROM fill_arrivals AS f
        INNER JOIN fill_vwaps AS v ON v.exec_id = f.exec_id
    )
SELECT
    symbol,
    side_name AS side,
    count() AS fills,
    sum(last_qty) AS quantity,
    round(sum(qty * toFloat64(last_px)) / sum(qty), 6) AS avg_px,
    countIf(with_arrival) AS fills_with_arrival,
    if(fills_with_arrival = 0, NULL,
       round(sumIf(qty * arrival_bps, with_arrival) / sumIf(qty, with_arrival), 2))
        AS arrival_slippage_bps,
    countIf(with_vwap) AS fills_with_vwap,
    if(fills_with_vwap = 0, NULL,
       round(sumIf(qty * vwap_bps, with_vwap) / sumIf(qty, with_vwap), 2)) AS vwap_slippage_bps
FROM per_fill
GROUP BY symbol, side
ORDER BY symbol, side
