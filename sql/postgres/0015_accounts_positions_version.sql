-- The traders' holdings documents (issue 19, part 2; sinks/ledger.py, sinks/positions.py): each
-- account row carries the event time and the version of its latest document, updated by the
-- ledger in the transaction that changes the account (its row is locked then).
-- positions_ts_ns: the latest event time of the reports that changed the account's holdings or
--   cash, whichever transaction booked them (GREATEST): so the last document of a day has the
--   same `ts` however the fills were cut into transactions or spread over writers.
-- positions_version: +1 per transaction that changes the account, in commit order; Redis keeps
--   the document of the highest version, so two writers publishing out of commit order cannot
--   leave an older document in `positions:{account}`.
ALTER TABLE accounts ADD COLUMN positions_ts_ns bigint NOT NULL DEFAULT 0,
                     ADD COLUMN positions_version bigint NOT NULL DEFAULT 0;
