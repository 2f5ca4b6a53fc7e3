-- Tamper evidence of the audit trail (issue 20, part 5; brokerflow/commands/audit.py,
-- domain/audit_digest.py). ClickHouse `audit_log` stays the record; PostgreSQL keeps, per sealed
-- day, what it takes to prove that the day's rows were not changed since, and to name a row
-- that was.
--
-- audit_digests: one row per sealed UTC day (CONTRACT.md: day PK, rows, digest, computed_at):
--   the hash chain's last link over the day's rows in (timestamp, event_id) order, who sealed it
--   and why (the latest seal; the history is audit_seal_log).
CREATE TABLE audit_digests (
    day          date        PRIMARY KEY,
    rows         bigint      NOT NULL,
    digest       text        NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    sealed_by    text        NOT NULL,
    reason       text        NOT NULL
);

-- audit_row_hashes: the sealed rows of a day, so that `audit verify --day` names a changed,
--   deleted or added row (by event_id) and the columns of a change (4 bytes of sha256 per
--   column, in domain.audit_digest.AUDIT_COLUMNS order).
CREATE TABLE audit_row_hashes (
    day            date        NOT NULL REFERENCES audit_digests (day) ON DELETE CASCADE,
    event_id       uuid        NOT NULL,
    ts             timestamptz NOT NULL,
    event_type     text        NOT NULL,
    row_hash       bytea       NOT NULL,
    column_hashes  bytea       NOT NULL,
    PRIMARY KEY (day, event_id)
);

-- audit_seal_log: every seal and re-seal (a sanctioned change: GDPR pseudonymisation, or an
--   operator accepting late rows), with the digest it replaced. Append-only by convention.
CREATE TABLE audit_seal_log (
    id               bigserial   PRIMARY KEY,
    day              date        NOT NULL,
    action           text        NOT NULL CHECK (action IN ('SEAL', 'RESEAL')),
    rows             bigint      NOT NULL,
    digest           text        NOT NULL,
    previous_digest  text,
    actor            text        NOT NULL,
    reason           text        NOT NULL,
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_seal_log_day ON audit_seal_log (day);
