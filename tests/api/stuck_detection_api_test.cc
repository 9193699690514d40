// Stuck detection end to end: an in-process Server on SQLite and a real HTTP
// participant whose commit URL answers 404 (the README walk-through's stuck
// transaction). The transaction is flagged needs_attention at once, the list
// shows its last error, 30+ retries leave ONE retry event with a count, and
// once the participant is fixed it commits and the flag and error clear.

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "api/api_fixture.h"

namespace treaty {
namespace {

using nlohmann::json;
using testing::ApiTest;
using testing::EngineParamName;

class StuckDetectionApiTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    // A configuration error is retried at the cap: keep it short so that 30
    // retries take seconds. Attention by failure count is out of the way, so
    // the flag can only come from the configuration error.
    options_.service.engine.retry_max_backoff_ms = 50;
    options_.service.engine.attention_after_attempts = 100000;
    StartServer();
  }

  // The list item of `gtid` (GET /v1/transactions), or null.
  json ListItem(const std::string& gtid) {
    auto r = Get("/v1/transactions?gtid_prefix=" + gtid);
    EXPECT_EQ(r.status, 200) << r.raw;
    for (const auto& item : r.body["items"]) {
      if (item["gtid"] == gtid) return item;
    }
    return nullptr;
  }

  // Polls `pred` every 25 ms for up to `timeout_ms`.
  static bool Eventually(const std::function<bool()>& pred, int timeout_ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    return pred();
  }
};

TEST_P(StuckDetectionApiTest, CommitAnswering404IsFlaggedAtOnceAndRetriesCollapse) {
  TestParticipant::Rule not_found;
  not_found.statuses = {404};
  participant_->SetRule("bank", "commit", not_found);

  ASSERT_EQ(Post("/v1/2pc", {{"gtid", "stuck1"}}).status, 201);
  const json branch = {{"name", "bank"},
                       {"prepare", participant_->Url("bank", "prepare")},
                       {"commit", participant_->Url("bank", "commit")},
                       {"abort", participant_->Url("bank", "abort")}};
  ASSERT_EQ(Post("/v1/2pc/stuck1/branches", branch).status, 201);
  auto commit = Post("/v1/2pc/stuck1/commit", json::object());
  ASSERT_EQ(commit.status, 200) << commit.raw;
  EXPECT_EQ(commit.body["state"], "COMMITTING");

  // Flagged within seconds of the first 404, with the error in the list.
  json item;
  ASSERT_TRUE(Eventually(
      [&] {
        item = ListItem("stuck1");
        return item.is_object() && item["needs_attention"] == true;
      },
      10000))
      << item.dump();
  EXPECT_EQ(item["state"], "COMMITTING");
  const std::string last_error = item["last_error"];
  EXPECT_NE(last_error.find("404"), std::string::npos) << last_error;
  auto flagged = Get("/v1/transactions?needs_attention=true");
  ASSERT_EQ(flagged.status, 200);
  bool listed = false;
  for (const auto& i : flagged.body["items"]) listed = listed || i["gtid"] == "stuck1";
  EXPECT_TRUE(listed) << flagged.raw;

  // 30+ failed commits: one retry event for the branch, counting them.
  ASSERT_TRUE(
      Eventually([&] { return participant_->CallCount("stuck1", "bank", "commit") > 31; }, 30000))
      << participant_->CallCount("stuck1", "bank", "commit") << " commits";
  auto d = Get("/v1/transactions/stuck1");
  ASSERT_EQ(d.status, 200);
  std::vector<json> retries;
  size_t of_branch = 0;
  for (const auto& e : d.body["history"]) {
    if (e["branch"] != "bank") continue;
    ++of_branch;
    if (e["type"] == "retry") retries.push_back(e);
  }
  ASSERT_EQ(retries.size(), 1u) << d.body["history"].dump(1);
  EXPECT_GE(retries[0]["count"].get<int64_t>(), 30) << retries[0].dump();
  EXPECT_LT(retries[0]["first_at_ms"].get<int64_t>(), retries[0]["at_ms"].get<int64_t>());
  EXPECT_NE(retries[0]["detail"].get<std::string>().find("404"), std::string::npos);
  EXPECT_LE(of_branch, 5u) << d.body["history"].dump(1);
  size_t attention = 0;
  for (const auto& e : d.body["history"]) attention += e["type"] == "attention";
  EXPECT_EQ(attention, 1u);

  // Fixed: the next retry commits; the flag and the error clear.
  participant_->SetRule("bank", "commit", TestParticipant::Rule{});
  auto done = WaitTerminal("stuck1");
  EXPECT_EQ(done["state"], "COMMITTED");
  item = ListItem("stuck1");
  ASSERT_TRUE(item.is_object());
  EXPECT_EQ(item["needs_attention"], false);
  EXPECT_EQ(item["last_error"], "");
}

INSTANTIATE_TEST_SUITE_P(Engines, StuckDetectionApiTest, ::testing::Values("sqlite"),
                         EngineParamName);

}  // namespace
}  // namespace treaty
