-- pgbench script for bench/run.sh's commit-rate baseline: one single-row
-- INSERT per transaction (pgbench -n runs each script in autocommit, so one
-- commit, one WAL flush, per INSERT). The table is made by run.sh:
--   CREATE TABLE bench_insert (id bigserial PRIMARY KEY, k text NOT NULL, v text NOT NULL)
INSERT INTO bench_insert (k, v) VALUES ('c' || :client_id, '{"name":"s1","state":"RUNNING"}');
