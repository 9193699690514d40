// Deterministic fuzz test of the participant-answer path: a real treatyd
// child process, on a SQLite file and on a
// throwaway PostgreSQL, runs sagas and 2PC transactions whose participant is
// a ChaosParticipant (chaos_participant.h) answering every action,
// compensate, prepare, commit and abort call with hostile HTTP. Properties:
//   - treatyd stays up (a crash is reported with the last answers given);
//   - every GET of every transaction, and every list page, is valid JSON
//     in valid UTF-8 while the chaos goes on and after a kill -9 + restart;
//   - once the participant behaves, every saga and 2PC reaches COMMITTED or
//     ABORTED or is flagged needs_attention (bounded wait).
// A failure names the seed; TREATY_FUZZ_SEED / TREATY_FUZZ_CASES (number of
// transactions) replay or lengthen a run.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "chaos_participant.h"
#include "fuzz_support.h"

namespace treaty::fuzz {
namespace {

using nlohmann::json;

constexpr int kDefaultTransactions = 240;  // about 2,500 participant calls
constexpr int kClientThreads = 8;          // 2PC commits block until the decision
constexpr int kMinCallsPerTransaction = 3;

class ParticipantAnswerFuzzTest : public ::testing::TestWithParam<std::string> {
 protected:
  void Finding(const std::string& what) {
    std::lock_guard<std::mutex> lock(findings_mu_);
    if (findings_.size() < 100) findings_.push_back(what);
    ++finding_count_;
  }
  std::string Summary() {
    std::lock_guard<std::mutex> lock(findings_mu_);
    std::string out = std::to_string(finding_count_) + " finding(s):\n";
    for (const auto& f : findings_) out += "  - " + f + "\n";
    return out;
  }
  std::string AnswersFor(const std::string& gtid) {
    std::string out;
    for (const auto& line : chaos_->AnswersFor(gtid)) out += "\n      " + line;
    return out;
  }

  // After a request got no answer: if treatyd died, report it with the last
  // answers given and restart it (at most twice). Thread-safe.
  void CheckAlive(const std::string& stage) {
    std::lock_guard<std::mutex> lock(process_mu_);
    if (gave_up_ || treatyd_->Alive()) return;
    std::string recent;
    for (const auto& line : chaos_->Recent(25)) recent += "\n      " + line;
    Finding("treatyd died (" + stage + "); the last answers given, newest first:" + recent +
            "\n    log tail:\n" + treatyd_->LogTail(3000));
    if (++restarts_ > 2 || !treatyd_->Start().ok()) gave_up_ = true;  // one report, not thousands
  }

  // GETs `gtid`; checks the answer is valid JSON. Returns the document or null.
  json GetChecked(const std::string& gtid, const std::string& stage) {
    SimpleReply r = Get(base_url_, "/v1/transactions/" + PercentEncode(gtid), 10000);
    if (r.status == 0) {
      CheckAlive(stage + ", GET " + gtid);
      return nullptr;
    }
    if (std::string why = CheckApiAnswer(r.status, r.body); !why.empty() || r.status != 200) {
      Finding("seed " + std::to_string(seed_) + " " + gtid + " (" + stage + "): GET answered " +
              std::to_string(r.status) + " " + why + "; answers given:" + AnswersFor(gtid));
      return nullptr;
    }
    return json::parse(r.body);
  }

  void CheckList(const std::string& stage) {
    std::string cursor;
    for (int page = 0; page < 100; ++page) {
      SimpleReply r = Get(
          base_url_,
          "/v1/transactions?limit=500" + (cursor.empty() ? "" : "&cursor=" + PercentEncode(cursor)),
          10000);
      if (r.status == 0) return CheckAlive(stage + ", list");
      if (std::string why = CheckApiAnswer(r.status, r.body); !why.empty() || r.status != 200) {
        Finding("list (" + stage + ") answered " + std::to_string(r.status) + " " + why);
        return;
      }
      const json doc = json::parse(r.body);
      cursor = doc.value("next", json("")).is_string() ? doc.value("next", "") : "";
      if (cursor.empty()) return;
    }
  }

  // Submits transaction `i`: a saga or a 2PC (begin, enlist, commit/abort).
  void Submit(int i) {
    FuzzRandom r = FuzzRandom::ForCase(seed_, static_cast<uint64_t>(i));
    const bool saga = r.Chance(0.6);
    const std::string gtid = (saga ? "pa-" : "pa2-") + std::to_string(i);
    if (saga) {
      json steps = json::array();
      for (int s = 0, n = static_cast<int>(r.Int(1, 3)); s < n; ++s) {
        const std::string name = "s" + std::to_string(s);
        steps.push_back(
            {{"name", name},
             {"action", chaos_->Url(name, "action")},
             {"compensate", chaos_->Url(name, "compensate")},
             {"payload", {{"i", i}}},
             {"timeout_ms", 500},
             {"retry",
              {{"max_attempts", 3}, {"initial_backoff_ms", 20}, {"max_backoff_ms", 100}}}});
      }
      SimpleReply reply =
          Post(base_url_, "/v1/sagas", json({{"gtid", gtid}, {"steps", steps}}).dump());
      Accepted(gtid, reply, "submit");
      return;
    }
    // One-phase is declared per branch (used when it is the only one).
    const bool one_phase = r.Chance(0.3);
    json begin = {{"gtid", gtid}, {"timeout_ms", 15000}};
    if (!Accepted(gtid, Post(base_url_, "/v1/2pc", begin.dump()), "begin")) return;
    for (int b = 0, n = static_cast<int>(r.Int(1, 3)); b < n; ++b) {
      const std::string name = "b" + std::to_string(b);
      json branch = {{"name", name},
                     {"prepare", chaos_->Url(name, "prepare")},
                     {"commit", chaos_->Url(name, "commit")},
                     {"abort", chaos_->Url(name, "abort")},
                     {"payload", {{"i", i}}},
                     {"timeout_ms", 500},
                     {"one_phase", one_phase}};
      if (!Accepted(gtid, Post(base_url_, "/v1/2pc/" + gtid + "/branches", branch.dump()),
                    "enlist")) {
        return;
      }
    }
    const std::string decision = r.Chance(0.8) ? "commit" : "abort";
    SimpleReply reply = Post(base_url_, "/v1/2pc/" + gtid + "/" + decision, "", 60000);
    // 200 with the decision; 409 when the transaction decided otherwise meanwhile.
    if (reply.status == 0) CheckAlive(decision + " " + gtid);
    if (reply.status >= 500 || !CheckApiAnswer(reply.status, reply.body).empty()) {
      Finding(gtid + ": " + decision + " answered " + std::to_string(reply.status) + " " +
              Printable(reply.body, 300) + "; answers given:" + AnswersFor(gtid));
    }
  }

  bool Accepted(const std::string& gtid, const SimpleReply& reply, const std::string& what) {
    if (reply.status == 0) CheckAlive(what + " " + gtid);
    if (reply.status != 201 && reply.status != 200) {
      Finding(gtid + ": " + what + " answered " + std::to_string(reply.status) + " " +
              Printable(reply.body, 300));
      return false;
    }
    std::lock_guard<std::mutex> lock(gtids_mu_);
    gtids_.push_back(gtid);
    return true;
  }

  std::vector<std::string> Gtids() {
    std::lock_guard<std::mutex> lock(gtids_mu_);
    return gtids_;
  }

  uint64_t seed_ = 0;
  std::string base_url_;  // treatyd's, fixed once started (restarts keep the port)
  std::unique_ptr<ChaosParticipant> chaos_;
  std::unique_ptr<FuzzTreatyd> treatyd_;
  std::mutex process_mu_;
  int restarts_ = 0;      // guarded by process_mu_
  bool gave_up_ = false;  // guarded by process_mu_: treatyd stays down
  std::mutex gtids_mu_;
  std::vector<std::string> gtids_;
  std::mutex findings_mu_;
  std::vector<std::string> findings_;
  size_t finding_count_ = 0;
};

TEST_P(ParticipantAnswerFuzzTest, TreatydStaysUpServesValidJsonAndEveryTransactionSettles) {
  seed_ = FuzzSeed(GetParam() == "sqlite" ? 7001 : 7002);
  const int transactions = FuzzCases(kDefaultTransactions);
  chaos_ = std::make_unique<ChaosParticipant>(seed_);
  treatyd_ = std::make_unique<FuzzTreatyd>(
      GetParam(), std::vector<std::string>{"--attention-after", "4", "--call-timeout-ms", "500"});
  ASSERT_TRUE(treatyd_->Start().ok()) << treatyd_->LogTail();
  base_url_ = treatyd_->url();  // a restart keeps the port

  // Chaos phase: submit everything while a reader GETs what exists.
  std::atomic<bool> submitting{true};
  std::thread reader([&] {
    size_t at = 0;
    while (submitting) {
      const auto gtids = Gtids();
      if (!gtids.empty()) GetChecked(gtids[at++ % gtids.size()], "during the chaos");
      if (at % 50 == 0) CheckList("during the chaos");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::atomic<int> next{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClientThreads; ++t) {
    clients.emplace_back([&] {
      for (int i = next++; i < transactions; i = next++) Submit(i);
    });
  }
  for (auto& t : clients) t.join();
  // Let retries and compensations meet more chaos.
  const int64_t wanted_calls = static_cast<int64_t>(transactions) * 10;
  const auto chaos_until = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  while (chaos_->calls() < wanted_calls && std::chrono::steady_clock::now() < chaos_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  submitting = false;
  reader.join();
  const int64_t chaos_calls = chaos_->calls();
  std::string kinds;
  for (const auto& [kind, n] : chaos_->kinds()) kinds += " " + kind + "x" + std::to_string(n);
  std::printf("participant-answer fuzz (%s, seed %llu): %d transactions, %lld chaotic answers:%s\n",
              GetParam().c_str(), static_cast<unsigned long long>(seed_), transactions,
              static_cast<long long>(chaos_calls), kinds.c_str());
  EXPECT_GE(chaos_calls, static_cast<int64_t>(transactions) * kMinCallsPerTransaction);

  // The participant behaves: everything settles (or is flagged).
  chaos_->SetBehave(true);
  const auto gtids = Gtids();
  std::map<std::string, std::string> open;
  for (const auto& g : gtids) open[g] = "";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!open.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto it = open.begin(); it != open.end();) {
      const json doc = GetChecked(it->first, "settling");
      const std::string state = doc.is_object() ? doc.value("state", "") : "";
      it->second = state;
      if (state == "COMMITTED" || state == "ABORTED" ||
          (doc.is_object() && doc.value("needs_attention", false))) {
        it = open.erase(it);
      } else {
        ++it;
      }
    }
    if (!open.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  for (const auto& [gtid, state] : open) {
    Finding("seed " + std::to_string(seed_) + " " + gtid +
            ": neither terminal nor needs_attention 60 s after the participant behaved (state " +
            state + "); answers given:" + AnswersFor(gtid));
  }
  CheckList("settled");

  // Everything is still servable after a crash and a restart (a poisoned
  // row would fail here).
  {
    std::lock_guard<std::mutex> lock(process_mu_);
    treatyd_->Kill();
    ASSERT_TRUE(treatyd_->Start().ok()) << treatyd_->LogTail();
  }
  for (const auto& g : gtids) GetChecked(g, "after kill -9 and restart");
  CheckList("after restart");
  EXPECT_EQ(treatyd_->CheckHealthy(), "");
  // Answers carry CR/LF, ESC, NUL and ill-formed UTF-8: the log shows them escaped.
  EXPECT_EQ(CheckLogIsClean(treatyd_->Log(), {"X-Forged", "X-Chaos"}), "");
  EXPECT_EQ(finding_count_, 0u) << Summary();
}

INSTANTIATE_TEST_SUITE_P(Stores, ParticipantAnswerFuzzTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace treaty::fuzz
