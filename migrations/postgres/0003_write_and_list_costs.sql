-- Cheaper writes, and listing by gtid prefix that does not grow with history.
-- Every statement here takes an exclusive lock on its table until the whole
-- migration commits: see docs/operations.md ("Upgrading") for how long that
-- is on a large log.

-- events_gtid_branch (gtid, branch, id) serves every lookup of events by
-- gtid (a transaction's history is read whole and sorted by id): one index
-- fewer to write per event.
DROP INDEX IF EXISTS events_gtid;

-- transactions.gtid compares byte by byte (COLLATE "C"), whatever the
-- database's default collation: listing by gtid prefix is then a range of
-- the primary key (gtid >= prefix AND gtid < successor of prefix) where it
-- was a scan of the whole table, and ties in a listing order as on SQLite.
-- A collation change rewrites no rows, but rebuilds every index of
-- transactions that holds gtid. (branches and events are found by gtid
-- equality only, which any collation serves.)
ALTER TABLE transactions ALTER COLUMN gtid TYPE TEXT COLLATE "C";

-- Room on each page for updated branch rows, so a step's progress can be a
-- heap-only (HOT) update that adds no index entry. Applies to pages filled
-- from now on; rewrites nothing.
ALTER TABLE branches SET (fillfactor = 70);
