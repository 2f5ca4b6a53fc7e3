-- Market status and the kill switch (issue 19).
--
-- trading_halts: one row per halt. source 'kill_switch' rows are written by `brokerflow halt`
-- (scope 'all' or an account; actor the operator) and ended by `brokerflow resume`; the stop
-- flow's order sink reads the open ones (ended_at IS NULL) at most every second and withholds
-- new child orders in their scope. source 'venue' rows record the venue's halts from 35=h
-- (scope 'market') and 35=f (scope the symbol), actor 'venue', times from the messages.
CREATE TABLE trading_halts (
    id         bigserial   PRIMARY KEY,
    scope      text        NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    actor      text        NOT NULL,
    source     text        NOT NULL DEFAULT 'kill_switch' CHECK (source IN ('kill_switch', 'venue')),
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
-- at most one open kill-switch halt per scope: `halt` twice cannot open a second
CREATE UNIQUE INDEX trading_halts_open_idx ON trading_halts (source, scope) WHERE ended_at IS NULL;
-- a replayed venue halt adds no second row
CREATE UNIQUE INDEX trading_halts_event_idx ON trading_halts (source, scope, started_at);

-- Child orders withheld while the kill switch is on, released once when it is off.
-- `order_pickle` is the outbound order as the flow decided it (re-encoded when released).
CREATE TABLE held_orders (
    child_cl_ord_id text        PRIMARY KEY,
    account         text        NOT NULL DEFAULT '',
    symbol          text        NOT NULL,
    reason          text        NOT NULL,
    order_pickle    bytea       NOT NULL,
    held_at         timestamptz NOT NULL DEFAULT now(),
    released_at     timestamptz
);
CREATE INDEX held_orders_pending_idx ON held_orders (held_at) WHERE released_at IS NULL;

-- The child's fate on the stop's row: SENT, HELD (with the reason) or RELEASED.
ALTER TABLE stop_orders ADD COLUMN child_status text
    CHECK (child_status IN ('SENT', 'HELD', 'RELEASED'));
ALTER TABLE stop_orders ADD COLUMN held_reason text;
