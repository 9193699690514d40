// REST 2PC API against a real server and real participants over HTTP
// (TestParticipant) and Thrift (ThriftTestParticipant), on SQLite and
// PostgreSQL: each test runs once per engine.

#include <gtest/gtest.h>

#include <thread>

#include "api/api_fixture.h"
#include "support/thrift_test_participant.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;
using TRule = ThriftTestParticipant::Rule;
using TReply = ThriftTestParticipant::Reply;

class TwoPhaseApiTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    thrift_ = std::make_unique<ThriftTestParticipant>();
  }
  void TearDown() override {
    ApiTest::TearDown();
    thrift_.reset();
  }

  void Begin(const std::string& gtid, json extra = json::object()) {
    extra["gtid"] = gtid;
    auto r = Post("/v1/2pc", extra);
    ASSERT_EQ(r.status, 201) << r.raw;
    EXPECT_EQ(r.body["state"], "ACTIVE");
  }
  json HttpBranch(const std::string& name) {
    return {{"name", name},
            {"prepare", participant_->Url(name, "prepare")},
            {"commit", participant_->Url(name, "commit")},
            {"abort", participant_->Url(name, "abort")},
            {"payload", {{"branch", name}}}};
  }
  json ThriftBranch(const std::string& name) {
    return {{"name", name},
            {"prepare", thrift_->Url()},
            {"commit", thrift_->Url()},
            {"abort", thrift_->Url()},
            {"payload", {{"branch", name}}}};
  }
  void Enlist(const std::string& gtid, const json& branch) {
    auto r = Post("/v1/2pc/" + gtid + "/branches", branch);
    ASSERT_EQ(r.status, 201) << r.raw;
  }
  std::string Commit(const std::string& gtid) {
    auto r = Post("/v1/2pc/" + gtid + "/commit", json::object());
    EXPECT_EQ(r.status, 200) << r.raw;
    return r.body.value("state", "");
  }
  int Calls(const std::string& gtid, const std::string& b, const std::string& op) {
    return participant_->CallCount(gtid, b, op) + thrift_->CallCount(gtid, b, op);
  }

  std::unique_ptr<ThriftTestParticipant> thrift_;
};

TEST_P(TwoPhaseApiTest, AllYesCommitsOverHttpAndThrift) {
  Begin("t1");
  Enlist("t1", HttpBranch("h1"));
  Enlist("t1", HttpBranch("h2"));
  Enlist("t1", ThriftBranch("th"));
  const std::string decision = Commit("t1");
  EXPECT_TRUE(decision == "COMMITTED" || decision == "COMMITTING") << decision;
  auto d = WaitTerminal("t1");
  EXPECT_EQ(d["state"], "COMMITTED");
  EXPECT_EQ(d["kind"], "2pc");
  for (const char* b : {"h1", "h2", "th"}) {
    EXPECT_EQ(Calls("t1", b, "prepare"), 1) << b;
    EXPECT_EQ(Calls("t1", b, "commit"), 1) << b;
    EXPECT_EQ(Calls("t1", b, "abort"), 0) << b;
  }
  for (const auto& br : d["branches"]) EXPECT_EQ(br["state"], "COMMITTED");
  for (const auto& c : participant_->Calls()) {
    EXPECT_EQ(c.idempotency_key, "t1/" + c.branch + "/" + c.op);
    EXPECT_EQ(c.payload, json({{"branch", c.branch}}).dump());
  }
  for (const auto& c : thrift_->Calls()) {
    EXPECT_EQ(c.idempotency_key, "t1/th/" + c.op);
    EXPECT_EQ(json::parse(c.payload), json({{"branch", "th"}}));
  }
}

TEST_P(TwoPhaseApiTest, OneNoVoteAbortsAll) {
  participant_->SetRule("h2", "prepare", Rule{{409}});
  Begin("t2");
  Enlist("t2", HttpBranch("h1"));
  Enlist("t2", HttpBranch("h2"));
  Enlist("t2", ThriftBranch("th"));
  EXPECT_EQ(Commit("t2").substr(0, 5), "ABORT");
  EXPECT_EQ(WaitTerminal("t2")["state"], "ABORTED");
  for (const char* b : {"h1", "h2", "th"}) {
    EXPECT_EQ(Calls("t2", b, "commit"), 0) << b;
    EXPECT_EQ(Calls("t2", b, "abort"), 1) << b;
  }
}

TEST_P(TwoPhaseApiTest, ThriftNoVoteAbortsAll) {
  thrift_->SetRule("th", "prepare", TRule{{TReply::kOk}, ThriftTestParticipant::Vote::kNo});
  Begin("t2t");
  Enlist("t2t", HttpBranch("h1"));
  Enlist("t2t", ThriftBranch("th"));
  Commit("t2t");
  EXPECT_EQ(WaitTerminal("t2t")["state"], "ABORTED");
  EXPECT_EQ(Calls("t2t", "h1", "abort"), 1);
  EXPECT_EQ(Calls("t2t", "h1", "commit"), 0);
}

TEST_P(TwoPhaseApiTest, ParticipantDownInPhaseTwoIsRetriedUntilItReturns) {
  participant_->SetRule("h1", "commit", Rule{{503, 503, 503, 503, 200}});
  thrift_->SetRule("th", "commit",
                   TRule{{TReply::kRetry, TReply::kThrow, TReply::kRetry, TReply::kOk}});
  Begin("t3");
  Enlist("t3", HttpBranch("h1"));
  Enlist("t3", ThriftBranch("th"));
  Commit("t3");
  auto d = WaitTerminal("t3");
  EXPECT_EQ(d["state"], "COMMITTED");
  EXPECT_EQ(Calls("t3", "h1", "commit"), 5);
  EXPECT_EQ(Calls("t3", "th", "commit"), 4);
  bool attention = false;
  for (const auto& e : d["history"]) attention = attention || e["type"] == "attention";
  EXPECT_TRUE(attention);  // attention_after_attempts = 3 in the fixture
  EXPECT_FALSE(d["needs_attention"].get<bool>());
}

TEST_P(TwoPhaseApiTest, DeadlineAbortsActiveAndRefusesLateWork) {
  Begin("t4", {{"timeout_ms", 300}});
  Enlist("t4", HttpBranch("h1"));
  Enlist("t4", ThriftBranch("th"));
  EXPECT_EQ(WaitTerminal("t4")["state"], "ABORTED");
  EXPECT_EQ(Calls("t4", "h1", "abort"), 1);
  EXPECT_EQ(Calls("t4", "th", "abort"), 1);
  auto late = Post("/v1/2pc/t4/branches", HttpBranch("h2"));
  EXPECT_EQ(late.status, 409) << late.raw;
  auto commit = Post("/v1/2pc/t4/commit", json::object());
  EXPECT_EQ(commit.status, 409) << commit.raw;
}

TEST_P(TwoPhaseApiTest, ReadOnlyBranchesSkipPhaseTwo) {
  participant_->SetRule("ro", "prepare", Rule{{200}, 0, R"({"vote":"readonly"})"});
  thrift_->SetRule("tro", "prepare", TRule{{TReply::kOk}, ThriftTestParticipant::Vote::kReadOnly});
  Begin("t5");
  Enlist("t5", HttpBranch("h1"));
  Enlist("t5", HttpBranch("ro"));
  Enlist("t5", ThriftBranch("tro"));
  Commit("t5");
  auto d = WaitTerminal("t5");
  EXPECT_EQ(d["state"], "COMMITTED");
  EXPECT_EQ(Calls("t5", "ro", "commit"), 0);
  EXPECT_EQ(Calls("t5", "tro", "commit"), 0);
  EXPECT_EQ(Calls("t5", "h1", "commit"), 1);
  for (const auto& b : d["branches"]) {
    if (b["name"] != "h1") EXPECT_EQ(b["state"], "READONLY");
  }
}

TEST_P(TwoPhaseApiTest, SingleBranchCommitsInOnePhase) {
  Begin("t6");
  json solo = HttpBranch("solo");
  solo["one_phase"] = true;  // one-phase is declared per branch at enlistment
  Enlist("t6", solo);
  EXPECT_EQ(Commit("t6"), "COMMITTED");
  EXPECT_EQ(Calls("t6", "solo", "prepare"), 0);
  ASSERT_EQ(Calls("t6", "solo", "commit"), 1);
  auto call = participant_->Calls().back();
  EXPECT_EQ(call.headers["treaty-one-phase"], "true");
  EXPECT_TRUE(json::parse(call.body).value("one_phase", false));
  // Over Thrift; without the branch's one_phase the single branch is prepared first.
  Begin("t6t", {{"one_phase", false}});
  Enlist("t6t", ThriftBranch("solo"));
  EXPECT_EQ(Commit("t6t"), "COMMITTED");
  EXPECT_EQ(Calls("t6t", "solo", "prepare"), 1);
  Begin("t6u");
  json tsolo = ThriftBranch("solo");
  tsolo["one_phase"] = true;
  Enlist("t6u", tsolo);
  EXPECT_EQ(Commit("t6u"), "COMMITTED");
  EXPECT_EQ(Calls("t6u", "solo", "prepare"), 0);
  EXPECT_TRUE(thrift_->Calls().back().one_phase);
}

TEST_P(TwoPhaseApiTest, ValidationAndErrors) {
  EXPECT_EQ(PostRaw("/v1/2pc", "{nope").status, 400);
  EXPECT_EQ(Post("/v1/2pc", {{"timeout_ms", -1}}).status, 400);
  EXPECT_EQ(Post("/v1/2pc", {{"gtid", "a b"}}).status, 400);
  EXPECT_EQ(Post("/v1/2pc", {{"bogus", 1}}).status, 400);
  auto fresh = Post("/v1/2pc", json::object());
  ASSERT_EQ(fresh.status, 201);
  EXPECT_EQ(fresh.body["gtid"].get<std::string>().size(), 36u);
  Begin("v1");
  EXPECT_EQ(Post("/v1/2pc", {{"gtid", "v1"}}).status, 200);  // idempotent begin
  EXPECT_EQ(Post("/v1/2pc", {{"gtid", "v1"}, {"timeout_ms", 5}}).status, 409);
  auto bad = Post("/v1/2pc/v1/branches", {{"name", "x"}, {"prepare", "ftp://x"}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.raw.find("prepare"), std::string::npos) << bad.raw;
  EXPECT_EQ(Post("/v1/2pc/v1/branches", {{"prepare", "http://x/p"}}).status, 400);
  EXPECT_EQ(Post("/v1/2pc/unknown/commit", json::object()).status, 404);
  EXPECT_EQ(Post("/v1/2pc/unknown/branches", HttpBranch("a")).status, 404);
  EXPECT_EQ(Post("/v1/2pc/v1/frobnicate", json::object()).status, 404);
  Enlist("v1", HttpBranch("a"));
  Enlist("v1", HttpBranch("a"));  // idempotent enlistment
  json other = HttpBranch("a");
  other["commit"] = "http://127.0.0.1:1/elsewhere";
  EXPECT_EQ(Post("/v1/2pc/v1/branches", other).status, 409);
  // A saga's gtid is not a 2PC transaction.
  auto saga = Post("/v1/sagas", {{"gtid", "s1"}, {"wait", true}, {"steps", {Step("x")}}});
  ASSERT_EQ(saga.status, 201);
  EXPECT_EQ(Post("/v1/2pc/s1/commit", json::object()).status, 409);
}

TEST_P(TwoPhaseApiTest, AbortAndForceAbortRules) {
  Begin("a1");
  Enlist("a1", HttpBranch("h1"));
  auto r = Post("/v1/2pc/a1/abort", json::object());
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(WaitTerminal("a1")["state"], "ABORTED");
  EXPECT_EQ(participant_->CallCount("a1", "h1", "abort"), 1);
  // Once COMMITTING is logged, abort (client or operator) is a 409.
  participant_->SetRule("h2", "commit", Rule{{503}});
  Begin("a2");
  Enlist("a2", HttpBranch("h1"));
  Enlist("a2", HttpBranch("h2"));
  EXPECT_EQ(Commit("a2"), "COMMITTING");
  EXPECT_EQ(Post("/v1/2pc/a2/abort", json::object()).status, 409);
  EXPECT_EQ(Post("/v1/transactions/a2/abort", json::object()).status, 409);
  participant_->SetRule("h2", "commit", Rule{{200}});
  EXPECT_EQ(Post("/v1/transactions/a2/retry", json::object()).status, 200);
  EXPECT_EQ(WaitTerminal("a2")["state"], "COMMITTED");
  // Operator force abort of an undecided one.
  Begin("a3");
  Enlist("a3", HttpBranch("h1"));
  EXPECT_EQ(Post("/v1/transactions/a3/abort", json::object()).status, 200);
  EXPECT_EQ(WaitTerminal("a3")["state"], "ABORTED");
}

INSTANTIATE_TEST_SUITE_P(Engines, TwoPhaseApiTest, ::testing::Values("sqlite", "postgres"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
