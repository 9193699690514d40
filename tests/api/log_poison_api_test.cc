// Hostile input at the REST level, on the log's write path: a step
// named "a\u0000b" submitted at the same moment as valid sagas is refused
// alone (400) and never stored under a cut name, while every valid
// submission is logged (201); a participant's non-ASCII error text longer
// than the excerpt is stored valid and reads back.

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "api/api_fixture.h"
#include "common/text.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

class LogPoisonApiTest : public ApiTest {};

TEST_P(LogPoisonApiTest, BadStepNamesSubmittedWithValidSagasFailAloneAndAreNeverStoredCut) {
  constexpr int kValid = 40, kBad = 12, kThreads = 8;
  // Bodies as sent: JSON text, the bad ones with a NUL escape or raw
  // ill-formed UTF-8 in a step name.
  struct Submission {
    std::string gtid, body;
    bool valid;
  };
  std::vector<Submission> subs;
  for (int i = 0; i < kValid; ++i) {
    const std::string gtid = "ok-" + std::to_string(i);
    subs.push_back({gtid, json{{"gtid", gtid}, {"steps", {Step("s1"), Step("s2")}}}.dump(), true});
  }
  for (int i = 0; i < kBad; ++i) {
    const std::string gtid = "bad-" + std::to_string(i);
    std::string body = json{{"gtid", gtid}, {"steps", {Step("a-MARK-b"), Step("s2")}}}.dump();
    body.replace(body.find("a-MARK-b"), 8,
                 i % 2 ? "a\\u0000b"
                       : "a\xFF"
                         "b");
    subs.push_back({gtid, body, false});
  }
  // Interleave: bad ones land in the same group-commit batches as valid ones.
  std::vector<Submission> order;
  for (int i = 0, b = 0; i < kValid; ++i) {
    order.push_back(subs[i]);
    if (i % 3 == 1 && b < kBad) order.push_back(subs[kValid + b++]);
  }
  ASSERT_EQ(order.size(), static_cast<size_t>(kValid + kBad));

  std::mutex mu;
  std::map<std::string, ApiReply> replies;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < order.size(); i += kThreads) {
        ApiReply r = PostRaw("/v1/sagas", order[i].body);
        std::lock_guard lock(mu);
        replies[order[i].gtid] = std::move(r);
      }
    });
  }
  for (auto& th : threads) th.join();

  ASSERT_EQ(replies.size(), order.size());
  for (const Submission& s : subs) {
    const ApiReply& r = replies[s.gtid];
    if (s.valid) {
      EXPECT_EQ(r.status, 201) << s.gtid << ": " << r.raw;
    } else {
      EXPECT_EQ(r.status, 400) << s.gtid << ": " << r.raw;
      EXPECT_TRUE(IsValidUtf8(r.raw));
    }
  }
  for (const Submission& s : subs) {
    auto d = Get("/v1/transactions/" + s.gtid);
    if (!s.valid) {
      EXPECT_EQ(d.status, 404) << s.gtid << ": " << d.raw;
      continue;
    }
    ASSERT_EQ(d.status, 200) << s.gtid << ": " << d.raw;
    ASSERT_EQ(d.body["branches"].size(), 2u) << d.raw;
    EXPECT_EQ(d.body["branches"][0]["name"], "s1");
    EXPECT_EQ(d.body["branches"][1]["name"], "s2");
  }
  // Nothing stored under a cut name, by any gtid.
  auto list = Get("/v1/transactions?limit=200");
  ASSERT_EQ(list.status, 200) << list.raw;
  EXPECT_EQ(list.body["items"].size(), static_cast<size_t>(kValid)) << list.raw;
  for (const auto& item : list.body["items"]) {
    EXPECT_EQ(item["gtid"].get<std::string>().rfind("ok-", 0), 0u) << item.dump();
  }
  for (int i = 0; i < kValid; i += 7) WaitTerminal("ok-" + std::to_string(i));
}

// A participant failing with 503 and an error body of ordinary non-ASCII
// text longer than the excerpt: what the log keeps of it is valid UTF-8 and
// the transaction reads back, also after a restart.
TEST_P(LogPoisonApiTest, LongNonAsciiErrorTextIsStoredValidAndReadsBack) {
  std::string body = "x";
  for (int i = 0; i < 100; ++i) body += "\xC3\xA9";
  participant_->SetRule("pay", "action", Rule{{503}, 0, body});
  auto r = Post("/v1/sagas", {{"gtid", "t-accent"}, {"wait", true}, {"steps", {Step("pay", 2)}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "ABORTED") << r.raw;
  for (int round = 0; round < 2; ++round) {
    auto d = Get("/v1/transactions/t-accent");
    ASSERT_EQ(d.status, 200) << d.raw;
    ASSERT_TRUE(IsValidUtf8(d.raw));
    // The step was compensated (its last_error cleared); the history keeps
    // the failure's text.
    const std::string text = d.body.dump();
    EXPECT_NE(text.find("x\xC3\xA9\xC3\xA9"), std::string::npos) << text;
    if (round == 0) StartServer();
  }
}

INSTANTIATE_TEST_SUITE_P(Engines, LogPoisonApiTest, ::testing::Values("postgres", "sqlite"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
