-- Drop the secondary indexes of `executions` that nothing queries by: no code reads executions
-- by (symbol, transact_time), order_id or cl_ord_id (the ledger reads by exec_id, its primary
-- key; reports run on ClickHouse). Each index cost every booked fill an index insert: together
-- about 40% of the ledger's insert time into executions. `executions_account_time_idx` stays:
-- `brokerflow gdpr` rewrites executions by account. Add an index back in a later migration when
-- a query needs it.
DROP INDEX IF EXISTS executions_symbol_time_idx;
DROP INDEX IF EXISTS executions_order_idx;
DROP INDEX IF EXISTS executions_cl_ord_id_idx;
