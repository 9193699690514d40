// ParticipantServer over Thrift against a real coordinator (a treatyd
// process on a throwaway PostgreSQL log): saga steps and 2PC resource
// managers at thrift:// endpoints, with the outcome mapping of
// participant_server.h (business failure -> FAILED / vote NO, an exception
// -> RETRY, readonly vote).

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

#include "sdk/sdk_test_env.h"
#include "treaty/client.h"
#include "treaty/participant_server.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;

class ParticipantServerThriftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("treaty-sdk-thrift-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    store_ = FreshDatabase("thrift_participant_log");
    ASSERT_FALSE(store_.empty());
    coordinator_ = std::make_unique<CoordinatorProcess>(store_, dir_);
    ASSERT_TRUE(coordinator_->Start());

    sdk::ParticipantServerOptions options;
    options.thrift_port = 0;
    options.handler_threads = 4;
    participant_ = std::make_unique<sdk::ParticipantServer>(options);
    // Steps' behaviour comes from the payload: "fail" is a business failure,
    // "throw-once" throws on its first delivery (transient, retried).
    for (const char* name : {"flight", "hotel", "car"}) {
      participant_->AddSagaStep(name, Record('A', /*by_payload=*/true), Record('C'));
    }
    auto vote = [this](const sdk::CallContext& ctx) -> treaty::Result<sdk::Vote> {
      Note(ctx, 'p');
      if (ctx.payload == "\"no\"") return sdk::Vote::kNo;
      if (ctx.payload == "\"readonly\"") return sdk::Vote::kReadOnly;
      if (ctx.payload == "\"refuse\"") return treaty::Status::BusinessFailure("insufficient funds");
      return sdk::Vote::kYes;
    };
    // Commit: "refuse-commit" is a business failure, "invalid-commit" an
    // InvalidArgument (both final refusals of a one-phase commit).
    auto commit = [this](const sdk::CallContext& ctx) -> treaty::Status {
      Note(ctx, 'c');
      if (ctx.payload == "\"refuse-commit\"") return treaty::Status::BusinessFailure("no funds");
      if (ctx.payload == "\"invalid-commit\"") return treaty::Status::InvalidArgument("bad amount");
      return treaty::Status::Ok();
    };
    for (const char* name : {"debit", "credit"}) {
      participant_->AddResourceManager(name, vote, commit, Record('a'));
    }
    auto s = participant_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_NE(participant_->thrift_port(), 0);
    client_ =
        std::make_unique<sdk::Client>(sdk::ClientOptions{.coordinators = {coordinator_->url()}});
  }

  void TearDown() override {
    client_.reset();
    participant_.reset();
    coordinator_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Records op `c` of the branch; a one-phase commit records "c1".
  void Note(const sdk::CallContext& ctx, char c) {
    std::lock_guard<std::mutex> l(mu_);
    ops_[ctx.gtid + "/" + ctx.branch] += c;
    if (ctx.one_phase) ops_[ctx.gtid + "/" + ctx.branch] += '1';
  }

  sdk::StepHandler Record(char c, bool by_payload = false) {
    return [this, c, by_payload](const sdk::CallContext& ctx) {
      Note(ctx, c);
      if (by_payload && ctx.payload == "\"fail\"")
        return treaty::Status::BusinessFailure("sold out");
      if (by_payload && ctx.payload == "\"throw-once\"") {
        std::lock_guard<std::mutex> l(mu_);
        if (thrown_.insert(ctx.gtid).second) throw std::runtime_error("database hiccup");
      }
      return treaty::Status::Ok();
    };
  }

  std::string Ops(const std::string& gtid, const std::string& branch) {
    std::lock_guard<std::mutex> l(mu_);
    return ops_[gtid + "/" + branch];
  }

  sdk::SagaSpec Trip(const std::string& gtid, const std::string& car_payload) {
    sdk::SagaSpec saga;
    saga.gtid = gtid;
    for (const char* name : {"flight", "hotel", "car"}) {
      sdk::SagaStepSpec step;
      step.name = name;
      step.action = step.compensate = participant_->thrift_url();
      step.payload = name == std::string("car") ? car_payload : "null";
      saga.steps.push_back(step);
    }
    return saga;
  }

  sdk::BranchSpec Branch(const std::string& name, const std::string& payload) {
    const std::string url = participant_->thrift_url();
    return {.name = name, .prepare = url, .commit = url, .abort = url, .payload = payload};
  }

  std::string dir_, store_;
  std::unique_ptr<CoordinatorProcess> coordinator_;
  std::unique_ptr<sdk::ParticipantServer> participant_;
  std::unique_ptr<sdk::Client> client_;
  std::mutex mu_;
  std::map<std::string, std::string> ops_;  // guarded by mu_
  std::set<std::string> thrown_;            // guarded by mu_
};

TEST(ParticipantServerThriftOptionTest, NoThriftUnlessAsked) {
  sdk::ParticipantServer http_only;
  ASSERT_TRUE(http_only.Start().ok());
  EXPECT_EQ(http_only.thrift_port(), 0);
  EXPECT_EQ(http_only.thrift_url(), "");
  http_only.Stop();
  sdk::ParticipantServerOptions options;
  options.thrift_port = 0;
  sdk::ParticipantServer both(options);
  ASSERT_TRUE(both.Start().ok());
  EXPECT_NE(both.thrift_port(), 0);
  EXPECT_NE(both.thrift_port(), both.http_port());
  EXPECT_EQ(both.thrift_url(), "thrift://127.0.0.1:" + std::to_string(both.thrift_port()));
  both.Stop();
  both.Stop();  // idempotent
}

TEST_F(ParticipantServerThriftTest, SagaCommitsAndABusinessFailureCompensates) {
  auto ok = client_->SubmitSaga(Trip("trip-ok", "null"), /*wait=*/true, 15000);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->state, "COMMITTED");
  for (const char* step : {"flight", "hotel", "car"}) EXPECT_EQ(Ops("trip-ok", step), "A") << step;

  auto failed = client_->SubmitSaga(Trip("trip-fail", "\"fail\""), /*wait=*/true, 15000);
  ASSERT_TRUE(failed.ok()) << failed.status().ToString();
  EXPECT_EQ(failed->state, "ABORTED");
  // FAILED is not retried; every attempted step is compensated (the failed
  // one too: it may have done part of its work).
  EXPECT_EQ(Ops("trip-fail", "car"), "AC");
  EXPECT_EQ(Ops("trip-fail", "flight"), "AC");
  EXPECT_EQ(Ops("trip-fail", "hotel"), "AC");

  // An exception is transient (RETRY): the step is delivered again.
  auto retried = client_->SubmitSaga(Trip("trip-retry", "\"throw-once\""), /*wait=*/true, 15000);
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(retried->state, "COMMITTED");
  EXPECT_EQ(Ops("trip-retry", "car"), "AA");
  EXPECT_EQ(Ops("trip-retry", "flight"), "A");
}

TEST_F(ParticipantServerThriftTest, TwoPhaseCommitsAndANoVoteAborts) {
  ASSERT_TRUE(client_->Begin("tx-commit", 15000).ok());
  ASSERT_TRUE(client_->Enlist("tx-commit", Branch("debit", "\"yes\"")).ok());
  ASSERT_TRUE(client_->Enlist("tx-commit", Branch("credit", "\"readonly\"")).ok());
  auto c = client_->Commit("tx-commit");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto done = client_->WaitForOutcome("tx-commit", 15000);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->state, "COMMITTED");
  EXPECT_EQ(Ops("tx-commit", "debit"), "pc");
  EXPECT_EQ(Ops("tx-commit", "credit"), "p");  // readonly: no second phase

  for (const char* no : {"\"no\"", "\"refuse\""}) {
    const std::string gtid = std::string("tx-no-") + (no[1] == 'n' ? "vote" : "failure");
    ASSERT_TRUE(client_->Begin(gtid, 15000).ok());
    ASSERT_TRUE(client_->Enlist(gtid, Branch("debit", "\"yes\"")).ok());
    ASSERT_TRUE(client_->Enlist(gtid, Branch("credit", no)).ok());
    ASSERT_TRUE(client_->Commit(gtid).ok());
    auto out = client_->WaitForOutcome(gtid, 15000);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->state, "ABORTED") << gtid;
    auto info = client_->Get(gtid);
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(Ops(gtid, "debit").find('c'), std::string::npos) << gtid;
    EXPECT_NE(Ops(gtid, "debit").find('a'), std::string::npos) << gtid;
  }

  // One branch: prepared, then committed (one-phase is not the default).
  ASSERT_TRUE(client_->Begin("tx-one", 15000).ok());
  ASSERT_TRUE(client_->Enlist("tx-one", Branch("debit", "\"yes\"")).ok());
  ASSERT_TRUE(client_->Commit("tx-one").ok());
  EXPECT_EQ(client_->WaitForOutcome("tx-one", 15000)->state, "COMMITTED");
  EXPECT_EQ(Ops("tx-one", "debit"), "pc");

  // One branch that declared one-phase support: a single commit call over
  // Thrift, flagged (ParticipantCall.one_phase reaches CallContext).
  ASSERT_TRUE(client_->Begin("tx-one-phase", 15000).ok());
  sdk::BranchSpec one = Branch("debit", "\"yes\"");
  one.one_phase = true;
  ASSERT_TRUE(client_->Enlist("tx-one-phase", one).ok());
  ASSERT_TRUE(client_->Commit("tx-one-phase").ok());
  EXPECT_EQ(client_->WaitForOutcome("tx-one-phase", 15000)->state, "COMMITTED");
  EXPECT_EQ(Ops("tx-one-phase", "debit"), "c1");

  // A one-phase commit refused (BusinessFailure, FAILED) aborts the
  // transaction; an InvalidArgument from a handler is a refusal as well
  // (FAILED), not a RETRY answered forever.
  for (const char* refusal : {"\"refuse-commit\"", "\"invalid-commit\""}) {
    const std::string gtid =
        std::string("tx-one-phase-") + (refusal[1] == 'r' ? "refused" : "invalid");
    ASSERT_TRUE(client_->Begin(gtid, 15000).ok());
    sdk::BranchSpec b = Branch("credit", refusal);
    b.one_phase = true;
    ASSERT_TRUE(client_->Enlist(gtid, b).ok());
    ASSERT_TRUE(client_->Commit(gtid).ok());
    EXPECT_EQ(client_->WaitForOutcome(gtid, 15000)->state, "ABORTED") << gtid;
    EXPECT_EQ(Ops(gtid, "credit"), "c1") << gtid;  // once: not retried
  }
}

// The Client over Thrift (CoordinatorService), with a dead coordinator first
// in its list: the same answers and typed errors as over REST.
TEST_F(ParticipantServerThriftTest, ClientOverThriftSubmitsAndReadsBack) {
  sdk::Client client({.coordinators = {"thrift://127.0.0.1:1", coordinator_->thrift_url()},
                      .request_timeout_ms = 5000,
                      .backoff_ms = 20});
  for (int i = 0; i < 2; ++i) {  // each start in the list, so the dead one is passed over
    const std::string gtid = "thrift-trip-" + std::to_string(i);
    auto r = client.SubmitSaga(Trip(gtid, "null"), /*wait=*/true, 15000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->gtid, gtid);
    EXPECT_EQ(r->state, "COMMITTED");
  }
  auto info = client.Get("thrift-trip-0");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->kind, "saga");
  EXPECT_EQ(info->state, "COMMITTED");
  ASSERT_EQ(info->branches.size(), 3u);
  EXPECT_EQ(info->branches[0].name, "flight");
  EXPECT_EQ(info->branches[0].state, "SUCCEEDED") << info->json;

  // A retried submission with the same gtid and body is safe; another body
  // under that gtid is a Conflict.
  auto again = client.SubmitSaga(Trip("thrift-trip-0", "null"));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(Ops("thrift-trip-0", "flight"), "A");
  EXPECT_EQ(client.SubmitSaga(Trip("thrift-trip-0", "\"fail\"")).status().code(),
            treaty::StatusCode::kConflict);
  EXPECT_EQ(client.Get("no-such-gtid").status().code(), treaty::StatusCode::kNotFound);
  EXPECT_EQ(client.SubmitSaga(sdk::SagaSpec{}).status().code(),
            treaty::StatusCode::kInvalidArgument);

  // 2PC driven over Thrift.
  auto begin = client.Begin("thrift-tx", 15000);
  ASSERT_TRUE(begin.ok()) << begin.status().ToString();
  EXPECT_EQ(begin->state, "ACTIVE");
  ASSERT_TRUE(client.Enlist("thrift-tx", Branch("debit", "\"yes\"")).ok());
  ASSERT_TRUE(client.Enlist("thrift-tx", Branch("credit", "\"yes\"")).ok());
  ASSERT_TRUE(client.Commit("thrift-tx").ok());
  auto done = client.WaitForOutcome("thrift-tx", 15000);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->state, "COMMITTED");
  EXPECT_EQ(Ops("thrift-tx", "credit"), "pc");

  ASSERT_TRUE(client.Begin("thrift-tx-abort", 15000).ok());
  ASSERT_TRUE(client.Enlist("thrift-tx-abort", Branch("debit", "\"yes\"")).ok());
  ASSERT_TRUE(client.Abort("thrift-tx-abort").ok());
  EXPECT_EQ(client.WaitForOutcome("thrift-tx-abort", 15000)->state, "ABORTED");

  // One-phase declared over Thrift (Branch2pc.one_phase): one flagged commit.
  ASSERT_TRUE(client.Begin("thrift-tx-one-phase", 15000).ok());
  sdk::BranchSpec one = Branch("debit", "\"yes\"");
  one.one_phase = true;
  ASSERT_TRUE(client.Enlist("thrift-tx-one-phase", one).ok());
  ASSERT_TRUE(client.Commit("thrift-tx-one-phase").ok());
  EXPECT_EQ(client.WaitForOutcome("thrift-tx-one-phase", 15000)->state, "COMMITTED");
  EXPECT_EQ(Ops("thrift-tx-one-phase", "debit"), "c1");

  sdk::Client dead({.coordinators = {"thrift://127.0.0.1:1"}, .max_attempts = 2, .backoff_ms = 10});
  EXPECT_EQ(dead.Get("thrift-tx").status().code(), treaty::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace treaty::testing
