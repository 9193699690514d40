// The operator actions over REST (docs/operations.md "Operator actions")
// against a real server, real HTTP participants and real stores (SQLite
// file, PostgreSQL): input validation of every route (400 naming the field,
// 404 for unknown transactions and routes), honest 409s saying why, the
// fields of transactions, list items and events (paused, last_error,
// needs_attention, count, first_at_ms), and the ways out of the stuck
// transactions an operator meets: a 2PC stuck COMMITTING (its commit URL
// answers 404: abort is a 409 saying why, resolving the branch COMMITTED
// with a reason finishes it), a 2PC stuck ABORTING, a saga stuck
// COMPENSATING (abort is a 409, not a silent no-op), and a pause that holds
// calls until resume, also across a restart of the coordinator.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "api/api_fixture.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

class OperatorApiTest : public ApiTest {
 protected:
  // 400 whose error message names `field`.
  void Expect400(const ApiReply& r, const std::string& field, const std::string& what) {
    EXPECT_EQ(r.status, 400) << what << ": " << r.raw;
    EXPECT_NE(Message(r).find(field), std::string::npos) << what << ": " << Message(r);
  }
  // A saga whose first step succeeded, whose second failed for good, and
  // whose first step's compensation answers 500 for ever: stuck COMPENSATING.
  void StartCompensatingSaga(const std::string& gtid) {
    participant_->SetRule("pay", "action", Rule{{409}});
    participant_->SetRule("book", "compensate", Rule{{500}});
    ASSERT_EQ(Post("/v1/sagas", {{"gtid", gtid}, {"steps", {Step("book"), Step("pay")}}}).status,
              201);
    ASSERT_TRUE(WaitCalls(gtid, "book", "compensate"));
    WaitState(gtid, "COMPENSATING");
  }
  // A one-branch 2PC whose commit URL answers 404 for ever: stuck COMMITTING.
  void StartCommittingTwoPhase(const std::string& gtid) {
    participant_->SetRule("acct", "commit", Rule{{404}});
    ASSERT_EQ(Post("/v1/2pc", {{"gtid", gtid}}).status, 201);
    ASSERT_EQ(Post("/v1/2pc/" + gtid + "/branches", Branch2pc("acct")).status, 201);
    auto c = Post("/v1/2pc/" + gtid + "/commit", json::object());
    ASSERT_EQ(c.status, 200) << c.raw;
    ASSERT_TRUE(WaitCalls(gtid, "acct", "commit"));
    WaitState(gtid, "COMMITTING");
  }
};

// --- Input validation (no engine behaviour needed) ---

TEST_P(OperatorApiTest, ActionBodiesAreValidatedNamingTheField) {
  for (std::string action : {"retry", "abort", "pause", "resume"}) {
    const std::string path = "/v1/transactions/nobody/" + action;
    Expect400(Post(path, {{"bogus", 1}}), "'bogus'", action + " unknown field");
    Expect400(Post(path, {{"reason", 5}}), "'reason'", action + " reason not a string");
    Expect400(Post(path, {{"reason", std::string(1025, 'r')}}), "'reason'",
              action + " reason too long");
    Expect400(Post(path, {{"reason", "two\nlines"}}), "'reason'", action + " control char");
    Expect400(Post(path, {{"reason", "esc\x1b[31m"}}), "'reason'", action + " escape");
    Expect400(Post(path, {{"reason", "c1 \xc2\x85"}}), "'reason'", action + " C1 control");
    Expect400(PostRaw(path, "{\"reason\":\"\xff\"}"), "UTF-8", action + " reason not UTF-8");
    Expect400(PostRaw(path, "[1]"), "object", action + " not an object");
    Expect400(PostRaw(path, "{"), "request body", action + " not JSON");
    Expect400(Post(path, {{"outcome", "ABORTED"}}), "'outcome'", action + " outcome only resolves");
    // Well-formed: the gtid is looked up (404); a body is optional.
    EXPECT_EQ(Post(path, {{"reason", std::string(1024, 'r')}}).status, 404) << action;
    EXPECT_EQ(PostRaw(path, "").status, 404) << action;
    EXPECT_EQ(Post(path, json::object()).status, 404) << action;
    EXPECT_EQ(Post(path, {{"reason", nullptr}}).status, 404) << action;
    EXPECT_EQ(Post(path, {{"reason", "na\xc3\xafve \xe2\x9c\x93"}}).status, 404) << action;
    // A bad gtid is named.
    Expect400(PostRaw("/v1/transactions/bad%20gtid/" + action, ""), "'gtid'", action + " gtid");
  }
}

TEST_P(OperatorApiTest, ResolveBodyAndPathAreValidatedNamingTheField) {
  const std::string path = "/v1/transactions/nobody/branches/b1/resolve";
  Expect400(Post(path, {{"outcome", "COMMITTED"}}), "'reason'", "reason missing");
  Expect400(Post(path, {{"outcome", "COMMITTED"}, {"reason", ""}}), "'reason'", "reason empty");
  Expect400(PostRaw(path, ""), "'reason'", "no body");
  Expect400(Post(path, {{"outcome", "COMMITTED"}, {"reason", std::string(1025, 'x')}}), "'reason'",
            "reason too long");
  Expect400(Post(path, {{"outcome", "COMMITTED"}, {"reason", "a\tb"}}), "'reason'", "tab");
  Expect400(Post(path, {{"reason", "fixed by hand"}}), "'outcome'", "outcome missing");
  Expect400(Post(path, {{"outcome", "DONE"}, {"reason", "fixed by hand"}}), "'outcome'",
            "outcome unknown");
  Expect400(Post(path, {{"outcome", "committed"}, {"reason", "fixed by hand"}}), "'outcome'",
            "outcome lower case");
  Expect400(Post(path, {{"outcome", 1}, {"reason", "fixed by hand"}}), "'outcome'",
            "outcome not a string");
  Expect400(Post(path, {{"outcome", "ABORTED"}, {"reason", "x"}, {"by", "me"}}), "'by'",
            "unknown field");
  const json ok = {{"outcome", "ABORTED"}, {"reason", "fixed by hand"}};
  Expect400(Post("/v1/transactions/nobody/branches/../resolve", ok), "'branch'", "branch ..");
  Expect400(Post("/v1/transactions/nobody/branches/" + std::string(129, 'b') + "/resolve", ok),
            "'branch'", "branch too long");
  Expect400(Post("/v1/transactions/nobody/branches/a%20b/resolve", ok), "'branch'", "space");
  Expect400(Post("/v1/transactions/nobody/branches/%FF/resolve", ok), "'branch'", "not UTF-8");
  Expect400(Post("/v1/transactions/bad%20gtid/branches/b1/resolve", ok), "'gtid'", "gtid");
  EXPECT_EQ(Post(path, ok).status, 404);  // well-formed, unknown gtid
  for (const std::string outcome : {"COMPENSATED", "COMMITTED", "ABORTED"}) {
    EXPECT_EQ(Post(path, {{"outcome", outcome}, {"reason", "r"}}).status, 404) << outcome;
  }
  // Routes that do not exist.
  EXPECT_EQ(Get(path).status, 404);
  EXPECT_EQ(Post("/v1/transactions/nobody/branches/b1", ok).status, 404);
  EXPECT_EQ(Post("/v1/transactions/nobody/branches//resolve", ok).status, 400);
  EXPECT_EQ(Post("/v1/transactions/nobody/branches/b1/resolve/x", ok).status, 404);
  EXPECT_EQ(Post("/v1/transactions/nobody/frobnicate", json::object()).status, 404);
  EXPECT_EQ(Get("/v1/transactions/nobody/pause").status, 404);
}

TEST_P(OperatorApiTest, ListFilterPausedIsValidated) {
  Expect400(Get("/v1/transactions?paused=maybe"), "'paused'", "paused=maybe");
  Expect400(Get("/v1/transactions?paused=1"), "'paused'", "paused=1");
  EXPECT_EQ(Get("/v1/transactions?paused=false").status, 200);
  EXPECT_EQ(Get("/v1/transactions?paused=true").status, 200);
}

// --- Fields of the views ---

TEST_P(OperatorApiTest, TransactionsListItemsAndEventsCarryTheNewFields) {
  ASSERT_EQ(Post("/v1/sagas", {{"gtid", "f-1"}, {"wait", true}, {"steps", {Step("a")}}}).status,
            201);
  auto d = Get("/v1/transactions/f-1");
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(d.body["paused"], false) << d.raw;
  EXPECT_EQ(d.body["last_error"], "") << d.raw;
  EXPECT_TRUE(d.body["needs_attention"].is_boolean()) << d.raw;
  ASSERT_FALSE(d.body["history"].empty());
  for (const auto& e : d.body["history"]) {
    EXPECT_GE(e["count"].get<int64_t>(), 1) << e;
    EXPECT_LE(e["first_at_ms"].get<int64_t>(), e["at_ms"].get<int64_t>()) << e;
    EXPECT_GT(e["first_at_ms"].get<int64_t>(), 0) << e;
  }
  auto list = Get("/v1/transactions?gtid_prefix=f-");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["items"].size(), 1u) << list.raw;
  const json& item = list.body["items"][0];
  EXPECT_EQ(item["paused"], false);
  EXPECT_EQ(item["last_error"], "");
  EXPECT_EQ(item["needs_attention"], false);
  EXPECT_EQ(Get("/v1/transactions?paused=true&gtid_prefix=f-").body["items"].size(), 0u);
  EXPECT_EQ(Get("/v1/transactions?paused=false&gtid_prefix=f-").body["items"].size(), 1u);
}

// --- Answers, refusals, and the ways out of stuck transactions ---

TEST_P(OperatorApiTest, RetryAnswersStatePausedAndFinished) {
  json slow = Step("slow", 1000);
  participant_->SetRule("slow", "action", Rule{{503}});
  ASSERT_EQ(Post("/v1/sagas", {{"gtid", "r-1"}, {"steps", {slow}}}).status, 201);
  ASSERT_TRUE(WaitCalls("r-1", "slow", "action"));
  // The old form (no body) keeps working, and with a reason.
  for (const std::string body : {"", "{}", "{\"reason\":\"participant redeployed\"}"}) {
    auto r = PostRaw("/v1/transactions/r-1/retry", body);
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["gtid"], "r-1");
    EXPECT_EQ(r.body["state"], "RUNNING");
    EXPECT_EQ(r.body["paused"], false);
    EXPECT_EQ(r.body["finished"], false);
  }
  auto abort = Post("/v1/transactions/r-1/abort", {{"reason", "customer cancelled"}});
  ASSERT_EQ(abort.status, 200) << abort.raw;
  EXPECT_EQ(WaitTerminal("r-1")["state"], "ABORTED");
  // Finished: every action is a 409 saying so.
  for (std::string action : {"retry", "abort", "pause", "resume"}) {
    auto r = Post("/v1/transactions/r-1/" + action, json::object());
    EXPECT_EQ(r.status, 409) << action << ": " << r.raw;
    EXPECT_FALSE(Message(r).empty()) << action;
  }
}

// The README walk-through's failure: a single-branch 2PC whose commit URL
// answers 404 stays COMMITTING. Abort is refused saying why (the commit
// decision is durable); resolving the branch by hand (with a reason) commits
// it, and the answer says so.
TEST_P(OperatorApiTest, TwoPhaseStuckCommittingIsResolvedCommitted) {
  StartCommittingTwoPhase("sc-1");
  ASSERT_TRUE(WaitCalls("sc-1", "acct", "commit", 2));

  auto abort = Post("/v1/transactions/sc-1/abort", {{"reason", "give up"}});
  EXPECT_EQ(abort.status, 409) << abort.raw;
  EXPECT_NE(Message(abort).find("commit decision is durable"), std::string::npos) << abort.raw;
  EXPECT_EQ(Get("/v1/transactions/sc-1").body["state"], "COMMITTING");

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
TEST_P(OperatorApiTest, TwoPhaseStuckAbortingIsResolvedAborted) {
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
// now a 409 saying why (with or without a body); retry with the compensation
// scheduled resends it; only the stuck step, and only as COMPENSATED, can be
// resolved by hand, which finishes the saga.
TEST_P(OperatorApiTest, CompensatingSagaAbortIs409AndResolveFinishesIt) {
  StartCompensatingSaga("cs-1");
  auto bare = Post("/v1/transactions/cs-1/abort", json::object());
  EXPECT_EQ(bare.status, 409) << bare.raw;
  EXPECT_NE(Message(bare).find("already compensating"), std::string::npos) << bare.raw;
  auto abort = Post("/v1/transactions/cs-1/abort", {{"reason", "stop it"}});
  EXPECT_EQ(abort.status, 409) << abort.raw;
  EXPECT_NE(Message(abort).find("already compensating"), std::string::npos) << abort.raw;
  EXPECT_NE(Message(abort).find("resolve the stuck step"), std::string::npos) << abort.raw;
  auto retry = Post("/v1/transactions/cs-1/retry", {{"reason", "fixed?"}});
  EXPECT_EQ(retry.status, 200) << retry.raw;

  const std::string base = "/v1/transactions/cs-1/branches/";
  auto unknown = Post(base + "nope/resolve", {{"outcome", "COMPENSATED"}, {"reason", "x"}});
  EXPECT_EQ(unknown.status, 404) << unknown.raw;
  auto wrong = Post(base + "book/resolve", {{"outcome", "COMMITTED"}, {"reason", "x"}});
  EXPECT_EQ(wrong.status, 409) << wrong.raw;
  auto failed = Post(base + "pay/resolve", {{"outcome", "COMPENSATED"}, {"reason", "x"}});
  EXPECT_EQ(failed.status, 409) << failed.raw;
  EXPECT_NE(Message(failed).find("pay"), std::string::npos) << failed.raw;
  auto ok = Post(base + "book/resolve",
                 {{"outcome", "COMPENSATED"}, {"reason", "refunded by hand, ticket 42"}});
  ASSERT_EQ(ok.status, 200) << ok.raw;
  auto d = WaitTerminal("cs-1");
  EXPECT_EQ(d["state"], "ABORTED");
  EXPECT_TRUE(HasOperatorEvent(d, {"retry by anonymous@127.0.0.1:", "fixed?"})) << d.dump();
  EXPECT_TRUE(HasOperatorEvent(d, {"resolve", "COMPENSATED", "ticket 42"})) << d.dump();
}

// Pause holds every call (the list filters on it, the history says who and
// why) until resume, which lets the saga finish.
TEST_P(OperatorApiTest, PauseHoldsCallsUntilResume) {
  json slow = Step("slow", 1000);
  slow["retry"]["max_backoff_ms"] = 50;
  participant_->SetRule("slow", "action", Rule{{503}});
  ASSERT_EQ(Post("/v1/sagas", {{"gtid", "p-1"}, {"steps", {slow}}}).status, 201);
  ASSERT_TRUE(WaitCalls("p-1", "slow", "action"));
  auto paused = Post("/v1/transactions/p-1/pause", {{"reason", "participant maintenance"}});
  ASSERT_EQ(paused.status, 200) << paused.raw;
  EXPECT_EQ(paused.body["paused"], true);
  EXPECT_EQ(paused.body["state"], "RUNNING");
  // A call in flight may still finish; after that nothing goes out.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int before = participant_->CallCount("p-1", "slow", "action");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(participant_->CallCount("p-1", "slow", "action"), before) << "calls while paused";
  auto again = Post("/v1/transactions/p-1/pause", json::object());
  EXPECT_EQ(again.status, 409) << again.raw;
  auto d = Get("/v1/transactions/p-1");
  EXPECT_EQ(d.body["paused"], true) << d.raw;
  auto list = Get("/v1/transactions?paused=true&gtid_prefix=p-");
  ASSERT_EQ(list.body["items"].size(), 1u) << list.raw;
  EXPECT_EQ(list.body["items"][0]["paused"], true);
  EXPECT_TRUE(
      HasOperatorEvent(d.body, {"pause", "anonymous@127.0.0.1:", "participant maintenance"}))
      << d.raw;

  participant_->SetRule("slow", "action", Rule{{200}});
  auto resumed = Post("/v1/transactions/p-1/resume", {{"reason", "maintenance over"}});
  ASSERT_EQ(resumed.status, 200) << resumed.raw;
  EXPECT_EQ(resumed.body["paused"], false);
  EXPECT_EQ(WaitTerminal("p-1")["state"], "COMMITTED");
  EXPECT_EQ(Post("/v1/transactions/p-1/resume", json::object()).status, 409);
}

// Pause is durable: a coordinator restarted meanwhile keeps the transaction
// paused (no call goes out) until an operator resumes it.
TEST_P(OperatorApiTest, PauseHoldsCallsAcrossARestartUntilResume) {
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

INSTANTIATE_TEST_SUITE_P(Engines, OperatorApiTest, ::testing::Values("sqlite", "postgres"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
