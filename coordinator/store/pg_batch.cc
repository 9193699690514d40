#include "store/pg_batch.h"

#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "common/json_input.h"
#include "store/event_collapse.h"
#include "store/pg_rows.h"

namespace treaty::pg {

namespace {

using nlohmann::json;

template <typename T>
json OrNull(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

// Runs `sql`, whose only parameter $1 is `rows` as JSON text, as the
// prepared statement `name` of this connection (parsed and planned once per
// connection: libpqxx prepares it on first use, again after a reconnect).
// The writes passed the storable-write rules (valid UTF-8, no NUL), so
// DumpJson keeps every string as it is; json_to_recordset turns \u escapes
// back into text.
pqxx::result ExecRows(pqxx::transaction_base& tx, const char* name, const std::string& sql,
                      const json& rows) {
  tx.conn().prepare(name, sql);
  return tx.exec_prepared(name, DumpJson(rows));
}

// The gtids a statement returned (its first column).
std::set<std::string> GtidsOf(const pqxx::result& r) {
  std::set<std::string> gtids;
  for (const auto& row : r) gtids.insert(row[0].as<std::string>());
  return gtids;
}

// Inserts every create; returns the gtids actually inserted.
std::set<std::string> InsertCreates(pqxx::transaction_base& tx,
                                    const std::vector<const TxnWrite*>& creates) {
  json rows = json::array();
  for (const TxnWrite* w : creates) {
    const TxnRow& c = *w->create;
    const int64_t created_ms = c.created_at_ms ? c.created_at_ms : w->now_ms;
    rows.push_back({{"gtid", w->gtid},
                    {"kind", c.kind},
                    {"state", c.state},
                    {"spec", c.spec},
                    {"deadline_ms", c.deadline_ms},
                    {"owner", c.owner.empty() ? w->owner : c.owner},
                    {"next_at", c.next_attempt_at_ms},
                    {"attempts", c.attempts},
                    {"na", c.needs_attention},
                    {"version", c.version},
                    {"created", created_ms},
                    {"updated", c.updated_at_ms ? c.updated_at_ms : created_ms},
                    {"paused", c.paused},
                    {"last_error", c.last_error}});
  }
  pqxx::result r = ExecRows(
      tx, "treaty_insert_txns",
      "INSERT INTO transactions (gtid, kind, state, spec, deadline_ms, owner, next_attempt_at_ms, "
      "attempts, needs_attention, version, created_at_ms, updated_at_ms, paused, last_error) "
      "SELECT u.gtid, u.kind, u.state, u.spec, u.deadline_ms, NULLIF(u.owner, ''), u.next_at, "
      "u.attempts, u.na, u.version, COALESCE(NULLIF(u.created, 0), " +
          kNow + "), COALESCE(NULLIF(u.updated, 0), NULLIF(u.created, 0), " + kNow +
          "), u.paused, u.last_error FROM json_to_recordset($1::json) AS u(gtid text, kind text, "
          "state text, spec text, deadline_ms bigint, owner text, next_at bigint, "
          "attempts integer, na boolean, version bigint, created bigint, updated bigint, "
          "paused boolean, last_error text) "
          "ON CONFLICT (gtid) DO NOTHING RETURNING gtid",
      rows);
  return GtidsOf(r);
}

// Applies every fenced update; returns the gtids whose update matched.
std::set<std::string> UpdateTransactions(pqxx::transaction_base& tx,
                                         const std::vector<const TxnWrite*>& updates) {
  json rows = json::array();
  for (const TxnWrite* w : updates) {
    rows.push_back({{"gtid", w->gtid},
                    {"owner", w->owner},
                    {"state", OrNull(w->state)},
                    {"na", OrNull(w->needs_attention)},
                    {"next_at", OrNull(w->next_attempt_at_ms)},
                    {"attempts", OrNull(w->attempts)},
                    {"deadline", OrNull(w->deadline_ms)},
                    {"release", w->release_owner},
                    {"paused", OrNull(w->paused)},
                    {"last_error", OrNull(w->last_error)},
                    {"now", w->now_ms}});
  }
  pqxx::result r = ExecRows(
      tx, "treaty_update_txns",
      "UPDATE transactions t SET state = COALESCE(u.state, t.state), needs_attention = "
      "COALESCE(u.na, t.needs_attention), next_attempt_at_ms = COALESCE(u.next_at, "
      "t.next_attempt_at_ms), attempts = COALESCE(u.attempts, t.attempts), deadline_ms = "
      "COALESCE(u.deadline, t.deadline_ms), owner = CASE WHEN u.release THEN NULL ELSE t.owner "
      "END, paused = COALESCE(u.paused, t.paused), last_error = COALESCE(u.last_error, "
      "t.last_error), version = t.version + 1, updated_at_ms = COALESCE(NULLIF(u.now, 0), " +
          kNow +
          ") FROM json_to_recordset($1::json) AS u(gtid text, owner text, state text, "
          "na boolean, next_at bigint, attempts integer, deadline bigint, release boolean, "
          "paused boolean, last_error text, now bigint) WHERE t.gtid = u.gtid AND "
          "t.owner = u.owner RETURNING t.gtid",
      rows);
  return GtidsOf(r);
}

// Fences the writes that change no field of their transaction (a step's
// progress) without rewriting its row: a share lock, taken only where the
// writer still owns it. A take-over's UPDATE of the owner waits for this
// transaction; one that committed first makes the row not match (READ
// COMMITTED re-checks the join on the newest row version). Returns the gtids
// fenced.
std::set<std::string> FenceTransactions(pqxx::transaction_base& tx,
                                        const std::vector<const TxnWrite*>& fenced) {
  json rows = json::array();
  for (const TxnWrite* w : fenced) rows.push_back({{"gtid", w->gtid}, {"owner", w->owner}});
  pqxx::result r = ExecRows(tx, "treaty_fence_txns",
                            "SELECT t.gtid FROM transactions t JOIN json_to_recordset($1::json) "
                            "AS u(gtid text, owner text) ON t.gtid = u.gtid AND t.owner = "
                            "u.owner FOR SHARE OF t",
                            rows);
  return GtidsOf(r);
}

// Which of `gtids` exist.
std::set<std::string> Existing(pqxx::transaction_base& tx, const json& gtids) {
  return GtidsOf(ExecRows(tx, "treaty_existing_txns",
                          "SELECT t.gtid FROM transactions t JOIN "
                          "json_array_elements_text($1::json) AS m(gtid) USING (gtid)",
                          gtids));
}

// A branch's updates within one batch, merged (later wins).
struct MergedUpdate {
  std::optional<std::string> state, last_error;
  std::optional<int> attempts;
  std::optional<int64_t> next_at;
  int64_t now = 0;
};

}  // namespace

bool SetBasedEligible(const std::vector<TxnWrite>& writes) {
  std::set<std::string> gtids;
  for (const TxnWrite& w : writes) {
    if (!gtids.insert(w.gtid).second) return false;
    if (w.create && !w.create->gtid.empty() && w.create->gtid != w.gtid) return false;
    if (!w.create && !w.new_branches.empty()) return false;
  }
  return true;
}

// PreferIndexJoins' settings, also sent by WriteTransaction with its BEGIN.
const char* const kPreferIndexJoinsSql =
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";

void PreferIndexJoins(pqxx::transaction_base& tx) { tx.exec(kPreferIndexJoinsSql); }

std::optional<std::vector<Status>> ApplySetBased(pqxx::transaction_base& tx,
                                                 const std::vector<TxnWrite>& writes) {
  std::vector<const TxnWrite*> creates, row_updates, fenced, updates;
  for (const TxnWrite& w : writes) {
    if (w.create) {
      creates.push_back(&w);
      continue;
    }
    updates.push_back(&w);
    (ChangesTransactionRow(w) ? row_updates : fenced).push_back(&w);
  }
  std::set<std::string> ok;
  if (!creates.empty()) ok = InsertCreates(tx, creates);
  if (!row_updates.empty()) ok.merge(UpdateTransactions(tx, row_updates));
  if (!fenced.empty()) ok.merge(FenceTransactions(tx, fenced));

  // Why did the unmatched updates fail: gone, or owned by someone else?
  json missing = json::array();
  for (const TxnWrite* w : updates) {
    if (!ok.count(w->gtid)) missing.push_back(w->gtid);
  }
  const std::set<std::string> existing =
      missing.empty() ? std::set<std::string>() : Existing(tx, missing);

  // Branches of the creates that went in, branch updates of the writes that
  // went in (merged per branch), then their events.
  json branches = json::array();
  std::map<std::pair<std::string, std::string>, MergedUpdate> merged;
  std::vector<const TxnWrite*> applied;
  for (const TxnWrite& w : writes) {
    if (!ok.count(w.gtid)) continue;
    applied.push_back(&w);
    for (const BranchRow& b : w.new_branches) {
      branches.push_back({{"gtid", w.gtid},
                          {"name", b.name},
                          {"idx", b.idx},
                          {"state", b.state},
                          {"attempts", b.attempts},
                          {"last_error", b.last_error},
                          {"next_at", b.next_attempt_at_ms},
                          {"spec", b.spec},
                          {"updated", b.updated_at_ms ? b.updated_at_ms : w.now_ms}});
    }
    for (const BranchUpdate& u : w.branch_updates) {
      MergedUpdate& m = merged[{w.gtid, u.name}];
      if (u.state) m.state = u.state;
      if (u.attempts) m.attempts = u.attempts;
      if (u.last_error) m.last_error = u.last_error;
      if (u.next_attempt_at_ms) m.next_at = u.next_attempt_at_ms;
      m.now = w.now_ms;
    }
  }
  json branch_updates = json::array();
  for (const auto& [key, m] : merged) {
    branch_updates.push_back({{"gtid", key.first},
                              {"name", key.second},
                              {"state", OrNull(m.state)},
                              {"attempts", OrNull(m.attempts)},
                              {"last_error", OrNull(m.last_error)},
                              {"next_at", OrNull(m.next_at)},
                              {"now", m.now}});
  }
  const json events = CollapseEvents(tx, applied);
  const BranchCounts counts = WriteBranchesAndEvents(tx, branches, branch_updates, events);
  if (counts.inserted != branches.size() || counts.updated != branch_updates.size()) {
    return std::nullopt;
  }

  std::vector<Status> results;
  results.reserve(writes.size());
  for (const TxnWrite& w : writes) {
    if (ok.count(w.gtid)) {
      results.push_back(Status::Ok());
    } else if (w.create) {
      results.push_back(Status::Conflict("transaction " + w.gtid + " already exists"));
    } else if (existing.count(w.gtid)) {
      results.push_back(
          Status::LostOwnership("transaction " + w.gtid + " is not owned by " + w.owner));
    } else {
      results.push_back(Status::NotFound("transaction " + w.gtid + " not found"));
    }
  }
  return results;
}

json CollapseEvents(pqxx::transaction_base& tx, const std::vector<const TxnWrite*>& writes) {
  json collapsing = json::array();  // planned events that may update a stored one
  std::vector<std::pair<PlannedEvent, bool>> planned;  // event, collapsed into a stored one
  for (const TxnWrite* w : writes) {
    for (PlannedEvent& p : PlanEvents(*w)) {
      if (p.into_stored) {
        collapsing.push_back({{"n", planned.size()},
                              {"gtid", p.row.gtid},
                              {"branch", p.row.branch},
                              {"type", p.row.type},
                              {"detail", p.row.detail},
                              {"at", p.row.at_ms},
                              {"count", p.row.count}});
      }
      planned.emplace_back(std::move(p), false);
    }
  }
  if (!collapsing.empty()) {
    // Each row's target is the newest stored event of its gtid and branch,
    // looked up before this statement adds anything (no two rows share a
    // gtid and branch: PlanEvents keeps one per branch of a write).
    pqxx::result r = ExecRows(
        tx, "treaty_collapse_events",
        "UPDATE events e SET count = e.count + v.count, detail = v.detail, at_ms = "
        "COALESCE(NULLIF(v.at, 0), " +
            kNow +
            ") FROM (SELECT u.n, u.gtid, u.branch, u.type, u.detail, u.at, u.count, (SELECT "
            "max(x.id) FROM events x WHERE x.gtid = u.gtid AND x.branch = u.branch) AS newest "
            "FROM json_to_recordset($1::json) AS u(n bigint, gtid text, branch text, type text, "
            "detail text, at bigint, count bigint)) v WHERE e.gtid = v.gtid AND e.branch = "
            "v.branch AND e.id = v.newest AND e.type = v.type RETURNING v.n",
        collapsing);
    for (const auto& row : r) planned[row[0].as<size_t>()].second = true;
  }
  json rows = json::array();
  for (const auto& [p, collapsed] : planned) {
    if (collapsed) continue;
    rows.push_back({{"n", rows.size()},
                    {"gtid", p.row.gtid},
                    {"branch", p.row.branch},
                    {"type", p.row.type},
                    {"detail", p.row.detail},
                    {"at", p.row.at_ms},
                    {"count", p.row.count},
                    {"first", p.row.first_at_ms}});
  }
  return rows;
}

BranchCounts WriteBranchesAndEvents(pqxx::transaction_base& tx, const json& new_branches,
                                    const json& branch_updates, const json& events) {
  // The statement for exactly the parts given, prepared once per connection
  // under a name that says which (treaty_write_<i><u><e>, 1 = present). Its
  // data-modifying WITH parts run exactly once each, on one snapshot; they
  // touch different rows (a batch holds one write per gtid, and events are
  // only inserted), so none needs to see another's effect.
  const bool insert = !new_branches.empty(), update = !branch_updates.empty(),
             append = !events.empty();
  BranchCounts counts;
  if (!insert && !update && !append) return counts;
  std::vector<std::string> parts;
  std::vector<const json*> params;
  auto param = [&](const json& rows) {
    params.push_back(&rows);
    return "$" + std::to_string(params.size()) + "::json";
  };
  if (insert) {
    parts.push_back(
        "ib AS (INSERT INTO branches (gtid, name, idx, state, attempts, last_error, "
        "next_attempt_at_ms, spec, updated_at_ms) SELECT u.gtid, u.name, u.idx, u.state, "
        "u.attempts, u.last_error, u.next_at, u.spec, COALESCE(NULLIF(u.updated, 0), " +
        kNow + ") FROM json_to_recordset(" + param(new_branches) +
        ") AS u(gtid text, name text, idx integer, state text, attempts integer, last_error "
        "text, next_at bigint, spec text, updated bigint) ON CONFLICT (gtid, name) DO NOTHING "
        "RETURNING 1)");
  }
  if (update) {
    parts.push_back(
        "ub AS (UPDATE branches b SET state = COALESCE(u.state, b.state), attempts = "
        "COALESCE(u.attempts, b.attempts), last_error = COALESCE(u.last_error, b.last_error), "
        "next_attempt_at_ms = COALESCE(u.next_at, b.next_attempt_at_ms), updated_at_ms = "
        "COALESCE(NULLIF(u.now, 0), " +
        kNow + ") FROM json_to_recordset(" + param(branch_updates) +
        ") AS u(gtid text, name text, state text, attempts integer, last_error text, next_at "
        "bigint, now bigint) WHERE b.gtid = u.gtid AND b.name = u.name RETURNING 1)");
  }
  if (append) {
    // One clock reading per row, so at_ms and first_at_ms agree when the
    // write gave no time; ids follow the rows' order.
    parts.push_back(
        "ie AS (INSERT INTO events (gtid, branch, type, detail, at_ms, count, first_at_ms) "
        "SELECT u.gtid, u.branch, u.type, u.detail, u.at_ms, u.count, "
        "COALESCE(NULLIF(u.first, 0), u.at_ms) FROM (SELECT r.*, COALESCE(NULLIF(r.at, 0), " +
        kNow + ") AS at_ms FROM json_to_recordset(" + param(events) +
        ") AS r(n bigint, gtid text, branch text, type text, detail text, at bigint, count "
        "bigint, first bigint)) u ORDER BY u.n)");
  }
  std::string sql = "WITH ";
  for (size_t i = 0; i < parts.size(); ++i) sql += (i ? ", " : "") + parts[i];
  sql += std::string(" SELECT ") + (insert ? "(SELECT count(*) FROM ib)" : "0") + ", " +
         (update ? "(SELECT count(*) FROM ub)" : "0");
  const std::string name = std::string("treaty_write_") + (insert ? "1" : "0") +
                           (update ? "1" : "0") + (append ? "1" : "0");
  tx.conn().prepare(name, sql);
  pqxx::result r;
  switch (params.size()) {
    case 1:
      r = tx.exec_prepared(name, DumpJson(*params[0]));
      break;
    case 2:
      r = tx.exec_prepared(name, DumpJson(*params[0]), DumpJson(*params[1]));
      break;
    default:
      r = tx.exec_prepared(name, DumpJson(*params[0]), DumpJson(*params[1]), DumpJson(*params[2]));
      break;
  }
  counts.inserted = r[0][0].as<size_t>();
  counts.updated = r[0][1].as<size_t>();
  return counts;
}

void AppendEvents(pqxx::transaction_base& tx, const std::vector<const TxnWrite*>& writes) {
  WriteBranchesAndEvents(tx, json::array(), json::array(), CollapseEvents(tx, writes));
}

WriteTransaction::WriteTransaction(pqxx::connection& c) : tx_(c) {
  tx_.exec(std::string("BEGIN; ") + kPreferIndexJoinsSql);
  open_ = true;
}

WriteTransaction::~WriteTransaction() {
  if (!open_) return;
  try {
    tx_.exec("ROLLBACK");
  } catch (...) {
    // A broken session: the pool drops it (the error that got us here says so).
  }
}

void WriteTransaction::Commit() {
  open_ = false;  // whatever COMMIT answers, nothing is left to roll back
  tx_.exec("COMMIT");
}

}  // namespace treaty::pg
