// Cluster faults in 2PC: real treatyd processes on one real PostgreSQL log,
// a real participant on PostgreSQL prepared transactions
// (support/pg_participant.h), and kill -9 of the coordinator that holds
//   (a) transactions in PREPARING: one branch voted yes (a real prepared
//       transaction), the other holds its prepare answer; and one with a
//       single branch (no one-phase declared) holding its prepare answer,
//   (b) transactions in COMMITTING: one branch committed, one fails its
//       commit, one holds its commit answer.
// A survivor takes them over (lease) and must abort every (a) and commit every
// (b). Every call the participant receives is recorded: no branch sees both
// commit and abort, every (a) branch gets abort, every (b) branch gets commit;
// in the database the (b) debits are applied, the (a) ones are not, and no
// prepared transaction is left behind.

#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "cluster_fixture.h"
#include "http/http_client.h"
#include "support/pg_participant.h"
#include "support/store_env.h"

namespace treaty::testing {
namespace {

using nlohmann::json;

constexpr int64_t kOpening = 100;  // every account's balance before
constexpr int64_t kAmount = 10;    // every branch's debit

class TwoPhaseClusterTest : public ClusterFixture {
 protected:
  void SetUp() override {
    ClusterFixture::SetUp();
    store_ = FreshStoreUri("postgres", dir_);
    ASSERT_FALSE(store_.empty());
    const std::string bank_uri = FreshStoreUri("postgres", dir_);
    ASSERT_FALSE(bank_uri.empty());
    bank_ = std::make_unique<PgParticipant>(bank_uri, PgParticipant::Mode::kStrict);
    Status s = bank_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    if (HasFailure()) {
      for (const auto& c : bank_->Calls()) {
        std::cerr << c.gtid << "/" << c.branch << " " << c.op << (c.one_phase ? "[1p]" : "")
                  << " -> " << c.status << " " << c.answer << "\n";
      }
    }
    ClusterFixture::TearDown();  // kills the coordinators: pending commits end
    for (auto& t : committers_) t.join();
    bank_.reset();
  }

  json PostTo(const TreatydProcess& node, const std::string& path, const json& body,
              int timeout_ms = 10000) {
    auto r = HttpFetch("POST", node.url() + path, body.dump(), {}, timeout_ms);
    if (!r.ok()) return json{{"error", r.status().ToString()}};
    return json::parse(r->body, nullptr, false);
  }
  // Begins `gtid` on `node` with one branch per name; each debits kAmount
  // from the account of the same name (opened at kOpening). Call time-outs
  // are long, so a held answer is not retried before the kill.
  void Begin(const TreatydProcess& node, const std::string& gtid,
             const std::vector<std::string>& branches) {
    ASSERT_EQ(PostTo(node, "/v1/2pc", {{"gtid", gtid}})["state"], "ACTIVE");
    for (const auto& b : branches) {
      Status s = bank_->SetBalance(b, kOpening);
      ASSERT_TRUE(s.ok()) << s.ToString();
      json spec = {{"name", b},
                   {"prepare", bank_->Url(b, "prepare")},
                   {"commit", bank_->Url(b, "commit")},
                   {"abort", bank_->Url(b, "abort")},
                   {"timeout_ms", 60000},
                   {"payload", {{"account", b}, {"amount", kAmount}}}};
      ASSERT_EQ(PostTo(node, "/v1/2pc/" + gtid + "/branches", spec)["state"], "ACTIVE") << b;
    }
    branches_[gtid] = branches;
  }
  // Calls of (gtid, branch, op) answered with `status` (0: any answer).
  static int Answered(const std::vector<PgParticipant::Call>& calls, const std::string& gtid,
                      const std::string& branch, const std::string& op, int status = 0) {
    int n = 0;
    for (const auto& c : calls) {
      n += c.gtid == gtid && c.branch == branch && c.op == op && c.status != 0 &&
           (status == 0 || c.status == status);
    }
    return n;
  }
  // Calls of (gtid, branch, op) received, answered or not. For WaitFor
  // predicates (which must not call back into the participant).
  static int Received(const std::vector<PgParticipant::Call>& calls, const std::string& gtid,
                      const std::string& branch, const std::string& op) {
    int n = 0;
    for (const auto& c : calls) n += c.gtid == gtid && c.branch == branch && c.op == op;
    return n;
  }
  std::string State(const std::string& gtid) const {
    auto t = Get(gtid);
    return t && !t->is_null() ? (*t)["state"].get<std::string>() : "";
  }

  // The whole scenario: `coordinators` treatyd, `per_kind` transactions of
  // each kind begun on c0, c0 killed, survivors finish them.
  void KillHolderOfPreparingAndCommitting(int coordinators, int per_kind);

  std::unique_ptr<PgParticipant> bank_;
  std::map<std::string, std::vector<std::string>> branches_;  // gtid -> branch names
  std::vector<std::thread> committers_;  // POST .../commit to the victim, one per gtid
};

void TwoPhaseClusterTest::KillHolderOfPreparingAndCommitting(int coordinators, int per_kind) {
  TreatydOptions opts;
  opts.store = store_;
  opts.lease_ms = 1500;
  opts.claim_batch = 2;  // small batches: with two survivors both take a share
  ASSERT_NO_FATAL_FAILURE(StartCoordinators(coordinators, opts));
  TreatydProcess& victim = *nodes_[0];
  const std::string victim_id = victim.CoordinatorId();
  ASSERT_FALSE(victim_id.empty());

  std::vector<std::string> preparing, committing;
  for (int i = 0; i < per_kind; ++i) {
    const std::string a = "prep" + std::to_string(i), b = "comm" + std::to_string(i);
    const std::string solo = "solo" + std::to_string(i);
    bank_->Hold(a + "y", "prepare");          // y never answers its prepare
    bank_->Hold(solo + "y", "prepare");       // nor does a lone branch
    bank_->FailWith(b + "q", "commit", 503);  // q fails its commit
    bank_->Hold(b + "r", "commit");           // r never answers its commit
    Begin(victim, a, {a + "x", a + "y"});
    Begin(victim, b, {b + "p", b + "q", b + "r"});
    Begin(victim, solo, {solo + "y"});  // one branch, no one-phase declared
    preparing.push_back(a);
    preparing.push_back(solo);
    committing.push_back(b);
  }
  // Commit all: the (a) ones block on y's prepare, so every commit runs on
  // its own thread; they end without an answer when the victim dies.
  for (const auto& gtid : preparing) {
    committers_.emplace_back([this, &victim, gtid] {
      PostTo(victim, "/v1/2pc/" + gtid + "/commit", json::object(), 30000);
    });
  }
  for (const auto& gtid : committing) {
    committers_.emplace_back([this, &victim, gtid] {
      PostTo(victim, "/v1/2pc/" + gtid + "/commit", json::object(), 30000);
    });
  }
  // In position: (a) x voted yes, y's prepare is held (a lone branch is
  // prepared too: it did not declare one-phase); (b) p committed, q failed
  // at least twice (COMMITTING is logged and retried), r's commit is held.
  auto has_x = [this](const std::string& gtid) { return branches_[gtid].size() > 1; };
  const bool positioned = bank_->WaitFor(
      [&](const auto& calls) {
        for (const auto& a : preparing) {
          if (has_x(a) && Answered(calls, a, a + "x", "prepare", 200) < 1) return false;
          if (Received(calls, a, a + "y", "prepare") < 1) return false;
        }
        for (const auto& b : committing) {
          if (Answered(calls, b, b + "p", "commit", 200) < 1) return false;
          if (Answered(calls, b, b + "q", "commit", 503) < 2) return false;
          if (Received(calls, b, b + "r", "commit") < 1) return false;
        }
        return true;
      },
      std::chrono::seconds(20));
  ASSERT_TRUE(positioned) << "the transactions did not reach PREPARING / COMMITTING";
  for (const auto& a : preparing) {
    EXPECT_EQ(State(a), "PREPARING") << a;
    if (!has_x(a)) continue;
    auto gids = bank_->PreparedGids();
    ASSERT_TRUE(gids.ok());
    EXPECT_NE(std::find(gids->begin(), gids->end(), a + ":" + a + "x"), gids->end())
        << a << "x holds no prepared transaction";
  }
  for (const auto& b : committing) EXPECT_EQ(State(b), "COMMITTING") << b;
  std::map<std::string, int> held_before;  // r commits received from the victim
  for (const auto& b : committing) held_before[b] = bank_->CallCount(b, b + "r", "commit");

  victim.proc().Kill();
  const auto killed_at = Clock::now();
  for (auto& t : committers_) t.join();
  committers_.clear();

  // A survivor resends r's commit (held too) and sends abort to every (a)
  // branch; then the participant lets go: q's commit succeeds, both r
  // commits proceed at once, and y's late prepare meets the abort.
  const bool taken_over = bank_->WaitFor(
      [&](const auto& calls) {
        for (const auto& b : committing) {
          if (Received(calls, b, b + "r", "commit") <= held_before[b]) return false;
        }
        for (const auto& a : preparing) {
          if (has_x(a) && Answered(calls, a, a + "x", "abort", 200) < 1) return false;
          if (Answered(calls, a, a + "y", "abort", 200) < 1) return false;
        }
        return true;
      },
      std::chrono::seconds(30));
  ASSERT_TRUE(taken_over) << "no survivor resumed the victim's transactions";
  std::cout
      << "survivors resumed the victim's 2PC transactions "
      << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed_at).count()
      << " ms after kill -9 (lease " << opts.lease_ms << " ms)\n";
  for (const auto& b : committing) {
    bank_->FailWith(b + "q", "commit", 0);
    bank_->Release(b + "r", "commit");
  }
  for (const auto& a : preparing) bank_->Release(a + "y", "prepare");  // solo's too

  std::set<std::string> all(preparing.begin(), preparing.end());
  all.insert(committing.begin(), committing.end());
  auto final = WaitTerminal(all, std::chrono::seconds(30));
  ASSERT_EQ(final.size(), all.size());
  // Every call answered (the released ones included) before the checks.
  ASSERT_TRUE(bank_->WaitFor(
      [](const auto& calls) {
        for (const auto& c : calls) {
          if (c.status == 0) return false;
        }
        return true;
      },
      std::chrono::seconds(20)));

  std::set<std::string> survivors;
  for (size_t i = 1; i < nodes_.size(); ++i) survivors.insert(nodes_[i]->CoordinatorId());
  const auto calls = bank_->Calls();
  for (const auto& [gtid, txn] : final) {
    const bool must_commit = gtid.rfind("comm", 0) == 0;
    EXPECT_EQ(txn["state"], must_commit ? "COMMITTED" : "ABORTED") << gtid;
    const auto adopters = Adopters(txn);
    ASSERT_FALSE(adopters.empty()) << gtid << " finished without a takeover";
    EXPECT_TRUE(survivors.count(adopters.back())) << gtid << " adopted by " << adopters.back();
    for (const auto& branch : branches_[gtid]) {
      const int commits = bank_->CallCount(gtid, branch, "commit");
      const int aborts = bank_->CallCount(gtid, branch, "abort");
      EXPECT_FALSE(commits > 0 && aborts > 0)
          << gtid << "/" << branch << " got " << commits << " commits and " << aborts << " aborts";
      auto balance = bank_->Balance(branch);
      ASSERT_TRUE(balance.ok()) << balance.status().ToString();
      if (must_commit) {
        EXPECT_GE(Answered(calls, gtid, branch, "commit", 200), 1) << gtid << "/" << branch;
        EXPECT_EQ(*balance, kOpening - kAmount) << gtid << "/" << branch;
      } else {
        EXPECT_GE(Answered(calls, gtid, branch, "abort", 200), 1) << gtid << "/" << branch;
        EXPECT_EQ(*balance, kOpening) << gtid << "/" << branch;
      }
    }
    if (!must_commit) {
      // y's prepare, released after the abort, voted no.
      EXPECT_EQ(Answered(calls, gtid, gtid + "y", "prepare", 409), 1) << gtid;
    }
  }
  auto gids = bank_->PreparedGids();
  ASSERT_TRUE(gids.ok()) << gids.status().ToString();
  EXPECT_TRUE(gids->empty()) << "left prepared: " << ::testing::PrintToString(*gids);
}

// Two coordinators, one transaction of each kind.
TEST_F(TwoPhaseClusterTest, KillNineSurvivorAbortsPreparingAndCommitsCommitting) {
  KillHolderOfPreparingAndCommitting(2, 1);
}

// Three coordinators, three of each kind: the two survivors share the work.
TEST_F(TwoPhaseClusterTest, KillNineOneOfThreeSurvivorsFinishEveryTwoPhase) {
  KillHolderOfPreparingAndCommitting(3, 3);
}

}  // namespace
}  // namespace treaty::testing
