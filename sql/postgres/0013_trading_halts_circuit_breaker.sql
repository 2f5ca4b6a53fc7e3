-- Issue 19: the index circuit breaker's halts are trading_halts rows too (source and actor
-- 'circuit_breaker', scope 'market', started and ended at event time), beside the venue's.
ALTER TABLE trading_halts DROP CONSTRAINT IF EXISTS trading_halts_source_check;
ALTER TABLE trading_halts ADD CONSTRAINT trading_halts_source_check
    CHECK (source IN ('kill_switch', 'venue', 'circuit_breaker'));
