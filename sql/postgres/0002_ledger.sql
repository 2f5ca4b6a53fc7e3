-- The ledger of record (issue 3): accounts and cash, holdings, orders, executions; and the tables
-- later flows write (stop_orders, alerts, account_margin). Money and quantities are numeric
-- (Decimal in Python), never float. Event times come from the messages (TransactTime (60), else
-- SendingTime (52)), kept exact as int UTC nanoseconds (ts_*) next to a timestamptz for people.

CREATE TABLE accounts (
    account            text        PRIMARY KEY,
    owner              text        NOT NULL,
    cash               numeric     NOT NULL DEFAULT 0,
    -- fractions of gross position value: equity must cover initial_margin to open, and
    -- maintenance_margin to keep positions open (issue: margin flow).
    initial_margin     numeric     NOT NULL DEFAULT 0.50
        CHECK (initial_margin > 0 AND initial_margin <= 1),
    maintenance_margin numeric     NOT NULL DEFAULT 0.30
        CHECK (maintenance_margin > 0 AND maintenance_margin <= initial_margin),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_owner_idx ON accounts (owner);

CREATE TABLE holdings (
    account      text        NOT NULL REFERENCES accounts (account),
    symbol       text        NOT NULL,
    -- signed: negative is a short position
    quantity     numeric     NOT NULL,
    -- weighted-average cost of the open position; 0 when flat
    avg_price    numeric     NOT NULL DEFAULT 0,
    -- realised P&L on this symbol, commission excluded
    realised_pnl numeric     NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, symbol)
);
CREATE INDEX holdings_symbol_idx ON holdings (symbol);

CREATE TABLE orders (
    cl_ord_id       text        PRIMARY KEY,  -- ClOrdID (11)
    order_id        text,                     -- OrderID (37), broker-assigned
    orig_cl_ord_id  text,                     -- OrigClOrdID (41) of a replacement
    account         text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL,     -- Side (54), wire value
    ord_type        text,                     -- OrdType (40), wire value
    quantity        numeric,                  -- OrderQty (38)
    price           numeric,                  -- Price (44)
    stop_px         numeric,                  -- StopPx (99)
    -- OrdStatus (39) member name: PENDING_NEW, NEW, PARTIALLY_FILLED, FILLED, CANCELED,
    -- REPLACED, PENDING_CANCEL, PENDING_REPLACE, REJECTED, EXPIRED, DONE_FOR_DAY, ...
    status          text        NOT NULL,
    cum_qty         numeric     NOT NULL DEFAULT 0,
    leaves_qty      numeric,
    avg_px          numeric     NOT NULL DEFAULT 0,
    time_in_force   text,                     -- TimeInForce (59)
    created_at      timestamptz NOT NULL,     -- event time of the first event
    updated_at      timestamptz NOT NULL,     -- event time of the last event
    ts_created      bigint      NOT NULL,
    ts_updated      bigint      NOT NULL,
    last_exec_id    text,
    last_request_id text                      -- ClOrdID of the last F/G applied
);
CREATE INDEX orders_account_idx ON orders (account, created_at);
CREATE INDEX orders_order_id_idx ON orders (order_id);
CREATE INDEX orders_open_idx ON orders (account)
    WHERE status IN ('PENDING_NEW', 'NEW', 'PARTIALLY_FILLED', 'PENDING_CANCEL', 'PENDING_REPLACE');

CREATE TABLE executions (
    exec_id          text        PRIMARY KEY,  -- ExecID (17): a replay adds nothing
    order_id         text        NOT NULL,
    cl_ord_id        text,
    account          text        NOT NULL,
    symbol           text        NOT NULL,
    side             text        NOT NULL,
    last_qty         numeric     NOT NULL DEFAULT 0,
    last_px          numeric     NOT NULL DEFAULT 0,
    cum_qty          numeric     NOT NULL DEFAULT 0,
    leaves_qty       numeric     NOT NULL DEFAULT 0,
    avg_px           numeric     NOT NULL DEFAULT 0,
    exec_type        text        NOT NULL,     -- ExecType (150), FIX 4.4 value
    ord_status       text        NOT NULL,     -- OrdStatus (39), wire value
    transact_time    timestamptz NOT NULL,
    ts_event         bigint      NOT NULL,
    trd_match_id     text,                     -- TrdMatchID (880)
    exec_ref_id      text,                     -- ExecRefID (19): the fill an H or G names
    -- the H or G that reversed this fill; NULL while the fill stands
    reversed_by      text,
    source           text        NOT NULL DEFAULT '',
    -- Commission (12) in cash terms, 0 when absent
    commission       numeric     NOT NULL DEFAULT 0,
    -- P&L realised by the fill this row carries (F, G); 0 for H and non-trades. The rows with
    -- reversed_by NULL sum to holdings.realised_pnl.
    realised_pnl     numeric     NOT NULL DEFAULT 0,
    -- this row's whole effect on accounts.cash (for G: the reversal and the new fill).
    cash_delta       numeric     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX executions_account_time_idx ON executions (account, transact_time);
CREATE INDEX executions_symbol_time_idx ON executions (symbol, transact_time);
CREATE INDEX executions_order_idx ON executions (order_id);
CREATE INDEX executions_cl_ord_id_idx ON executions (cl_ord_id);

CREATE TABLE stop_orders (
    cl_ord_id       text        PRIMARY KEY,
    account         text        NOT NULL,
    symbol          text        NOT NULL,
    side            text        NOT NULL,
    ord_type        text        NOT NULL DEFAULT '3',  -- 3 stop, 4 stop-limit, P trailing
    stop_px         numeric     NOT NULL,
    limit_px        numeric,
    quantity        numeric     NOT NULL,
    -- trailing stops: PegOffsetValue (211) and the best price seen so far
    peg_offset      numeric,
    trail_px        numeric,
    status          text        NOT NULL DEFAULT 'ACTIVE'
        CHECK (status IN ('ACTIVE', 'TRIGGERED', 'CANCELLED', 'EXPIRED')),
    trigger_px      numeric,
    triggered_at    timestamptz,
    child_cl_ord_id text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stop_orders_active_idx ON stop_orders (symbol) WHERE status = 'ACTIVE';
CREATE INDEX stop_orders_account_idx ON stop_orders (account);

CREATE TABLE alerts (
    alert_id   text        PRIMARY KEY,  -- derived from the input: a replay adds nothing
    kind       text        NOT NULL,     -- STOP_TRIGGERED, MARGIN_CALL, WASH_TRADE, ...
    severity   text        NOT NULL,
    account    text,
    owner      text,
    symbol     text,
    event_time timestamptz NOT NULL,
    details    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    status     text        NOT NULL DEFAULT 'OPEN',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_account_idx ON alerts (account, event_time);
CREATE INDEX alerts_kind_idx ON alerts (kind, event_time);
CREATE INDEX alerts_open_idx ON alerts (event_time) WHERE status = 'OPEN';

CREATE TABLE account_margin (
    account     text        PRIMARY KEY REFERENCES accounts (account),
    equity      numeric     NOT NULL,
    gross_value numeric     NOT NULL,
    ratio       numeric,
    state       text        NOT NULL DEFAULT 'NORMAL'
        CHECK (state IN ('NORMAL', 'CALL', 'LIQUIDATING')),
    event_time  timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX account_margin_state_idx ON account_margin (state) WHERE state <> 'NORMAL';
