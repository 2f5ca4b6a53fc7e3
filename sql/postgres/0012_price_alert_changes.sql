-- Price alerts reach the running quotes flow (issue 19, part 3). The flow's book is rebuilt from
-- the ACTIVE rows when its step starts, then follows the table by polling, at most once a
-- second, the rows whose change_seq is above the highest it has seen (flows/price_alerts.py).
--
-- change_seq: the next value of price_alerts_change_seq, drawn on insert and on every status
-- change (ACTIVE -> FIRED | DELETED) by the trigger below. The trigger first takes a
-- transaction-scoped advisory lock, so the numbers are drawn in commit order: a transaction
-- that drew 10 has committed before another can draw 11. Without it, one that drew 10 could
-- commit after a poll had seen 11 and moved past, and its change would never reach the flow.
-- The writers of sinks/price_alerts.py take the same lock first, before any row lock, so two
-- writers never wait for each other in opposite orders.
CREATE SEQUENCE price_alerts_change_seq;

ALTER TABLE price_alerts ADD COLUMN change_seq bigint;
UPDATE price_alerts SET change_seq = nextval('price_alerts_change_seq')
    WHERE id IN (SELECT id FROM price_alerts ORDER BY id);
ALTER TABLE price_alerts ALTER COLUMN change_seq SET NOT NULL;
CREATE INDEX price_alerts_change_seq_idx ON price_alerts (change_seq);

CREATE FUNCTION price_alerts_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        PERFORM pg_advisory_xact_lock(20547, 0);  -- 0x5043 "PC": the change counter
        NEW.change_seq := nextval('price_alerts_change_seq');
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER price_alerts_change_seq BEFORE INSERT OR UPDATE ON price_alerts
    FOR EACH ROW EXECUTE FUNCTION price_alerts_stamp_change();

-- 0010 tied fired_at to status FIRED both ways, so deleting a fired alert (which the store
-- allows: a trader clears it from the list) broke the check. fired_at stays on a deleted row.
ALTER TABLE price_alerts DROP CONSTRAINT price_alerts_check;
ALTER TABLE price_alerts ADD CONSTRAINT price_alerts_fired_at_check
    CHECK (CASE status WHEN 'FIRED' THEN fired_at IS NOT NULL
                       WHEN 'ACTIVE' THEN fired_at IS NULL ELSE TRUE END);
