#include "engine/txn_queries.h"

#include "common/exception_guard.h"

namespace treaty {
namespace {

// Runs the store call `read`; a store that throws (a bug: LogStore promises
// Status results) is logged once and answered Internal naming `what`, so
// the caller still gets its one answer.
template <typename Fn>
auto Guarded(const char* what, Fn read) -> decltype(read()) {
  try {
    return read();
  } catch (...) {
    LogCurrentException(what);
    return Status::Internal(std::string(what) + " failed: " + CurrentExceptionMessage());
  }
}

}  // namespace

void TxnQueries::Get(const std::string& gtid, bool with_events, Callback<TxnDetail> done) {
  blocking_->Post([this, gtid, with_events, done = std::move(done)] {
    done(Guarded("reading a transaction", [&] {
      return with_events ? store_->GetTransaction(gtid) : store_->GetTransactionNoEvents(gtid);
    }));
  });
}

void TxnQueries::List(const ListFilter& filter, Callback<TxnPage> done) {
  blocking_->Post([this, filter, done = std::move(done)] {
    done(Guarded("listing transactions", [&] { return store_->ListTransactions(filter); }));
  });
}

void TxnQueries::CountByState(Callback<std::vector<StateCount>> done) {
  blocking_->Post([this, done = std::move(done)] {
    done(Guarded("counting transactions", [&] { return store_->CountByState(); }));
  });
}

void TxnQueries::Coordinators(Callback<std::vector<CoordinatorRow>> done) {
  blocking_->Post([this, done = std::move(done)] {
    done(Guarded("listing coordinators", [&] { return store_->ListCoordinators(); }));
  });
}

void TxnQueries::CheckReady(std::function<void(Status)> done) {
  blocking_->Post([this, done = std::move(done)] {
    done(Guarded("checking the log", [&] { return store_->CheckReady(); }));
  });
}

}  // namespace treaty
