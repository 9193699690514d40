#include "engine/txn_queries.h"

namespace treaty {

void TxnQueries::Get(const std::string& gtid, bool with_events, Callback<TxnDetail> done) {
  blocking_->Post([this, gtid, with_events, done = std::move(done)] {
    done(with_events ? store_->GetTransaction(gtid) : store_->GetTransactionNoEvents(gtid));
  });
}

void TxnQueries::List(const ListFilter& filter, Callback<TxnPage> done) {
  blocking_->Post(
      [this, filter, done = std::move(done)] { done(store_->ListTransactions(filter)); });
}

void TxnQueries::CountByState(Callback<std::vector<StateCount>> done) {
  blocking_->Post([this, done = std::move(done)] { done(store_->CountByState()); });
}

void TxnQueries::Coordinators(Callback<std::vector<CoordinatorRow>> done) {
  blocking_->Post([this, done = std::move(done)] { done(store_->ListCoordinators()); });
}

void TxnQueries::CheckReady(std::function<void(Status)> done) {
  blocking_->Post([this, done = std::move(done)] { done(store_->CheckReady()); });
}

}  // namespace treaty
