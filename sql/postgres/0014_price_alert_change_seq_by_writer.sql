-- A status change may carry its own change_seq (issue 19, the price-alerts benchmark): the
-- sink that marks fired alerts FIRED (sinks/price_alerts.py mark_fired) draws
-- nextval('price_alerts_change_seq') in its UPDATE, after taking the change counter's advisory
-- lock once for the statement, instead of 0012's trigger calling a function, taking the lock
-- and drawing the number row by row (~30 us per fired alert). The commit-order guarantee of
-- 0012 is unchanged: every number is still drawn under the lock, held until commit. A writer
-- that sets change_seq itself must take that lock first (pg_advisory_xact_lock(20547, 0)).
--
-- The trigger now runs on an UPDATE only when the status changes and the statement left
-- change_seq as it was (its WHEN clause is checked without calling the function); inserts
-- are stamped as before.
DROP TRIGGER price_alerts_change_seq ON price_alerts;

CREATE TRIGGER price_alerts_change_seq BEFORE INSERT ON price_alerts
    FOR EACH ROW EXECUTE FUNCTION price_alerts_stamp_change();

CREATE TRIGGER price_alerts_change_seq_update BEFORE UPDATE ON price_alerts
    FOR EACH ROW
    WHEN (NEW.status IS DISTINCT FROM OLD.status
          AND NEW.change_seq IS NOT DISTINCT FROM OLD.change_seq)
    EXECUTE FUNCTION price_alerts_stamp_change();
