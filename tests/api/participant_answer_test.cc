// What a participant answers, end to end: a real
// treatyd child process on a real SQLite file and on a real PostgreSQL, a
// real HTTP participant on loopback answering with hostile text.
//  - a 503 whose body is non-ASCII text longer than the 200-byte
//    excerpt kept as last_error. The excerpt used to cut a character in two:
//    every later GET aborted treatyd (SQLite) or the write was refused and
//    retried forever (PostgreSQL).
//  - an error body with a newline and an ESC sequence reached the
//    text log raw (a forged log line, a terminal escape).

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/limits.h"
#include "common/text.h"
#include "http/http_client.h"
#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/treatyd_process.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

class ParticipantAnswerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-answer");
    TreatydOptions options;
    options.store = FreshStoreUri(GetParam(), dir_);
    ASSERT_FALSE(options.store.empty());
    options.retry_max_backoff_ms = 50;  // compensation retries
    treatyd_ = std::make_unique<TreatydProcess>(dir_, "treatyd", options);
    Status s = treatyd_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    treatyd_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  json Step(const std::string& name) {
    return {{"name", name},
            {"action", participant_.Url(name, "action")},
            {"compensate", participant_.Url(name, "compensate")},
            {"retry", {{"max_attempts", 3}, {"initial_backoff_ms", 20}, {"max_backoff_ms", 20}}}};
  }

  void Submit(const std::string& gtid, const std::vector<json>& steps) {
    json body = {{"gtid", gtid}, {"steps", steps}};
    auto r = HttpFetch("POST", treatyd_->url() + "/v1/sagas", body.dump(), {}, 10000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->status, 201) << r->body;
  }

  // GET of the transaction: must answer 200 with a JSON document (nlohmann's
  // parser refuses ill-formed UTF-8). Fails the test and returns null otherwise.
  json Detail(const std::string& gtid) {
    auto r = HttpFetch("GET", treatyd_->url() + "/v1/transactions/" + gtid, "", {}, 10000);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.status().ToString()) << "\n" << treatyd_->Log();
    if (!r.ok()) return nullptr;
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_TRUE(IsValidUtf8(r->body));
    auto doc = json::parse(r->body, nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << "the detail is not JSON";
    return doc.is_discarded() ? json(nullptr) : doc;
  }

  // Polls the detail until `pred` holds (or 30 s); each GET must succeed.
  json WaitDetail(const std::string& gtid, const std::function<bool(const json&)>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    json d;
    while (std::chrono::steady_clock::now() < deadline) {
      d = Detail(gtid);
      if (d.is_null() || ::testing::Test::HasFailure()) return d;
      if (pred(d)) return d;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "condition not reached; last detail: " << d.dump() << "\n" << treatyd_->Log();
    return d;
  }

  static const json* Branch(const json& detail, const std::string& name) {
    for (const auto& b : detail["branches"]) {
      if (b.value("name", "") == name) return &b;
    }
    return nullptr;
  }

  std::string dir_;
  TestParticipant participant_;
  std::unique_ptr<TreatydProcess> treatyd_;
};

// The hotel's action answers 503 "x" + 100 × "é" (201 bytes), so
// the saga retries it, fails the step and compensates; its compensation
// answers the same until the test has read last_error, then 200.
TEST_P(ParticipantAnswerTest, NonAsciiErrorBodyLongerThanTheExcerptKeepsTheSagaGoing) {
  std::string accents = "x";
  for (int i = 0; i < 100; ++i) accents += "\xC3\xA9";  // é
  participant_.SetRule("hotel", "action", Rule{{503}, 0, accents});
  participant_.SetRule("hotel", "compensate", Rule{{503}, 0, accents});
  Submit("accents-1", {Step("flight"), Step("hotel")});

  // The compensation keeps failing: last_error holds the excerpt of the body.
  json d = WaitDetail("accents-1", [](const json& d) {
    const json* hotel = Branch(d, "hotel");
    return hotel && hotel->value("state", "") == "COMPENSATING" &&
           !hotel->value("last_error", "").empty();
  });
  ASSERT_FALSE(HasFailure());
  const std::string last_error = Branch(d, "hotel")->value("last_error", "");
  EXPECT_TRUE(IsValidUtf8(last_error));
  EXPECT_LE(last_error.size(), limits::kErrorExcerptBytes) << last_error;
  EXPECT_NE(last_error.find("HTTP 503: x\xC3\xA9"), std::string::npos) << last_error;
  EXPECT_EQ(Branch(d, "hotel")->value("attempts", 0), 3) << "the action was retried";

  // The saga goes on: compensation succeeds and it ends ABORTED.
  participant_.SetRule("hotel", "compensate", Rule{{200}});
  d = WaitDetail("accents-1", [](const json& d) { return d.value("state", "") == "ABORTED"; });
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(Branch(d, "flight")->value("state", ""), "COMPENSATED");
  EXPECT_EQ(Branch(d, "hotel")->value("state", ""), "COMPENSATED");
  EXPECT_EQ(participant_.EffectCount("accents-1", "flight", "compensate"), 1);

  // The SQLite case aborted on every GET, again after a restart.
  treatyd_->proc().Kill();
  ASSERT_TRUE(treatyd_->Start().ok()) << treatyd_->Log();
  EXPECT_EQ(Detail("accents-1").value("state", ""), "ABORTED");
}

// A 409 whose body carries a newline, a forged log line and an
// ESC sequence: the step fails and the saga compensates, logging the reason
// at info level. The log file must hold no forged line and no ESC byte.
TEST_P(ParticipantAnswerTest, ErrorBodyCannotForgeLogLinesOrSendTerminalEscapes) {
  const std::string hostile =
      "line1\nFORGED-LINE 2026-01-01 00:00:00.000 error gtid=someone-else lost\r\n"
      "\x1b[31mred\x1b[0m\xC2\x9b"
      "2J";
  participant_.SetRule("hotel", "action", Rule{{409}, 0, hostile});
  Submit("forge-1", {Step("flight"), Step("hotel")});
  json d = WaitDetail("forge-1", [](const json& d) { return d.value("state", "") == "ABORTED"; });
  ASSERT_FALSE(HasFailure());

  const std::string log = treatyd_->Log();
  ASSERT_NE(log.find("forge-1"), std::string::npos) << "the saga is logged:\n" << log;
  ASSERT_NE(log.find("FORGED-LINE"), std::string::npos) << "the reason is logged:\n" << log;
  EXPECT_EQ(log.find('\x1b'), std::string::npos) << "an ESC byte reached the log";
  EXPECT_EQ(log.find("\xC2\x9b"), std::string::npos) << "a C1 CSI reached the log";
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_NE(line.rfind("FORGED-LINE", 0), 0u) << "a forged line: " << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << "a raw CR: " << EscapeControl(line);
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, ParticipantAnswerTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace treaty::testing
