#include "engine/txn_protocol.h"

#include "engine/saga_protocol.h"
#include "engine/two_phase_protocol.h"

namespace treaty {

TxnProtocols TxnProtocols::Builtin() {
  TxnProtocols p;
  // One line per protocol.
  (void)p.Add(std::make_unique<SagaProtocol>());
  (void)p.Add(std::make_unique<TwoPhaseProtocol>());
  return p;
}

Status TxnProtocols::Add(std::unique_ptr<TxnProtocol> protocol) {
  const TxnKind kind = protocol->kind();
  if (by_kind_.count(kind)) {
    return Status::InvalidArgument(std::string("a protocol of kind '") + ToString(kind) +
                                   "' is registered already");
  }
  by_kind_.emplace(kind, std::move(protocol));
  return Status::Ok();
}

const TxnProtocol* TxnProtocols::Find(TxnKind kind) const {
  auto it = by_kind_.find(kind);
  return it == by_kind_.end() ? nullptr : it->second.get();
}

const TxnProtocol* TxnProtocols::Find(const std::string& stored_kind) const {
  const auto kind = ParseTxnKind(stored_kind);
  return kind ? Find(*kind) : nullptr;
}

}  // namespace treaty
