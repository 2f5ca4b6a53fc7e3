-- Cash movements during the day (issue 20, part 1; sinks/reference.py): deposits (positive) and
-- withdrawals (negative) that arrive as 35=UC messages among the fills. The ledger adds each
-- to accounts.cash once, in the transaction that inserts its row here: the movement id is the
-- idempotency key, as ExecID is for fills (a re-delivered message changes nothing).
CREATE TABLE cash_movements (
    movement_id text        PRIMARY KEY,  -- CashMovementID (5011)
    account     text        NOT NULL REFERENCES accounts (account),
    amount      numeric     NOT NULL,     -- CashAmount (5010), signed
    event_time  timestamptz NOT NULL,     -- TransactTime (60), else SendingTime (52)
    ts_event    bigint      NOT NULL,
    source      text        NOT NULL DEFAULT '',
    booked_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cash_movements_account_idx ON cash_movements (account, event_time);
