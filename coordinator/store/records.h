#pragma once

// Plain records of the transaction log, one struct per table (see
// docs/schema.md and migrations/). Times are milliseconds since the Unix
// epoch; 0 means "not set".

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace treaty {

// Row of `transactions`.
struct TxnRow {
  std::string gtid;
  std::string kind;   // "saga" | "2pc"
  std::string state;  // see engine/states.h
  std::string spec;   // normalized JSON of the submission (saga steps, 2PC options)
  int64_t deadline_ms = 0;
  std::string owner;  // coordinator id; empty = unowned (handed back)
  int64_t next_attempt_at_ms = 0;
  int attempts = 0;
  bool needs_attention = false;
  // An operator paused its participant calls (TxnService::Pause); durable.
  bool paused = false;
  // The newest failure of any of its branches (a short excerpt, valid
  // UTF-8); empty when the last call succeeded. Shown by the list views.
  std::string last_error;
  int64_t version = 0;  // bumped by every update
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

// Row of `branches`: a saga step or a 2PC branch.
struct BranchRow {
  std::string gtid;
  std::string name;
  int idx = 0;        // position in the submission / enlistment order
  std::string state;  // saga step state or 2PC branch state
  int attempts = 0;   // attempts of the current op
  std::string last_error;
  int64_t next_attempt_at_ms = 0;
  std::string spec;  // JSON of this branch's URLs and payload (2PC enlistment)
  int64_t updated_at_ms = 0;
};

// Row of `events`: the history, append-only except that a run of repeats
// collapses into one row (see `collapse`).
struct EventRow {
  int64_t id = 0;  // assigned by the store
  std::string gtid;
  std::string branch;  // empty for transaction-level events
  std::string type;    // e.g. "state", "call", "retry", "operator"
  std::string detail;  // human-readable text
  int64_t at_ms = 0;   // when it happened (for a collapsed event: the latest time)
  // Repeats collapsed into this event (>= 1) and when the first happened.
  int64_t count = 1;
  int64_t first_at_ms = 0;  // 0 in a write: at_ms
  // In a write: if the newest event of this gtid and branch has the same
  // type, that event is updated instead (count + 1, detail and at_ms
  // replaced) and no row is added. Used for retries, so that a branch
  // retried for hours keeps one event (docs/schema.md "events").
  bool collapse = false;
};

// A transaction with its branches (idx order) and history (id order).
struct TxnDetail {
  TxnRow txn;
  std::vector<BranchRow> branches;
  std::vector<EventRow> events;
};

// Row of `coordinators`.
struct CoordinatorRow {
  std::string id;
  std::string node_name;
  std::string http_addr;
  std::string thrift_addr;
  std::string state;  // "alive" | "draining" | "dead"
  int64_t started_at_ms = 0;
  int64_t heartbeat_at_ms = 0;
  int64_t heartbeat_age_ms = 0;  // by the database clock, at read time
  int64_t owned = 0;             // unfinished transactions it owns, at read time
};

// Change to one branch; unset fields are left as they are.
struct BranchUpdate {
  std::string name;
  std::optional<std::string> state;
  std::optional<int> attempts;
  std::optional<std::string> last_error;
  std::optional<int64_t> next_attempt_at_ms;
};

// One atomic, fenced change to one transaction. Exactly one of:
//  - create: insert `create` and `new_branches` (fails with Conflict if the
//    gtid exists);
//  - update: `UPDATE transactions ... WHERE gtid=? AND owner=?` setting the
//    given fields, bumping version and updated_at; if no row matches, the
//    write fails with LostOwnership (or NotFound) and nothing of it applies.
//    Then inserts `new_branches` (enlistment), applies `branch_updates`.
//    An update that sets none of the transaction's own fields (a step's
//    progress: branches and events only, see ChangesTransactionRow) is fenced
//    without rewriting the row: PostgreSQL checks the owner under a share
//    lock (`SELECT ... FOR SHARE`, which a take-over's UPDATE of the owner
//    waits for, and which sees a take-over that committed first); SQLite
//    checks it inside its single write transaction. version and updated_at
//    are left as they are; the branches' updated_at shows the progress.
// In both cases `events` are appended.
struct TxnWrite {
  std::string gtid;
  std::string owner;  // fencing token: the writer's coordinator id
  int64_t now_ms = 0;

  std::optional<TxnRow> create;
  // Set by the engine when it re-sends a create whose earlier attempt's
  // outcome is unknown (it may have committed): the LogWriter then reports
  // a Conflict with a row exactly like `create` as OK (see log_writer.h).
  bool create_outcome_unknown = false;

  std::optional<std::string> state;
  std::optional<bool> needs_attention;
  std::optional<int64_t> next_attempt_at_ms;
  std::optional<int> attempts;
  std::optional<int64_t> deadline_ms;
  std::optional<bool> paused;
  std::optional<std::string> last_error;
  bool release_owner = false;  // set owner to NULL (hand back) after the update

  std::vector<BranchRow> new_branches;
  std::vector<BranchUpdate> branch_updates;
  std::vector<EventRow> events;
};

// Whether `w` creates the transaction or sets one of its own fields (state,
// flags, schedule, deadline, last_error, hand-back): then the transactions
// row is written; otherwise the write is fenced only (see TxnWrite).
inline bool ChangesTransactionRow(const TxnWrite& w) {
  return w.create || w.state || w.needs_attention || w.next_attempt_at_ms || w.attempts ||
         w.deadline_ms || w.paused || w.last_error || w.release_owner;
}

// Query of GET /v1/transactions. Newest first; `cursor` is opaque (from a
// previous page's `next`).
struct ListFilter {
  std::optional<std::string> state;
  std::optional<std::string> kind;
  std::optional<bool> needs_attention;
  std::optional<bool> paused;
  std::optional<std::string> gtid_prefix;
  std::optional<int64_t> created_before_ms;  // age filter
  int limit = 50;
  std::string cursor;
};

struct TxnPage {
  std::vector<TxnRow> items;
  std::string next;  // empty when there is no further page
};

// Counts for the dashboard and metrics.
struct StateCount {
  std::string kind;
  std::string state;
  bool needs_attention = false;
  int64_t count = 0;
};

}  // namespace treaty
