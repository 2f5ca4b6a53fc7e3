-- The day's realised P&L per holding, for the traders' positions (issue 19, part 2): kept by
-- the ledger writer in the same transaction as the fills, so that publishing an account's
-- holdings does not sum the day's executions again after every batch.
-- Invariant: realised_pnl_day = the sum of executions.realised_pnl of the (account, symbol)
-- whose transact_time falls on pnl_day (UTC) and that no H/G reversed (reversed_by IS NULL).
ALTER TABLE holdings ADD COLUMN pnl_day date;
ALTER TABLE holdings ADD COLUMN realised_pnl_day numeric NOT NULL DEFAULT 0;

-- Existing holdings: the day of their latest execution row, and that day's sum.
WITH last_day AS (
    SELECT account, symbol, max((transact_time AT TIME ZONE 'UTC')::date) AS day
    FROM executions GROUP BY account, symbol
), day_pnl AS (
    SELECT d.account, d.symbol, d.day, coalesce(sum(e.realised_pnl), 0) AS pnl
    FROM last_day d
    JOIN executions e ON e.account = d.account AND e.symbol = d.symbol
        AND (e.transact_time AT TIME ZONE 'UTC')::date = d.day AND e.reversed_by IS NULL
    GROUP BY d.account, d.symbol, d.day
)
UPDATE holdings h SET pnl_day = p.day, realised_pnl_day = p.pnl
FROM day_pnl p WHERE h.account = p.account AND h.symbol = p.symbol;
