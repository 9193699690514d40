// The replicated log under faults: coordinators on a primary with a
// synchronous standby (multi-host conninfo, target_session_attrs=read-write)
// survive kill -9 of the primary and promotion of the standby without a
// restart; and coordinators on a single PostgreSQL ride out its restart,
// answering 503 for new work meanwhile. In both, every saga acknowledged
// (201) to a client is in the log afterwards and finishes as the protocol
// requires.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "cluster_fixture.h"
#include "http/http_client.h"
#include "support/mini_postgres.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Clients submitting sagas round-robin to every coordinator until stopped;
// they remember what each answer was and when.
class Workload {
 public:
  Workload(ClusterFixture* fixture, std::vector<std::string> urls,
           std::function<json(const std::string&, bool)> saga)
      : urls_(std::move(urls)), saga_(std::move(saga)) {
    (void)fixture;
  }
  void Start(int clients) {
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, c] {
        for (int i = 0; !stop_; ++i) {
          const std::string gtid = "w" + std::to_string(c) + "-" + std::to_string(i);
          const std::string& url = urls_[(c + i) % urls_.size()];
          auto r = HttpFetch("POST", url + "/v1/sagas", saga_(gtid, i % 4 == 0).dump(), {}, 3000);
          const int status = r.ok() ? r->status : 0;
          std::lock_guard<std::mutex> l(mu_);
          tried_.insert(gtid);
          if (status == 201) accepted_[gtid] = Clock::now();
          if (status == 503) ++refused_;
          if (status == 503) last_503_ = Clock::now();
          answers_[status]++;
          if (status != 201) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      });
    }
  }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  // Accepted (201) before / after `t`.
  std::set<std::string> AcceptedBetween(Clock::time_point from, Clock::time_point to) {
    std::lock_guard<std::mutex> l(mu_);
    std::set<std::string> out;
    for (auto& [g, at] : accepted_)
      if (at >= from && at < to) out.insert(g);
    return out;
  }
  std::set<std::string> Accepted() {
    return AcceptedBetween(Clock::time_point::min(), Clock::time_point::max());
  }
  std::set<std::string> Tried() {
    std::lock_guard<std::mutex> l(mu_);
    return tried_;
  }
  std::string Answers() {
    std::lock_guard<std::mutex> l(mu_);
    std::string out;
    for (auto& [s, n] : answers_) out += " " + std::to_string(s) + ":" + std::to_string(n);
    return out;
  }
  int refused() {
    std::lock_guard<std::mutex> l(mu_);
    return refused_;
  }

 private:
  std::vector<std::string> urls_;
  std::function<json(const std::string&, bool)> saga_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::set<std::string> tried_;
  std::map<std::string, Clock::time_point> accepted_;
  std::map<int, int> answers_;
  int refused_ = 0;
  Clock::time_point last_503_;
};

class ReplicationTest : public ClusterFixture {
 protected:
  void SlowParticipant() {
    participant_.SetRule("flight", "action", Rule{{200}, 80});
    participant_.SetRule("hotel", "action", Rule{{503, 200}, 80});
    participant_.SetRule("car", "action", Rule{{200}, 80});
    participant_.SetRule("nocar", "action", Rule{{409}, 40});
    participant_.SetRule("flight", "compensate", Rule{{200}, 40});
    participant_.SetRule("hotel", "compensate", Rule{{500, 200}, 40});
  }
  std::vector<std::string> Urls() const {
    std::vector<std::string> out;
    for (const auto& n : nodes_) out.push_back(n->url());
    return out;
  }
  // Every tried gtid: accepted ones must exist and be terminal; the others
  // may be absent (their answer was lost) but, when present, finish too.
  std::map<std::string, json> CheckAllFinish(Workload& w, std::chrono::seconds timeout) {
    std::set<std::string> present;
    for (const auto& g : w.Tried()) {
      auto t = Get(g);
      EXPECT_TRUE(t.has_value()) << "no coordinator answers";
      if (!t) continue;
      if (t->is_null()) {
        EXPECT_FALSE(w.Accepted().count(g)) << g << " was acknowledged (201) but is lost";
      } else {
        present.insert(g);
      }
    }
    return WaitTerminal(present, timeout);
  }
};

// Primary + synchronous standby: kill -9 the primary mid-workload, promote
// the standby; the coordinators follow it without a restart.
TEST_F(ReplicationTest, PrimaryKillAndStandbyPromotionLoseNothing) {
  MiniPostgres primary, standby;
  primary.set_settings({"synchronous_standby_names=treaty_standby", "synchronous_commit=on"});
  ASSERT_TRUE(primary.Start().ok());
  // Clone the standby first: with synchronous_standby_names set, every commit
  // on the primary (CREATE DATABASE too) waits until the standby confirms it.
  Status s = standby.StartStandbyOf(primary, "treaty_standby");
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (int i = 0;; ++i) {
    auto r = primary.Query("SELECT sync_state FROM pg_stat_replication");
    if (r.ok() && *r == "sync") break;
    ASSERT_LT(i, 200) << "standby never became synchronous";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(primary.CreateDatabase("treaty").ok());
  store_ = "postgresql://postgres@127.0.0.1:" + std::to_string(primary.port()) +
           ",127.0.0.1:" + std::to_string(standby.port()) +
           "/treaty?target_session_attrs=read-write";
  SlowParticipant();
  TreatydOptions opts;
  opts.store = store_;
  opts.lease_ms = 2000;
  ASSERT_NO_FATAL_FAILURE(StartCoordinators(2, opts));

  Workload w(this, Urls(), [this](const std::string& g, bool f) { return Saga(g, f); });
  w.Start(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const auto killed_at = Clock::now();
  ASSERT_TRUE(primary.Kill().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const auto promote_at = Clock::now();
  ASSERT_TRUE(standby.Promote().ok());
  const int64_t promote_ms = MsSince(promote_at);
  // Keep the workload going until new sagas are accepted again (no restart).
  Clock::time_point resumed_at;
  while (true) {
    if (!w.AcceptedBetween(Clock::now() - std::chrono::milliseconds(200), Clock::now()).empty() &&
        MsSince(promote_at) > 200) {
      resumed_at = Clock::now();
      break;
    }
    ASSERT_LT(MsSince(promote_at), 20000) << "no saga accepted after the promotion";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  w.Stop();
  const auto before = w.AcceptedBetween(Clock::time_point::min(), killed_at);
  std::cout
      << "fail-over: " << before.size() << " sagas acknowledged before kill -9 of the "
      << "primary; promotion took " << promote_ms << " ms; new sagas accepted again "
      << std::chrono::duration_cast<std::chrono::milliseconds>(resumed_at - promote_at).count()
      << " ms after the promotion began; answers" << w.Answers() << "\n";
  ASSERT_GT(before.size(), 5u);

  auto final = CheckAllFinish(w, std::chrono::seconds(60));
  for (const auto& g : w.Accepted()) EXPECT_TRUE(final.count(g)) << g << " did not finish";
  auto [committed, aborted] = CheckOutcomes(final);
  EXPECT_GT(committed, 0);
  EXPECT_GT(aborted, 0);
  for (const auto& n : nodes_) EXPECT_TRUE(n->running()) << n->name() << " exited";
}

// A single PostgreSQL restarted under load: 503 for new work while it is
// down, recovery without a restart, nothing accepted lost.
TEST_F(ReplicationTest, DatabaseRestartUnderLoadAnswers503AndRecovers) {
  MiniPostgres pg;
  ASSERT_TRUE(pg.Start().ok());
  ASSERT_TRUE(pg.CreateDatabase("treaty").ok());
  store_ = pg.Uri("treaty");
  SlowParticipant();
  TreatydOptions opts;
  opts.store = store_;
  opts.lease_ms = 2000;
  ASSERT_NO_FATAL_FAILURE(StartCoordinators(2, opts));

  Workload w(this, Urls(), [this](const std::string& g, bool f) { return Saga(g, f); });
  w.Start(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE(pg.Stop().ok());
  const auto down_at = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));  // longer than the lease
  const int refused_while_down = w.refused();
  // While down, a new submission is refused quickly.
  const auto probe_at = Clock::now();
  const int probe = Submit(nodes_[0]->url(), Saga("probe-while-down", false), 10000);
  const int64_t probe_ms = MsSince(probe_at);
  ASSERT_TRUE(pg.Restart().ok());
  const auto up_at = Clock::now();
  Clock::time_point resumed_at;
  while (true) {
    if (!w.AcceptedBetween(up_at, Clock::now()).empty()) {
      resumed_at = Clock::now();
      break;
    }
    ASSERT_LT(MsSince(up_at), 20000) << "no saga accepted after the restart";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  w.Stop();
  std::cout << "database down "
            << std::chrono::duration_cast<std::chrono::milliseconds>(up_at - down_at).count()
            << " ms: " << refused_while_down << " submissions refused with 503; a submission "
            << "while down answered " << probe << " after " << probe_ms << " ms; accepted again "
            << std::chrono::duration_cast<std::chrono::milliseconds>(resumed_at - up_at).count()
            << " ms after restart; answers" << w.Answers() << "\n";
  EXPECT_EQ(probe, 503);
  EXPECT_GT(refused_while_down, 0);

  auto final = CheckAllFinish(w, std::chrono::seconds(60));
  for (const auto& g : w.Accepted()) EXPECT_TRUE(final.count(g)) << g << " did not finish";
  CheckOutcomes(final);
  for (const auto& n : nodes_) EXPECT_TRUE(n->running()) << n->name() << " exited";
}

}  // namespace
}  // namespace treaty::testing
