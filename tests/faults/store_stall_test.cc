// The PostgreSQL log stops completing commits under a running coordinator
// (docs/operations.md "What happens when ...", store-stall):
//  - synchronous_standby_names = 'nobody' (the state after a fail-over that
//    kept the old synchronous setting): every COMMIT waits forever;
//  - the server's processes SIGSTOPped: nothing answers at all.
// Within bounded time new work is answered 503, /readyz is 503 with a
// reason, /healthz stays 200, treaty_log_stalled is 1. When commits work
// again, new work is accepted by itself and every saga acknowledged before
// (or during) the stall ends COMMITTED. Default deadlines (store timeout
// 3 s, stall threshold 2 s): the figures printed as [measure] are what
// docs/operations.md quotes.
//
// Each test runs its own in-process Server on its own MiniPostgres.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/server.h"
#include "http/http_client.h"
#include "support/mini_postgres.h"
#include "support/test_participant.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

struct Reply {
  int status = 0;  // 0: no answer (transport error)
  std::string body;
  int64_t ms = 0;
};

class StoreStallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_.set_settings({"synchronous_commit=on"});
    Status s = pg_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    options_.store_uri = pg_.Uri();
    options_.http_port = 0;
    options_.heartbeat_ms = 200;
    options_.lease_ms = 2000;
    options_.drain_timeout_ms = 2000;
    options_.service.engine.retry_initial_backoff_ms = 20;
    options_.service.engine.retry_max_backoff_ms = 200;
    options_.service.engine.default_call_timeout_ms = 5000;
    // store_timeout_ms and writer.stall_after_ms: treatyd's defaults.
    server_ = std::make_unique<Server>(options_);
    s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    (void)pg_.Resume();
    (void)pg_.Query("ALTER SYSTEM RESET ALL");
    (void)pg_.Query("SELECT pg_reload_conf()");
    server_.reset();
  }

  Reply Fetch(const std::string& method, const std::string& path, const std::string& body = "") {
    const auto began = Clock::now();
    auto r = HttpFetch(method, server_->http_url() + path, body,
                       {{"Content-Type", "application/json"}}, 30000);
    Reply out;
    out.ms = MsSince(began);
    if (r.ok()) {
      out.status = r->status;
      out.body = r->body;
    }
    return out;
  }
  json Saga(const std::string& gtid, int step_delay_ms = 0) {
    TestParticipant::Rule rule;
    rule.delay_ms = step_delay_ms;
    participant_.SetRule("slow", "action", rule);
    const std::string step = step_delay_ms > 0 ? "slow" : "fast";
    return {{"gtid", gtid},
            {"steps",
             {{{"name", step},
               {"action", participant_.Url(step, "action")},
               {"compensate", participant_.Url(step, "compensate")},
               {"retry", {{"max_attempts", 5}, {"initial_backoff_ms", 20}}}}}}};
  }
  Reply Submit(const std::string& gtid, int step_delay_ms = 0) {
    return Fetch("POST", "/v1/sagas", Saga(gtid, step_delay_ms).dump());
  }
  std::string State(const std::string& gtid) {
    Reply r = Fetch("GET", "/v1/transactions/" + gtid);
    if (r.status != 200) return "";
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("state") ? j["state"].get<std::string>() : "";
  }
  bool WaitCommitted(const std::string& gtid, int timeout_ms) {
    const auto began = Clock::now();
    while (MsSince(began) < timeout_ms) {
      if (State(gtid) == "COMMITTED") return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  bool MetricStalled() {
    Reply r = Fetch("GET", "/metrics");
    return r.body.find("\ntreaty_log_stalled 1") != std::string::npos;
  }
  // treaty_log_stalled: 1, 0, or -1 (no answer / not found).
  int StalledGauge() {
    Reply r = Fetch("GET", "/metrics");
    if (r.body.find("\ntreaty_log_stalled 1") != std::string::npos) return 1;
    if (r.body.find("\ntreaty_log_stalled 0") != std::string::npos) return 0;
    return -1;
  }

  // Runs one stall: `stall` breaks commits, `unstall` repairs them. Checks
  // and prints what the operator sees.
  void RunStall(const std::function<void()>& stall, const std::function<void()>& unstall,
                const char* name) {
    // Acknowledged before the stall: some finished, some still running
    // (their step answers after the stall began).
    std::vector<std::string> acknowledged;
    for (int i = 0; i < 3; ++i) {
      const std::string gtid = std::string(name) + "-done-" + std::to_string(i);
      ASSERT_EQ(Submit(gtid).status, 201);
      acknowledged.push_back(gtid);
    }
    for (int i = 0; i < 3; ++i) {
      const std::string gtid = std::string(name) + "-running-" + std::to_string(i);
      ASSERT_EQ(Submit(gtid, 1500).status, 201);
      acknowledged.push_back(gtid);
    }
    EXPECT_EQ(Fetch("GET", "/readyz").status, 200);

    const auto stalled_at = Clock::now();
    stall();

    // Every 250 ms a submission and a /readyz, each on its own thread: every
    // answer within 10 s, and soon 503 at once.
    struct Probe {
      int64_t sent_ms;
      std::string gtid;  // empty: /readyz
      std::future<Reply> reply;
    };
    std::vector<Probe> probes;
    int64_t first_503_ms = -1;
    int64_t readyz_503_ms = -1;
    const auto collect = [&](Probe& p) {
      Reply r = p.reply.get();
      EXPECT_LT(r.ms, 10000) << (p.gtid.empty() ? "/readyz" : "POST") << " answered after " << r.ms
                             << " ms";
      if (p.gtid.empty()) {
        if (r.status == 503) {
          EXPECT_NE(r.body.find("transaction log"), std::string::npos) << r.body;
          if (readyz_503_ms < 0 || p.sent_ms + r.ms < readyz_503_ms) {
            readyz_503_ms = p.sent_ms + r.ms;
          }
        }
        return;
      }
      if (r.status == 201) acknowledged.push_back(p.gtid);  // logged before the stall bit
      if (r.status == 503 && (first_503_ms < 0 || p.sent_ms + r.ms < first_503_ms)) {
        first_503_ms = p.sent_ms + r.ms;
      }
    };
    int n = 0;
    while ((first_503_ms < 0 || readyz_503_ms < 0) && MsSince(stalled_at) < 20000) {
      const std::string gtid = std::string(name) + "-new-" + std::to_string(n++);
      probes.push_back({MsSince(stalled_at), gtid,
                        std::async(std::launch::async, [this, gtid] { return Submit(gtid); })});
      probes.push_back({MsSince(stalled_at), "", std::async(std::launch::async, [this] {
                          return Fetch("GET", "/readyz");
                        })});
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      for (Probe& p : probes) {
        if (p.reply.valid() &&
            p.reply.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) {
          collect(p);
        }
      }
    }
    for (Probe& p : probes) {  // the rest: answered, in bounded time
      if (p.reply.valid()) collect(p);
    }
    ASSERT_GE(first_503_ms, 0) << "no 503 within 20 s of the stall";
    ASSERT_GE(readyz_503_ms, 0) << "/readyz still ready 20 s into the stall";
    EXPECT_LT(first_503_ms, 10000);
    EXPECT_LT(readyz_503_ms, 10000);
    Reply health = Fetch("GET", "/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_LT(health.ms, 2000);
    Reply refused = Submit(std::string(name) + "-refused");
    EXPECT_EQ(refused.status, 503) << refused.body;
    EXPECT_LT(refused.ms, 2000) << "a refusal must be quick once the stall is known";
    EXPECT_TRUE(MetricStalled());
    std::printf("[measure] %s: stall to first 503: %lld ms; to /readyz 503: %lld ms\n", name,
                static_cast<long long>(first_503_ms), static_cast<long long>(readyz_503_ms));

    // Hold the stall a little, then repair it.
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    const auto repaired_at = Clock::now();
    unstall();
    int64_t first_ok_ms = -1;
    int m = 0;
    while (first_ok_ms < 0 && MsSince(repaired_at) < 30000) {
      const std::string gtid = std::string(name) + "-after-" + std::to_string(m++);
      Reply r = Submit(gtid);
      if (r.status == 201) {
        first_ok_ms = MsSince(repaired_at);
        acknowledged.push_back(gtid);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    ASSERT_GE(first_ok_ms, 0) << "new work still refused 30 s after the repair";
    int64_t ready_ms = -1;
    while (ready_ms < 0 && MsSince(repaired_at) < 30000) {
      if (Fetch("GET", "/readyz").status == 200) {
        ready_ms = MsSince(repaired_at);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    EXPECT_GE(ready_ms, 0) << "/readyz not ready 30 s after the repair";
    std::printf("[measure] %s: repair to first 201: %lld ms; to /readyz 200: %lld ms\n", name,
                static_cast<long long>(first_ok_ms), static_cast<long long>(ready_ms));

    // Nothing acknowledged is lost.
    for (const std::string& gtid : acknowledged) {
      EXPECT_TRUE(WaitCommitted(gtid, 30000)) << gtid << " is " << State(gtid);
    }
    EXPECT_FALSE(MetricStalled());

    // And the coordinator still stops in bounded time.
    const auto drain_began = Clock::now();
    EXPECT_TRUE(server_->Drain().ok());
    EXPECT_LT(MsSince(drain_began), 20000);
  }

  MiniPostgres pg_;
  ServerOptions options_;
  TestParticipant participant_;
  std::unique_ptr<Server> server_;
};

TEST_F(StoreStallTest, SynchronousStandbyThatNeverAnswers) {
  RunStall(
      [&] {
        ASSERT_TRUE(pg_.Query("ALTER SYSTEM SET synchronous_standby_names = 'nobody'").ok());
        ASSERT_TRUE(pg_.Query("SELECT pg_reload_conf()").ok());
      },
      [&] {
        ASSERT_TRUE(pg_.Query("ALTER SYSTEM RESET synchronous_standby_names").ok());
        ASSERT_TRUE(pg_.Query("SELECT pg_reload_conf()").ok());
      },
      "syncrep");
}

// The reviewer's scenario: a steady stream of creates (10/s, wait=false)
// across a 15 s stall of a synchronous standby that never answers. Creates
// caught in the LogWriter when the stall begins are answered 503 "outcome
// unknown", while their COMMITs still wait for the standby and land once
// it is repaired. Each of those must then run (not sit RUNNING, owned by
// this live coordinator, undriven), every 201 must exist, and /readyz and
// treaty_log_stalled must not flip back to ready during the stall (a write
// that changed nothing is no evidence that commits complete).
TEST_F(StoreStallTest, SteadyCreatesAcrossAStallAllRunOrAreAbsent) {
  struct Sent {
    std::string gtid;
    std::future<Reply> reply;
    int status = -1;
  };
  struct Poll {
    int64_t sent_ms, done_ms;
    int readyz;
    int gauge;
  };
  std::mutex mu;
  std::vector<Sent> sent;   // guarded by mu
  std::vector<Poll> polls;  // guarded by mu
  std::atomic<bool> stop{false};
  const auto began = Clock::now();
  std::thread submitter([&] {
    for (int i = 0; !stop; ++i) {
      const std::string gtid = "stream-" + std::to_string(i);
      {
        std::lock_guard lock(mu);
        sent.push_back(
            {gtid, std::async(std::launch::async, [this, gtid] { return Submit(gtid); })});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::thread poller([&] {
    while (!stop) {
      const int64_t sent_ms = MsSince(began);
      const int readyz = Fetch("GET", "/readyz").status;
      const int gauge = StalledGauge();
      {
        std::lock_guard lock(mu);
        polls.push_back({sent_ms, MsSince(began), readyz, gauge});
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });

  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  const int64_t stalled_ms = MsSince(began);
  ASSERT_TRUE(pg_.Query("ALTER SYSTEM SET synchronous_standby_names = 'nobody'").ok());
  ASSERT_TRUE(pg_.Query("SELECT pg_reload_conf()").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(15000));
  const int64_t repaired_ms = MsSince(began);
  ASSERT_TRUE(pg_.Query("ALTER SYSTEM RESET synchronous_standby_names").ok());
  ASSERT_TRUE(pg_.Query("SELECT pg_reload_conf()").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  stop = true;
  submitter.join();
  poller.join();

  // Readiness during the stall: once detected, never ready again until the
  // repair (polls answered before it).
  int64_t detected_ms = -1;
  int flips = 0;
  for (const Poll& p : polls) {
    if (p.sent_ms < stalled_ms || p.done_ms >= repaired_ms) continue;
    if (detected_ms < 0) {
      if (p.readyz == 503 || p.gauge == 1) detected_ms = p.done_ms;
      continue;
    }
    if (p.readyz == 200 || p.gauge == 0) {
      ++flips;
      ADD_FAILURE() << "ready again " << p.sent_ms - stalled_ms << " ms into the stall: /readyz "
                    << p.readyz << ", treaty_log_stalled " << p.gauge;
    }
  }
  ASSERT_GE(detected_ms, 0) << "the stall was never reported";
  EXPECT_LT(detected_ms - stalled_ms, 10000);

  // Every answer; every 201 exists; everything that exists finishes.
  int created = 0, refused = 0, unknown_but_logged = 0, other = 0;
  const auto finishing = Clock::now();
  for (Sent& s : sent) {
    Reply r = s.reply.get();
    s.status = r.status;
    if (r.status == 201) {
      ++created;
    } else if (r.status == 503) {
      ++refused;
    } else {
      ++other;
      ADD_FAILURE() << s.gtid << " answered " << r.status << ": " << r.body;
    }
  }
  std::vector<std::string> stuck;
  for (const Sent& s : sent) {
    std::string state = State(s.gtid);
    if (state.empty()) {
      EXPECT_NE(s.status, 201) << s.gtid << " was answered 201 and is not in the log";
      continue;
    }
    if (s.status == 503) ++unknown_but_logged;
    while (state != "COMMITTED" && state != "ABORTED" && MsSince(finishing) < 30000) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      state = State(s.gtid);
    }
    if (state != "COMMITTED") stuck.push_back(s.gtid + " " + state);
  }
  EXPECT_TRUE(stuck.empty()) << stuck.size() << " logged sagas did not commit within 30 s, e.g. "
                             << stuck.front();
  std::printf(
      "[measure] stream: %zu creates: %d answered 201, %d answered 503 (%d of them in the log "
      "after all), %d other; stall detected after %lld ms; %d readiness flips; all finished "
      "%lld ms after the stream stopped\n",
      sent.size(), created, refused, unknown_but_logged, other,
      static_cast<long long>(detected_ms - stalled_ms), flips,
      static_cast<long long>(MsSince(finishing)));
  EXPECT_TRUE(server_->Drain().ok());
}

TEST_F(StoreStallTest, StoppedServerProcesses) {
  RunStall([&] { ASSERT_TRUE(pg_.Pause().ok()); }, [&] { ASSERT_TRUE(pg_.Resume().ok()); },
           "sigstop");
}

}  // namespace
}  // namespace treaty::testing
