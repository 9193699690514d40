#include "store/pg_batch.h"

#include <map>
#include <set>

#include "store/pg_rows.h"

namespace treaty::pg {

void ArrayLiteral::Sep() {
  if (n_++ > 0) text_ += ',';
}

void ArrayLiteral::Add(const std::string& s) {
  Sep();
  text_ += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') text_ += '\\';
    text_ += c;
  }
  text_ += '"';
}

void ArrayLiteral::Add(const std::optional<std::string>& s) { s ? Add(*s) : AddNull(); }

void ArrayLiteral::Add(int64_t v) {
  Sep();
  text_ += std::to_string(v);
}

void ArrayLiteral::Add(const std::optional<int64_t>& v) { v ? Add(*v) : AddNull(); }

void ArrayLiteral::Add(bool v) {
  Sep();
  text_ += v ? "t" : "f";
}

void ArrayLiteral::Add(const std::optional<bool>& v) { v ? Add(*v) : AddNull(); }

void ArrayLiteral::AddNull() {
  Sep();
  text_ += "NULL";
}

bool SetBasedEligible(const std::vector<TxnWrite>& writes) {
  std::set<std::string> gtids;
  for (const TxnWrite& w : writes) {
    if (!gtids.insert(w.gtid).second) return false;
    if (w.create && !w.create->gtid.empty() && w.create->gtid != w.gtid) return false;
    if (!w.create && !w.new_branches.empty()) return false;
  }
  return true;
}

namespace {

std::optional<int64_t> OptInt(const std::optional<int>& v) {
  return v ? std::optional<int64_t>(*v) : std::nullopt;
}

// Inserts every create; returns the gtids actually inserted.
std::set<std::string> InsertCreates(pqxx::transaction_base& tx,
                                    const std::vector<const TxnWrite*>& creates) {
  ArrayLiteral gtid, kind, state, spec, deadline, owner, next_at, attempts, na, version, created,
      updated;
  for (const TxnWrite* w : creates) {
    const TxnRow& c = *w->create;
    const int64_t created_ms = c.created_at_ms ? c.created_at_ms : w->now_ms;
    gtid.Add(w->gtid);
    kind.Add(c.kind);
    state.Add(c.state);
    spec.Add(c.spec);
    deadline.Add(c.deadline_ms);
    owner.Add(c.owner.empty() ? w->owner : c.owner);
    next_at.Add(c.next_attempt_at_ms);
    attempts.Add(static_cast<int64_t>(c.attempts));
    na.Add(c.needs_attention);
    version.Add(c.version);
    created.Add(created_ms);
    updated.Add(c.updated_at_ms ? c.updated_at_ms : created_ms);
  }
  pqxx::result r = tx.exec_params(
      "INSERT INTO transactions (gtid, kind, state, spec, deadline_ms, owner, next_attempt_at_ms, "
      "attempts, needs_attention, version, created_at_ms, updated_at_ms) "
      "SELECT u.gtid, u.kind, u.state, u.spec, u.deadline_ms, NULLIF(u.owner, ''), u.next_at, "
      "u.attempts, u.na, u.version, COALESCE(NULLIF(u.created, 0), " +
          kNow +
          "), "
          "COALESCE(NULLIF(u.updated, 0), NULLIF(u.created, 0), " +
          kNow +
          ") "
          "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], "
          "$7::bigint[], $8::integer[], $9::boolean[], $10::bigint[], $11::bigint[], "
          "$12::bigint[]) "
          "AS u(gtid, kind, state, spec, deadline_ms, owner, next_at, attempts, na, version, "
          "created, "
          "updated) ON CONFLICT (gtid) DO NOTHING RETURNING gtid",
      gtid.str(), kind.str(), state.str(), spec.str(), deadline.str(), owner.str(), next_at.str(),
      attempts.str(), na.str(), version.str(), created.str(), updated.str());
  std::set<std::string> inserted;
  for (const auto& row : r) inserted.insert(row[0].as<std::string>());
  return inserted;
}

// Applies every fenced update; returns the gtids whose update matched.
std::set<std::string> UpdateTransactions(pqxx::transaction_base& tx,
                                         const std::vector<const TxnWrite*>& updates) {
  ArrayLiteral gtid, owner, state, na, next_at, attempts, deadline, release, now;
  for (const TxnWrite* w : updates) {
    gtid.Add(w->gtid);
    owner.Add(w->owner);
    state.Add(w->state);
    na.Add(w->needs_attention);
    next_at.Add(w->next_attempt_at_ms);
    attempts.Add(OptInt(w->attempts));
    deadline.Add(w->deadline_ms);
    release.Add(w->release_owner);
    now.Add(w->now_ms);
  }
  pqxx::result r = tx.exec_params(
      "UPDATE transactions t SET state = COALESCE(u.state, t.state), needs_attention = "
      "COALESCE(u.na, t.needs_attention), next_attempt_at_ms = COALESCE(u.next_at, "
      "t.next_attempt_at_ms), attempts = COALESCE(u.attempts, t.attempts), deadline_ms = "
      "COALESCE(u.deadline, t.deadline_ms), owner = CASE WHEN u.release THEN NULL ELSE t.owner "
      "END, version = t.version + 1, updated_at_ms = COALESCE(NULLIF(u.now, 0), " +
          kNow +
          ") "
          "FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::bigint[], "
          "$6::integer[], $7::bigint[], $8::boolean[], $9::bigint[]) "
          "AS u(gtid, owner, state, na, next_at, attempts, deadline, release, now) "
          "WHERE t.gtid = u.gtid AND t.owner = u.owner RETURNING t.gtid",
      gtid.str(), owner.str(), state.str(), na.str(), next_at.str(), attempts.str(), deadline.str(),
      release.str(), now.str());
  std::set<std::string> matched;
  for (const auto& row : r) matched.insert(row[0].as<std::string>());
  return matched;
}

}  // namespace

std::optional<std::vector<Status>> ApplySetBased(pqxx::transaction_base& tx,
                                                 const std::vector<TxnWrite>& writes) {
  std::vector<const TxnWrite*> creates, updates;
  for (const TxnWrite& w : writes) (w.create ? creates : updates).push_back(&w);
  std::set<std::string> ok;
  if (!creates.empty()) ok = InsertCreates(tx, creates);
  std::set<std::string> updated;
  if (!updates.empty()) updated = UpdateTransactions(tx, updates);
  ok.insert(updated.begin(), updated.end());

  // Why did the unmatched updates fail: gone, or owned by someone else?
  std::set<std::string> existing;
  ArrayLiteral missing;
  for (const TxnWrite* w : updates) {
    if (!ok.count(w->gtid)) missing.Add(w->gtid);
  }
  if (missing.size() > 0) {
    for (const auto& row : tx.exec_params(
             "SELECT gtid FROM transactions WHERE gtid = ANY($1::text[])", missing.str())) {
      existing.insert(row[0].as<std::string>());
    }
  }

  // Branches of the creates that went in.
  ArrayLiteral bg, bn, bi, bs, ba, be, bx, bsp, bu;
  size_t new_branches = 0;
  // Branch updates of the writes that went in, merged per branch (later wins).
  struct Merged {
    std::optional<std::string> state, last_error;
    std::optional<int> attempts;
    std::optional<int64_t> next_at;
    int64_t now = 0;
  };
  std::map<std::pair<std::string, std::string>, Merged> merged;
  ArrayLiteral eg, eb, et, ed, ea;
  for (const TxnWrite& w : writes) {
    if (!ok.count(w.gtid)) continue;
    for (const BranchRow& b : w.new_branches) {
      ++new_branches;
      bg.Add(w.gtid);
      bn.Add(b.name);
      bi.Add(static_cast<int64_t>(b.idx));
      bs.Add(b.state);
      ba.Add(static_cast<int64_t>(b.attempts));
      be.Add(b.last_error);
      bx.Add(b.next_attempt_at_ms);
      bsp.Add(b.spec);
      bu.Add(b.updated_at_ms ? b.updated_at_ms : w.now_ms);
    }
    for (const BranchUpdate& u : w.branch_updates) {
      Merged& m = merged[{w.gtid, u.name}];
      if (u.state) m.state = u.state;
      if (u.attempts) m.attempts = u.attempts;
      if (u.last_error) m.last_error = u.last_error;
      if (u.next_attempt_at_ms) m.next_at = u.next_attempt_at_ms;
      m.now = w.now_ms;
    }
    for (const EventRow& e : w.events) {
      eg.Add(w.gtid);
      eb.Add(e.branch);
      et.Add(e.type);
      ed.Add(e.detail);
      ea.Add(e.at_ms ? e.at_ms : w.now_ms);
    }
  }
  if (new_branches > 0) {
    pqxx::result r = tx.exec_params(
        "INSERT INTO branches (gtid, name, idx, state, attempts, last_error, next_attempt_at_ms, "
        "spec, updated_at_ms) SELECT u.gtid, u.name, u.idx, u.state, u.attempts, u.last_error, "
        "u.next_at, u.spec, COALESCE(NULLIF(u.updated, 0), " +
            kNow +
            ") "
            "FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::integer[], "
            "$6::text[], $7::bigint[], $8::text[], $9::bigint[]) "
            "AS u(gtid, name, idx, state, attempts, last_error, next_at, spec, updated) "
            "ON CONFLICT (gtid, name) DO NOTHING",
        bg.str(), bn.str(), bi.str(), bs.str(), ba.str(), be.str(), bx.str(), bsp.str(), bu.str());
    if (static_cast<size_t>(r.affected_rows()) != new_branches) return std::nullopt;
  }
  if (!merged.empty()) {
    ArrayLiteral ug, un, us, uatt, ue, ux, unow;
    for (const auto& [key, m] : merged) {
      ug.Add(key.first);
      un.Add(key.second);
      us.Add(m.state);
      uatt.Add(OptInt(m.attempts));
      ue.Add(m.last_error);
      ux.Add(m.next_at);
      unow.Add(m.now);
    }
    pqxx::result r = tx.exec_params(
        "UPDATE branches b SET state = COALESCE(u.state, b.state), attempts = COALESCE(u.attempts, "
        "b.attempts), last_error = COALESCE(u.last_error, b.last_error), next_attempt_at_ms = "
        "COALESCE(u.next_at, b.next_attempt_at_ms), updated_at_ms = COALESCE(NULLIF(u.now, 0), " +
            kNow +
            ") "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::text[], "
            "$6::bigint[], "
            "$7::bigint[]) AS u(gtid, name, state, attempts, last_error, next_at, now) "
            "WHERE b.gtid = u.gtid AND b.name = u.name",
        ug.str(), un.str(), us.str(), uatt.str(), ue.str(), ux.str(), unow.str());
    if (static_cast<size_t>(r.affected_rows()) != merged.size()) return std::nullopt;
  }
  if (eg.size() > 0) {
    tx.exec_params(
        "INSERT INTO events (gtid, branch, type, detail, at_ms) SELECT u.gtid, u.branch, u.type, "
        "u.detail, COALESCE(NULLIF(u.at, 0), " +
            kNow +
            ") FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS u(gtid, branch, type, "
            "detail, at, n) "
            "ORDER BY u.n",
        eg.str(), eb.str(), et.str(), ed.str(), ea.str());
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

}  // namespace treaty::pg
