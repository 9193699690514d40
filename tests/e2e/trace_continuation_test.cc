// W3C trace continuation end to end: a client's traceparent reaches every
// participant call of its transaction with the client's trace id and flags
// and a new span id per call, also after the coordinator that accepted it is
// killed (-9) and another one adopts it; a submission without one (or with
// an invalid one) gets a fresh trace; the SDK Client passes a trace on over
// REST and Thrift. Two treatyd on one PostgreSQL (a third with a known
// Thrift port for the SDK case).

#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster_fixture.h"
#include "common/trace_context.h"
#include "http/http_client.h"
#include "support/store_env.h"
#include "support/subprocess.h"
#include "treaty/client.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;
namespace sdk = treaty::sdk;

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kCallerParent[] = "00f067aa0ba902b7";

class TraceContinuationTest : public ClusterFixture {
 protected:
  void SetUp() override {
    ClusterFixture::SetUp();
    store_ = FreshStoreUri("postgres", dir_);
    ASSERT_FALSE(store_.empty());
    TreatydOptions o;
    o.store = store_;
    o.heartbeat_ms = 200;
    o.lease_ms = 1500;
    o.retry_max_backoff_ms = 200;
    StartCoordinators(2, o);
  }

  // The calls of `gtid` (optionally only those of `branch`).
  std::vector<TestParticipant::Call> CallsOf(const std::string& gtid,
                                             const std::string& branch = "") const {
    std::vector<TestParticipant::Call> out;
    for (const auto& c : participant_.Calls()) {
      if (c.gtid == gtid && (branch.empty() || c.branch == branch)) out.push_back(c);
    }
    return out;
  }

  // Every call parses as a version-00 traceparent of `trace_id` and `flags`
  // with a span id of its own (none the caller's).
  static void ExpectOneTraceNewSpans(const std::vector<TestParticipant::Call>& calls,
                                     const std::string& trace_id, const std::string& flags) {
    std::set<std::string> spans;
    for (const auto& c : calls) {
      auto f = ParseTraceParent(c.traceparent);
      ASSERT_TRUE(f.ok()) << c.traceparent << ": " << f.status().message();
      EXPECT_EQ(f->version, "00") << c.traceparent;
      EXPECT_EQ(f->trace_id, trace_id) << c.branch << "/" << c.op;
      EXPECT_EQ(f->flags, flags) << c.traceparent;
      EXPECT_NE(f->parent_id, kCallerParent) << "the caller's span id reused";
      spans.insert(f->parent_id);
    }
    EXPECT_EQ(spans.size(), calls.size()) << "a span id was sent twice";
  }
};

TEST_F(TraceContinuationTest, CallersTraceSurvivesKillNineAndAdoption) {
  // hotel fails transiently until switched, so the saga is still running
  // (retrying hotel) when its coordinator dies.
  participant_.SetRule("hotel", "action", Rule{{503}});
  const std::string traceparent = std::string("00-") + kTraceId + "-" + kCallerParent + "-00";
  json saga = Saga("traced", false);
  saga["steps"][1]["retry"]["max_attempts"] = 1000;  // outlives the crash and the lease
  auto r = HttpFetch("POST", nodes_[0]->url() + "/v1/sagas", saga.dump(),
                     {{"traceparent", traceparent}, {"tracestate", "rojo=00f067aa0ba902b7"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->status, 201) << r->body;
  ASSERT_TRUE(participant_.WaitFor(
      [](const auto& calls) {
        int hotel = 0;
        for (const auto& c : calls) hotel += c.gtid == "traced" && c.branch == "hotel";
        return hotel >= 3;
      },
      std::chrono::seconds(20)));

  nodes_[0]->proc().Signal(SIGKILL);
  ASSERT_NE(nodes_[0]->proc().Wait(5000), -1);
  const size_t before = CallsOf("traced").size();
  participant_.SetRule("hotel", "action", Rule{{200}});
  auto final = WaitTerminal({"traced"}, std::chrono::seconds(30));
  ASSERT_EQ(final["traced"]["state"], "COMMITTED") << final["traced"].dump(2);
  const std::vector<std::string> adopters = Adopters(final["traced"]);
  ASSERT_FALSE(adopters.empty()) << final["traced"].dump(2);
  EXPECT_EQ(adopters.back(), nodes_[1]->CoordinatorId());

  const auto calls = CallsOf("traced");
  ASSERT_GT(calls.size(), before) << "no call after the adoption";
  ExpectOneTraceNewSpans(calls, kTraceId, "00");
  for (const auto& c : calls) {
    EXPECT_EQ(c.headers.count("tracestate") ? c.headers.at("tracestate") : "",
              "rojo=00f067aa0ba902b7")
        << c.branch << "/" << c.op;
  }
  // The stored spec carries the trace (what the adopter read back).
  EXPECT_EQ(final["traced"]["spec"]["trace"]["trace_id"], kTraceId) << final["traced"].dump(2);
  // The same body sent again under another trace is the same saga (200).
  auto again = HttpFetch(
      "POST", nodes_[1]->url() + "/v1/sagas", saga.dump(),
      {{"traceparent", "00-" + std::string(32, 'a') + "-" + std::string(16, 'b') + "-01"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 200) << again->body;
}

TEST_F(TraceContinuationTest, NoOrAnInvalidTraceparentStartsAFreshTrace) {
  const std::string url = nodes_[1]->url();
  auto plain = HttpFetch("POST", url + "/v1/sagas", Saga("untraced", false).dump());
  ASSERT_TRUE(plain.ok());
  ASSERT_EQ(plain->status, 201) << plain->body;
  // Upper-case hex is invalid: ignored (not a 400), a new trace is started.
  const std::string invalid = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
  auto bad = HttpFetch("POST", url + "/v1/sagas", Saga("badtrace", false).dump(),
                       {{"traceparent", invalid}, {"tracestate", "rojo=1"}});
  ASSERT_TRUE(bad.ok());
  ASSERT_EQ(bad->status, 201) << bad->body;
  // A 2PC begin continues the caller's trace in its branches' calls.
  const std::string tp = std::string("00-") + kTraceId + "-" + kCallerParent + "-01";
  auto begin = HttpFetch("POST", url + "/v1/2pc", R"({"gtid":"tpc"})", {{"traceparent", tp}});
  ASSERT_TRUE(begin.ok());
  ASSERT_EQ(begin->status, 201) << begin->body;
  for (std::string b : {"a", "b"}) {
    json branch = {{"name", b},
                   {"prepare", participant_.Url(b, "prepare")},
                   {"commit", participant_.Url(b, "commit")},
                   {"abort", participant_.Url(b, "abort")}};
    auto e = HttpFetch("POST", url + "/v1/2pc/tpc/branches", branch.dump());
    ASSERT_TRUE(e.ok());
    ASSERT_EQ(e->status, 201) << e->body;
  }
  auto commit = HttpFetch("POST", url + "/v1/2pc/tpc/commit", "{}");
  ASSERT_TRUE(commit.ok());
  ASSERT_EQ(commit->status, 200) << commit->body;
  WaitTerminal({"untraced", "badtrace", "tpc"}, std::chrono::seconds(30));
  ASSERT_TRUE(participant_.WaitFor(
      [](const auto& calls) {
        int n = 0;
        for (const auto& c : calls) n += c.gtid == "tpc" && c.op == "commit";
        return n == 2;
      },
      std::chrono::seconds(10)));

  ExpectOneTraceNewSpans(CallsOf("tpc"), kTraceId, "01");
  for (const std::string gtid : {"untraced", "badtrace"}) {
    const auto calls = CallsOf(gtid);
    ASSERT_EQ(calls.size(), 3u) << gtid;
    auto first = ParseTraceParent(calls[0].traceparent);
    ASSERT_TRUE(first.ok()) << calls[0].traceparent;
    EXPECT_NE(first->trace_id, kTraceId);
    ExpectOneTraceNewSpans(calls, first->trace_id, "01");
    for (const auto& c : calls) EXPECT_EQ(c.headers.count("tracestate"), 0u) << gtid;
  }
  EXPECT_NE(ParseTraceParent(CallsOf("untraced")[0].traceparent)->trace_id,
            ParseTraceParent(CallsOf("badtrace")[0].traceparent)->trace_id);
}

// The participant SDK's Client passes a trace on (SagaSpec::trace and
// Begin's trace) over REST (headers) and over Thrift (request fields), as a
// service does from inside a handler with CallContext::traceparent.
TEST_F(TraceContinuationTest, SdkClientContinuesTheTraceOverRestAndThrift) {
  TreatydOptions o;
  o.store = store_;
  o.heartbeat_ms = 200;
  o.lease_ms = 1500;
  o.retry_max_backoff_ms = 200;
  const int thrift_port = FreePort();
  o.thrift = "127.0.0.1:" + std::to_string(thrift_port);
  nodes_.push_back(std::make_unique<TreatydProcess>(dir_, "thrift-node", o));
  ASSERT_TRUE(nodes_.back()->Start().ok());
  const std::string traceparent = std::string("00-") + kTraceId + "-" + kCallerParent + "-01";

  struct Case {
    std::string coordinator, saga_gtid, tpc_gtid;
  };
  for (const Case& c : {Case{nodes_[0]->url(), "sdk-rest", "sdk-rest-2pc"},
                        Case{"thrift://127.0.0.1:" + std::to_string(thrift_port), "sdk-thrift",
                             "sdk-thrift-2pc"}}) {
    sdk::Client client({.coordinators = {c.coordinator}});
    sdk::SagaSpec saga;
    saga.gtid = c.saga_gtid;
    for (std::string name : {"flight", "hotel"}) {
      saga.steps.push_back({.name = name,
                            .action = participant_.Url(name, "action"),
                            .compensate = participant_.Url(name, "compensate")});
    }
    saga.trace = {.traceparent = traceparent, .tracestate = "rojo=00f067aa0ba902b7"};
    auto submitted = client.SubmitSaga(saga, /*wait=*/true, 20000);
    ASSERT_TRUE(submitted.ok()) << c.coordinator << ": " << submitted.status().ToString();
    EXPECT_EQ(submitted->state, "COMMITTED") << c.coordinator;

    ASSERT_TRUE(client.Begin(c.tpc_gtid, 0, {.traceparent = traceparent}).ok()) << c.coordinator;
    ASSERT_TRUE(client
                    .Enlist(c.tpc_gtid, {.name = "a",
                                         .prepare = participant_.Url("a", "prepare"),
                                         .commit = participant_.Url("a", "commit"),
                                         .abort = participant_.Url("a", "abort")})
                    .ok());
    auto committed = client.Commit(c.tpc_gtid);
    ASSERT_TRUE(committed.ok()) << committed.status().ToString();
    ASSERT_TRUE(participant_.WaitFor(
        [&](const auto& calls) {
          for (const auto& call : calls) {
            if (call.gtid == c.tpc_gtid && call.op == "commit") return true;
          }
          return false;
        },
        std::chrono::seconds(10)));

    ASSERT_EQ(CallsOf(c.saga_gtid).size(), 2u) << c.coordinator;
    ExpectOneTraceNewSpans(CallsOf(c.saga_gtid), kTraceId, "01");
    for (const auto& call : CallsOf(c.saga_gtid)) {
      auto state = call.headers.find("tracestate");
      ASSERT_NE(state, call.headers.end()) << c.coordinator;
      EXPECT_EQ(state->second, "rojo=00f067aa0ba902b7");
    }
    ExpectOneTraceNewSpans(CallsOf(c.tpc_gtid), kTraceId, "01");
  }

  // A trace that cannot travel as a header is refused before anything is sent.
  sdk::Client client({.coordinators = {nodes_[0]->url()}});
  sdk::SagaSpec bad;
  bad.steps.push_back({.name = "flight",
                       .action = participant_.Url("flight", "action"),
                       .compensate = participant_.Url("flight", "compensate")});
  bad.trace.traceparent = "00-a\r\nX-Injected: 1";
  auto refused = client.SubmitSaga(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("trace.traceparent"), std::string::npos)
      << refused.status().ToString();
}

}  // namespace
}  // namespace treaty::testing
