-- pseudonym_map: account -> pseudonym of `brokerflow gdpr pseudonymise`, kept apart from the
-- ledger so that deleting a row (or dropping the table) makes the pseudonym irreversible.
CREATE TABLE pseudonym_map (
    account     text        PRIMARY KEY,
    pseudonym   text        NOT NULL UNIQUE,
    owner       text,        -- the owner the account had, replaced by its own pseudonym
    created_at  timestamptz NOT NULL DEFAULT now()
);
