// PgLogStore: reads, cluster membership, take-over and retention.
#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "common/json_input.h"
#include "store/list_cursor.h"
#include "store/pg_batch.h"
#include "store/pg_connection_pool.h"
#include "store/pg_log_store.h"
#include "store/pg_rows.h"

namespace treaty {

namespace pg {

TxnRow ReadTxn(const pqxx::row& r) {
  TxnRow t;
  t.gtid = r[0].as<std::string>();
  t.kind = r[1].as<std::string>();
  t.state = r[2].as<std::string>();
  t.spec = r[3].as<std::string>();
  t.deadline_ms = r[4].as<int64_t>();
  t.owner = r[5].as<std::string>();
  t.next_attempt_at_ms = r[6].as<int64_t>();
  t.attempts = r[7].as<int>();
  t.needs_attention = r[8].as<bool>();
  t.version = r[9].as<int64_t>();
  t.created_at_ms = r[10].as<int64_t>();
  t.updated_at_ms = r[11].as<int64_t>();
  t.paused = r[12].as<bool>();
  t.last_error = r[13].as<std::string>();
  return t;
}

Status LoadDetail(pqxx::transaction_base& tx, const std::string& gtid, bool with_events,
                  TxnDetail* out) {
  pqxx::result t =
      tx.exec_params("SELECT " + kTxnColumns + " FROM transactions WHERE gtid = $1", gtid);
  if (t.empty()) return Status::NotFound("transaction " + gtid + " not found");
  out->txn = ReadTxn(t[0]);
  for (const auto& r :
       tx.exec_params("SELECT name, idx, state, attempts, last_error, next_attempt_at_ms, spec, "
                      "updated_at_ms FROM branches WHERE gtid = $1 ORDER BY idx, name",
                      gtid)) {
    out->branches.push_back({gtid, r[0].as<std::string>(), r[1].as<int>(), r[2].as<std::string>(),
                             r[3].as<int>(), r[4].as<std::string>(), r[5].as<int64_t>(),
                             r[6].as<std::string>(), r[7].as<int64_t>()});
  }
  if (!with_events) return Status::Ok();
  for (const auto& r : tx.exec_params("SELECT id, branch, type, detail, at_ms, count, first_at_ms "
                                      "FROM events WHERE gtid = $1 ORDER BY id",
                                      gtid)) {
    EventRow e;
    e.id = r[0].as<int64_t>();
    e.gtid = gtid;
    e.branch = r[1].as<std::string>();
    e.type = r[2].as<std::string>();
    e.detail = r[3].as<std::string>();
    e.at_ms = r[4].as<int64_t>();
    e.count = r[5].as<int64_t>();
    e.first_at_ms = r[6].as<int64_t>();
    out->events.push_back(std::move(e));
  }
  return Status::Ok();
}

}  // namespace pg

using nlohmann::json;
using pg::kNow;
using pg::kUnfinished;

Result<TxnDetail> PgLogStore::GetDetail(const std::string& gtid, bool with_events) {
  return pool_->Get<TxnDetail>("get transaction", [&](pqxx::connection& c, TxnDetail* out) {
    pqxx::read_transaction tx(c);
    return pg::LoadDetail(tx, gtid, with_events, out);
  });
}

Result<TxnDetail> PgLogStore::GetTransaction(const std::string& gtid) {
  return GetDetail(gtid, true);
}

Result<TxnDetail> PgLogStore::GetTransactionNoEvents(const std::string& gtid) {
  return GetDetail(gtid, false);
}

Result<TxnPage> PgLogStore::ListTransactions(const ListFilter& f) {
  std::optional<ListCursor> cursor;
  if (!f.cursor.empty()) {
    Result<ListCursor> c = DecodeListCursor(f.cursor);
    if (!c.ok()) return c.status();
    cursor = std::move(*c);
  }
  const int limit = f.limit <= 0 ? 50 : std::min(f.limit, 1000);
  std::optional<int64_t> cursor_at;
  std::optional<std::string> cursor_gtid;
  if (cursor) {
    cursor_at = cursor->created_at_ms;
    cursor_gtid = cursor->gtid;
  }
  // gtid is COLLATE "C" (0003_write_and_list_costs): the prefix is a range of the
  // primary key. The statement is planned with its parameters' values
  // (unnamed, PQexecParams), so the filters left NULL fold away.
  std::optional<std::string> prefix_end;
  if (f.gtid_prefix) prefix_end = PrefixUpperBound(*f.gtid_prefix);
  return pool_->Get<TxnPage>("list transactions", [&](pqxx::connection& c, TxnPage* page) {
    pqxx::read_transaction tx(c);
    pqxx::result r = tx.exec_params(
        "SELECT " + pg::kTxnColumns +
            " FROM transactions WHERE ($1::text IS NULL OR state = $1) "
            "AND ($2::text IS NULL OR kind = $2) AND ($3::boolean IS NULL OR needs_attention = $3) "
            "AND ($4::text IS NULL OR (gtid >= $4 AND ($10::text IS NULL OR gtid < $10))) AND "
            "($5::bigint IS NULL OR "
            "created_at_ms < $5) AND ($6::bigint IS NULL OR (created_at_ms, gtid) < ($6, "
            "$7::text)) AND ($9::boolean IS NULL OR paused = $9) ORDER BY created_at_ms DESC, "
            "gtid DESC LIMIT $8",
        f.state, f.kind, f.needs_attention, f.gtid_prefix, f.created_before_ms, cursor_at,
        cursor_gtid, limit + 1, f.paused, prefix_end);
    for (const auto& row : r) page->items.push_back(pg::ReadTxn(row));
    if (static_cast<int>(page->items.size()) > limit) {
      page->items.pop_back();
      page->next = EncodeListCursor({page->items.back().created_at_ms, page->items.back().gtid});
    }
    return Status::Ok();
  });
}

Result<std::vector<StateCount>> PgLogStore::CountByState() {
  return pool_->Get<std::vector<StateCount>>("count by state", [&](pqxx::connection& c,
                                                                   std::vector<StateCount>* out) {
    pqxx::read_transaction tx(c);
    for (const auto& r :
         tx.exec("SELECT kind, state, needs_attention, COUNT(*) FROM transactions GROUP BY kind, "
                 "state, needs_attention ORDER BY kind, state, needs_attention")) {
      out->push_back(
          {r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<bool>(), r[3].as<int64_t>()});
    }
    return Status::Ok();
  });
}

Status PgLogStore::RegisterCoordinator(const CoordinatorRow& row) {
  return pool_->Run("register coordinator", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    pqxx::result r = tx.exec_params(
        "INSERT INTO coordinators (id, node_name, http_addr, thrift_addr, state, started_at_ms, "
        "heartbeat_at_ms) VALUES ($1, $2, $3, $4, 'alive', " +
            kNow + ", " + kNow + ") ON CONFLICT (id) DO NOTHING",
        row.id, row.node_name, row.http_addr, row.thrift_addr);
    if (r.affected_rows() == 0)
      return Status::Conflict("coordinator " + row.id + " already registered");
    tx.commit();
    return Status::Ok();
  });
}

Status PgLogStore::Heartbeat(const std::string& id) { return SetCoordinatorState(id, ""); }

Status PgLogStore::SetCoordinatorState(const std::string& id, const std::string& state) {
  if (!state.empty() && state != "alive" && state != "draining") {
    return Status::InvalidArgument("coordinator state must be alive or draining: " + state);
  }
  return pool_->Run("heartbeat", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    // An empty state is a plain heartbeat.
    pqxx::result r = tx.exec_params("UPDATE coordinators SET heartbeat_at_ms = " + kNow +
                                        ", state = COALESCE(NULLIF($2, ''), state) WHERE id = $1 "
                                        "AND state <> 'dead'",
                                    id, state);
    if (r.affected_rows() == 0)
      return Status::LostOwnership("coordinator " + id + " is dead or unknown");
    tx.commit();
    return Status::Ok();
  });
}

Result<std::vector<std::string>> PgLogStore::MarkExpiredCoordinators(int64_t lease_ms) {
  return pool_->Get<std::vector<std::string>>(
      "mark expired", [&](pqxx::connection& c, std::vector<std::string>* ids) {
        pqxx::work tx(c);
        for (const auto& r : tx.exec_params(
                 "UPDATE coordinators SET state = 'dead' WHERE state IN ('alive', 'draining') AND "
                 "heartbeat_at_ms < " +
                     kNow + " - $1 RETURNING id",
                 lease_ms)) {
          ids->push_back(r[0].as<std::string>());
        }
        tx.commit();
        return Status::Ok();
      });
}

Result<std::vector<CoordinatorRow>> PgLogStore::ListCoordinators() {
  return pool_->Get<std::vector<CoordinatorRow>>(
      "list coordinators", [&](pqxx::connection& c, std::vector<CoordinatorRow>* out) {
        pqxx::read_transaction tx(c);
        for (const auto& r : tx.exec(
                 "SELECT c.id, c.node_name, c.http_addr, c.thrift_addr, c.state, c.started_at_ms, "
                 "c.heartbeat_at_ms, " +
                 kNow +
                 " - c.heartbeat_at_ms, (SELECT COUNT(*) FROM "
                 "transactions t WHERE t.owner = c.id AND t." +
                 kUnfinished +
                 ") FROM "
                 "coordinators c ORDER BY c.started_at_ms, c.id")) {
          out->push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                          r[3].as<std::string>(), r[4].as<std::string>(), r[5].as<int64_t>(),
                          r[6].as<int64_t>(), r[7].as<int64_t>(), r[8].as<int64_t>()});
        }
        return Status::Ok();
      });
}

Status PgLogStore::DeleteCoordinator(const std::string& id) {
  return pool_->Run("delete coordinator", [&](pqxx::connection& c) {
    pqxx::work tx(c);
    if (tx.exec_params("DELETE FROM coordinators WHERE id = $1", id).affected_rows() == 0) {
      return Status::NotFound("coordinator " + id + " not found");
    }
    tx.commit();
    return Status::Ok();
  });
}

namespace {

// A WITH clause naming `orphan(owner, oldest)`: the owners whose unfinished
// transactions are orphans (a coordinator that is dead or whose row is gone;
// "" stands for no owner), each with its oldest unfinished transaction's
// creation time (NULL when it has none). The distinct owners are found by a
// loose scan of transactions_owner_unfinished (one index descent per owner),
// so the cost follows the number of owners, never the number of
// transactions.
std::string OrphanOwnersWith() {
  const std::string unfinished = "t." + kUnfinished;
  return "WITH RECURSIVE o(owner) AS ((SELECT t.owner FROM transactions t WHERE " + unfinished +
         " AND t.owner IS NOT NULL ORDER BY t.owner LIMIT 1) UNION ALL SELECT (SELECT t.owner FROM "
         "transactions t WHERE " +
         unfinished +
         " AND t.owner > o.owner ORDER BY t.owner LIMIT 1) FROM o WHERE o.owner IS NOT NULL), "
         "orphan AS (SELECT o.owner, (SELECT min(t.created_at_ms) FROM transactions t WHERE "
         "t.owner = o.owner AND " +
         unfinished +
         ") AS oldest FROM o WHERE o.owner IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
         "coordinators c WHERE c.id = o.owner AND c.state <> 'dead') UNION ALL SELECT '', "
         "(SELECT min(t.created_at_ms) FROM transactions t WHERE t.owner IS NULL AND " +
         unfinished + ")) ";
}

// The orphans' owners (OrphanOwnersWith), the owner of the oldest orphan
// first.
std::vector<std::string> OrphanOwners(pqxx::transaction_base& tx) {
  pqxx::result r =
      tx.exec(OrphanOwnersWith() +
              "SELECT owner FROM orphan WHERE oldest IS NOT NULL ORDER BY oldest, owner");
  std::vector<std::string> owners;
  for (const auto& row : r) owners.push_back(row[0].as<std::string>());
  return owners;
}

}  // namespace

Result<std::vector<TxnDetail>> PgLogStore::ClaimOrphans(const std::string& new_owner, int limit) {
  return pool_->Get<std::vector<TxnDetail>>("claim orphans", [&](pqxx::connection& c,
                                                                 std::vector<TxnDetail>* out) {
    pg::WriteTransaction claim(c);  // with index joins: the branches below are found by gtid
    pqxx::transaction_base& tx = claim.tx();
    // Owner by owner (oldest orphan first), each owner's oldest first, along
    // transactions_owner_unfinished: a claim reads about the rows it takes,
    // however many a take-over has claimed before (the rows claimed already
    // have another owner and are out of the range). Rows a peer is claiming
    // right now are locked and skipped, so concurrent claimers get disjoint
    // sets; a row a peer took meanwhile no longer matches its old owner.
    json gtids = json::array();
    for (const std::string& owner : OrphanOwners(tx)) {
      const int want = std::max(limit, 0) - static_cast<int>(out->size());
      if (want <= 0) break;
      const std::string claim =
          "UPDATE transactions SET owner = $1, version = version + 1, updated_at_ms = " + kNow +
          " WHERE gtid IN (SELECT t.gtid FROM transactions t WHERE " +
          (owner.empty() ? "t.owner IS NULL" : "t.owner = $3") + " AND t." + kUnfinished +
          " ORDER BY t.created_at_ms LIMIT $2 FOR UPDATE OF t SKIP LOCKED) RETURNING " +
          pg::kTxnColumns;
      pqxx::result r = owner.empty() ? tx.exec_params(claim, new_owner, want)
                                     : tx.exec_params(claim, new_owner, want, owner);
      for (const auto& row : r) {
        TxnDetail d;
        d.txn = pg::ReadTxn(row);
        gtids.push_back(d.txn.gtid);
        out->push_back(std::move(d));
      }
    }
    if (!out->empty()) {
      // Their branches in one statement (not two per transaction).
      std::map<std::string, TxnDetail*> by_gtid;
      for (TxnDetail& d : *out) by_gtid[d.txn.gtid] = &d;
      for (const auto& r : tx.exec_params(
               "SELECT b.gtid, b.name, b.idx, b.state, b.attempts, b.last_error, "
               "b.next_attempt_at_ms, b.spec, b.updated_at_ms FROM branches b WHERE b.gtid IN "
               "(SELECT json_array_elements_text($1::json)) ORDER BY b.gtid, b.idx, b.name",
               DumpJson(gtids))) {
        const std::string gtid = r[0].as<std::string>();
        by_gtid.at(gtid)->branches.push_back({gtid, r[1].as<std::string>(), r[2].as<int>(),
                                              r[3].as<std::string>(), r[4].as<int>(),
                                              r[5].as<std::string>(), r[6].as<int64_t>(),
                                              r[7].as<std::string>(), r[8].as<int64_t>()});
      }
    }
    claim.Commit();
    std::sort(out->begin(), out->end(), [](const TxnDetail& a, const TxnDetail& b) {
      return std::tie(a.txn.created_at_ms, a.txn.gtid) < std::tie(b.txn.created_at_ms, b.txn.gtid);
    });
    return Status::Ok();
  });
}

Result<OrphanCensus> PgLogStore::CountOrphans(int64_t heartbeat_within_ms) {
  return pool_->Get<OrphanCensus>("count orphans", [&](pqxx::connection& c, OrphanCensus* out) {
    pqxx::read_transaction tx(c);
    // One statement, so one snapshot; each owner's orphans are counted along
    // the owner index, as ClaimOrphans takes them.
    const pqxx::row r = tx.exec_params1(
        OrphanOwnersWith() +
            "SELECT COALESCE((SELECT sum((SELECT count(*) FROM transactions t WHERE t.owner = "
            "x.owner AND t." +
            kUnfinished +
            ")) FROM orphan x WHERE x.owner <> ''), 0)::bigint + (SELECT count(*) FROM "
            "transactions t WHERE t.owner IS NULL AND t." +
            kUnfinished +
            "), (SELECT count(*) FROM coordinators WHERE state = 'alive' AND heartbeat_at_ms >= " +
            kNow + " - $1)",
        heartbeat_within_ms);
    out->orphans = r[0].as<int64_t>();
    out->live_coordinators = r[1].as<int64_t>();
    return Status::Ok();
  });
}

Result<int64_t> PgLogStore::ReleaseOwned(const std::string& owner) {
  return pool_->Get<int64_t>("release owned", [&](pqxx::connection& c, int64_t* n) {
    pqxx::work tx(c);
    *n = tx.exec_params(
               "UPDATE transactions SET owner = NULL, version = version + 1, "
               "updated_at_ms = " +
                   kNow + " WHERE owner = $1 AND " + kUnfinished,
               owner)
             .affected_rows();
    tx.commit();
    return Status::Ok();
  });
}

Result<int64_t> PgLogStore::PurgeFinished(int64_t before_ms, int limit) {
  return pool_->Get<int64_t>("purge finished", [&](pqxx::connection& c, int64_t* n) {
    pqxx::work tx(c);
    std::vector<std::string> gtids;
    for (const auto& r : tx.exec_params(
             "DELETE FROM transactions WHERE gtid IN (SELECT gtid FROM transactions WHERE state "
             "IN ('COMMITTED', 'ABORTED') AND updated_at_ms < $1 ORDER BY updated_at_ms LIMIT $2 "
             "FOR UPDATE SKIP LOCKED) RETURNING gtid",
             before_ms, std::max(limit, 0))) {
      gtids.push_back(r[0].as<std::string>());
    }
    if (!gtids.empty()) {
      pg::PreferIndexJoins(tx);  // found by gtid, not by scanning branches and events
      const std::string list = DumpJson(nlohmann::json(gtids));  // bound, not spliced
      tx.exec_params(
          "DELETE FROM branches WHERE gtid IN (SELECT json_array_elements_text($1::json))", list);
      tx.exec_params("DELETE FROM events WHERE gtid IN (SELECT json_array_elements_text($1::json))",
                     list);
    }
    tx.commit();
    *n = static_cast<int64_t>(gtids.size());
    return Status::Ok();
  });
}

}  // namespace treaty
