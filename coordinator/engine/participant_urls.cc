#include "engine/participant_urls.h"

#include <string>

#include "common/endpoint.h"

namespace treaty {

Status CheckParticipantUrl(std::string_view url, std::string_view field,
                           const ParticipantPolicy* policy) {
  Result<Endpoint> endpoint = ParseEndpoint(url, field);
  if (!endpoint.ok()) return endpoint.status();
  return policy != nullptr ? policy->CheckUrl(*endpoint, field) : Status::Ok();
}

Status CheckStepUrls(const SagaStep& step, const ParticipantPolicy* policy) {
  const std::string where = "step '" + step.name + "': ";
  if (auto s = CheckParticipantUrl(step.action, where + "'action'", policy); !s.ok()) return s;
  return CheckParticipantUrl(step.compensate, where + "'compensate'", policy);
}

Status CheckBranchUrls(const BranchSpec& branch, const ParticipantPolicy* policy) {
  for (const auto& [url, field] :
       {std::pair{&branch.prepare, "'prepare'"}, std::pair{&branch.commit, "'commit'"},
        std::pair{&branch.abort, "'abort'"}}) {
    if (auto s = CheckParticipantUrl(*url, field, policy); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace treaty
