-- The analysts' workflow on alerts (`brokerflow alerts ack|close`): who saw it when, and why it
-- was closed. status stays OPEN -> ACKED -> CLOSED.
ALTER TABLE alerts ADD COLUMN acked_at timestamptz;
ALTER TABLE alerts ADD COLUMN closed_at timestamptz;
ALTER TABLE alerts ADD COLUMN note text;
