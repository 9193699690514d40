#pragma once

// The saga protocol's part of TxnService (engine/txn_protocol.h): restoring
// a logged saga, and what a saga submission is. The driver is engine/saga.h.

#include <memory>

#include "engine/saga_spec.h"
#include "engine/txn_protocol.h"

namespace treaty {

class SagaProtocol : public TxnProtocol {
 public:
  TxnKind kind() const override { return TxnKind::kSaga; }
  Result<std::shared_ptr<TxnDriver>> Restore(EngineContext* ctx,
                                             const TxnDetail& detail) const override;
};

// A saga submission (`spec.gtid` set). The same submission is the same
// normalized spec (saga_spec.h ToJson); the SSRF guard checks every step's
// action and compensate URL.
std::unique_ptr<TxnSubmission> NewSagaSubmission(SagaSpec spec);

}  // namespace treaty
