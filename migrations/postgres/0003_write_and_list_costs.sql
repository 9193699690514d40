-- Cheaper writes, and listing by gtid prefix that does not grow with history.
--
-- gtids compare byte by byte (COLLATE "C"), whatever the database's default
-- collation: listing by gtid prefix is then a range of the primary key
-- (gtid >= prefix AND gtid < successor of prefix), where it was a scan of
-- the whole table; ties in a listing order the same way as on SQLite; a gtid
-- comparison is a memcmp. A collation change alone rewrites no table, but
-- every index that holds gtid is rebuilt under an exclusive lock: see
-- docs/operations.md (Upgrades) for the time this takes on a large log.
ALTER TABLE transactions ALTER COLUMN gtid TYPE TEXT COLLATE "C";
ALTER TABLE branches     ALTER COLUMN gtid TYPE TEXT COLLATE "C";
ALTER TABLE events       ALTER COLUMN gtid TYPE TEXT COLLATE "C";

-- events_gtid_branch (gtid, branch, id) serves every lookup of events by
-- gtid (a transaction's history is read whole and sorted by id): one index
-- fewer to write per event.
DROP INDEX events_gtid;

-- Room on each page for updated branch rows, so a step's progress can be a
-- heap-only (HOT) update that adds no index entry. Applies to pages filled
-- from now on.
ALTER TABLE branches SET (fillfactor = 70);
