-- Operator pause and the newest failure of a transaction; collapsed history
-- events (a run of retries of one branch is one event with a count).
-- Existing rows: not paused, no last error, every event counted once and
-- first seen when it happened.

ALTER TABLE transactions ADD COLUMN paused     BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE transactions ADD COLUMN last_error TEXT    NOT NULL DEFAULT '';
-- Dashboard: paused transactions.
CREATE INDEX transactions_paused ON transactions (created_at_ms DESC, gtid DESC)
  WHERE paused;

ALTER TABLE events ADD COLUMN count       BIGINT NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN first_at_ms BIGINT NOT NULL DEFAULT 0;
UPDATE events SET first_at_ms = at_ms;
-- Collapsing: the newest event of one branch of one transaction.
CREATE INDEX events_gtid_branch ON events (gtid, branch, id);
