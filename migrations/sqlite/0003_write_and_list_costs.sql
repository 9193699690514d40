-- events_gtid_branch (gtid, branch, id) serves every lookup of events by
-- gtid (a transaction's history is read whole and sorted by id): one index
-- fewer to write per event. (gtids already compare byte by byte here:
-- SQLite's BINARY collation.)
DROP INDEX IF EXISTS events_gtid;
