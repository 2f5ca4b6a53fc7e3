-- Reference changes during the day (issue 20, part 1; sinks/reference.py): the event time of the
-- latest account change (35=UA) applied to the row. On Kafka every partition carries a copy of
-- each change, at its place among that partition's fills, and the ledger books the partitions
-- as they come: a copy of an older change that arrives after a newer one must not undo it.
ALTER TABLE accounts ADD COLUMN reference_ts_ns bigint NOT NULL DEFAULT 0;
