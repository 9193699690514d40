// treaty::Client against one real treatyd when an answer does not come back
// in time:
//  - Commit/Abort whose first attempt timed out while the coordinator went on
//    and finished the transaction: the re-sent call is refused "already
//    COMMITTED/ABORTED" (409 conflict) and the client must answer the
//    outcome, not Conflict (client.h, "Re-sending after an unknown outcome").
//  - SubmitSaga(wait=true, wait_ms) over REST: the coordinator is told to hold
//    at most wait_ms, so the call answers RUNNING after about wait_ms instead
//    of timing out and failing over.

#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/treatyd_process.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>

#include "treaty/client.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;
using Clock = std::chrono::steady_clock;

constexpr int kSlowMs = 1500;     // the participant's slow answer
constexpr int kTimeoutMs = 700;   // the client's request timeout: the first answer is lost
constexpr int kBackoffMs = 2000;  // before the re-send: the transaction has finished by then

class ClientLostAnswerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("treaty-sdk-lost-answer"));
    TreatydOptions o;
    o.store = FreshStoreUri("sqlite", *dir_);
    o.thrift = "off";
    node_ = new TreatydProcess(*dir_, "a", o);
    auto s = node_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  static void TearDownTestSuite() {
    delete node_;
    node_ = nullptr;
    std::error_code ec;
    std::filesystem::remove_all(*dir_, ec);
    delete dir_;
  }

  // One coordinator; a lost first answer is re-sent after kBackoffMs.
  sdk::Client LossyClient() {
    return sdk::Client({.coordinators = {node_->url()},
                        .request_timeout_ms = kTimeoutMs,
                        .max_attempts = 3,
                        .backoff_ms = kBackoffMs});
  }

  // Begins `gtid` and enlists branch `b` of participant_.
  void BeginWithBranch(sdk::Client& client, const std::string& gtid) {
    auto begun = client.Begin(gtid);
    ASSERT_TRUE(begun.ok()) << begun.status().ToString();
    auto s = client.Enlist(gtid, {.name = "b",
                                  .prepare = participant_.Url("b", "prepare"),
                                  .commit = participant_.Url("b", "commit"),
                                  .abort = participant_.Url("b", "abort")});
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  static std::string* dir_;
  static TreatydProcess* node_;
  TestParticipant participant_;
};

std::string* ClientLostAnswerTest::dir_ = nullptr;
TreatydProcess* ClientLostAnswerTest::node_ = nullptr;

TEST_F(ClientLostAnswerTest, CommitWhoseAnswerWasLostAnswersCommitted) {
  participant_.SetRule("b", "prepare", {{200}, kSlowMs, "{}"});
  sdk::Client client = LossyClient();
  BeginWithBranch(client, "lost-commit");
  auto r = client.Commit("lost-commit");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "COMMITTED");
  EXPECT_EQ(r->gtid, "lost-commit");
  EXPECT_EQ(participant_.CallCount("lost-commit", "b", "prepare"), 1);
}

TEST_F(ClientLostAnswerTest, CommitWhoseAnswerWasLostAnswersAbortedOnANoVote) {
  participant_.SetRule("b", "prepare", {{409}, kSlowMs, "{}"});  // vote no
  sdk::Client client = LossyClient();
  BeginWithBranch(client, "lost-commit-no");
  auto r = client.Commit("lost-commit-no");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "ABORTED");
}

TEST_F(ClientLostAnswerTest, AbortWhoseAnswerWasLostAnswersAborted) {
  participant_.SetRule("b", "abort", {{200}, kSlowMs, "{}"});
  sdk::Client client = LossyClient();
  BeginWithBranch(client, "lost-abort");
  auto r = client.Abort("lost-abort");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->state, "ABORTED");
}

TEST_F(ClientLostAnswerTest, AbortOfACommittedTransactionStaysConflict) {
  sdk::Client client = LossyClient();
  BeginWithBranch(client, "committed-then-abort");
  auto c = client.Commit("committed-then-abort");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->state, "COMMITTED");
  auto r = client.Abort("committed-then-abort");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kConflict) << r.status().ToString();
}

TEST_F(ClientLostAnswerTest, WaitingSubmitOverRestHoldsOnlyWaitMs) {
  participant_.SetRule("slow", "action", {{200}, 10000, "{}"});
  sdk::Client client({.coordinators = {node_->url()},
                      .request_timeout_ms = 3000,
                      .max_attempts = 2,
                      .backoff_ms = 20});
  sdk::SagaSpec saga;
  saga.gtid = "wait-bound";
  saga.steps.push_back({.name = "slow",
                        .action = participant_.Url("slow", "action"),
                        .compensate = participant_.Url("slow", "compensate")});
  const auto start = Clock::now();
  auto r = client.SubmitSaga(saga, /*wait=*/true, 2000);
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  ASSERT_TRUE(r.ok()) << r.status().ToString() << " after " << took << " ms";
  EXPECT_EQ(r->state, "RUNNING");
  EXPECT_GE(took, 1500);
  EXPECT_LT(took, 4500);
}

}  // namespace
}  // namespace treaty::testing
