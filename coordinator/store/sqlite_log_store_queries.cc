// SqliteLogStore: reads, cluster membership, take-over and retention.
#include <algorithm>

#include "store/list_cursor.h"
#include "store/sqlite_log_store.h"

namespace treaty {

namespace {

std::string Now() { return SqliteLogStore::kNowSql; }
std::string Cols() { return SqliteLogStore::kTxnColumns; }
constexpr const char* kUnfinished = "state NOT IN ('COMMITTED', 'ABORTED')";
// An orphan, `t` an unfinished transaction: no owner, or one that is dead
// or whose row is gone. What ClaimOrphans takes and CountOrphans counts.
constexpr const char* kOrphanedT =
    "(t.owner IS NULL OR NOT EXISTS (SELECT 1 FROM coordinators c WHERE c.id = t.owner AND "
    "c.state <> 'dead'))";

}  // namespace

Status SqliteLogStore::LoadDetail(const std::string& gtid, bool with_events, TxnDetail* out) {
  Status s;
  {
    auto st = Prepare("SELECT " + Cols() + " FROM transactions WHERE gtid = ?1", &s);
    if (!st) return s;
    Result<bool> row = st->Bind(1, gtid).Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::NotFound("transaction " + gtid + " not found");
    out->txn = ReadTxn(*st);
  }
  auto st = Prepare(
      "SELECT name, idx, state, attempts, last_error, next_attempt_at_ms, spec, updated_at_ms "
      "FROM branches WHERE gtid = ?1 ORDER BY idx, name",
      &s);
  if (!st) return s;
  st->Bind(1, gtid);
  for (Result<bool> row = st->Step();; row = st->Step()) {
    if (!row.ok()) return row.status();
    if (!*row) break;
    BranchRow b{gtid,
                st->Text(0),
                static_cast<int>(st->Int(1)),
                st->Text(2),
                static_cast<int>(st->Int(3)),
                st->Text(4),
                st->Int(5),
                st->Text(6),
                st->Int(7)};
    out->branches.push_back(std::move(b));
  }
  if (!with_events) return Status::Ok();
  auto ev = Prepare(
      "SELECT id, branch, type, detail, at_ms, count, first_at_ms FROM events WHERE gtid = ?1 "
      "ORDER BY id",
      &s);
  if (!ev) return s;
  ev->Bind(1, gtid);
  for (Result<bool> row = ev->Step();; row = ev->Step()) {
    if (!row.ok()) return row.status();
    if (!*row) break;
    EventRow e;
    e.id = ev->Int(0);
    e.gtid = gtid;
    e.branch = ev->Text(1);
    e.type = ev->Text(2);
    e.detail = ev->Text(3);
    e.at_ms = ev->Int(4);
    e.count = ev->Int(5);
    e.first_at_ms = ev->Int(6);
    out->events.push_back(std::move(e));
  }
  return Status::Ok();
}

Result<TxnDetail> SqliteLogStore::GetDetail(const std::string& gtid, bool with_events) {
  CallScope lock(&mu_);
  TxnDetail detail;
  if (Status s = LoadDetail(gtid, with_events, &detail); !s.ok()) return s;
  return detail;
}

Result<TxnDetail> SqliteLogStore::GetTransaction(const std::string& gtid) {
  return GetDetail(gtid, true);
}

Result<TxnDetail> SqliteLogStore::GetTransactionNoEvents(const std::string& gtid) {
  return GetDetail(gtid, false);
}

Result<TxnPage> SqliteLogStore::ListTransactions(const ListFilter& f) {
  std::optional<ListCursor> cursor;
  if (!f.cursor.empty()) {
    Result<ListCursor> c = DecodeListCursor(f.cursor);
    if (!c.ok()) return c.status();
    cursor = std::move(*c);
  }
  const int64_t limit = f.limit <= 0 ? 50 : std::min(f.limit, 1000);
  CallScope lock(&mu_);
  Status s;
  // The gtid prefix is a range of the primary key (byte order), written only
  // when asked for: SQLite plans `?4 IS NULL OR ...` without the value and
  // would scan the whole table.
  std::optional<std::string> prefix_end;
  std::string prefix_range;
  if (f.gtid_prefix) {
    prefix_end = PrefixUpperBound(*f.gtid_prefix);
    prefix_range = prefix_end ? " AND gtid >= ?4 AND gtid < ?10" : " AND gtid >= ?4";
  }
  auto st = Prepare("SELECT " + Cols() +
                        " FROM transactions WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL "
                        "OR kind = ?2) AND (?3 IS NULL OR needs_attention = ?3)" +
                        prefix_range +
                        " AND (?5 IS NULL OR created_at_ms < ?5) AND (?6 IS NULL OR "
                        "created_at_ms < ?6 OR (created_at_ms = ?6 AND gtid < ?7)) AND (?9 IS "
                        "NULL OR paused = ?9) ORDER BY created_at_ms DESC, gtid DESC LIMIT ?8",
                    &s);
  if (!st) return s;
  st->Bind(1, f.state).Bind(2, f.kind);
  st->Bind(3, f.needs_attention ? std::optional<int64_t>(*f.needs_attention) : std::nullopt);
  st->Bind(4, f.gtid_prefix).Bind(5, f.created_before_ms);
  if (cursor) st->Bind(6, cursor->created_at_ms).Bind(7, cursor->gtid);
  st->Bind(8, limit + 1);
  st->Bind(9, f.paused ? std::optional<int64_t>(*f.paused) : std::nullopt);
  if (prefix_end) st->Bind(10, *prefix_end);
  TxnPage page;
  for (Result<bool> row = st->Step();; row = st->Step()) {
    if (!row.ok()) return row.status();
    if (!*row) break;
    page.items.push_back(ReadTxn(*st));
  }
  if (static_cast<int64_t>(page.items.size()) > limit) {
    page.items.pop_back();
    page.next = EncodeListCursor({page.items.back().created_at_ms, page.items.back().gtid});
  }
  return page;
}

Result<std::vector<StateCount>> SqliteLogStore::CountByState() {
  CallScope lock(&mu_);
  Status s;
  auto st = Prepare(
      "SELECT kind, state, needs_attention, COUNT(*) FROM transactions GROUP BY kind, state, "
      "needs_attention ORDER BY kind, state, needs_attention",
      &s);
  if (!st) return s;
  std::vector<StateCount> out;
  for (Result<bool> row = st->Step();; row = st->Step()) {
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({st->Text(0), st->Text(1), st->Int(2) != 0, st->Int(3)});
  }
  return out;
}

Status SqliteLogStore::RegisterCoordinator(const CoordinatorRow& row) {
  CallScope lock(&mu_);
  Status s;
  auto st = Prepare(
      "INSERT INTO coordinators (id, node_name, http_addr, thrift_addr, state, started_at_ms, "
      "heartbeat_at_ms) VALUES (?1, ?2, ?3, ?4, 'alive', " +
          Now() + ", " + Now() + ")",
      &s);
  if (!st) return s;
  st->Bind(1, row.id).Bind(2, row.node_name).Bind(3, row.http_addr).Bind(4, row.thrift_addr);
  Result<int64_t> n = st->Run();
  if (!n.ok() && n.status().code() == StatusCode::kConflict) {
    return Status::Conflict("coordinator " + row.id + " already registered");
  }
  return n.status();
}

Status SqliteLogStore::Heartbeat(const std::string& id) { return SetCoordinatorState(id, ""); }

Status SqliteLogStore::SetCoordinatorState(const std::string& id, const std::string& state) {
  if (!state.empty() && state != "alive" && state != "draining") {
    return Status::InvalidArgument("coordinator state must be alive or draining: " + state);
  }
  CallScope lock(&mu_);
  Status s;
  // An empty state is a heartbeat.
  auto st =
      Prepare("UPDATE coordinators SET heartbeat_at_ms = " + Now() +
                  ", state = COALESCE(NULLIF(?2, ''), state) WHERE id = ?1 AND state <> 'dead'",
              &s);
  if (!st) return s;
  Result<int64_t> n = st->Bind(1, id).Bind(2, state).Run();
  if (!n.ok()) return n.status();
  if (*n == 0) return Status::LostOwnership("coordinator " + id + " is dead or unknown");
  return Status::Ok();
}

Result<std::vector<std::string>> SqliteLogStore::MarkExpiredCoordinators(int64_t lease_ms) {
  CallScope lock(&mu_);
  Status s;
  auto st = Prepare(
      "UPDATE coordinators SET state = 'dead' WHERE state IN ('alive', 'draining') "
      "AND heartbeat_at_ms < " +
          Now() + " - ?1 RETURNING id",
      &s);
  if (!st) return s;
  st->Bind(1, lease_ms);
  std::vector<std::string> ids;
  for (Result<bool> row = st->Step();; row = st->Step()) {
    if (!row.ok()) return row.status();
    if (!*row) break;
    ids.push_back(st->Text(0));
  }
  return ids;
}

Result<std::vector<CoordinatorRow>> SqliteLogStore::ListCoordinators() {
  CallScope lock(&mu_);
  Status s;
  auto st = Prepare(
      "SELECT c.id, c.node_name, c.http_addr, c.thrift_addr, c.state, c.started_at_ms, "
      "c.heartbeat_at_ms, " +
          Now() +
          " - c.heartbeat_at_ms, (SELECT COUNT(*) FROM transactions t "
          "WHERE t.owner = c.id AND t." +
          kUnfinished +
          ") FROM coordinators c ORDER BY "
          "c.started_at_ms, c.id",
      &s);
  if (!st) return s;
  std::vector<CoordinatorRow> out;
  for (Result<bool> row = st->Step();; row = st->Step()) {
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({st->Text(0), st->Text(1), st->Text(2), st->Text(3), st->Text(4), st->Int(5),
                   st->Int(6), st->Int(7), st->Int(8)});
  }
  return out;
}

Status SqliteLogStore::DeleteCoordinator(const std::string& id) {
  CallScope lock(&mu_);
  Status s;
  auto st = Prepare("DELETE FROM coordinators WHERE id = ?1", &s);
  if (!st) return s;
  Result<int64_t> n = st->Bind(1, id).Run();
  if (!n.ok()) return n.status();
  if (*n == 0) return Status::NotFound("coordinator " + id + " not found");
  return Status::Ok();
}

Result<std::vector<TxnDetail>> SqliteLogStore::ClaimOrphans(const std::string& new_owner,
                                                            int limit) {
  CallScope lock(&mu_);
  std::vector<TxnDetail> claimed;
  Status s = InTransaction([&]() TREATY_REQUIRES(mu_) -> Status {
    Status ps;
    auto st = Prepare(
        "UPDATE transactions SET owner = ?1, version = version + 1, updated_at_ms = " + Now() +
            " WHERE gtid IN (SELECT t.gtid FROM transactions t WHERE t." + kUnfinished + " AND " +
            kOrphanedT +
            " ORDER BY t.created_at_ms, t.gtid LIMIT ?2) "
            "RETURNING gtid",
        &ps);
    if (!st) return ps;
    st->Bind(1, new_owner).Bind(2, int64_t{std::max(limit, 0)});
    std::vector<std::string> gtids;
    for (Result<bool> row = st->Step();; row = st->Step()) {
      if (!row.ok()) return row.status();
      if (!*row) break;
      gtids.push_back(st->Text(0));
    }
    st.reset();
    for (const std::string& gtid : gtids) {
      TxnDetail d;
      if (Status ls = LoadDetail(gtid, false, &d); !ls.ok()) return ls;
      claimed.push_back(std::move(d));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return claimed;
}

Result<OrphanCensus> SqliteLogStore::CountOrphans(int64_t heartbeat_within_ms) {
  CallScope lock(&mu_);
  Status s;
  // One statement, so one snapshot; the orphans as ClaimOrphans picks them.
  auto st = Prepare(std::string("SELECT (SELECT COUNT(*) FROM transactions t WHERE t.") +
                        kUnfinished + " AND " + kOrphanedT +
                        "), (SELECT COUNT(*) FROM "
                        "coordinators WHERE state = 'alive' AND heartbeat_at_ms >= " +
                        Now() + " - ?1)",
                    &s);
  if (!st) return s;
  st->Bind(1, heartbeat_within_ms);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::Internal("count orphans: no row");
  return OrphanCensus{st->Int(0), st->Int(1)};
}

Result<int64_t> SqliteLogStore::ReleaseOwned(const std::string& owner) {
  CallScope lock(&mu_);
  Status s;
  auto st = Prepare(
      "UPDATE transactions SET owner = NULL, version = version + 1, updated_at_ms = " + Now() +
          " WHERE owner = ?1 AND " + kUnfinished,
      &s);
  if (!st) return s;
  return st->Bind(1, owner).Run();
}

Result<int64_t> SqliteLogStore::PurgeFinished(int64_t before_ms, int limit) {
  CallScope lock(&mu_);
  int64_t purged = 0;
  Status s = InTransaction([&]() TREATY_REQUIRES(mu_) -> Status {
    Status ps;
    // INDEXED BY: without statistics SQLite would pick the state index, read
    // every finished row (young ones too) and sort them, on every batch; the
    // partial index of finished rows by age reads only the batch.
    auto st = Prepare(
        "DELETE FROM transactions WHERE gtid IN (SELECT gtid FROM transactions "
        "INDEXED BY transactions_finished_updated "
        "WHERE state IN ('COMMITTED', 'ABORTED') AND updated_at_ms < ?1 ORDER BY "
        "updated_at_ms LIMIT ?2) RETURNING gtid",
        &ps);
    if (!st) return ps;
    st->Bind(1, before_ms).Bind(2, int64_t{std::max(limit, 0)});
    std::vector<std::string> gtids;
    for (Result<bool> row = st->Step();; row = st->Step()) {
      if (!row.ok()) return row.status();
      if (!*row) break;
      gtids.push_back(st->Text(0));
    }
    st.reset();
    for (const std::string& gtid : gtids) {
      for (const char* sql :
           {"DELETE FROM branches WHERE gtid = ?1", "DELETE FROM events WHERE gtid = ?1"}) {
        auto del = Prepare(sql, &ps);
        if (!del) return ps;
        if (Result<int64_t> n = del->Bind(1, gtid).Run(); !n.ok()) return n.status();
      }
    }
    purged = static_cast<int64_t>(gtids.size());
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return purged;
}

}  // namespace treaty
