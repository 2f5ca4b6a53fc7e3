-- Traders' price alerts (issue 19, CONTRACT.md). A row is created ACTIVE, and leaves ACTIVE once:
-- FIRED by the quotes flow (fired_at, fired_ltp set; `UPDATE … WHERE status = 'ACTIVE'`, so a
-- replayed batch changes nothing) or DELETED by its trader (soft: the row stays). Only ACTIVE
-- rows are loaded into the flow's book, so a fired alert never fires again after a restart.
-- The per-user limit (BROKERFLOW_PRICE_ALERTS_MAX_PER_USER) is checked by sinks.price_alerts.
CREATE TABLE price_alerts (
    id          bigserial   PRIMARY KEY,
    user_id     text        NOT NULL,
    account     text,
    symbol      text        NOT NULL,
    condition   text        NOT NULL CHECK (condition IN
                    ('ltp_above', 'ltp_below', 'change_pct_above', 'change_pct_below')),
    value       numeric     NOT NULL,
    status      text        NOT NULL DEFAULT 'ACTIVE'
                    CHECK (status IN ('ACTIVE', 'FIRED', 'DELETED')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    fired_at    timestamptz,
    fired_ltp   numeric,
    CHECK ((status = 'FIRED') = (fired_at IS NOT NULL)),
    CHECK (condition LIKE 'change_pct_%' OR value > 0)
);
-- The flow loads the ACTIVE alerts of its symbols; the limit and `list` read a user's.
CREATE INDEX price_alerts_active_symbol_idx ON price_alerts (symbol, id) WHERE status = 'ACTIVE';
CREATE INDEX price_alerts_user_idx ON price_alerts (user_id, id);
