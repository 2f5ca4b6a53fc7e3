-- When the account's current margin call began (NULL when NORMAL): a restarted margin flow
-- resumes the episode (one MARGIN_CALL per episode, the grace period counted from here).
ALTER TABLE account_margin ADD COLUMN call_since timestamptz;
