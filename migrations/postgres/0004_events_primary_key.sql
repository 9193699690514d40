-- One index per event instead of two. The primary key becomes
-- (gtid, branch, id): it serves every lookup of events (a transaction's
-- history by gtid, the newest event of a branch for collapsing) and keeps
-- each row unique, so events_gtid_branch, the same columns, goes, and so
-- does the old key on id alone, which nothing looked up. An event then
-- costs one heap row and one index entry: about 90 bytes of WAL and an
-- index insertion fewer per event, eight per three-step saga.
-- Building the new key reads the whole table under an exclusive lock until
-- the migration commits: see docs/operations.md ("Upgrading").
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (gtid, branch, id);
DROP INDEX IF EXISTS events_gtid_branch;
