#pragma once

// CallContext: what a participant handler learns about one delivery from the
// coordinator (see docs/2pc.md, "What participants receive").

#include <string>

namespace treaty {
inline namespace sdk {

struct CallContext {
  std::string gtid;              // the global transaction
  std::string branch;            // the step's or branch's name
  std::string op;                // "action", "compensate", "prepare", "commit" or "abort"
  std::string payload = "null";  // JSON text of the payload given at submission
  std::string traceparent;       // W3C trace context ("" when absent)
  std::string idempotency_key;   // "{gtid}/{branch}/{op}"
  // A 2PC one-phase commit (op "commit" only): no prepare came before it; the
  // handler must do the branch's whole work now, as prepare + commit in one
  // step, or refuse with Status::BusinessFailure (the transaction then aborts).
  // The coordinator sends it only to a branch that declared one-phase support
  // at enlistment (BranchSpec::one_phase) and is the transaction's only one.
  // From the body's "one_phase" or the Treaty-One-Phase header (HTTP), or
  // ParticipantCall.one_phase (Thrift).
  bool one_phase = false;
};

}  // namespace sdk
}  // namespace treaty
