// Deterministic fuzz test of the REST front end: a few thousand generated
// requests (rest_request_gen.h) sent as
// raw bytes to a real treatyd child process, on a SQLite file and on a
// throwaway PostgreSQL. Properties:
//   - the server stays up (a crash is reported with the cases in flight,
//     treatyd is restarted and the run goes on, so one run finds several);
//   - every answer is one well-formed HTTP response; every answer on a /v1
//     route (and every JSON answer) is valid UTF-8 and valid JSON, errors
//     shaped {"error":{"code","message"}};
//   - bad input gets a 4xx, never a 5xx; an unmutated submission gets a 2xx;
//   - nothing acknowledged is lost: every saga / 2PC answered 2xx with a gtid
//     is found by GET and in the list, stored with the identifiers it was
//     sent with, still after a kill -9 and restart, and (when its retry
//     settings are bounded) reaches a terminal state or needs_attention.
// A failure names the seed and case index; TREATY_FUZZ_SEED /
// TREATY_FUZZ_CASES replay or lengthen a run.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "fuzz_support.h"
#include "rest_request_gen.h"
#include "support/test_participant.h"

namespace treaty::fuzz {
namespace {

using nlohmann::json;

constexpr int kDefaultCases = 2500;
constexpr int kClientThreads = 3;
constexpr int kMaxRestarts = 5;

struct Ack {
  uint64_t index = 0;
  RestCase::Kind kind = RestCase::Kind::kOther;
  std::string gtid;
  std::string sent_body;
};

// Collects failures under a mutex; each names its seed and case.
class Findings {
 public:
  void Add(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (all_.size() < 200) all_.push_back(what);
    ++count_;
  }
  std::string Summary() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out = std::to_string(count_) + " finding(s):\n";
    for (const auto& f : all_) out += "  - " + f + "\n";
    return out;
  }
  bool empty() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_ == 0;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> all_;
  size_t count_ = 0;
};

bool PrintableAscii(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

// Bounded retry settings: such a transaction must settle within the test.
bool Bounded(const json& spec, RestCase::Kind kind) {
  auto small = [](const json& v, const char* key, int64_t max) {
    const json x = v.is_object() ? v.value(key, json(0)) : json(0);
    return x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() <= max;
  };
  if (kind == RestCase::Kind::kBegin2pc) return small(spec, "timeout_ms", 10000);
  if (!spec.is_object() || !spec.contains("steps") || !spec["steps"].is_array()) return false;
  for (const auto& step : spec["steps"]) {
    const json retry = step.value("retry", json::object());
    if (!small(step, "timeout_ms", 10000) || !small(retry, "max_attempts", 10) ||
        !small(retry, "initial_backoff_ms", 1000) || !small(retry, "max_backoff_ms", 5000)) {
      return false;
    }
  }
  return true;
}

class RestFuzzTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Checks one GET of an acknowledged transaction; returns the document
  // (null when the answer was bad, with a finding).
  json CheckStored(const Ack& ack, const std::string& stage) {
    const std::string where = "case " + std::to_string(ack.index) + " gtid " +
                              Printable(ack.gtid, 140) + " (" + stage + "): ";
    SimpleReply r = Get(treatyd_->url(), "/v1/transactions/" + PercentEncode(ack.gtid), 10000);
    if (r.status != 200) {
      findings_.Add(where + "acknowledged but GET answered " + std::to_string(r.status) + " " +
                    Printable(r.body, 200));
      return nullptr;
    }
    if (std::string why = CheckApiAnswer(r.status, r.body); !why.empty()) {
      findings_.Add(where + "GET: " + why);
      return nullptr;
    }
    json doc = json::parse(r.body);
    if (doc.value("gtid", "") != ack.gtid) findings_.Add(where + "GET returned another gtid");
    if (Status s = ValidateIdentifier(ack.gtid, "gtid"); !s.ok()) {
      findings_.Add(where + "a gtid breaking the identifier rules was accepted");
    }
    const json spec = doc.value("spec", json());
    const json sent = json::parse(ack.sent_body, nullptr, false);
    if (ack.kind == RestCase::Kind::kSubmitSaga && spec.is_object() && spec.contains("steps")) {
      for (size_t i = 0; i < spec["steps"].size(); ++i) {
        const json& step = spec["steps"][i];
        const std::string name = step.value("name", "");
        if (Status s = ValidateIdentifier(name, "name"); !s.ok()) {
          findings_.Add(where + "accepted step name " + Printable(name, 140) +
                        " breaks the identifier rules");
        }
        if (sent.is_object() && sent.contains("steps") && sent["steps"].is_array() &&
            i < sent["steps"].size() && sent["steps"][i].is_object() &&
            sent["steps"][i].value("name", json()).is_string() &&
            sent["steps"][i]["name"].get<std::string>() != name) {
          findings_.Add(where + "step name stored as " + Printable(name, 140) + " but sent as " +
                        Printable(sent["steps"][i]["name"].get<std::string>(), 140));
        }
        for (const char* url : {"action", "compensate"}) {
          if (!PrintableAscii(step.value(url, ""))) {
            findings_.Add(where + "accepted " + url + " URL " +
                          Printable(step.value(url, ""), 200) + " has control/non-ASCII bytes");
          }
        }
      }
    }
    return doc;
  }

  Findings findings_;
  std::unique_ptr<FuzzTreatyd> treatyd_;
};

TEST_P(RestFuzzTest, ServerStaysUpAnswersAreWellFormedAndNothingAcknowledgedIsLost) {
  TestParticipant participant;
  const std::string base = "http://127.0.0.1:" + std::to_string(participant.port());
  treatyd_ = std::make_unique<FuzzTreatyd>(
      GetParam(), std::vector<std::string>{"--attention-after", "3", "--call-timeout-ms", "2000"});
  ASSERT_TRUE(treatyd_->Start().ok()) << treatyd_->LogTail();
  const int port = treatyd_->port();  // a restart keeps the port

  const uint64_t seed = FuzzSeed(GetParam() == "sqlite" ? 9001 : 9002);
  const int cases = FuzzCases(kDefaultCases);
  const RestRequestGenerator gen(seed, base);
  const std::string tag = "seed " + std::to_string(seed) + " case ";

  std::mutex mu;  // guards acks, in_flight, restarts and treatyd_'s process
  std::vector<Ack> acks;
  std::map<int, uint64_t> in_flight;  // worker -> case index
  int restarts = 0;
  std::atomic<int> epoch{0};  // bumped on every restart after a crash
  std::atomic<uint64_t> next{0};
  std::atomic<bool> stop{false};
  std::map<int, int> statuses;  // for the summary

  auto worker = [&](int id) {
    while (!stop) {
      const uint64_t i = next++;
      if (i >= static_cast<uint64_t>(cases)) break;
      const RestCase c = gen.Make(i);
      const int epoch_before = epoch;
      {
        std::lock_guard<std::mutex> lock(mu);
        in_flight[id] = i;
      }
      const RawReply rep = RawExchange(port, c.bytes, c.head, 20000);
      const std::string what = tag + std::to_string(i) + ": ";
      if (!rep.malformed.empty()) findings_.Add(what + rep.malformed + "; input: " + c.description);
      if (!rep.answered && rep.malformed.empty()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!treatyd_->Alive()) {
          std::string cases_in_flight;
          for (const auto& [w, idx] : in_flight) {
            cases_in_flight +=
                "\n      case " + std::to_string(idx) + ": " + gen.Make(idx).description;
          }
          findings_.Add("treatyd died (" + tag + "around " + std::to_string(i) +
                        "); cases in flight:" + cases_in_flight + "\n    log tail:\n" +
                        treatyd_->LogTail(3000));
          if (++restarts > kMaxRestarts || !treatyd_->Start().ok()) {
            stop = true;
          }
          ++epoch;
        } else if (c.complete && epoch == epoch_before) {
          findings_.Add(what + "no answer to a complete request; input: " + c.description);
        }
        continue;
      }
      if (!rep.answered) continue;
      {
        std::lock_guard<std::mutex> lock(mu);
        ++statuses[rep.status];
      }
      const bool v1 = c.target.starts_with("/v1");
      const bool json_type = rep.content_type.starts_with("application/json");
      if (rep.status >= 500) {
        findings_.Add(what + "answered " + std::to_string(rep.status) + " " +
                      Printable(rep.body, 200) + "; input: " + c.description);
      }
      if (!c.head && (v1 || json_type)) {
        if (!json_type) {
          findings_.Add(what + "a /v1 answer with Content-Type " + Printable(rep.content_type) +
                        "; input: " + c.description);
        }
        if (std::string why = CheckApiAnswer(rep.status, rep.body); !why.empty()) {
          findings_.Add(what + why + "; input: " + c.description);
        }
      }
      const bool ok = rep.status >= 200 && rep.status < 300;
      if (c.must_succeed && !ok) {
        findings_.Add(what + "an unmutated submission answered " + std::to_string(rep.status) +
                      " " + Printable(rep.body, 200) + "; input: " + c.description);
      }
      if (ok && c.kind != RestCase::Kind::kOther) {
        const json doc = json::parse(rep.body, nullptr, false);
        if (!doc.is_object() || !doc.value("gtid", json()).is_string()) {
          findings_.Add(what + "a 2xx submission answer without a gtid: " + Printable(rep.body));
        } else {
          std::lock_guard<std::mutex> lock(mu);
          acks.push_back({i, c.kind, doc["gtid"].get<std::string>(), c.body});
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    in_flight.erase(id);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kClientThreads; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();

  std::string status_counts;
  for (const auto& [s, n] : statuses)
    status_counts += " " + std::to_string(s) + "x" + std::to_string(n);
  std::printf("rest fuzz (%s, seed %llu): %d cases, answers:%s; %zu acknowledged\n",
              GetParam().c_str(), static_cast<unsigned long long>(seed), cases,
              status_counts.c_str(), acks.size());

  ASSERT_TRUE(treatyd_->Alive()) << findings_.Summary();
  std::string health = treatyd_->CheckHealthy();
  ASSERT_EQ(health, "") << findings_.Summary();
  EXPECT_GT(acks.size(), static_cast<size_t>(cases / 20)) << "too few submissions accepted";

  // Nothing acknowledged is lost; bounded ones settle.
  std::map<std::string, const Ack*> waiting;
  for (const Ack& ack : acks) {
    json doc = CheckStored(ack, "after the fuzz");
    if (!doc.is_null() && Bounded(doc.value("spec", json()), ack.kind)) waiting[ack.gtid] = &ack;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(45);
  std::map<std::string, std::string> last_state;
  while (!waiting.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto it = waiting.begin(); it != waiting.end();) {
      SimpleReply r = Get(treatyd_->url(), "/v1/transactions/" + PercentEncode(it->first));
      const json doc = json::parse(r.body, nullptr, false);
      const std::string state = doc.is_object() ? doc.value("state", "") : "";
      last_state[it->first] = state;
      if (r.status == 200 &&
          (state == "COMMITTED" || state == "ABORTED" || doc.value("needs_attention", false))) {
        it = waiting.erase(it);
      } else {
        ++it;
      }
    }
    if (!waiting.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (const auto& [gtid, ack] : waiting) {
    findings_.Add(tag + std::to_string(ack->index) + ": " + Printable(gtid) +
                  " neither terminal nor needs_attention after 45 s (state " + last_state[gtid] +
                  "); body " + Printable(ack->sent_body, 300));
  }

  // The list pages are well-formed and show every acknowledged transaction.
  auto list_all = [&](const std::string& stage) {
    std::set<std::string> seen;
    std::string cursor;
    for (int page = 0; page < 1000; ++page) {
      SimpleReply r = Get(treatyd_->url(),
                          "/v1/transactions?limit=1000" +
                              (cursor.empty() ? "" : "&cursor=" + PercentEncode(cursor)),
                          10000);
      if (r.status != 200 || !CheckApiAnswer(r.status, r.body).empty()) {
        findings_.Add("list (" + stage + ") page " + std::to_string(page) + " answered " +
                      std::to_string(r.status) + ": " + CheckApiAnswer(r.status, r.body) + " " +
                      Printable(r.body, 200));
        break;
      }
      const json doc = json::parse(r.body);
      for (const auto& item : doc["items"]) seen.insert(item.value("gtid", ""));
      cursor = doc.value("next", json("")).is_string() ? doc.value("next", "") : "";
      if (cursor.empty()) break;
    }
    return seen;
  };
  const std::set<std::string> listed = list_all("after the fuzz");
  for (const Ack& ack : acks) {
    if (!listed.count(ack.gtid)) {
      findings_.Add(tag + std::to_string(ack.index) + ": acknowledged " + Printable(ack.gtid) +
                    " missing from GET /v1/transactions");
    }
  }

  // Still there and still servable after a crash and a restart.
  treatyd_->Kill();
  ASSERT_TRUE(treatyd_->Start().ok()) << treatyd_->LogTail();
  for (const Ack& ack : acks) CheckStored(ack, "after kill -9 and restart");
  list_all("after restart");
  EXPECT_EQ(treatyd_->CheckHealthy(), "");
  // Requests carry CR/LF, ESC, NUL and ill-formed UTF-8: the log shows them escaped.
  EXPECT_EQ(CheckLogIsClean(treatyd_->Log(), {"X-Injected", "Host: internal", "GET /admin"}), "");
  EXPECT_TRUE(findings_.empty()) << findings_.Summary();
}

INSTANTIATE_TEST_SUITE_P(Stores, RestFuzzTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace treaty::fuzz
