#pragma once

// PgParticipant: a real 2PC participant (docs/2pc.md, "What participants
// receive") backed by PostgreSQL prepared transactions, for end-to-end tests.
//
// Serves POST /<branch>/<op> on 127.0.0.1:<free port>. Each call debits
// `amount` from the account named in the body's payload
// {"account": "...", "amount": N}; a balance may not go below zero.
//   prepare   BEGIN; record the branch in treaty_barrier; debit;
//             PREPARE TRANSACTION '<gtid>:<branch>'. 200 = yes; 409 = no
//             (insufficient funds, unknown account, or the branch was
//             aborted before this prepare arrived); 200 again for a repeated
//             prepare of a branch still prepared.
//   commit    COMMIT PREPARED. A redelivery after the commit answers 200
//             (the barrier row proves it). Nothing prepared and nothing
//             committed: 409 (kStrict), or 200 (kNaive, a participant that
//             says OK to a commit it cannot prove: the failing input of a
//             coordinator that skips the prepare).
//   commit with "one_phase": true in the body (kStrict only; kNaive knows
//             nothing of one-phase and treats it as a plain commit): debit in
//             one local transaction. 200 = committed (also for a
//             redelivery), 409 = no.
//   abort     ROLLBACK PREPARED; nothing prepared: records the abort so a
//             late prepare of the same branch votes no, and answers 200.
//             Abort after a commit: 409.
// Database errors other than those (lock timeouts, a concurrent COMMIT
// PREPARED of the same gid) answer 503, so the coordinator retries.
//
// Scripting: Hold(branch, op) makes calls of that pair wait, before any
// database work, until Release(branch, op); FailWith(branch, op, status)
// answers `status` without any database work until FailWith(..., 0).
// Every call is recorded with the status it got.
//
// The work runs on one thread per call (the HTTP handler must not block);
// each call opens its own database connection. Thread-safe: every method may
// be called from any thread while calls arrive. The destructor releases
// every hold, waits for the calls in progress and stops the server.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "http/http_server.h"
#include "treaty/status.h"

namespace treaty::testing {

class PgParticipant {
 public:
  enum class Mode { kStrict, kNaive };

  struct Call {
    std::string gtid, branch, op;
    bool one_phase = false;  // body "one_phase": true
    int status = 0;          // 0 while the call is still being worked on
    std::string answer;      // the response body
  };

  // `db_uri`: a PostgreSQL database this participant owns (its tables are
  // created by Start()); the server needs max_prepared_transactions > 0.
  PgParticipant(std::string db_uri, Mode mode);
  ~PgParticipant();
  PgParticipant(const PgParticipant&) = delete;
  PgParticipant& operator=(const PgParticipant&) = delete;

  // Creates the tables (accounts, treaty_barrier) and starts listening.
  [[nodiscard]] Status Start();
  // "http://127.0.0.1:PORT/<branch>/<op>"
  std::string Url(const std::string& branch, const std::string& op) const;

  // Creates or overwrites an account's balance.
  [[nodiscard]] Status SetBalance(const std::string& account, int64_t balance);
  [[nodiscard]] Result<int64_t> Balance(const std::string& account) const;
  // gids of this database's prepared transactions (pg_prepared_xacts).
  [[nodiscard]] Result<std::vector<std::string>> PreparedGids() const;

  void Hold(const std::string& branch, const std::string& op);
  void Release(const std::string& branch, const std::string& op);
  void FailWith(const std::string& branch, const std::string& op, int status);

  std::vector<Call> Calls() const;  // in arrival order
  // Calls of (gtid, branch, op), answered or not.
  int CallCount(const std::string& gtid, const std::string& branch, const std::string& op) const;
  // Blocks until `pred(Calls())` holds or `timeout` passes; returns whether it held.
  bool WaitFor(const std::function<bool(const std::vector<Call>&)>& pred,
               std::chrono::milliseconds timeout);

 private:
  using Pair = std::pair<std::string, std::string>;  // branch, op
  void Handle(HttpRequest req, HttpResponder respond);
  // The database work of one call: {status, body}. Never throws.
  std::pair<int, std::string> Work(const Call& call, const std::string& account, int64_t amount);

  const std::string db_uri_;
  const Mode mode_;
  boost::asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  std::vector<std::thread> io_threads_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;             // guarded by mu_
  std::set<Pair> holds_;              // guarded by mu_
  std::map<Pair, int> failures_;      // guarded by mu_
  std::vector<Call> calls_;           // guarded by mu_
  std::vector<std::thread> workers_;  // guarded by mu_
};

}  // namespace treaty::testing
