#pragma once

// ForwardingLogStore: a LogStore that hands every call to another one, for
// tests that inject faults into a real store. Subclasses override what they
// break (usually ApplyStorable, which here forwards to the inner store's
// ApplyBatch) and inherit the rest. Thread-safety: that of `inner`.

#include <string>
#include <vector>

#include "store/log_store.h"

namespace treaty::testing {

class ForwardingLogStore : public LogStore {
 public:
  // `inner` is not owned and must outlive this store.
  explicit ForwardingLogStore(LogStore* inner) : inner_(inner) {}

  std::string Engine() const override { return inner_->Engine(); }
  Status Migrate() override { return inner_->Migrate(); }
  Status CheckReady() override { return inner_->CheckReady(); }
  Result<TxnDetail> GetTransaction(const std::string& g) override {
    return inner_->GetTransaction(g);
  }
  Result<TxnDetail> GetTransactionNoEvents(const std::string& g) override {
    return inner_->GetTransactionNoEvents(g);
  }
  Result<TxnPage> ListTransactions(const ListFilter& f) override {
    return inner_->ListTransactions(f);
  }
  Result<std::vector<StateCount>> CountByState() override { return inner_->CountByState(); }
  Status RegisterCoordinator(const CoordinatorRow& r) override {
    return inner_->RegisterCoordinator(r);
  }
  Status Heartbeat(const std::string& id) override { return inner_->Heartbeat(id); }
  Status SetCoordinatorState(const std::string& id, const std::string& s) override {
    return inner_->SetCoordinatorState(id, s);
  }
  Result<std::vector<std::string>> MarkExpiredCoordinators(int64_t l) override {
    return inner_->MarkExpiredCoordinators(l);
  }
  Result<std::vector<CoordinatorRow>> ListCoordinators() override {
    return inner_->ListCoordinators();
  }
  Status DeleteCoordinator(const std::string& id) override { return inner_->DeleteCoordinator(id); }
  Result<std::vector<TxnDetail>> ClaimOrphans(const std::string& o, int l) override {
    return inner_->ClaimOrphans(o, l);
  }
  Result<OrphanCensus> CountOrphans(int64_t w) override { return inner_->CountOrphans(w); }
  Result<int64_t> ReleaseOwned(const std::string& o) override { return inner_->ReleaseOwned(o); }
  Result<int64_t> PurgeFinished(int64_t b, int l) override { return inner_->PurgeFinished(b, l); }

 protected:
  Result<std::vector<Status>> ApplyStorable(const std::vector<TxnWrite>& w) override {
    return inner_->ApplyBatch(w);
  }

  LogStore* const inner_;
};

}  // namespace treaty::testing
