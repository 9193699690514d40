// CheckParticipantUrl, CheckStepUrls and CheckBranchUrls
// (engine/participant_urls.h): the one check of a participant URL, shared
// by the spec parsers and TxnService. The parser's refusal and the policy's
// denial each name the field as the client wrote it; a null policy checks
// the syntax only; the fields are checked in the documented order.

#include "engine/participant_urls.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace treaty {
namespace {

std::shared_ptr<ParticipantPolicy> Policy() {
  auto policy = ParticipantPolicy::Create({});
  EXPECT_TRUE(policy.ok()) << policy.status().ToString();
  return policy.ok() ? std::move(*policy) : nullptr;
}

bool Contains(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

TEST(ParticipantUrlsTest, SyntaxRefusalNamesTheFieldWithOrWithoutAPolicy) {
  const auto policy = Policy();
  for (const ParticipantPolicy* p : {static_cast<const ParticipantPolicy*>(nullptr),
                                     static_cast<const ParticipantPolicy*>(policy.get())}) {
    Status s = CheckParticipantUrl("ftp://svc/x", "step 'pay': 'action'", p);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_EQ(s.message().rfind("step 'pay': 'action'", 0), 0u) << s.message();
    // The same words as the parser's own, so both front ends answer alike.
    EXPECT_EQ(s.message(), ParseEndpoint("ftp://svc/x", "step 'pay': 'action'").status().message());
  }
}

TEST(ParticipantUrlsTest, PolicyDenialNamesTheFieldAndOnlyAPolicyDenies) {
  const auto policy = Policy();
  const std::string metadata = "http://169.254.169.254/latest/meta-data";
  EXPECT_TRUE(CheckParticipantUrl(metadata, "'prepare'", nullptr).ok());
  Status s = CheckParticipantUrl(metadata, "'prepare'", policy.get());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_TRUE(Contains(s, "'prepare' (URL 169.254.169.254:80) is denied by the participant policy"))
      << s.message();
  EXPECT_TRUE(CheckParticipantUrl("thrift://svc.internal:9090", "'commit'", policy.get()).ok());
}

TEST(ParticipantUrlsTest, StepUrlsActionFirstThenCompensate) {
  const auto policy = Policy();
  SagaStep step;
  step.name = "pay";
  step.action = "http://svc/pay";
  step.compensate = "http://169.254.169.254/undo";
  EXPECT_TRUE(CheckStepUrls(step, nullptr).ok());
  Status s = CheckStepUrls(step, policy.get());
  EXPECT_TRUE(Contains(s, "step 'pay': 'compensate' (URL")) << s.message();
  step.action = "http://svc/pay#fragment";
  s = CheckStepUrls(step, policy.get());
  EXPECT_EQ(s.message().rfind("step 'pay': 'action'", 0), 0u) << s.message();
  step.action = step.compensate = "https://svc:8443/x";
  EXPECT_TRUE(CheckStepUrls(step, policy.get()).ok());
}

TEST(ParticipantUrlsTest, BranchUrlsPrepareCommitAbortInOrder) {
  const auto policy = Policy();
  BranchSpec branch;
  branch.name = "b";
  branch.prepare = "http://svc/prepare";
  branch.commit = "http://svc/commit";
  branch.abort = "http://[fe80::1]:8443/abort";
  EXPECT_TRUE(CheckBranchUrls(branch, nullptr).ok());
  Status s = CheckBranchUrls(branch, policy.get());
  EXPECT_TRUE(Contains(s, "'abort' (URL [fe80::1]:8443)")) << s.message();
  EXPECT_TRUE(Contains(s, "link-local address")) << s.message();
  branch.commit = "nonsense";
  s = CheckBranchUrls(branch, policy.get());
  EXPECT_EQ(s.message().rfind("'commit'", 0), 0u) << s.message();
  branch.prepare = "";
  s = CheckBranchUrls(branch, nullptr);
  EXPECT_EQ(s.message().rfind("'prepare'", 0), 0u) << s.message();
}

}  // namespace
}  // namespace treaty
