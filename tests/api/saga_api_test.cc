// REST saga API against a real server, real HTTP participants and real
// stores (SQLite file, PostgreSQL): each test runs once per engine.

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "api/api_fixture.h"
#include "engine/saga_spec.h"
#include "store/log_store.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

class SagaApiTest : public ApiTest {};

std::vector<std::string> Order(const std::vector<TestParticipant::Call>& calls,
                               const std::string& gtid) {
  std::vector<std::string> out;
  for (const auto& c : calls) {
    if (c.gtid == gtid) out.push_back(c.branch + "/" + c.op);
  }
  return out;
}

TEST_P(SagaApiTest, HappyPathCommitsAndShowsHistory) {
  auto r = Post("/v1/sagas", {{"gtid", "trip-1"},
                              {"wait", true},
                              {"steps", {Step("flight"), Step("hotel"), Step("car")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "COMMITTED");
  EXPECT_EQ(Order(participant_->Calls(), "trip-1"),
            (std::vector<std::string>{"flight/action", "hotel/action", "car/action"}));
  for (const auto& c : participant_->Calls()) {
    EXPECT_EQ(c.idempotency_key, "trip-1/" + c.branch + "/" + c.op);
    EXPECT_EQ(c.payload, json({{"step", c.branch}}).dump());
    EXPECT_EQ(c.traceparent.size(), 55u) << c.traceparent;
  }
  auto d = Get("/v1/transactions/trip-1");
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(d.body["kind"], "saga");
  ASSERT_EQ(d.body["branches"].size(), 3u);
  for (const auto& b : d.body["branches"]) EXPECT_EQ(b["state"], "SUCCEEDED");
  EXPECT_GE(d.body["history"].size(), 7u);
}

TEST_P(SagaApiTest, BusinessFailureCompensatesInReverseOrder) {
  participant_->SetRule("car", "action", Rule{{409}});
  auto r = Post("/v1/sagas", {{"gtid", "trip-2"},
                              {"wait", true},
                              {"steps", {Step("flight"), Step("hotel"), Step("car")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "ABORTED");
  EXPECT_EQ(Order(participant_->Calls(), "trip-2"),
            (std::vector<std::string>{"flight/action", "hotel/action", "car/action",
                                      "car/compensate", "hotel/compensate", "flight/compensate"}));
  auto d = Get("/v1/transactions/trip-2");
  for (const auto& b : d.body["branches"]) EXPECT_EQ(b["state"], "COMPENSATED");
}

TEST_P(SagaApiTest, TransientFailuresAreRetriedUntilSuccess) {
  participant_->SetRule("hotel", "action", Rule{{503, 500, 200}});
  auto r = Post("/v1/sagas",
                {{"gtid", "trip-3"}, {"wait", true}, {"steps", {Step("flight"), Step("hotel")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "COMMITTED");
  EXPECT_EQ(participant_->CallCount("trip-3", "hotel", "action"), 3);
  EXPECT_EQ(participant_->EffectCount("trip-3", "hotel", "action"), 1);
  auto d = Get("/v1/transactions/trip-3");
  EXPECT_EQ(d.body["branches"][1]["attempts"], 3);
}

TEST_P(SagaApiTest, RetriesExhaustedCompensates) {
  participant_->SetRule("hotel", "action", Rule{{503}});
  auto r = Post("/v1/sagas", {{"gtid", "trip-4"},
                              {"wait", true},
                              {"steps", {Step("flight"), Step("hotel", 3), Step("car")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "ABORTED");
  EXPECT_EQ(participant_->CallCount("trip-4", "hotel", "action"), 3);
  EXPECT_EQ(participant_->CallCount("trip-4", "car", "action"), 0);
  EXPECT_EQ(participant_->EffectCount("trip-4", "hotel", "compensate"), 1);
  EXPECT_EQ(participant_->EffectCount("trip-4", "flight", "compensate"), 1);
}

TEST_P(SagaApiTest, StepTimeoutCountsAsTransient) {
  participant_->SetRule("hotel", "action", Rule{{200}, 1500});
  json hotel = Step("hotel", 2);
  hotel["timeout_ms"] = 200;
  auto r =
      Post("/v1/sagas", {{"gtid", "trip-5"}, {"wait", true}, {"steps", {Step("flight"), hotel}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "ABORTED");
  EXPECT_EQ(participant_->CallCount("trip-5", "hotel", "action"), 2);
  EXPECT_EQ(participant_->CallCount("trip-5", "hotel", "compensate"), 1);
}

TEST_P(SagaApiTest, SagaDeadlineCompensates) {
  participant_->SetRule("hotel", "action", Rule{{503}});
  json hotel = Step("hotel", 1000);
  hotel["retry"]["max_backoff_ms"] = 50;
  auto r = Post("/v1/sagas", {{"gtid", "trip-6"},
                              {"wait", true},
                              {"timeout_ms", 600},
                              {"steps", {Step("flight"), hotel, Step("car")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "ABORTED");
  auto d = Get("/v1/transactions/trip-6");
  bool deadline = false;
  for (const auto& e : d.body["history"]) {
    deadline |= e["detail"].get<std::string>().find("deadline") != std::string::npos;
  }
  EXPECT_TRUE(deadline) << d.raw;
  EXPECT_EQ(participant_->EffectCount("trip-6", "flight", "compensate"), 1);
}

TEST_P(SagaApiTest, ConcurrentDagRunsInDependencyOrder) {
  participant_->SetRule("a", "action", Rule{{200}, 50});
  participant_->SetRule("b", "action", Rule{{200}, 150});
  participant_->SetRule("c", "action", Rule{{200}, 20});
  json a = Step("a"), b = Step("b"), c = Step("c"), d = Step("d");
  b["after"] = {"a"};
  c["after"] = {"a"};
  d["after"] = {"b", "c"};
  auto r = Post("/v1/sagas",
                {{"gtid", "dag-1"}, {"wait", true}, {"concurrent", true}, {"steps", {a, b, c, d}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "COMMITTED");
  auto order = Order(participant_->Calls(), "dag-1");
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0], "a/action");
  EXPECT_EQ(order[3], "d/action");
  // b and c overlapped: c (fast) was called before b answered, so d came last.
  std::set<std::string> middle = {order[1], order[2]};
  EXPECT_EQ(middle, (std::set<std::string>{"b/action", "c/action"}));
}

TEST_P(SagaApiTest, FailingCompensationIsRetriedAndFlaggedThenFinishes) {
  participant_->SetRule("hotel", "action", Rule{{409}});
  participant_->SetRule("flight", "compensate", Rule{{500, 500, 500, 500, 500, 200}});
  auto r = Post("/v1/sagas", {{"gtid", "comp-1"}, {"steps", {Step("flight"), Step("hotel")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  bool flagged = false;
  for (int i = 0; i < 200 && !flagged; ++i) {
    auto d = Get("/v1/transactions/comp-1");
    flagged = d.body["needs_attention"] == true;
    if (!flagged) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(flagged) << "needs_attention after 3 failed compensations";
  auto d = WaitTerminal("comp-1");
  EXPECT_EQ(d["state"], "ABORTED");
  EXPECT_EQ(d["needs_attention"], false);
  EXPECT_EQ(participant_->CallCount("comp-1", "flight", "compensate"), 6);
  EXPECT_EQ(participant_->EffectCount("comp-1", "flight", "compensate"), 1);
}

TEST_P(SagaApiTest, ResubmissionIsIdempotentAndADifferentBodyConflicts) {
  json body = {{"gtid", "same-1"}, {"steps", {Step("flight")}}};
  auto first = Post("/v1/sagas", body);
  ASSERT_EQ(first.status, 201) << first.raw;
  WaitTerminal("same-1");
  body["wait"] = true;  // `wait` is not part of the saga
  auto again = Post("/v1/sagas", body);
  EXPECT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body["state"], "COMMITTED");
  EXPECT_EQ(participant_->CallCount("same-1", "flight", "action"), 1);
  json other = {{"gtid", "same-1"}, {"steps", {Step("hotel")}}};
  auto conflict = Post("/v1/sagas", other);
  EXPECT_EQ(conflict.status, 409) << conflict.raw;
  EXPECT_EQ(conflict.body["error"]["code"], "conflict");
}

TEST_P(SagaApiTest, ServerMakesAGtidWhenNoneIsGiven) {
  auto r = Post("/v1/sagas", {{"steps", {Step("flight")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  std::string gtid = r.body["gtid"];
  EXPECT_EQ(gtid.size(), 36u);
  EXPECT_EQ(WaitTerminal(gtid)["state"], "COMMITTED");
}

TEST_P(SagaApiTest, BadInputGetsAClearErrorAndTheServerStaysUp) {
  auto expect_400 = [&](const std::string& body, const std::string& needle) {
    auto r = PostRaw("/v1/sagas", body);
    EXPECT_EQ(r.status, 400) << body << " -> " << r.raw;
    EXPECT_EQ(r.body["error"]["code"], "invalid_argument") << r.raw;
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find(needle), std::string::npos)
        << "message of " << body << ": " << r.raw;
    EXPECT_EQ(Get("/healthz").status, 200);
  };
  expect_400("{not json", "not valid JSON");
  expect_400("[]", "JSON object");
  expect_400("{}", "'steps'");
  expect_400(json({{"steps", {{{"name", "a"}}}}}).dump(), "'action'");
  json a = Step("a"), b = Step("b");
  expect_400(json({{"steps", {a, a}}}).dump(), "duplicate step name");
  b["after"] = {"zz"};
  expect_400(json({{"concurrent", true}, {"steps", {a, b}}}).dump(), "unknown step 'zz'");
  json c = Step("c"), d = Step("d");
  c["after"] = {"d"};
  d["after"] = {"c"};
  expect_400(json({{"concurrent", true}, {"steps", {c, d}}}).dump(), "cycle");
  json ftp = Step("e");
  ftp["action"] = "ftp://example/e";
  expect_400(json({{"steps", {ftp}}}).dump(), "http://");
  std::string big = json({{"steps", {Step("x")}}, {"padding", std::string(1200000, 'x')}}).dump();
  auto r = PostRaw("/v1/sagas", big);
  EXPECT_EQ(r.status, 413) << r.raw.substr(0, 200);
  EXPECT_EQ(Get("/healthz").status, 200);
  auto list = Get("/v1/transactions");
  EXPECT_EQ(list.body["items"].size(), 0u) << "nothing was accepted";
  EXPECT_EQ(Get("/v1/transactions?limit=abc").status, 400);
  EXPECT_EQ(Get("/v1/transactions?kind=weird").status, 400);
  EXPECT_EQ(Get("/v1/transactions/nope").status, 404);
  EXPECT_EQ(Post("/v1/transactions/nope/retry", json::object()).status, 404);
  EXPECT_EQ(Get("/v1/nothing-here").status, 404);
}

TEST_P(SagaApiTest, ListFiltersAndPagesWithoutGapsOrDuplicates) {
  participant_->SetRule("bad", "action", Rule{{409}});
  for (int i = 0; i < 23; ++i) {
    json steps = {Step(i % 4 == 0 ? "bad" : "good")};
    auto r = Post("/v1/sagas",
                  {{"gtid", "list-" + std::to_string(i)}, {"wait", true}, {"steps", steps}});
    ASSERT_EQ(r.status, 201) << r.raw;
  }
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto r = Get("/v1/transactions?limit=10&gtid_prefix=list-" +
                 (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.raw;
    for (const auto& t : r.body["items"]) EXPECT_TRUE(seen.insert(t["gtid"]).second);
    cursor = r.body["next"];
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(seen.size(), 23u);
  EXPECT_EQ(pages, 3);
  auto aborted = Get("/v1/transactions?state=ABORTED&limit=100");
  EXPECT_EQ(aborted.body["items"].size(), 6u);
  auto sagas = Get("/v1/transactions?kind=saga&state=COMMITTED&limit=100");
  EXPECT_EQ(sagas.body["items"].size(), 17u);
  EXPECT_EQ(Get("/v1/transactions?kind=2pc").body["items"].size(), 0u);
}

// A misspelt filter used to be ignored, so `?stat=ABORTED` listed every
// transaction; a repeated one kept its first value. Both are a 400 naming
// the parameter now.
TEST_P(SagaApiTest, ListRefusesUnknownAndRepeatedParameters) {
  auto r = Post("/v1/sagas", {{"gtid", "one"}, {"wait", true}, {"steps", {Step("good")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  const auto expect_400 = [&](const std::string& target, const std::string& named) {
    auto r = Get(target);
    EXPECT_EQ(r.status, 400) << target << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["code"], "invalid_argument") << target << ": " << r.raw;
    const std::string message = r.body["error"]["message"];
    EXPECT_NE(message.find("query parameter " + named), std::string::npos)
        << target << ": " << message;
  };
  expect_400("/v1/transactions?stat=ABORTED", "'stat' is unknown");
  expect_400("/v1/transactions?limit=5&Limit=5", "'Limit' is unknown");
  expect_400("/v1/transactions?st%61tus=1", "'status' is unknown");
  expect_400("/v1/transactions?%1B%5B2J=1", "'\\x1b[2J' is unknown");
  expect_400("/v1/transactions?state=ABORTED&state=COMMITTED", "'state' is given more than once");
  expect_400("/v1/transactions?limit=5&kind=saga&l%69mit=6", "'limit' is given more than once");
  expect_400("/v1/transactions?cursor&cursor", "'cursor' is given more than once");
  // Every documented parameter is still taken, empty ones as absent.
  auto all =
      Get("/v1/transactions?state=COMMITTED&kind=saga&needs_attention=false&paused=false&"
          "gtid_prefix=o&min_age_ms=&limit=5&cursor=&&");
  EXPECT_EQ(all.status, 200) << all.raw;
  EXPECT_EQ(all.body["items"].size(), 1u) << all.raw;
}

// A misspelt or repeated query parameter of a submission is refused, never
// silently dropped (a typo of wait_timeout_ms would hold the answer 30 s);
// nothing is started.
TEST_P(SagaApiTest, SubmitRefusesUnknownAndRepeatedParameters) {
  for (const std::string& target :
       {std::string("/v1/sagas?wait_timout_ms=200"),
        std::string("/v1/sagas?wait_timeout_ms=200&wait_timeout_ms=9")}) {
    auto r = Post(target, {{"gtid", "typo"}, {"wait", true}, {"steps", {Step("good")}}});
    EXPECT_EQ(r.status, 400) << target << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["code"], "invalid_argument") << r.raw;
    const std::string message = r.body["error"]["message"];
    EXPECT_NE(message.find("query parameter 'wait_t"), std::string::npos) << message;
  }
  EXPECT_EQ(Get("/v1/transactions/typo").status, 404);
  auto ok = Post("/v1/sagas?wait_timeout_ms=2000",
                 {{"gtid", "typo"}, {"wait", true}, {"steps", {Step("good")}}});
  EXPECT_EQ(ok.status, 201) << ok.raw;
}

TEST_P(SagaApiTest, WaitThatRunsOutAnswers202WithTheCurrentState) {
  participant_->SetRule("slow", "action", Rule{{200}, 1500});
  auto r = Post("/v1/sagas?wait_timeout_ms=200",
                {{"gtid", "slow-1"}, {"wait", true}, {"steps", {Step("slow")}}});
  EXPECT_EQ(r.status, 202) << r.raw;
  EXPECT_EQ(r.body["state"], "RUNNING");
  EXPECT_EQ(WaitTerminal("slow-1")["state"], "COMMITTED");
}

TEST_P(SagaApiTest, OperatorRetryAndForceAbort) {
  options_.service.engine.retry_initial_backoff_ms = 60000;
  options_.service.engine.retry_max_backoff_ms = 60000;
  StartServer();
  participant_->SetRule("hotel", "action", Rule{{409}});
  participant_->SetRule("flight", "compensate", Rule{{500, 200}});
  ASSERT_EQ(
      Post("/v1/sagas", {{"gtid", "op-1"}, {"steps", {Step("flight"), Step("hotel")}}}).status,
      201);
  ASSERT_TRUE(participant_->WaitForCall("op-1", "flight", "compensate", std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto retry = Post("/v1/transactions/op-1/retry", json::object());
  EXPECT_EQ(retry.status, 200) << retry.raw;
  EXPECT_EQ(WaitTerminal("op-1", 5000)["state"], "ABORTED") << "retried long before 60 s";

  json slow = Step("slow", 100);
  participant_->SetRule("slow", "action", Rule{{503}});
  ASSERT_EQ(Post("/v1/sagas", {{"gtid", "op-2"}, {"steps", {Step("seat"), slow}}}).status, 201);
  participant_->WaitForCall("op-2", "slow", "action", std::chrono::seconds(10));
  auto abort = Post("/v1/transactions/op-2/abort", json::object());
  EXPECT_EQ(abort.status, 200) << abort.raw;
  EXPECT_EQ(WaitTerminal("op-2", 5000)["state"], "ABORTED");
  EXPECT_EQ(participant_->EffectCount("op-2", "seat", "compensate"), 1);
  EXPECT_EQ(participant_->EffectCount("op-2", "slow", "compensate"), 1);

  ASSERT_EQ(
      Post("/v1/sagas", {{"gtid", "op-3"}, {"wait", true}, {"steps", {Step("flight")}}}).status,
      201);
  auto late = Post("/v1/transactions/op-3/abort", json::object());
  EXPECT_EQ(late.status, 409) << late.raw;
}

TEST_P(SagaApiTest, RestartResumesUnfinishedSagas) {
  participant_->SetRule("hotel", "action", Rule{{200}, 800});
  ASSERT_EQ(Post("/v1/sagas",
                 {{"gtid", "resume-1"}, {"steps", {Step("flight"), Step("hotel"), Step("car")}}})
                .status,
            201);
  participant_->WaitForCall("resume-1", "hotel", "action", std::chrono::seconds(10));
  // flight's success is written behind hotel's action, within write_behind_ms.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server_->Stop();  // no hand-back: like a crash, the lease must expire
  participant_->SetRule("hotel", "action", Rule{{200}});
  StartServer();
  auto d = WaitTerminal("resume-1", 20000);
  EXPECT_EQ(d["state"], "COMMITTED");
  EXPECT_EQ(participant_->CallCount("resume-1", "flight", "action"), 1);
  EXPECT_GE(participant_->CallCount("resume-1", "hotel", "action"), 1);
  EXPECT_EQ(participant_->EffectCount("resume-1", "hotel", "action"), 1);
  EXPECT_EQ(participant_->EffectCount("resume-1", "car", "action"), 1);
}

// A crash inside the write-behind window (here held open for 10 s): the log
// still says flight RUNNING while hotel's action is out. The restarted
// coordinator sends flight and hotel again; the participant's idempotency
// keeps each effect single, and the saga commits.
TEST_P(SagaApiTest, RestartWithinTheWriteBehindWindowResendsUnloggedStepsOnce) {
  server_->Stop();
  options_.service.engine.write_behind_ms = 10000;
  StartServer();
  participant_->SetRule("hotel", "action", Rule{{200}, 800});
  ASSERT_EQ(Post("/v1/sagas",
                 {{"gtid", "behind-1"}, {"steps", {Step("flight"), Step("hotel"), Step("car")}}})
                .status,
            201);
  participant_->WaitForCall("behind-1", "hotel", "action", std::chrono::seconds(10));
  auto mid = Get("/v1/transactions/behind-1");
  ASSERT_EQ(mid.status, 200);
  for (const auto& b : mid.body["branches"]) {
    if (b["name"] == "hotel") EXPECT_EQ(b["state"], "PENDING") << "written behind";
  }
  server_->Stop();  // no hand-back: like a crash
  participant_->SetRule("hotel", "action", Rule{{200}});
  StartServer();
  auto d = WaitTerminal("behind-1", 20000);
  EXPECT_EQ(d["state"], "COMMITTED");
  EXPECT_EQ(participant_->CallCount("behind-1", "flight", "action"), 2)
      << "its success was not logged yet";
  EXPECT_EQ(participant_->EffectCount("behind-1", "flight", "action"), 1);
  EXPECT_EQ(participant_->EffectCount("behind-1", "hotel", "action"), 1);
  EXPECT_EQ(participant_->EffectCount("behind-1", "car", "action"), 1);
}

TEST_P(SagaApiTest, HealthReadinessAndCluster) {
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_EQ(Get("/readyz").status, 200);
  auto c = Get("/v1/cluster");
  ASSERT_EQ(c.status, 200) << c.raw;
  ASSERT_GE(c.body["coordinators"].size(), 1u);
  bool me = false;
  for (const auto& m : c.body["coordinators"]) me |= m["id"] == server_->coordinator_id();
  EXPECT_TRUE(me);
}

INSTANTIATE_TEST_SUITE_P(Engines, SagaApiTest, ::testing::Values("sqlite", "postgres"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
