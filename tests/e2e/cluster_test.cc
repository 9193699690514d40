// Leaderless cluster fault tests: three (or two) real treatyd processes on
// one real PostgreSQL, slow participants, and a coordinator that is
// kill -9'd, paused past its lease (SIGSTOP/SIGCONT) or drained (SIGTERM).
// Every test ends with the protocol checks of ClusterFixture::CheckOutcomes.

#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cluster_fixture.h"
#include "http/http_client.h"
#include "support/store_env.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// "127.0.0.1:PORT" of every TCP connection `pid` holds to 127.0.0.1:`port`
// (its keep-alive pool to a participant), from /proc.
std::set<std::string> ConnectionsOf(pid_t pid, int port) {
  std::set<std::string> inodes;
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(fd_dir, ec)) {
    std::error_code ec2;
    auto target = std::filesystem::read_symlink(e.path(), ec2).string();
    if (target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::set<std::string> out;
  std::ifstream tcp("/proc/" + std::to_string(pid) + "/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  while (std::getline(tcp, line)) {
    std::istringstream in(line);
    std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
    in >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode;
    if (!inodes.count(inode)) continue;
    const int rport = std::stoi(remote.substr(remote.find(':') + 1), nullptr, 16);
    const int lport = std::stoi(local.substr(local.find(':') + 1), nullptr, 16);
    if (rport == port) out.insert("127.0.0.1:" + std::to_string(lport));
  }
  return out;
}

class ClusterTest : public ClusterFixture {
 protected:
  void SetUp() override {
    ClusterFixture::SetUp();
    store_ = FreshStoreUri("postgres", dir_);
    ASSERT_FALSE(store_.empty());
  }
  // Slow steps so that kills land while sagas are in flight.
  void SlowParticipant(int step_ms) {
    participant_.SetRule("flight", "action", Rule{{200}, step_ms});
    participant_.SetRule("hotel", "action", Rule{{503, 200}, step_ms});
    participant_.SetRule("car", "action", Rule{{200}, step_ms});
    participant_.SetRule("nocar", "action", Rule{{409}, step_ms / 2});
    participant_.SetRule("flight", "compensate", Rule{{200}, step_ms / 2});
    participant_.SetRule("hotel", "compensate", Rule{{500, 200}, step_ms / 2});
  }
  // Submits `n` sagas to node `node` (every 4th fails); returns the accepted gtids.
  std::set<std::string> SubmitMany(int node, const std::string& prefix, int n) {
    std::set<std::string> accepted;
    for (int i = 0; i < n; ++i) {
      const std::string gtid = prefix + std::to_string(i);
      const int status = Submit(nodes_[node]->url(), Saga(gtid, i % 4 == 0));
      EXPECT_EQ(status, 201) << gtid;
      if (status == 201) accepted.insert(gtid);
    }
    return accepted;
  }
};

// kill -9 one of three: its sagas finish through the two survivors within the
// lease and a few seconds, both survivors take a share, nothing is skipped or
// applied twice.
TEST_F(ClusterTest, KillNineOneOfThreeSurvivorsFinishItsWork) {
  SlowParticipant(250);
  TreatydOptions opts;
  opts.store = store_;
  opts.lease_ms = 1500;
  opts.claim_batch = 4;  // small batches: both survivors take a share
  ASSERT_NO_FATAL_FAILURE(StartCoordinators(3, opts));

  std::map<int, std::set<std::string>> by_node;
  std::vector<std::thread> clients;
  std::mutex mu;
  for (int c = 0; c < 3; ++c) {
    clients.emplace_back([&, c] {
      auto got = SubmitMany(c, "k9-" + std::to_string(c) + "-", 15);
      std::lock_guard<std::mutex> l(mu);
      by_node[c] = std::move(got);
    });
  }
  for (auto& t : clients) t.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::string victim_id = nodes_[0]->CoordinatorId();
  const std::string s1 = nodes_[1]->CoordinatorId(), s2 = nodes_[2]->CoordinatorId();
  const auto killed_at = Clock::now();
  nodes_[0]->proc().Kill();

  std::set<std::string> all;
  for (auto& [node, gtids] : by_node) all.insert(gtids.begin(), gtids.end());
  std::map<std::string, Clock::time_point> finished_at;
  auto final = WaitTerminal(all, std::chrono::seconds(40), &finished_at);
  ASSERT_EQ(final.size(), all.size());

  // Takeover time: the last of the victim's unfinished sagas to finish.
  int64_t takeover_ms = 0;
  std::map<std::string, int> adopted_by;
  int victim_unfinished = 0;
  for (const auto& gtid : by_node[0]) {
    auto adopters = Adopters(final[gtid]);
    if (adopters.empty()) continue;  // finished before the kill
    ++victim_unfinished;
    adopted_by[adopters.back()]++;
    takeover_ms = std::max<int64_t>(
        takeover_ms,
        std::chrono::duration_cast<std::chrono::milliseconds>(finished_at[gtid] - killed_at)
            .count());
  }
  std::cout << "victim " << victim_id << ": " << victim_unfinished
            << " unfinished sagas adopted; last finished " << takeover_ms
            << " ms after kill -9 (lease 1500 ms)\n";
  for (auto& [id, n] : adopted_by) std::cout << "  adopted by " << id << ": " << n << "\n";
  EXPECT_GT(victim_unfinished, 0) << "the kill landed after the victim's work was done";
  EXPECT_LT(takeover_ms, opts.lease_ms + 6000);
  for (auto& [id, n] : adopted_by) EXPECT_TRUE(id == s1 || id == s2) << id;
  if (victim_unfinished > 2 * opts.claim_batch) {
    EXPECT_EQ(adopted_by.size(), 2u) << "one survivor took all of the dead one's work";
  }
  auto [committed, aborted] = CheckOutcomes(final);
  EXPECT_GT(committed, 0);
  EXPECT_GT(aborted, 0);

  // The dead one is shown dead; the survivors alive.
  auto r = HttpFetch("GET", nodes_[1]->url() + "/v1/cluster", "", {}, 2000);
  ASSERT_TRUE(r.ok());
  for (const auto& c : json::parse(r->body)["coordinators"]) {
    if (c["id"] == victim_id) EXPECT_EQ(c["state"], "dead");
  }
}

// SIGSTOP one past its lease: its peer adopts its work; after SIGCONT it
// sends nothing more for the adopted transactions, writes nothing to them,
// and comes back under a new id.
TEST_F(ClusterTest, PausedPastLeaseIsFencedOffAndRejoinsUnderNewId) {
  SlowParticipant(400);
  TreatydOptions opts;
  opts.store = store_;
  opts.lease_ms = 1500;
  ASSERT_NO_FATAL_FAILURE(StartCoordinators(2, opts));
  TreatydProcess& paused = *nodes_[0];
  const std::string old_id = paused.CoordinatorId();
  const std::string peer_id = nodes_[1]->CoordinatorId();
  ASSERT_FALSE(old_id.empty());

  std::set<std::string> gtids = SubmitMany(0, "pause-", 16);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  paused.Pause();
  const auto stopped_at = Clock::now();

  // Wait until the peer owns every unfinished one of them.
  std::set<std::string> adopted;
  while (true) {
    adopted.clear();
    bool all_moved = true;
    for (const auto& g : gtids) {
      auto t = Get(g);
      ASSERT_TRUE(t && !t->is_null());
      if ((*t)["state"] == "COMMITTED" || (*t)["state"] == "ABORTED") {
        if (!Adopters(*t).empty()) adopted.insert(g);
        continue;
      }
      if ((*t)["owner"] != peer_id)
        all_moved = false;
      else
        adopted.insert(g);
    }
    if (all_moved) break;
    ASSERT_LT(MsSince(stopped_at), 15000) << "peer did not adopt the paused one's work";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::cout << "peer adopted " << adopted.size() << " sagas " << MsSince(stopped_at)
            << " ms after SIGSTOP (lease 1500 ms)\n";
  ASSERT_FALSE(adopted.empty());

  const std::set<std::string> pool_before = ConnectionsOf(paused.proc().pid(), participant_.port());
  const auto resumed_at = Clock::now();
  paused.Resume();

  auto final = WaitTerminal(gtids, std::chrono::seconds(30));
  ASSERT_EQ(final.size(), gtids.size());
  // Let the resumed one act on whatever it still had in memory.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));

  // 1. It rejoined under a new id; the old one stays dead.
  std::string new_id;
  for (int i = 0; i < 50 && (new_id.empty() || new_id == old_id); ++i) {
    new_id = paused.CoordinatorId();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(new_id.empty());
  EXPECT_NE(new_id, old_id);
  auto r = HttpFetch("GET", paused.url() + "/v1/cluster", "", {}, 2000);
  ASSERT_TRUE(r.ok());
  for (const auto& c : json::parse(r->body)["coordinators"]) {
    if (c["id"] == old_id) EXPECT_EQ(c["state"], "dead");
    if (c["id"] == new_id) EXPECT_EQ(c["state"], "alive");
  }

  // 2. No participant call from the resumed process for adopted sagas.
  std::set<std::string> its_conns = ConnectionsOf(paused.proc().pid(), participant_.port());
  its_conns.insert(pool_before.begin(), pool_before.end());
  for (const auto& call : participant_.Calls()) {
    if (call.at < resumed_at || !adopted.count(call.gtid)) continue;
    EXPECT_FALSE(its_conns.count(call.remote))
        << "resumed coordinator called " << call.gtid << "/" << call.branch << "/" << call.op;
  }

  // 3. The log's history: exactly one terminal state event, last; each step
  //    reached each state at most once; nothing written after the end.
  for (const auto& [gtid, t] : final) {
    std::map<std::string, int> step_states;
    int64_t terminal_id = -1, last_id = -1;
    for (const auto& e : t["history"]) {
      last_id = std::max<int64_t>(last_id, e["id"].get<int64_t>());
      const std::string detail = e["detail"];
      if (e["type"] == "step")
        step_states[e["branch"].get<std::string>() + " " + detail.substr(0, detail.find(':'))]++;
      if (e["type"] == "state" &&
          (detail.rfind("COMMITTED", 0) == 0 || detail.rfind("ABORTED", 0) == 0)) {
        EXPECT_EQ(terminal_id, -1) << gtid << " reached a terminal state twice";
        terminal_id = e["id"];
      }
    }
    EXPECT_EQ(terminal_id, last_id) << gtid << ": written to after it finished: " << t.dump();
    for (const auto& [k, n] : step_states) {
      if (k.find("RUNNING") != std::string::npos) continue;  // an adopter re-runs an action
      EXPECT_EQ(n, 1) << gtid << " step state written twice: " << k;
    }
  }
  CheckOutcomes(final);
  EXPECT_NE(paused.Log().find("declared dead"), std::string::npos) << paused.Log();

  // 4. It works again under its new id.
  json saga = Saga("pause-after", false);
  EXPECT_EQ(Submit(paused.url(), saga), 201);
  auto after = WaitTerminal({"pause-after"}, std::chrono::seconds(10));
  EXPECT_EQ(after["pause-after"]["owner"], new_id);
}

// SIGTERM with in-flight work: exit 0, 503 for new work meanwhile, the handed-
// back work is adopted by the peer at once (well under the lease) and finishes.
TEST_F(ClusterTest, DrainHandsBackInFlightWorkToPeerAtOnce) {
  SlowParticipant(400);
  TreatydOptions opts;
  opts.store = store_;
  opts.lease_ms = 8000;  // a hand-back must not wait for it
  opts.drain_timeout_ms = 300;
  ASSERT_NO_FATAL_FAILURE(StartCoordinators(2, opts));
  const std::string peer_id = nodes_[1]->CoordinatorId();

  std::set<std::string> gtids = SubmitMany(0, "drain-", 16);
  // A client held by `wait` when the drain drops the work gets the answer of
  // a wait that ran out (202, the current state), not a dropped connection.
  json held = Saga("drain-held", false);
  held["wait"] = true;
  Result<HttpClientResponse> held_answer = Status::Internal("not answered");
  std::thread held_client([&] {
    held_answer = HttpFetch("POST", nodes_[0]->url() + "/v1/sagas?wait_timeout_ms=30000",
                            held.dump(), {}, 20000);
  });
  gtids.insert("drain-held");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto term_at = Clock::now();
  nodes_[0]->proc().Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int during = Submit(nodes_[0]->url(), Saga("drain-refused", false), 1000);
  EXPECT_TRUE(during == 503 || during == 0) << during;
  EXPECT_EQ(nodes_[0]->proc().Wait(10000), 0) << nodes_[0]->Log();
  const int64_t exit_ms = MsSince(term_at);
  held_client.join();
  ASSERT_TRUE(held_answer.ok()) << "the held client lost its answer: "
                                << held_answer.status().ToString();
  EXPECT_EQ(held_answer->status, 202) << held_answer->body;
  EXPECT_EQ(json::parse(held_answer->body)["gtid"], "drain-held") << held_answer->body;

  // Every unfinished saga is owned by the peer soon after the exit.
  const auto exited_at = Clock::now();
  int64_t adopted_ms = -1;
  while (adopted_ms < 0) {
    bool all = true;
    for (const auto& g : gtids) {
      auto t = Get(g);
      ASSERT_TRUE(t && !t->is_null()) << g << " lost";
      if ((*t)["state"] != "COMMITTED" && (*t)["state"] != "ABORTED" && (*t)["owner"] != peer_id)
        all = false;
    }
    if (all) adopted_ms = MsSince(exited_at);
    ASSERT_LT(MsSince(exited_at), opts.lease_ms) << "hand-back waited for the lease";
    if (!all) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto final = WaitTerminal(gtids, std::chrono::seconds(20));
  const int64_t done_ms = MsSince(exited_at);
  ASSERT_EQ(final.size(), gtids.size());
  int handed_back = 0;
  for (const auto& [g, t] : final) handed_back += !Adopters(t).empty();
  std::cout << "drain: exit 0 after " << exit_ms << " ms; " << handed_back
            << " handed-back sagas owned by the peer " << adopted_ms << " ms after exit, all done "
            << done_ms << " ms after exit (lease " << opts.lease_ms << " ms)\n";
  EXPECT_GT(handed_back, 0);
  EXPECT_LT(adopted_ms, 2000);
  CheckOutcomes(final);
  EXPECT_EQ(Get("drain-refused").value_or(json()), json()) << "refused work was logged";
}

}  // namespace
}  // namespace treaty::testing
