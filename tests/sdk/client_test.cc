// treaty::Client against real coordinators (two treatyd processes on a
// shared PostgreSQL log) and SDK participants: load spread and fail-over
// between two coordinators, safe retries with the same gtid, and 2PC driven
// end to end through ParticipantServer resource managers.

#include <gtest/gtest.h>

#include <unistd.h>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>

#include "sdk/sdk_test_env.h"
#include "treaty/client.h"
#include "treaty/participant_server.h"
#include "treaty/pg_resource_manager.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("treaty-sdk-client-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    store_ = FreshDatabase("client_log");
    ASSERT_FALSE(store_.empty());
    for (int i = 0; i < 2; ++i) {
      servers_.push_back(std::make_unique<CoordinatorProcess>(store_, dir_));
      ASSERT_TRUE(servers_.back()->Start());
    }
    participant_ = std::make_unique<sdk::ParticipantServer>();
    participant_->AddSagaStep(
        "step",
        [this](const sdk::CallContext& ctx) {
          std::lock_guard<std::mutex> l(mu_);
          actions_[ctx.gtid]++;
          return treaty::Status::Ok();
        },
        [](const sdk::CallContext&) { return treaty::Status::Ok(); });
    auto vote_by_payload = [this](const sdk::CallContext& ctx) -> treaty::Result<sdk::Vote> {
      std::lock_guard<std::mutex> l(mu_);
      ops_[ctx.gtid + "/" + ctx.branch] += "p";
      if (ctx.payload == "\"no\"") return sdk::Vote::kNo;
      if (ctx.payload == "\"boom\"") throw std::runtime_error("unexpected");
      return sdk::Vote::kYes;
    };
    auto record = [this](char c) {
      return [this, c](const sdk::CallContext& ctx) {
        std::lock_guard<std::mutex> l(mu_);
        ops_[ctx.gtid + "/" + ctx.branch] += c;
        return treaty::Status::Ok();
      };
    };
    participant_->AddResourceManager("rm", vote_by_payload, record('c'), record('a'));
    // A debit on real PostgreSQL prepared transactions (payload: the amount).
    bank_ = FreshDatabase("client_bank");
    ASSERT_FALSE(bank_.empty());
    ExecSql(bank_,
            "CREATE TABLE account(id int PRIMARY KEY, balance bigint NOT NULL);"
            "INSERT INTO account VALUES (1, 100)");
    auto debit = sdk::PgResourceManager::Open(
        {.pg_uri = bank_, .coordinators = {servers_[0]->url(), servers_[1]->url()}},
        [](sdk::SqlTx& tx, const sdk::CallContext& ctx) -> treaty::Result<sdk::Vote> {
          auto r = tx.Exec("UPDATE account SET balance = balance - $1::bigint WHERE id = 1",
                           {ctx.payload});
          if (!r.ok()) return r.status();
          return sdk::Vote::kYes;
        });
    ASSERT_TRUE(debit.ok()) << debit.status().ToString();
    debit_ = *debit;
    participant_->AddResourceManager("debit", debit_);
    auto s = participant_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void TearDown() override {
    participant_.reset();
    debit_.reset();
    if (!bank_.empty()) RollbackAllPrepared(bank_);
    servers_.clear();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  sdk::SagaSpec Saga(const std::string& gtid = "") {
    sdk::SagaSpec saga;
    saga.gtid = gtid;
    saga.steps.push_back({.name = "step",
                          .action = participant_->Url("step", "action"),
                          .compensate = participant_->Url("step", "compensate"),
                          .payload = R"({"n":1})"});
    return saga;
  }

  sdk::BranchSpec Branch(const std::string& name, const std::string& payload) {
    return {.name = name,
            .prepare = participant_->Url("rm", "prepare"),
            .commit = participant_->Url("rm", "commit"),
            .abort = participant_->Url("rm", "abort"),
            .payload = payload};
  }

  std::string Ops(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    return ops_[key];
  }

  std::string dir_, store_, bank_;
  std::vector<std::unique_ptr<CoordinatorProcess>> servers_;
  std::shared_ptr<sdk::PgResourceManager> debit_;
  std::unique_ptr<sdk::ParticipantServer> participant_;
  std::mutex mu_;
  std::map<std::string, int> actions_;      // guarded by mu_
  std::map<std::string, std::string> ops_;  // guarded by mu_
};

TEST_F(ClientTest, SpreadsRequestsAndFailsOverWhenACoordinatorDies) {
  const std::string dead = "http://127.0.0.1:1";
  sdk::Client client({.coordinators = {dead, servers_[0]->url(), servers_[1]->url()},
                      .request_timeout_ms = 5000,
                      .backoff_ms = 20});
  std::vector<std::string> gtids;
  for (int i = 0; i < 6; ++i) {
    auto r = client.SubmitSaga(Saga(), /*wait=*/true);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->state, "COMMITTED");
    gtids.push_back(r->gtid);
  }
  // One coordinator dies; the client keeps working through the other.
  servers_[0]->Kill();
  for (int i = 0; i < 6; ++i) {
    auto r = client.SubmitSaga(Saga(), /*wait=*/true);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->state, "COMMITTED");
    gtids.push_back(r->gtid);
  }
  for (const auto& g : gtids) {
    auto t = client.Get(g);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->state, "COMMITTED");
    ASSERT_EQ(t->branches.size(), 1u);
    EXPECT_EQ(t->branches[0].state, "SUCCEEDED");
  }
}

TEST_F(ClientTest, AllCoordinatorsDownIsUnavailable) {
  sdk::Client client({.coordinators = {"http://127.0.0.1:1"}, .max_attempts = 2, .backoff_ms = 10});
  auto r = client.SubmitSaga(Saga());
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kUnavailable) << r.status().ToString();
}

TEST_F(ClientTest, ResubmittingTheSameGtidIsSafe) {
  sdk::Client client({.coordinators = {servers_[0]->url(), servers_[1]->url()}});
  auto first = client.SubmitSaga(Saga("same-gtid"), true);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = client.SubmitSaga(Saga("same-gtid"), true);  // lands on the other coordinator
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->state, "COMMITTED");
  {
    std::lock_guard<std::mutex> l(mu_);
    EXPECT_EQ(actions_["same-gtid"], 1);
  }
  // The same gtid with another body is a conflict.
  auto other = Saga("same-gtid");
  other.steps[0].payload = R"({"n":2})";
  EXPECT_EQ(client.SubmitSaga(other).status().code(), treaty::StatusCode::kConflict);
  EXPECT_EQ(client.Get("no-such-gtid").status().code(), treaty::StatusCode::kNotFound);
}

TEST_F(ClientTest, TwoPhaseCommitThroughResourceManagers) {
  sdk::Client client({.coordinators = {servers_[0]->url(), servers_[1]->url()}});
  auto begin = client.Begin("tx-commit", 20000);
  ASSERT_TRUE(begin.ok()) << begin.status().ToString();
  EXPECT_EQ(begin->state, "ACTIVE");
  for (const char* name : {"a", "b"}) {
    auto s = client.Enlist("tx-commit", Branch(name, "\"yes\""));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  auto c = client.Commit("tx-commit");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_TRUE(c->state == "COMMITTED" || c->state == "COMMITTING") << c->state;
  auto done = client.WaitForOutcome("tx-commit", 20000);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(done->state, "COMMITTED");
  EXPECT_EQ(Ops("tx-commit/a").substr(0, 1), "p");
  EXPECT_NE(Ops("tx-commit/a").find('c'), std::string::npos);
  EXPECT_EQ(Ops("tx-commit/a").find('a'), std::string::npos);

  // A no vote aborts every branch.
  ASSERT_TRUE(client.Begin("tx-no", 20000).ok());
  ASSERT_TRUE(client.Enlist("tx-no", Branch("a", "\"yes\"")).ok());
  ASSERT_TRUE(client.Enlist("tx-no", Branch("b", "\"no\"")).ok());
  auto n = client.Commit("tx-no");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_TRUE(n->state == "ABORTED" || n->state == "ABORTING") << n->state;
  EXPECT_EQ(client.WaitForOutcome("tx-no", 20000)->state, "ABORTED");
  EXPECT_EQ(Ops("tx-no/a").find('c'), std::string::npos);

  // Abort before commit.
  ASSERT_TRUE(client.Begin("tx-abort", 20000).ok());
  ASSERT_TRUE(client.Enlist("tx-abort", Branch("a", "\"yes\"")).ok());
  auto a = client.Abort("tx-abort");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(client.WaitForOutcome("tx-abort", 20000)->state, "ABORTED");
}

// One branch, a participant on PostgreSQL prepared transactions.
// It used to be committed in one phase by default: a bare commit, which the
// resource manager answered "already committed", and COMMITTED without the
// debit. Now it is prepared, then committed; declared one-phase at
// enlistment, it gets one flagged commit that does the work. Both debit.
TEST_F(ClientTest, SingleBranchTwoPhaseCommitAppliesTheWorkInBothModes) {
  sdk::Client client({.coordinators = {servers_[0]->url(), servers_[1]->url()}});
  auto debit = [&](const std::string& gtid, bool one_phase) {
    ASSERT_TRUE(client.Begin(gtid, 20000).ok());
    sdk::BranchSpec b{.name = "debit",
                      .prepare = participant_->Url("debit", "prepare"),
                      .commit = participant_->Url("debit", "commit"),
                      .abort = participant_->Url("debit", "abort"),
                      .payload = "10",
                      .one_phase = one_phase};
    auto s = client.Enlist(gtid, b);
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto c = client.Commit(gtid);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto done = client.WaitForOutcome(gtid, 20000);
    ASSERT_TRUE(done.ok()) << done.status().ToString();
    EXPECT_EQ(done->state, "COMMITTED") << gtid;
  };
  auto barrier_reason = [&](const std::string& gtid) {
    // 1: written by a prepare; 2: by a one-phase commit.
    return QueryInt(bank_,
                    "SELECT CASE reason WHEN 'prepare' THEN 1 WHEN 'commit' THEN 2 ELSE 0 END "
                    "FROM treaty_barrier WHERE gtid = '" +
                        gtid + "' AND op = 'prepare'");
  };
  debit("single-2pc", false);
  EXPECT_EQ(QueryInt(bank_, "SELECT balance FROM account WHERE id = 1"), 90);
  EXPECT_EQ(barrier_reason("single-2pc"), 1);  // prepared, then committed
  debit("single-1pc", true);
  EXPECT_EQ(QueryInt(bank_, "SELECT balance FROM account WHERE id = 1"), 80);
  EXPECT_EQ(barrier_reason("single-1pc"), 2);  // one flagged commit
  EXPECT_EQ(QueryInt(bank_, "SELECT count(*) FROM pg_prepared_xacts"), 0);
}

}  // namespace
}  // namespace treaty::testing
