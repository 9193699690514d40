#pragma once

// CoordinatorHandler: the Thrift CoordinatorService (idl/coordinator.thrift)
// as a thin adapter over TxnService, like RestApi is for REST. Requests are
// converted to the REST JSON shapes and validated by the same parsers
// (ParseSagaSpec, ParseTwoPhaseSpec, ParseBranchSpec), so both front ends
// accept and refuse exactly the same things.
//
// Admission: like the REST front end, new work (submitSaga, begin2pc) is
// refused with Unavailable, before anything is parsed or logged, while the
// coordinator is draining or while the log store is known to be down or
// stalled (StoreHealth). Reads and calls on existing transactions still go through.
//
// Errors: every Status is turned into a typed Thrift exception in one place
// (ThrowStatus): InvalidArgument/TooLarge -> InvalidRequest, NotFound ->
// NotFound, Conflict/LostOwnership -> Conflict, everything else ->
// Unavailable. Nothing else escapes a handler method: an unexpected
// exception (a bug) becomes Unavailable and one error log line.
//
// Input rules (docs/input-rules.md): every string from Thrift is checked at
// this boundary by the REST parsers: gtids, step and branch names by the
// identifier rules (ValidateIdentifier), URLs by ParseEndpoint, payloads by
// ParseJson (valid UTF-8, depth <= 64), a list cursor by DecodeListCursor.
// A string that breaks them is InvalidRequest naming the field, whose
// message never echoes the bytes.
//
// Threading: methods run on the Thrift server's worker threads and block
// (bounded by `call_timeout_ms`) until TxnService answers; TxnService
// itself never blocks them on I/O of its own.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "CoordinatorService.h"
#include "engine/txn_service.h"
#include "store/store_health.h"

namespace treaty {

struct CoordinatorHandlerOptions {
  SpecLimits limits;
  int max_list_limit = 1000;
  int64_t call_timeout_ms = 60000;  // longest a worker waits for TxnService
  // Not owned; either may be null (never refuse on that ground). Both must
  // outlive the handler; the Server owns them and sets `draining` in Drain().
  const std::atomic<bool>* draining = nullptr;
  const StoreHealth* store_health = nullptr;
};

class CoordinatorHandler : public rpc::CoordinatorServiceIf {
 public:
  // `service` returns the TxnService, or nullptr while the coordinator is
  // still starting (requests then fail with Unavailable).
  using ServiceProvider = std::function<TxnService*()>;
  CoordinatorHandler(ServiceProvider service, CoordinatorHandlerOptions options);

  void submitSaga(rpc::TxnStatus& out, const rpc::SagaRequest& req) override;
  void begin2pc(rpc::TxnStatus& out, const rpc::Begin2pcRequest& req) override;
  void registerBranch(rpc::TxnStatus& out, const std::string& gtid,
                      const rpc::Branch2pc& branch) override;
  void commit2pc(rpc::TxnStatus& out, const std::string& gtid) override;
  void abort2pc(rpc::TxnStatus& out, const std::string& gtid) override;
  void getTransaction(rpc::Transaction& out, const std::string& gtid) override;
  void listTransactions(rpc::TxnPage& out, const rpc::ListRequest& req) override;
  // Operator actions: the actor is "anonymous@thrift" until the API
  // authenticates callers; reasons and outcomes follow api/operator_input.h.
  void retryTransaction(rpc::TxnStatus& out, const std::string& gtid,
                        const std::string& reason) override;
  void abortTransaction(rpc::TxnStatus& out, const std::string& gtid,
                        const std::string& reason) override;
  void pauseTransaction(rpc::TxnStatus& out, const std::string& gtid,
                        const std::string& reason) override;
  void resumeTransaction(rpc::TxnStatus& out, const std::string& gtid,
                         const std::string& reason) override;
  void resolveBranch(rpc::TxnStatus& out, const std::string& gtid, const std::string& branch,
                     const std::string& outcome, const std::string& reason) override;

 private:
  TxnService* Service() const;
  // Throws Unavailable while new work must be refused (see Admission).
  void CheckAcceptsNewWork() const;
  // Checks gtid and reason, runs `start` (a TxnService operator action) as
  // `who` and fills `out` with its answer.
  using OperatorStart =
      std::function<void(TxnService*, OperatorRequest, TxnService::Callback<SubmitResult>)>;
  void RunOperatorAction(rpc::TxnStatus& out, const std::string& gtid, const std::string& reason,
                         bool reason_required, const OperatorStart& start);

  ServiceProvider service_;
  CoordinatorHandlerOptions options_;
};

}  // namespace treaty
