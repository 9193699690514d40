#pragma once

// BackupScenario: what the backup tests share. A real HTTP participant with
// two kinds of saga:
//   finished  steps "ship" and "bill", both answered 200: COMMITTED at once;
//   in flight steps "book" (200) then "pay", answered 503 while the
//             participant is "down" (retried every 100..300 ms, up to 1000
//             attempts), so the saga stays RUNNING until BringUp().
// It submits them to a treatyd, remembers which were acknowledged (201), and
// checks a restored log: every acknowledged saga present, every in-flight one
// resumed and COMMITTED, its logged step not sent again and "pay" applied
// once, and no participant call for a saga already finished in that log.
//
// Thread-safe: SubmitFinished may run on a load thread while the test thread
// uses the rest.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "store/log_store.h"
#include "support/test_participant.h"

namespace treaty::testing {

class BackupScenario {
 public:
  using json = nlohmann::json;
  using Rule = TestParticipant::Rule;

  BackupScenario() { participant_.SetRule("pay", "action", Rule{{503}}); }

  // POSTs a saga; true when it was acknowledged (201).
  bool Submit(const std::string& url, const std::string& gtid, bool in_flight) {
    json steps = json::array();
    const std::vector<std::string> names = in_flight ? std::vector<std::string>{"book", "pay"}
                                                     : std::vector<std::string>{"ship", "bill"};
    for (const std::string& name : names) {
      steps.push_back(
          {{"name", name},
           {"action", participant_.Url(name, "action")},
           {"compensate", participant_.Url(name, "compensate")},
           {"retry",
            {{"max_attempts", 1000}, {"initial_backoff_ms", 100}, {"max_backoff_ms", 300}}}});
    }
    json saga = {{"gtid", gtid}, {"steps", steps}};
    auto r = HttpFetch("POST", url + "/v1/sagas", saga.dump(), {}, 5000);
    if (!r.ok() || r->status != 201) {
      std::lock_guard<std::mutex> lock(mu_);
      last_refusal_ = r.ok() ? std::to_string(r->status) + " " + r->body : r.status().ToString();
      return false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    (in_flight ? in_flight_ : finished_).insert(gtid);
    return true;
  }

  // Submits `n` sagas named PREFIX-i; every one must be acknowledged.
  void SubmitMany(const std::string& url, const std::string& prefix, int n, bool in_flight) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(Submit(url, prefix + "-" + std::to_string(i), in_flight))
          << prefix << "-" << i << ": " << LastRefusal();
    }
  }

  // Load: finished sagas PREFIX-0, PREFIX-1, ... until `stop`, 10 ms apart.
  // Failed submissions (e.g. while the coordinator dies) are not acknowledged.
  void RunLoad(const std::string& url, const std::string& prefix, const std::atomic<bool>& stop) {
    for (int i = 0; !stop.load(); ++i) {
      Submit(url, prefix + "-" + std::to_string(i), false);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Waits until every in-flight saga acknowledged so far had "pay" tried at
  // least twice (so "book" succeeded and is logged) and every finished one
  // is COMMITTED at `url`.
  bool WaitSettled(const std::string& url, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (const std::string& gtid : InFlight()) {
      if (!participant_.WaitFor(
              [&](const std::vector<TestParticipant::Call>& calls) {
                int pays = 0;  // (the participant's lock is held here)
                for (const auto& c : calls) pays += c.gtid == gtid && c.branch == "pay";
                return pays >= 2;
              },
              std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now()))) {
        return false;
      }
    }
    return WaitCommitted(url, Finished(),
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - std::chrono::steady_clock::now()));
  }

  // Waits until every saga in `gtids` is COMMITTED at `url`.
  bool WaitCommitted(const std::string& url, const std::set<std::string>& gtids,
                     std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (const std::string& gtid : gtids) {
      while (State(url, gtid) != "COMMITTED") {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    return true;
  }

  // The saga's state at `url`, "" when it cannot be read (any answer but 200).
  std::string State(const std::string& url, const std::string& gtid) {
    auto r = HttpFetch("GET", url + "/v1/transactions/" + gtid, "", {}, 2000);
    if (!r.ok() || r->status != 200) return "";
    json doc = json::parse(r->body, nullptr, false);
    return doc.is_object() ? doc.value("state", "") : "";
  }

  // The participant comes back: "pay" answers 200.
  void BringUp() { participant_.SetRule("pay", "action", Rule{{200}}); }

  // Reads the restored log directly, before any coordinator runs on it:
  // every acknowledged saga must be there; returns gtid -> state.
  std::map<std::string, std::string> ReadRestored(LogStore& store,
                                                  const std::set<std::string>& acknowledged) {
    std::map<std::string, std::string> states;
    for (const std::string& gtid : acknowledged) {
      auto d = store.GetTransactionNoEvents(gtid);
      EXPECT_TRUE(d.ok()) << "acknowledged saga " << gtid
                          << " missing from the restored log: " << d.status().ToString();
      if (d.ok()) states[gtid] = d->txn.state;
    }
    return states;
  }

  // After a coordinator runs on the restored log with the participant up:
  // every saga `restored` holds ends COMMITTED; the in-flight ones had each
  // action applied once and nothing compensated; the sagas that were
  // COMMITTED in the restored log got no call after `calls_before`.
  void CheckFinishedOnRestore(const std::string& url,
                              const std::map<std::string, std::string>& restored,
                              size_t calls_before, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (const auto& [gtid, state] : restored) {
      std::string now;
      while ((now = State(url, gtid)) != "COMMITTED" &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      EXPECT_EQ(now, "COMMITTED") << gtid << " (was " << state << " in the restored log)";
    }
    const std::set<std::string> in_flight = InFlight();
    const std::vector<TestParticipant::Call> calls = participant_.Calls();
    for (const std::string& gtid : in_flight) {
      if (!restored.count(gtid)) continue;
      // "book" had succeeded, and was logged, before the copy: never sent again.
      EXPECT_EQ(participant_.CallCount(gtid, "book", "action"), 1) << gtid;
      EXPECT_EQ(participant_.EffectCount(gtid, "pay", "action"), 1) << gtid;
    }
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_NE(calls[i].op, "compensate") << calls[i].gtid << " " << calls[i].branch;
      if (i < calls_before) continue;
      auto it = restored.find(calls[i].gtid);
      if (it != restored.end()) {
        EXPECT_NE(it->second, "COMMITTED")
            << calls[i].gtid << " was finished in the restored log, yet its " << calls[i].branch
            << " " << calls[i].op << " ran again";
      }
    }
  }

  std::set<std::string> InFlight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_;
  }
  std::set<std::string> Finished() const {
    std::lock_guard<std::mutex> lock(mu_);
    return finished_;
  }
  std::set<std::string> Acknowledged() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<std::string> all = finished_;
    all.insert(in_flight_.begin(), in_flight_.end());
    return all;
  }
  std::string LastRefusal() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_refusal_;
  }
  TestParticipant& participant() { return participant_; }

 private:
  TestParticipant participant_;
  mutable std::mutex mu_;
  std::set<std::string> in_flight_;  // acknowledged; guarded by mu_
  std::set<std::string> finished_;   // acknowledged; guarded by mu_
  std::string last_refusal_;         // why the last submission failed; guarded by mu_
};

}  // namespace treaty::testing
