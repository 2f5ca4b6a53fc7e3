-- Data-quality results (issue 9): one row per validation of a micro-batch by a Great
-- Expectations suite (quality/suites.py). rows_seen counts the stream items offered since the
-- previous validation, validated or skipped by sampling, so coverage = rows covered / rows seen.
CREATE TABLE IF NOT EXISTS dq_results (
    id              bigserial   PRIMARY KEY,
    run_at          timestamptz NOT NULL DEFAULT now(),
    suite           text        NOT NULL,
    rows_seen       integer     NOT NULL,
    rows_validated  integer     NOT NULL,
    rows_failed     integer     NOT NULL,
    success         boolean     NOT NULL,
    duration_ms     double precision NOT NULL,
    -- per expectation: check, expectation, success, element_count, unexpected_count, kwargs
    results         jsonb       NOT NULL
);

CREATE INDEX IF NOT EXISTS dq_results_suite_run_at_idx ON dq_results (suite, run_at);
