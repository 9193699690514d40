#include "cluster_fixture.h"

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "http/http_client.h"
#include "support/subprocess.h"

namespace treaty::testing {

using nlohmann::json;

void ClusterFixture::SetUp() { dir_ = MakeTempDir("treaty-cluster"); }

void ClusterFixture::TearDown() {
  for (auto& n : nodes_) {
    if (n->running()) {
      n->Resume();
      n->proc().Kill();
    }
  }
  if (HasFailure() || std::getenv("TREATY_TEST_LOGS")) std::cerr << LogsOfAll();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void ClusterFixture::StartCoordinators(int n, const TreatydOptions& options) {
  for (int i = 0; i < n; ++i) {
    nodes_.push_back(std::make_unique<TreatydProcess>(dir_, "c" + std::to_string(i), options));
    Status s = nodes_.back()->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
}

json ClusterFixture::Saga(const std::string& gtid, bool fails) const {
  json steps = json::array();
  for (std::string name : {"flight", "hotel", fails ? "nocar" : "car"}) {
    steps.push_back(
        {{"name", name},
         {"action", participant_.Url(name, "action")},
         {"compensate", participant_.Url(name, "compensate")},
         {"retry", {{"max_attempts", 50}, {"initial_backoff_ms", 20}, {"max_backoff_ms", 100}}}});
  }
  return {{"gtid", gtid}, {"steps", steps}};
}

int ClusterFixture::Submit(const std::string& url, const json& saga, int timeout_ms) const {
  auto r = HttpFetch("POST", url + "/v1/sagas", saga.dump(), {}, timeout_ms);
  return r.ok() ? r->status : 0;
}

std::optional<json> ClusterFixture::Get(const std::string& gtid) const {
  for (const auto& n : nodes_) {
    if (!n->running() || n->paused()) continue;  // a paused one would time the read out
    auto r = HttpFetch("GET", n->url() + "/v1/transactions/" + gtid, "", {}, 2000);
    if (!r.ok()) continue;
    if (r->status == 404) return json();  // null: unknown
    if (r->status != 200) continue;
    return json::parse(r->body);
  }
  return std::nullopt;
}

std::map<std::string, json> ClusterFixture::WaitTerminal(
    const std::set<std::string>& gtids, std::chrono::milliseconds timeout,
    std::map<std::string, Clock::time_point>* finished_at) const {
  std::map<std::string, json> out;
  const auto deadline = Clock::now() + timeout;
  std::set<std::string> left = gtids;
  while (!left.empty()) {
    for (auto it = left.begin(); it != left.end();) {
      auto t = Get(*it);
      if (t && !t->is_null() && ((*t)["state"] == "COMMITTED" || (*t)["state"] == "ABORTED")) {
        out[*it] = *t;
        if (finished_at) (*finished_at)[*it] = Clock::now();
        it = left.erase(it);
      } else {
        ++it;
      }
    }
    if (left.empty()) break;
    if (Clock::now() > deadline) {
      auto t = Get(*left.begin());
      ADD_FAILURE() << left.size() << " transactions not terminal, e.g. " << *left.begin() << ": "
                    << (t ? t->dump() : std::string("(no coordinator answered)"));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return out;
}

std::pair<int, int> ClusterFixture::CheckOutcomes(const std::map<std::string, json>& final) const {
  int committed = 0, aborted = 0;
  for (const auto& [gtid, t] : final) {
    const bool is_committed = t["state"] == "COMMITTED";
    for (const auto& b : t["branches"]) {
      const std::string step = b["name"];
      const int acted = participant_.EffectCount(gtid, step, "action");
      const int comped = participant_.EffectCount(gtid, step, "compensate");
      EXPECT_LE(acted, 1) << gtid << "/" << step;
      EXPECT_LE(comped, 1) << gtid << "/" << step;
      if (is_committed) {
        EXPECT_EQ(acted, 1) << gtid << "/" << step << " committed without its action";
        EXPECT_EQ(participant_.CallCount(gtid, step, "compensate"), 0) << gtid << "/" << step;
      } else if (participant_.CallCount(gtid, step, "action") > 0) {
        EXPECT_EQ(comped, 1) << gtid << "/" << step << " was attempted but not compensated";
        EXPECT_EQ(b["state"], "COMPENSATED") << gtid << "/" << step;
      } else {
        EXPECT_EQ(b["state"], "PENDING") << gtid << "/" << step;
      }
    }
    (is_committed ? committed : aborted)++;
  }
  return {committed, aborted};
}

std::vector<std::string> ClusterFixture::Adopters(const json& txn) {
  static const std::string kPrefix = "resumed by coordinator ";
  std::vector<std::string> out;
  if (!txn.contains("history")) return out;
  for (const auto& e : txn["history"]) {
    if (e["type"] != "recovery") continue;
    const std::string detail = e["detail"];
    if (detail.rfind(kPrefix, 0) != 0) continue;
    std::string rest = detail.substr(kPrefix.size());
    out.push_back(rest.substr(0, rest.find(' ')));
  }
  return out;
}

std::string ClusterFixture::LogsOfAll() const {
  std::string out;
  for (const auto& n : nodes_) {
    std::string log = n->Log();
    if (log.size() > 6000) log = "...\n" + log.substr(log.size() - 6000);
    out += "===== " + n->name() + " =====\n" + log + "\n";
  }
  return out;
}

}  // namespace treaty::testing
