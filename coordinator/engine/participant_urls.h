#pragma once

// The one check of a participant URL that a client hands the coordinator (a
// saga step's action and compensate, a 2PC branch's prepare, commit and
// abort), used by the spec parsers (saga_spec.cc, two_phase_spec.cc) and at
// submission by TxnService (saga_protocol.cc, txn_service_2pc.cc):
//   1. it parses as every caller parses it (ParseEndpoint, common/endpoint.h),
//      so a URL accepted is one that can be called;
//   2. with a ParticipantPolicy, it passes the policy's submission check
//      (ParticipantPolicy::CheckUrl, the SSRF guard).
// Each refusal is InvalidArgument naming the field as the client wrote it
// ("step 'pay': 'action'", "'prepare'"), in the words of docs/input-rules.md
// and docs/security.md "Participant allow-list":
//   FIELD <the rule ParseEndpoint found broken>
//   FIELD (URL HOST:PORT) is denied by the participant policy: RULE
//
// Stateless and thread-safe; never resolves a name (the policy judges a
// host as written, its addresses are judged at connect time).

#include <string_view>

#include "engine/saga_spec.h"
#include "engine/two_phase_spec.h"
#include "security/participant_policy.h"
#include "treaty/status.h"

namespace treaty {

// Checks `url`, named `field` in refusals. `policy` null: step 1 only (the
// parsers, which have no policy; TxnService checks again with it).
Status CheckParticipantUrl(std::string_view url, std::string_view field,
                           const ParticipantPolicy* policy);

// Checks a step's action, then its compensate, as "step 'NAME': 'action'"
// and "step 'NAME': 'compensate'".
Status CheckStepUrls(const SagaStep& step, const ParticipantPolicy* policy);

// Checks a branch's prepare, commit and abort, in that order, as "'prepare'",
// "'commit'" and "'abort'".
Status CheckBranchUrls(const BranchSpec& branch, const ParticipantPolicy* policy);

}  // namespace treaty
