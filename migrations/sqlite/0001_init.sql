-- Treaty coordinator log, SQLite (embedded engine, one coordinator).
-- Same tables as migrations/postgres; booleans are INTEGER 0/1.
-- Times are BIGINT milliseconds since the Unix epoch, by the database clock.
-- Forward-only: later changes go into 0002_*.sql and up, never edit this file.

CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT    NOT NULL,
  applied_at BIGINT  NOT NULL
);

-- One row per coordinator process (a fresh id per start).
CREATE TABLE coordinators (
  id              TEXT   PRIMARY KEY,
  node_name       TEXT   NOT NULL DEFAULT '',
  http_addr       TEXT   NOT NULL DEFAULT '',
  thrift_addr     TEXT   NOT NULL DEFAULT '',
  state           TEXT   NOT NULL,  -- alive | draining | dead
  started_at_ms   BIGINT NOT NULL,
  heartbeat_at_ms BIGINT NOT NULL
);
CREATE INDEX coordinators_state_heartbeat ON coordinators (state, heartbeat_at_ms);

-- One row per global transaction.
CREATE TABLE transactions (
  gtid               TEXT    PRIMARY KEY,
  kind               TEXT    NOT NULL,  -- saga | 2pc
  state              TEXT    NOT NULL,
  spec               TEXT    NOT NULL DEFAULT '',
  deadline_ms        BIGINT  NOT NULL DEFAULT 0,
  owner              TEXT    NULL,      -- coordinator id; NULL = unowned
  next_attempt_at_ms BIGINT  NOT NULL DEFAULT 0,
  attempts           INTEGER NOT NULL DEFAULT 0,
  needs_attention    INTEGER NOT NULL DEFAULT 0,
  version            BIGINT  NOT NULL DEFAULT 0,
  created_at_ms      BIGINT  NOT NULL,
  updated_at_ms      BIGINT  NOT NULL
);
-- Recovery / take-over / hand-back: unfinished transactions by owner.
CREATE INDEX transactions_owner_unfinished ON transactions (owner, created_at_ms)
  WHERE state NOT IN ('COMMITTED', 'ABORTED');
-- Listing, newest first, optionally by state or kind.
CREATE INDEX transactions_created ON transactions (created_at_ms DESC, gtid DESC);
CREATE INDEX transactions_state_created ON transactions (state, created_at_ms DESC, gtid DESC);
CREATE INDEX transactions_kind_created ON transactions (kind, created_at_ms DESC, gtid DESC);
-- Dashboard: what needs an operator.
CREATE INDEX transactions_needs_attention ON transactions (created_at_ms DESC, gtid DESC)
  WHERE needs_attention <> 0;
-- Retention: finished transactions by age.
CREATE INDEX transactions_finished_updated ON transactions (updated_at_ms)
  WHERE state IN ('COMMITTED', 'ABORTED');

-- Saga steps and 2PC branches.
CREATE TABLE branches (
  gtid               TEXT    NOT NULL,
  name               TEXT    NOT NULL,
  idx                INTEGER NOT NULL,
  state              TEXT    NOT NULL,
  attempts           INTEGER NOT NULL DEFAULT 0,
  last_error         TEXT    NOT NULL DEFAULT '',
  next_attempt_at_ms BIGINT  NOT NULL DEFAULT 0,
  spec               TEXT    NOT NULL DEFAULT '',
  updated_at_ms      BIGINT  NOT NULL,
  PRIMARY KEY (gtid, name)
);

-- Append-only history.
CREATE TABLE events (
  id     INTEGER PRIMARY KEY AUTOINCREMENT,
  gtid   TEXT   NOT NULL,
  branch TEXT   NOT NULL DEFAULT '',
  type   TEXT   NOT NULL,
  detail TEXT   NOT NULL DEFAULT '',
  at_ms  BIGINT NOT NULL
);
CREATE INDEX events_gtid ON events (gtid, id);
