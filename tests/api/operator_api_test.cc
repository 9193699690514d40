// The operator actions over REST (docs/operations.md "Operator actions")
// against a real server, real HTTP participants and real stores (SQLite
// file, PostgreSQL): input validation of every route (400 naming the field,
// 404 for unknown transactions and routes), honest 409s saying why, the
// fields of transactions, list items and events (paused, last_error,
// needs_attention, count, first_at_ms), and the actions' effects: pause
// holds calls until resume, resolve by hand lets a stuck transaction finish.

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
    const std::string message = r.body.is_object() && r.body.contains("error")
                                    ? r.body["error"].value("message", "")
                                    : r.raw;
    EXPECT_NE(message.find(field), std::string::npos) << what << ": " << message;
  }
  std::string Message(const ApiReply& r) {
    return r.body.is_object() && r.body.contains("error") ? r.body["error"].value("message", "")
                                                          : r.raw;
  }
  // Waits until `gtid` is in `state` (or `timeout_ms`); returns the last document.
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
  bool WaitCall(const std::string& gtid, const std::string& branch, const std::string& op) {
    return participant_->WaitFor(
        [&](const auto& calls) {
          for (const auto& c : calls) {
            if (c.gtid == gtid && c.branch == branch && c.op == op) return true;
          }
          return false;
        },
        std::chrono::seconds(20));
  }
  json Branch2pc(const std::string& name) {
    return {{"name", name},
            {"prepare", participant_->Url(name, "prepare")},
            {"commit", participant_->Url(name, "commit")},
            {"abort", participant_->Url(name, "abort")}};
  }
  // A saga whose first step succeeded, whose second failed for good, and
  // whose first step's compensation answers 500 for ever: stuck COMPENSATING.
  void StartCompensatingSaga(const std::string& gtid) {
    participant_->SetRule("pay", "action", Rule{{409}});
    participant_->SetRule("book", "compensate", Rule{{500}});
    ASSERT_EQ(Post("/v1/sagas", {{"gtid", gtid}, {"steps", {Step("book"), Step("pay")}}}).status,
              201);
    ASSERT_TRUE(WaitCall(gtid, "book", "compensate"));
    WaitState(gtid, "COMPENSATING");
  }
  // A one-branch 2PC whose commit URL answers 404 for ever: stuck COMMITTING.
  void StartCommittingTwoPhase(const std::string& gtid) {
    participant_->SetRule("acct", "commit", Rule{{404}});
    ASSERT_EQ(Post("/v1/2pc", {{"gtid", gtid}}).status, 201);
    ASSERT_EQ(Post("/v1/2pc/" + gtid + "/branches", Branch2pc("acct")).status, 201);
    auto c = Post("/v1/2pc/" + gtid + "/commit", json::object());
    ASSERT_EQ(c.status, 200) << c.raw;
    ASSERT_TRUE(WaitCall(gtid, "acct", "commit"));
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

// --- Answers and refusals that need no new engine behaviour ---

TEST_P(OperatorApiTest, RetryAnswersStatePausedAndFinished) {
  json slow = Step("slow", 1000);
  participant_->SetRule("slow", "action", Rule{{503}});
  ASSERT_EQ(Post("/v1/sagas", {{"gtid", "r-1"}, {"steps", {slow}}}).status, 201);
  ASSERT_TRUE(WaitCall("r-1", "slow", "action"));
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

TEST_P(OperatorApiTest, AbortOfACommitting2pcIs409BecauseTheDecisionIsDurable) {
  StartCommittingTwoPhase("c-1");
  auto r = Post("/v1/transactions/c-1/abort", {{"reason", "try"}});
  EXPECT_EQ(r.status, 409) << r.raw;
  EXPECT_NE(Message(r).find("commit decision"), std::string::npos) << r.raw;
  EXPECT_EQ(Get("/v1/transactions/c-1").body["state"], "COMMITTING");
}

// --- Expected to pass once the engine implements the actions (Pause,
// Resume, Resolve, ForceAbort refusals) ---

TEST_P(OperatorApiTest, AbortOfACompensatingSagaIs409AlreadyCompensating) {
  StartCompensatingSaga("k-1");
  auto r = Post("/v1/transactions/k-1/abort", json::object());
  EXPECT_EQ(r.status, 409) << r.raw;
  EXPECT_NE(Message(r).find("already compensating"), std::string::npos) << r.raw;
}

TEST_P(OperatorApiTest, PauseHoldsCallsUntilResume) {
  json slow = Step("slow", 1000);
  slow["retry"]["max_backoff_ms"] = 50;
  participant_->SetRule("slow", "action", Rule{{503}});
  ASSERT_EQ(Post("/v1/sagas", {{"gtid", "p-1"}, {"steps", {slow}}}).status, 201);
  ASSERT_TRUE(WaitCall("p-1", "slow", "action"));
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
  bool recorded = false;
  for (const auto& e : d.body["history"]) {
    const std::string detail = e["detail"];
    recorded |= e["type"] == "operator" && detail.find("pause") != std::string::npos &&
                detail.find("anonymous@127.0.0.1:") != std::string::npos &&
                detail.find("participant maintenance") != std::string::npos;
  }
  EXPECT_TRUE(recorded) << d.raw;

  participant_->SetRule("slow", "action", Rule{{200}});
  auto resumed = Post("/v1/transactions/p-1/resume", {{"reason", "maintenance over"}});
  ASSERT_EQ(resumed.status, 200) << resumed.raw;
  EXPECT_EQ(resumed.body["paused"], false);
  EXPECT_EQ(WaitTerminal("p-1")["state"], "COMMITTED");
  EXPECT_EQ(Post("/v1/transactions/p-1/resume", json::object()).status, 409);
}

TEST_P(OperatorApiTest, ResolveCompensatedLetsAStuckSagaFinish) {
  StartCompensatingSaga("k-2");
  const std::string base = "/v1/transactions/k-2/branches/";
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
  auto d = WaitTerminal("k-2");
  EXPECT_EQ(d["state"], "ABORTED");
  bool recorded = false;
  for (const auto& e : d["history"]) {
    const std::string detail = e["detail"];
    recorded |= e["type"] == "operator" && detail.find("resolve") != std::string::npos &&
                detail.find("COMPENSATED") != std::string::npos &&
                detail.find("ticket 42") != std::string::npos;
  }
  EXPECT_TRUE(recorded) << d.dump();
}

TEST_P(OperatorApiTest, ResolveCommittedLetsAStuckTwoPhaseFinish) {
  StartCommittingTwoPhase("c-2");
  auto wrong =
      Post("/v1/transactions/c-2/branches/acct/resolve", {{"outcome", "ABORTED"}, {"reason", "x"}});
  EXPECT_EQ(wrong.status, 409) << wrong.raw;
  auto ok = Post("/v1/transactions/c-2/branches/acct/resolve",
                 {{"outcome", "COMMITTED"}, {"reason", "committed the prepared xact by hand"}});
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(WaitTerminal("c-2")["state"], "COMMITTED");
}

INSTANTIATE_TEST_SUITE_P(Engines, OperatorApiTest, ::testing::Values("sqlite", "postgres"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
