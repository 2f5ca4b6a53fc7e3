-- The analysts' workbench (issue 18): a score to sort the queue on, who an alert is assigned to
-- and how it was closed, the history of every decision, and suppression rules.

-- score 0..100: a surveillance alert's severity is the model's score; an account alert's is a
-- word (domain.triage.SEVERITY_SCORES keeps the same mapping for Python).
ALTER TABLE alerts ADD COLUMN score smallint GENERATED ALWAYS AS (
    CASE severity
        WHEN 'INFO' THEN 10 WHEN 'LOW' THEN 30 WHEN 'MEDIUM' THEN 50
        WHEN 'HIGH' THEN 75 WHEN 'CRITICAL' THEN 95
        ELSE CASE WHEN severity ~ '^[0-9]{1,3}$' THEN least(severity::int, 100) ELSE 0 END
    END
) STORED;
ALTER TABLE alerts ADD COLUMN assignee text;
ALTER TABLE alerts ADD COLUMN disposition text
    CHECK (disposition IN ('false_positive', 'true_positive', 'reported'));
ALTER TABLE alerts ADD COLUMN closed_by text;
CREATE INDEX alerts_queue_idx ON alerts (score DESC, event_time DESC, alert_id)
    WHERE status <> 'CLOSED';
CREATE INDEX alerts_symbol_idx ON alerts (symbol, event_time);

-- Every decision on an alert, and every time the pipeline added evidence to it; never updated.
CREATE TABLE alert_actions (
    id          bigserial   PRIMARY KEY,
    alert_id    text        NOT NULL REFERENCES alerts (alert_id),
    actor       text        NOT NULL,   -- the token's user, or 'pipeline'
    action      text        NOT NULL,   -- ack, assign, escalate, close, reopen, evidence
    disposition text,
    note        text,
    assignee    text,
    from_status text,
    to_status   text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_actions_alert_idx ON alert_actions (alert_id, id);

-- Known benign activity (a market maker's quoting): alerts of the account (of one kind, or all)
-- raised within [starts_at, ends_at) leave the open queue and are counted as suppressed.
-- Rules are never deleted: a revoked rule keeps who revoked it and when.
CREATE TABLE suppressions (
    id         bigserial   PRIMARY KEY,
    account    text        NOT NULL,
    kind       text,                   -- NULL: every kind
    reason     text        NOT NULL,
    actor      text        NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    revoked_by text,
    CHECK (ends_at > starts_at)
);
CREATE INDEX suppressions_account_idx ON suppressions (account);
