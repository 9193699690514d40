-- Nothing to change here: events.id is SQLite's rowid (INTEGER PRIMARY
-- KEY), the key the table itself is stored under, so an event already costs
-- one index entry (events_gtid_branch). The version is kept in step with
-- PostgreSQL's, where this migration gives events one index instead of two.
SELECT 1;
