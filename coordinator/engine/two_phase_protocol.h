#pragma once

// The 2PC protocol's part of TxnService (engine/txn_protocol.h): restoring a
// logged 2PC transaction, what a begin is, and the binding of a transaction
// to the client that began it. The driver is engine/two_phase.h.

#include <memory>
#include <string>

#include "engine/two_phase_spec.h"
#include "engine/txn_protocol.h"

namespace treaty {

class TwoPhaseProtocol : public TxnProtocol {
 public:
  TxnKind kind() const override { return TxnKind::k2pc; }
  Result<std::shared_ptr<TxnDriver>> Restore(EngineContext* ctx,
                                             const TxnDetail& detail) const override;
};

// A begin (`spec.gtid` set). The same begin asks for the same options, the
// client aside (a transaction begun with authentication off is the same
// begin with it on); a begin by another client than the stored one is
// PermissionDenied, so that client learns nothing of the transaction.
std::unique_ptr<TxnSubmission> NewTwoPhaseSubmission(TwoPhaseSpec spec);

// The binding of a 2PC transaction to the client that began it
// (txn_service.h): `begun_by` is the stored client, `caller` the caller's
// name; either empty (authentication was or is off): anyone may.
// PermissionDenied otherwise.
Status CheckTwoPhaseClient(const std::string& gtid, const std::string& begun_by,
                           const std::string& caller);

// The spec of a logged 2PC transaction, read as recovery reads it.
Result<TwoPhaseSpec> StoredTwoPhaseSpec(const TxnRow& row);

}  // namespace treaty
