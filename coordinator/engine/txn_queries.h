#pragma once

// TxnQueries: every read of transactions and of the cluster that a front end
// answers (REST, Thrift, the ops routes, the dashboard) goes through here, so
// all of them see the same rows the same way. Reads come straight from the
// log (any coordinator answers for any transaction, owned here or by a peer).
//
// Threading: every method is thread-safe, never blocks the caller, and
// answers `done` on the blocking runner (a pool), where the store call ran.
// Errors are the store's: NotFound (unknown gtid), Unavailable (log
// unreachable), InvalidArgument (a filter the store refuses, e.g. a cursor
// that does not decode), and Internal naming the read when the store threw
// (a bug; logged once), so `done` is always called exactly once.

#include <functional>
#include <string>
#include <vector>

#include "common/task_runner.h"
#include "store/log_store.h"
#include "treaty/status.h"

namespace treaty {

class TxnQueries {
 public:
  template <typename T>
  using Callback = std::function<void(Result<T>)>;

  // `store` and `blocking` must outlive this object.
  TxnQueries(LogStore* store, TaskRunner* blocking) : store_(store), blocking_(blocking) {}

  // One transaction with its branches; with its history when `with_events`.
  void Get(const std::string& gtid, bool with_events, Callback<TxnDetail> done);
  // One page of transactions (store/list_cursor.h for the cursor).
  void List(const ListFilter& filter, Callback<TxnPage> done);
  // How many transactions are in each (kind, state, needs_attention).
  void CountByState(Callback<std::vector<StateCount>> done);
  // The coordinators registered in the log, alive or not.
  void Coordinators(Callback<std::vector<CoordinatorRow>> done);
  // OK when the log is reachable and at the newest schema (LogStore::CheckReady).
  void CheckReady(std::function<void(Status)> done);

 private:
  LogStore* store_;
  TaskRunner* blocking_;
};

}  // namespace treaty
