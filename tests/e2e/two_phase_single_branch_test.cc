// Single-branch 2PC end to end: a real treatyd (SQLite log) and a real
// participant that prepares with PostgreSQL prepared transactions
// (support/pg_participant.h). One-phase commit happens only when the branch
// declares it at enlistment; otherwise even a lone branch is prepared first,
// so a commit is never answered for work that was never done.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "support/pg_participant.h"
#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Mode = PgParticipant::Mode;

class TwoPhaseSingleBranchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-2pc-single");
    TreatydOptions options;
    options.store = "sqlite:" + dir_ + "/t.db";
    node_ = std::make_unique<TreatydProcess>(dir_, "treatyd", options);
    Status s = node_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << "===== treatyd =====\n" << node_->Log() << "\n";
    node_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // A participant on a fresh database with alice's account at 100.
  std::unique_ptr<PgParticipant> Bank(Mode mode) {
    const std::string uri = FreshStoreUri("postgres", dir_);
    EXPECT_FALSE(uri.empty());
    auto bank = std::make_unique<PgParticipant>(uri, mode);
    Status s = bank->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    s = bank->SetBalance("alice", 100);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return bank;
  }

  std::pair<int, json> Post(const std::string& path, const json& body) {
    auto r = HttpFetch("POST", node_->url() + path, body.dump(), {}, 10000);
    if (!r.ok()) return {0, json{{"error", r.status().ToString()}}};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  // Begins `gtid` and enlists branch "debit" taking `amount` from alice.
  // `one_phase`: the field sent at enlistment (absent when nullopt).
  void BeginOneBranch(const std::string& gtid, PgParticipant& bank, int64_t amount,
                      std::optional<bool> one_phase) {
    auto [status, body] = Post("/v1/2pc", {{"gtid", gtid}});
    ASSERT_EQ(status, 201) << body.dump();
    json branch = {{"name", "debit"},
                   {"prepare", bank.Url("debit", "prepare")},
                   {"commit", bank.Url("debit", "commit")},
                   {"abort", bank.Url("debit", "abort")},
                   {"payload", {{"account", "alice"}, {"amount", amount}}}};
    if (one_phase) branch["one_phase"] = *one_phase;
    std::tie(status, body) = Post("/v1/2pc/" + gtid + "/branches", branch);
    ASSERT_EQ(status, 201) << body.dump();
  }
  // Commits `gtid` and waits (up to 20 s) for a terminal state; returns it.
  std::string CommitAndWait(const std::string& gtid) {
    auto [status, body] = Post("/v1/2pc/" + gtid + "/commit", json::object());
    EXPECT_EQ(status, 200) << body.dump();
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::string state;
    while (std::chrono::steady_clock::now() < end) {
      auto r = HttpFetch("GET", node_->url() + "/v1/transactions/" + gtid, "", {}, 2000);
      if (r.ok() && r->status == 200) {
        state = json::parse(r->body).value("state", "");
        if (state == "COMMITTED" || state == "ABORTED") return state;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return state;
  }
  // "op[one_phase]:status" of every call, in arrival order.
  static std::vector<std::string> Trace(const PgParticipant& bank) {
    std::vector<std::string> out;
    for (const auto& c : bank.Calls()) {
      out.push_back(c.op + (c.one_phase ? "[one_phase]" : "") + ":" + std::to_string(c.status) +
                    (c.status >= 500 ? " " + c.answer : ""));
    }
    return out;
  }
  static void ExpectBalance(const PgParticipant& bank, int64_t want) {
    auto balance = bank.Balance("alice");
    ASSERT_TRUE(balance.ok()) << balance.status().ToString();
    EXPECT_EQ(*balance, want);
  }
  static void ExpectNothingPrepared(const PgParticipant& bank) {
    auto gids = bank.PreparedGids();
    ASSERT_TRUE(gids.ok()) << gids.status().ToString();
    EXPECT_TRUE(gids->empty()) << "left prepared: " << ::testing::PrintToString(*gids);
  }

  std::string dir_;
  std::unique_ptr<TreatydProcess> node_;
};

// The reported case: one branch, no one-phase declared, and a participant
// that answers 200 to a commit it has nothing prepared for. The branch must
// be prepared (the debit happens in PREPARE TRANSACTION) before the commit.
// A coordinator that skipped the prepare reported COMMITTED with alice still
// at 100 and a single commit call flagged one_phase.
TEST_F(TwoPhaseSingleBranchTest, LoneBranchIsPreparedBeforeItsCommit) {
  auto bank = Bank(Mode::kNaive);
  BeginOneBranch("single-2p", *bank, 30, std::nullopt);
  EXPECT_EQ(CommitAndWait("single-2p"), "COMMITTED");
  EXPECT_EQ(Trace(*bank), (std::vector<std::string>{"prepare:200", "commit:200"}));
  ExpectBalance(*bank, 70);
  ExpectNothingPrepared(*bank);
}

// "one_phase": false at enlistment is the same as leaving it out.
TEST_F(TwoPhaseSingleBranchTest, OnePhaseFalseIsFullTwoPhase) {
  auto bank = Bank(Mode::kStrict);
  BeginOneBranch("single-2p-false", *bank, 30, false);
  EXPECT_EQ(CommitAndWait("single-2p-false"), "COMMITTED");
  EXPECT_EQ(Trace(*bank), (std::vector<std::string>{"prepare:200", "commit:200"}));
  ExpectBalance(*bank, 70);
  ExpectNothingPrepared(*bank);
}

// Declared at enlistment: one commit flagged one_phase does the work in one
// local transaction; no prepare is sent.
TEST_F(TwoPhaseSingleBranchTest, DeclaredOnePhaseCommitsInOneCall) {
  auto bank = Bank(Mode::kStrict);
  BeginOneBranch("single-1p", *bank, 30, true);
  EXPECT_EQ(CommitAndWait("single-1p"), "COMMITTED");
  EXPECT_EQ(Trace(*bank), (std::vector<std::string>{"commit[one_phase]:200"}));
  ExpectBalance(*bank, 70);
  ExpectNothingPrepared(*bank);
}

// A no vote (insufficient funds): ABORTED, nothing applied, no prepared
// transaction left behind, no commit sent.
TEST_F(TwoPhaseSingleBranchTest, NoVoteAbortsAndLeavesNothingPrepared) {
  auto bank = Bank(Mode::kStrict);
  BeginOneBranch("single-no", *bank, 500, std::nullopt);
  EXPECT_EQ(CommitAndWait("single-no"), "ABORTED");
  const auto trace = Trace(*bank);
  ASSERT_FALSE(trace.empty());
  EXPECT_EQ(trace.front(), "prepare:409");
  for (const auto& t : trace) EXPECT_EQ(t.rfind("commit", 0), std::string::npos) << t;
  ExpectBalance(*bank, 100);
  ExpectNothingPrepared(*bank);
}

// One-phase declared and refused (409): ABORTED, nothing applied.
TEST_F(TwoPhaseSingleBranchTest, DeclaredOnePhaseRefusalAborts) {
  auto bank = Bank(Mode::kStrict);
  BeginOneBranch("single-1p-no", *bank, 500, true);
  EXPECT_EQ(CommitAndWait("single-1p-no"), "ABORTED");
  const auto trace = Trace(*bank);
  ASSERT_FALSE(trace.empty());
  EXPECT_EQ(trace.front(), "commit[one_phase]:409");
  ExpectBalance(*bank, 100);
  ExpectNothingPrepared(*bank);
}

}  // namespace
}  // namespace treaty::testing
