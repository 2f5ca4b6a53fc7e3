-- Dead letters: inputs we could not decode, parse or validate (STYLE.md §4), kept with their raw
-- bytes and the reason. dedup_key = sha256(source || 0x00 || raw), computed by the writer, so a
-- replay of the same input adds no second row (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE IF NOT EXISTS dead_letters (
    id          bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text        NOT NULL,
    reason      text        NOT NULL,
    raw         bytea       NOT NULL,
    -- raw decoded as UTF-8 (invalid bytes replaced) with SOH (0x01) shown as '|', for people.
    raw_text    text        NOT NULL,
    step_id     text,
    error       text,
    tag         integer,
    -- DeadLetter.ts_init: when the pipeline built the record, int UTC nanoseconds.
    ts_init     bigint,
    dedup_key   text        NOT NULL UNIQUE
);

CREATE INDEX IF NOT EXISTS dead_letters_received_at_idx ON dead_letters (received_at);
CREATE INDEX IF NOT EXISTS dead_letters_error_idx ON dead_letters (error, received_at);
