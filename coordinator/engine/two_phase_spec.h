#pragma once

// TwoPhaseSpec and BranchSpec: validated 2PC requests (docs/2pc.md "Client calls",
// POST /v1/2pc and POST /v1/2pc/{gtid}/branches).
//
//   begin:  {"gtid"?, "timeout_ms"?, "one_phase"? (only false)}
//   branch: {"name", "prepare": URL, "commit": URL, "abort": URL, "payload"?,
//            "timeout_ms"?, "one_phase"?}
//
// ParseTwoPhaseSpec / ParseBranchSpec reject, with a message naming the
// problem: a body that is not an object, unknown or mistyped fields, a bad
// gtid or name, non-http/thrift URLs and out-of-range numbers. ToJson gives
// the normalized form stored in the log (`transactions.spec` for the
// transaction, `branches.spec` for a branch) and compared on a repeated
// begin or enlistment (idempotency).
//
// One-phase commit is declared per branch (BranchSpec.one_phase). A begin
// with `"one_phase": true` is refused (InvalidArgument naming the field);
// `false` is accepted and means nothing. Only a spec read back from the log
// (TwoPhaseLimits.stored) may carry `"one_phase": true`: an older release
// wrote it, and that transaction keeps the one-phase rule it was begun with.
//
// The client that began a transaction (TwoPhaseSpec.client) is set by the
// front end from the caller's identity, never from the body: a begin body
// naming `client` is refused as an unknown field; only a stored spec carries it.
// The same holds for the trace (TwoPhaseSpec.trace, stored as "trace"), set
// from the begin request's traceparent (see engine/saga_spec.h); neither is
// compared on a repeated begin.

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/saga_spec.h"
#include "treaty/status.h"

namespace treaty {

struct TwoPhaseSpec {
  std::string gtid;  // empty: the server makes one
  // Transaction deadline: an ACTIVE or PREPARING transaction still undecided
  // this long after begin is aborted. Always set (default 60 s).
  int64_t timeout_ms = 60000;
  // Legacy, read only from a stored spec: the transaction was begun by an
  // older release under its "a single branch commits in one phase" rule,
  // which it keeps (see two_phase.h). Always false for a new begin; ToJson
  // writes it only when true.
  bool legacy_one_phase = false;
  // The name of the client that began it, when authentication was on (the
  // identity's name; docs/security.md): only that client may enlist, commit
  // or abort it. Empty: begun with authentication off or by an older
  // release, and any client may. ToJson writes it only when set.
  std::string client;
  // Prepare calls that fail transiently are retried per this policy, then
  // count as a no vote.
  RetryPolicy prepare_retry{3, 100, 2000};
  // The W3C trace every call of its branches carries (empty: not set yet;
  // TwoPhase::Create makes one). ToJson writes it only when set.
  TraceContext trace;
};

struct BranchSpec {
  std::string name;
  std::string prepare;           // URL
  std::string commit;            // URL
  std::string abort;             // URL
  std::string payload = "null";  // JSON text
  int64_t timeout_ms = 0;        // 0: the coordinator's default call time-out
  // The participant declares it supports one-phase commit (REST/Thrift
  // field `one_phase` at enlistment, default false): only then, and only as
  // the single branch, is it sent one commit flagged one_phase instead of
  // prepare + commit. ToJson writes it only when true.
  bool one_phase = false;
};

struct TwoPhaseLimits {
  size_t max_branches = 256;
  size_t max_name_length = 128;
  size_t max_gtid_length = 128;
  int64_t max_timeout_ms = 24LL * 3600 * 1000;
  // True for a spec read back from the log (Restore): names, gtid and URLs
  // are not re-checked against today's rules, because a log written by an
  // older release may hold ones they refuse and the transaction must still
  // be driven to its end. The callers refuse a URL they cannot call at call
  // time (CallOutcome::kUncallable) and escape names on the wire and in logs.
  bool stored = false;
};

Result<TwoPhaseSpec> ParseTwoPhaseSpec(const nlohmann::json& body,
                                       const TwoPhaseLimits& limits = {});
Result<BranchSpec> ParseBranchSpec(const nlohmann::json& body, const TwoPhaseLimits& limits = {});
nlohmann::json ToJson(const TwoPhaseSpec& spec);
nlohmann::json ToJson(const BranchSpec& spec);

}  // namespace treaty
