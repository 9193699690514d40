// Operator actions end to end (docs/operations.md "Operator actions"): a real
// in-process server, a real HTTP participant, SQLite and PostgreSQL. The ways
// out of the stuck transactions an operator meets: a 2PC stuck COMMITTING
// (its commit URL answers 404: abort is a 409 saying why, resolving the
// branch COMMITTED with a reason finishes it), a 2PC stuck ABORTING, a saga
// stuck COMPENSATING (abort is a 409, not a silent no-op), and a pause that
// holds calls across a restart of the coordinator until resume.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "api/api_fixture.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

class OperatorActionsTest : public ApiTest {
 protected:
  std::string Message(const ApiReply& r) {
    return r.body.is_object() && r.body.contains("error") ? r.body["error"].value("message", "")
                                                          : r.raw;
  }
  json WaitState(const std::string& gtid, const std::string& state, int timeout_ms = 20000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    json last;
    while (std::chrono::steady_clock::now() < end) {
      auto r = Get("/v1/transactions/" + gtid);
      if (r.status == 200) {
        last = r.body;
        if (last["state"] == state) return last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << gtid << " not " << state << " after " << timeout_ms << " ms: " << last.dump();
    return last;
  }
  // Waits until the participant saw at least `n` calls of `op` to `branch`.
  bool WaitCalls(const std::string& gtid, const std::string& branch, const std::string& op,
                 int n = 1) {
    return participant_->WaitFor(
        [&](const auto& calls) {
          int seen = 0;
          for (const auto& c : calls) seen += c.gtid == gtid && c.branch == branch && c.op == op;
          return seen >= n;
        },
        std::chrono::seconds(20));
  }
  json Branch2pc(const std::string& name) {
    return {{"name", name},
            {"prepare", participant_->Url(name, "prepare")},
            {"commit", participant_->Url(name, "commit")},
            {"abort", participant_->Url(name, "abort")}};
  }
  // True if the history holds an "operator" event whose detail has every part.
  static bool HasOperatorEvent(const json& txn, std::vector<std::string> parts) {
    for (const auto& e : txn["history"]) {
      if (e["type"] != "operator") continue;
      const std::string detail = e["detail"];
      bool all = true;
      for (const auto& p : parts) all = all && detail.find(p) != std::string::npos;
      if (all) return true;
    }
    return false;
  }
};

// The README walk-through's failure: a single-branch 2PC whose commit URL
// answers 404 stays COMMITTING. Abort is refused saying why; resolving the
// branch by hand (with a reason) commits it, and the answer says so.
TEST_P(OperatorActionsTest, TwoPhaseStuckCommittingIsResolvedCommitted) {
  participant_->SetRule("acct", "commit", Rule{{404}});
  ASSERT_EQ(Post("/v1/2pc", {{"gtid", "sc-1"}}).status, 201);
  ASSERT_EQ(Post("/v1/2pc/sc-1/branches", Branch2pc("acct")).status, 201);
  ASSERT_EQ(Post("/v1/2pc/sc-1/commit", json::object()).status, 200);
  ASSERT_TRUE(WaitCalls("sc-1", "acct", "commit", 2));
  WaitState("sc-1", "COMMITTING");

  auto abort = Post("/v1/transactions/sc-1/abort", {{"reason", "give up"}});
  EXPECT_EQ(abort.status, 409) << abort.raw;
  EXPECT_NE(Message(abort).find("commit decision is durable"), std::string::npos) << abort.raw;

  const std::string resolve = "/v1/transactions/sc-1/branches/acct/resolve";
  auto no_reason = Post(resolve, {{"outcome", "COMMITTED"}});
  EXPECT_EQ(no_reason.status, 400) << no_reason.raw;
  EXPECT_NE(Message(no_reason).find("reason"), std::string::npos) << no_reason.raw;
  auto wrong = Post(resolve, {{"outcome", "ABORTED"}, {"reason", "x"}});
  EXPECT_EQ(wrong.status, 409) << wrong.raw;
  EXPECT_NE(Message(wrong).find("COMMITTING"), std::string::npos) << wrong.raw;
  EXPECT_EQ(Post("/v1/transactions/sc-1/branches/nope/resolve",
                 {{"outcome", "COMMITTED"}, {"reason", "x"}})
                .status,
            404);

  auto ok = Post(resolve, {{"outcome", "COMMITTED"}, {"reason", "COMMIT PREPARED by hand"}});
  ASSERT_EQ(ok.status, 200) << ok.raw;
  // Answered once durable: the branch was the last one, so it is committed.
  EXPECT_EQ(ok.body["state"], "COMMITTED") << ok.raw;
  EXPECT_EQ(ok.body["finished"], true) << ok.raw;
  auto d = WaitTerminal("sc-1");
  EXPECT_EQ(d["state"], "COMMITTED");
  EXPECT_TRUE(HasOperatorEvent(
      d, {"resolve branch 'acct' as COMMITTED by anonymous@127.0.0.1:", "COMMIT PREPARED by hand"}))
      << d.dump();
  EXPECT_EQ(Post(resolve, {{"outcome", "COMMITTED"}, {"reason", "again"}}).status, 409);
}

// A 2PC stuck ABORTING (its abort URL answers 404): abort again is a 409
// "already aborting"; resolving the branch ABORTED finishes it.
TEST_P(OperatorActionsTest, TwoPhaseStuckAbortingIsResolvedAborted) {
  participant_->SetRule("acct", "abort", Rule{{404}});
  ASSERT_EQ(Post("/v1/2pc", {{"gtid", "sa-1"}}).status, 201);
  ASSERT_EQ(Post("/v1/2pc/sa-1/branches", Branch2pc("acct")).status, 201);
  ASSERT_EQ(Post("/v1/2pc/sa-1/abort", json::object()).status, 200);
  ASSERT_TRUE(WaitCalls("sa-1", "acct", "abort", 2));
  WaitState("sa-1", "ABORTING");
  auto again = Post("/v1/transactions/sa-1/abort", json::object());
  EXPECT_EQ(again.status, 409) << again.raw;
  EXPECT_NE(Message(again).find("already aborting"), std::string::npos) << again.raw;
  auto ok = Post("/v1/transactions/sa-1/branches/acct/resolve",
                 {{"outcome", "ABORTED"}, {"reason", "rolled back by hand"}});
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body["state"], "ABORTED") << ok.raw;
  EXPECT_EQ(WaitTerminal("sa-1")["state"], "ABORTED");
}

// `treatyctl abort` of a COMPENSATING saga used to answer 200 and do nothing:
// now a 409 saying why; retry with the compensation scheduled resends it,
// resolve by hand finishes it.
TEST_P(OperatorActionsTest, CompensatingSagaAbortIs409AndResolveFinishesIt) {
  participant_->SetRule("pay", "action", Rule{{409}});
  participant_->SetRule("book", "compensate", Rule{{500}});
  ASSERT_EQ(Post("/v1/sagas", {{"gtid", "cs-1"}, {"steps", {Step("book"), Step("pay")}}}).status,
            201);
  ASSERT_TRUE(WaitCalls("cs-1", "book", "compensate"));
  WaitState("cs-1", "COMPENSATING");
  auto abort = Post("/v1/transactions/cs-1/abort", {{"reason", "stop it"}});
  EXPECT_EQ(abort.status, 409) << abort.raw;
  EXPECT_NE(Message(abort).find("already compensating"), std::string::npos) << abort.raw;
  EXPECT_NE(Message(abort).find("resolve the stuck step"), std::string::npos) << abort.raw;
  auto retry = Post("/v1/transactions/cs-1/retry", {{"reason", "fixed?"}});
  EXPECT_EQ(retry.status, 200) << retry.raw;
  auto ok = Post("/v1/transactions/cs-1/branches/book/resolve",
                 {{"outcome", "COMPENSATED"}, {"reason", "refund issued by hand"}});
  ASSERT_EQ(ok.status, 200) << ok.raw;
  auto d = WaitTerminal("cs-1");
  EXPECT_EQ(d["state"], "ABORTED");
  EXPECT_TRUE(HasOperatorEvent(d, {"retry by anonymous@127.0.0.1:", "fixed?"})) << d.dump();
}

// Pause is durable: a coordinator restarted meanwhile keeps the transaction
// paused (no call goes out) until an operator resumes it.
TEST_P(OperatorActionsTest, PauseHoldsCallsAcrossARestartUntilResume) {
  participant_->SetRule("first", "action", Rule{{200}, 800});
  ASSERT_EQ(
      Post("/v1/sagas", {{"gtid", "pr-1"}, {"steps", {Step("first"), Step("second")}}}).status,
      201);
  ASSERT_TRUE(WaitCalls("pr-1", "first", "action"));
  auto paused = Post("/v1/transactions/pr-1/pause", {{"reason", "bank maintenance"}});
  ASSERT_EQ(paused.status, 200) << paused.raw;
  EXPECT_EQ(paused.body["paused"], true);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the call in flight ends
  EXPECT_EQ(participant_->CallCount("pr-1", "second", "action"), 0) << "sent while paused";

  server_->Stop();  // no hand-back: like a crash
  StartServer();
  // Recovered by the restarted coordinator, still paused: nothing goes out.
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  auto d = Get("/v1/transactions/pr-1");
  ASSERT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["paused"], true) << d.raw;
  EXPECT_EQ(d.body["state"], "RUNNING") << d.raw;
  EXPECT_EQ(participant_->CallCount("pr-1", "second", "action"), 0) << "sent after restart";

  // Resume once this coordinator drives it again (409 "driven by ..." until then).
  ApiReply resumed;
  for (int i = 0; i < 200; ++i) {
    resumed = Post("/v1/transactions/pr-1/resume", {{"reason", "maintenance over"}});
    if (resumed.status != 409 || Message(resumed).find("not paused") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(resumed.status, 200) << resumed.raw;
  EXPECT_EQ(resumed.body["paused"], false);
  auto done = WaitTerminal("pr-1");
  EXPECT_EQ(done["state"], "COMMITTED");
  EXPECT_EQ(done["paused"], false);
  EXPECT_EQ(participant_->EffectCount("pr-1", "second", "action"), 1);
  EXPECT_TRUE(HasOperatorEvent(done, {"pause by anonymous@127.0.0.1:", "bank maintenance"}));
  EXPECT_TRUE(HasOperatorEvent(done, {"resume by anonymous@127.0.0.1:", "maintenance over"}));
}

INSTANTIATE_TEST_SUITE_P(Engines, OperatorActionsTest, ::testing::Values("sqlite", "postgres"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
