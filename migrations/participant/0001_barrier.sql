-- Barrier table of the participant SDK (libtreaty), in the participant's own
-- database. One row per (gtid, branch, op) that was applied, plus tombstones:
-- a compensate/abort that found no action/prepare inserts the action/prepare
-- row itself with reason = 'compensate'/'abort', which blocks a late action.
-- See docs/barrier.md.
CREATE TABLE IF NOT EXISTS treaty_barrier (
  gtid       text        NOT NULL,
  branch     text        NOT NULL,
  op         text        NOT NULL,  -- action | compensate | prepare | commit | abort
  reason     text        NOT NULL,  -- the op whose delivery inserted the row
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (gtid, branch, op)
);
CREATE INDEX IF NOT EXISTS treaty_barrier_created_at ON treaty_barrier (created_at);
