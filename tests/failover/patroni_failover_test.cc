// Automatic fail-over of the PostgreSQL log under load: a Patroni cluster
// (scripts/patroni-cluster.sh: etcd + two PostgreSQL 15 nodes, synchronous
// mode) under two treatyd coordinators whose conninfo lists both nodes with
// target_session_attrs=read-write. Clients submit sagas with "wait": true
// continuously; the primary's Patroni and PostgreSQL (postmaster and every
// backend) are killed with SIGKILL, as a crashed host would be. Nobody runs
// a promote: Patroni must promote the replica itself, both coordinators must
// accept new sagas again without a restart, every saga acknowledged before
// or during the fail-over must be on the new primary and finish, and no
// participant step may take effect twice.
//
// Prints the time from the kill to the promotion and to the first newly
// accepted saga (docs/operations.md, "Automatic fail-over with Patroni").

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e/cluster_fixture.h"
#include "http/http_client.h"
#include "support/subprocess.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

int64_t MsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// KEY=VALUE lines (DIR/cluster.env of the script).
std::map<std::string, std::string> ReadEnvFile(const std::string& path) {
  std::map<std::string, std::string> out;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

// Pids of the direct children of `parent` (from /proc).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string line;
    std::ifstream stat(entry.path() / "stat");
    if (!std::getline(stat, line)) continue;
    const size_t close = line.rfind(')');  // comm may hold spaces
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

// What one submission got: its HTTP status (0: no answer), the state in the
// answer, and when it was sent and answered.
struct Answer {
  int status = 0;
  std::string state;
  bool wait = false;
  Clock::time_point sent, answered;
};

// Client threads submitting sagas round-robin to every coordinator until
// stopped: `waiting` of them with "wait": true, one more without wait
// every 50 ms (it tells when a saga is accepted, i.e. durably created).
class Workload {
 public:
  Workload(std::vector<std::string> urls, std::function<json(const std::string&, bool)> saga)
      : urls_(std::move(urls)), saga_(std::move(saga)) {}
  ~Workload() { Stop(); }

  void Start(int waiting) {
    for (int c = 0; c <= waiting; ++c) {
      const bool wait = c < waiting;
      threads_.emplace_back([this, c, wait] {
        for (int i = 0; !stop_; ++i) {
          const std::string gtid = (wait ? "w" : "p") + std::to_string(c) + "-" + std::to_string(i);
          const std::string& url = urls_[(c + i) % urls_.size()];
          json body = saga_(gtid, i % 4 == 3);
          body["wait"] = wait;
          Answer a;
          a.wait = wait;
          a.sent = Clock::now();
          auto r =
              HttpFetch("POST", url + "/v1/sagas?wait_timeout_ms=15000", body.dump(), {}, 20000);
          a.answered = Clock::now();
          if (r.ok()) {
            a.status = r->status;
            auto doc = json::parse(r->body, nullptr, false);
            if (!doc.is_discarded() && doc.is_object()) a.state = doc.value("state", "");
          }
          {
            std::lock_guard<std::mutex> l(mu_);
            answers_[gtid] = a;
          }
          if (!wait || a.status / 100 != 2) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
        }
      });
    }
  }
  void Stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  std::map<std::string, Answer> Answers() {
    std::lock_guard<std::mutex> l(mu_);
    return answers_;
  }
  // The first answer with a 2xx status to a submission (wait or not, as
  // `wait` says) sent at or after `t`; nullopt when none yet.
  std::optional<Clock::time_point> FirstAckSentAfter(Clock::time_point t, bool wait) {
    std::lock_guard<std::mutex> l(mu_);
    std::optional<Clock::time_point> first;
    for (const auto& [g, a] : answers_) {
      if (a.wait != wait || a.sent < t || a.status / 100 != 2) continue;
      if (!first || a.answered < *first) first = a.answered;
    }
    return first;
  }

 private:
  std::vector<std::string> urls_;
  std::function<json(const std::string&, bool)> saga_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, Answer> answers_;
};

class PatroniFailoverTest : public ClusterFixture {
 protected:
  void SetUp() override {
    ClusterFixture::SetUp();
    const char* src = std::getenv("TREATY_SOURCE_DIR");
    ASSERT_TRUE(src && *src) << "TREATY_SOURCE_DIR is not set (ctest sets it)";
    script_ = std::string(src) + "/scripts/patroni-cluster.sh";
    cluster_dir_ = dir_ + "/patroni";
    // The cluster runs as the `postgres` user when the test runs as root.
    std::filesystem::permissions(dir_, std::filesystem::perms(0755));
    // fsync off: the kill below ends processes, not the machine, so the
    // page cache keeps everything written; it only saves test time.
    Subprocess start({"/usr/bin/env", "PG_FSYNC=off", "bash", script_, "start", cluster_dir_},
                     dir_ + "/patroni-start.log");
    ASSERT_TRUE(start.Start().ok());
    started_ = true;
    const auto begin = Clock::now();
    ASSERT_EQ(start.Wait(120000), 0) << start.Log();
    std::cout << "Patroni cluster up in " << MsBetween(begin, Clock::now()) << " ms\n";
    env_ = ReadEnvFile(cluster_dir_ + "/cluster.env");
    conninfo_ = ReadFile(cluster_dir_ + "/conninfo");
    while (!conninfo_.empty() && conninfo_.back() == '\n') conninfo_.pop_back();
    ASSERT_FALSE(conninfo_.empty());
  }

  void TearDown() override {
    // Coordinators first (they hold connections), then the cluster, then
    // the folder (ClusterFixture::TearDown removes dir_, the cluster's too).
    for (auto& n : nodes_) {
      if (n->running()) n->proc().Kill();
    }
    if (started_) {
      if (HasFailure() || std::getenv("TREATY_TEST_LOGS")) {
        for (const char* log : {"/node1/patroni.log", "/node2/patroni.log"}) {
          std::string text = ReadFile(cluster_dir_ + log);
          if (text.size() > 6000) text = "...\n" + text.substr(text.size() - 6000);
          std::cerr << "===== " << log << " =====\n" << text << "\n";
        }
      }
      Subprocess stop({"/usr/bin/env", "bash", script_, "stop", cluster_dir_},
                      dir_ + "/patroni-stop.log");
      if (stop.Start().ok()) stop.Wait(60000);
    }
    ClusterFixture::TearDown();
  }

  // Whether Patroni's REST API of node `n` (1, 2) says it leads: GET
  // /primary answers 200 only on the leader running as a primary.
  bool IsPrimary(int n) const {
    auto r =
        HttpFetch("GET", "http://127.0.0.1:" + env_.at("API_PORT" + std::to_string(n)) + "/primary",
                  "", {}, 1000);
    return r.ok() && r->status == 200;
  }

  // SIGKILL node `n`'s Patroni, then its postmaster and every process the
  // postmaster started (backends, WAL sender): a host crash, as far as
  // loopback allows. Patroni first, so it cannot restart PostgreSQL.
  void KillNode(int n) {
    const std::string node = cluster_dir_ + "/node" + std::to_string(n);
    const pid_t patroni = std::stoi(ReadFile(node + "/patroni.pid"));
    const pid_t postmaster = std::stoi(ReadFile(node + "/data/postmaster.pid"));
    ASSERT_EQ(kill(patroni, SIGKILL), 0) << "Patroni of node" << n << " is not running";
    kill(postmaster, SIGSTOP);  // forks nobody new while its children are killed
    for (pid_t child : ChildrenOf(postmaster)) kill(child, SIGKILL);
    ASSERT_EQ(kill(postmaster, SIGKILL), 0);
  }

  // The gtids in the log of node `n`, read from PostgreSQL directly.
  std::set<std::string> GtidsOnNode(int n) {
    const std::string out = dir_ + "/gtids.txt";
    Subprocess psql({"/usr/bin/env", "PGPASSWORD=" + env_.at("TREATY_PASSWORD"),
                     "/usr/lib/postgresql/15/bin/psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-p",
                     env_.at("PG_PORT" + std::to_string(n)), "-U", "treaty", "-d", "treaty", "-o",
                     out, "-c", "SELECT gtid FROM transactions"},
                    dir_ + "/psql.log");
    std::set<std::string> gtids;
    EXPECT_TRUE(psql.Start().ok());
    EXPECT_EQ(psql.Wait(30000), 0) << psql.Log();
    std::istringstream in(ReadFile(out));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) gtids.insert(line);
    }
    return gtids;
  }

  void Participants() {
    for (const char* step : {"flight", "hotel", "car"}) {
      participant_.SetRule(step, "action", Rule{{200}, 60});
      participant_.SetRule(step, "compensate", Rule{{200}, 30});
    }
    participant_.SetRule("nocar", "action", Rule{{409}, 30});
  }

  std::string script_, cluster_dir_, conninfo_;
  std::map<std::string, std::string> env_;
  bool started_ = false;
};

TEST_F(PatroniFailoverTest, PrimaryCrashIsPromotedAutomaticallyAndLosesNothing) {
  const int old_primary = IsPrimary(1) ? 1 : 2;
  const int replica = 3 - old_primary;
  ASSERT_TRUE(IsPrimary(old_primary));
  ASSERT_FALSE(IsPrimary(replica));
  Participants();
  TreatydOptions opts;
  opts.store = conninfo_;
  opts.heartbeat_ms = 1000;  // treatyd's defaults
  opts.lease_ms = 5000;
  ASSERT_NO_FATAL_FAILURE(StartCoordinators(2, opts));
  std::vector<pid_t> pids;
  std::vector<std::string> urls;
  for (const auto& n : nodes_) {
    pids.push_back(n->proc().pid());
    urls.push_back(n->url());
  }

  Workload w(urls, [this](const std::string& g, bool fails) { return Saga(g, fails); });
  w.Start(4);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  const auto killed_at = Clock::now();
  ASSERT_NO_FATAL_FAILURE(KillNode(old_primary));

  // No promote is run here: Patroni on the replica must take over alone.
  std::optional<Clock::time_point> promoted_at, accepted_at, answered_at;
  while (!promoted_at || !accepted_at || !answered_at) {
    if (!promoted_at && IsPrimary(replica)) promoted_at = Clock::now();
    if (!accepted_at) accepted_at = w.FirstAckSentAfter(killed_at, /*wait=*/false);
    if (!answered_at) answered_at = w.FirstAckSentAfter(killed_at, /*wait=*/true);
    ASSERT_LT(MsBetween(killed_at, Clock::now()), 45000)
        << "after 45 s: promoted " << promoted_at.has_value() << ", a new saga accepted "
        << accepted_at.has_value() << ", one answered with wait " << answered_at.has_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  w.Stop();

  // Acknowledged: any 2xx (201/200 with the final state, 202 still
  // running). Every other submission may or may not have been created.
  const auto answers = w.Answers();
  std::set<std::string> acked, acked_before_kill, unanswered, present;
  std::map<int, int> by_status;
  int64_t last_refusal_ms = -1, slowest_ms = 0;
  for (const auto& [g, a] : answers) {
    by_status[a.status]++;
    slowest_ms = std::max(slowest_ms, MsBetween(a.sent, a.answered));
    if (a.status / 100 != 2) {
      last_refusal_ms = std::max(last_refusal_ms, MsBetween(killed_at, a.answered));
    }
    if (a.status / 100 == 2) {
      acked.insert(g);
      if (a.answered < killed_at) acked_before_kill.insert(g);
      if (a.wait && a.status != 202) {
        EXPECT_TRUE(a.state == "COMMITTED" || a.state == "ABORTED") << g << ": " << a.state;
      }
    } else {
      unanswered.insert(g);
    }
  }
  std::string statuses;
  for (const auto& [s, count] : by_status) {
    statuses += " " + std::to_string(s) + ":" + std::to_string(count);
  }
  std::cout << "fail-over with Patroni: promoted " << MsBetween(killed_at, *promoted_at)
            << " ms after kill -9 of the primary; first new saga accepted (201) "
            << MsBetween(killed_at, *accepted_at) << " ms after it; first new saga answered "
            << "with wait " << MsBetween(killed_at, *answered_at) << " ms after it; "
            << answers.size() << " submissions, " << acked.size() << " acknowledged ("
            << acked_before_kill.size() << " before the kill); answers" << statuses
            << "; last refusal answered " << last_refusal_ms << " ms after the kill; slowest "
            << "answer " << slowest_ms << " ms\n";
  EXPECT_GT(acked_before_kill.size(), 5u);

  // The old primary stays dead: what follows reads the new primary only.
  const std::set<std::string> on_new_primary = GtidsOnNode(replica);
  for (const auto& g : acked) {
    EXPECT_TRUE(on_new_primary.count(g)) << g << " was acknowledged but is not on the new primary";
  }
  for (const auto& g : unanswered) {
    if (on_new_primary.count(g)) present.insert(g);
  }
  present.insert(acked.begin(), acked.end());
  const auto final = WaitTerminal(present, std::chrono::seconds(30));
  for (const auto& g : acked) EXPECT_TRUE(final.count(g)) << g << " did not finish";
  auto [committed, aborted] = CheckOutcomes(final);  // no effect twice, compensation complete
  EXPECT_GT(committed, 0);
  EXPECT_GT(aborted, 0);
  int redelivered = 0;
  for (const auto& [g, t] : final) {
    for (const auto& b : t["branches"]) {
      for (const char* op : {"action", "compensate"}) {
        if (participant_.CallCount(g, b["name"], op) > 1) ++redelivered;
      }
    }
  }
  std::cout << committed << " committed, " << aborted << " aborted; " << redelivered
            << " participant calls delivered more than once (same Idempotency-Key, one effect)\n";

  // Both coordinators carried on without a restart.
  for (size_t i = 0; i < nodes_.size(); ++i) {
    EXPECT_TRUE(nodes_[i]->running()) << nodes_[i]->name() << " exited";
    EXPECT_EQ(nodes_[i]->proc().pid(), pids[i]) << nodes_[i]->name() << " was restarted";
    EXPECT_EQ(Submit(nodes_[i]->url(), Saga("after-" + nodes_[i]->name(), false)), 201)
        << nodes_[i]->name() << " does not accept new sagas";
  }
}

}  // namespace
}  // namespace treaty::testing
