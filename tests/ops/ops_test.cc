// Operator surface: the metrics registry and its exposition, /metrics moving
// as transactions run, /v1/stats, the embedded dashboard, the run-time log
// level, JSON log lines, and /readyz following the database.

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "api/api_fixture.h"
#include "api/metrics.h"
#include "common/json_log_formatter.h"
#include "http/http_client.h"
#include "ops/prometheus_parser.h"
#include "support/mini_postgres.h"
#include "support/subprocess.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

PromExposition MustParse(const std::string& text) {
  PromExposition e;
  std::string error;
  EXPECT_TRUE(ParsePrometheus(text, &e, &error)) << error << "\n" << text;
  return e;
}

TEST(MetricsRegistryTest, RendersValidExpositionWithEscapedLabels) {
  MetricsRegistry reg;
  auto* c = reg.AddCounter("t_calls_total", "Calls with a \\ and\nnewline.", {"op", "outcome"});
  auto* g = reg.AddGauge("t_depth", "Depth.");
  auto* h = reg.AddHistogram("t_latency_seconds", "Latency.", {"op"}, {0.1, 1});
  c->Inc({"action", "ok"});
  c->Inc({"action", "ok"}, 2);
  c->Inc({"we\"ird\\op\nx", "ok"});
  c->Inc({"too", "many", "labels"});  // ignored
  g->Set({}, 2.5);
  h->Observe({"action"}, 0.05);
  h->Observe({"action"}, 0.5);
  h->Observe({"action"}, 7);
  PromExposition e = MustParse(reg.Render());
  EXPECT_EQ(e.types["t_calls_total"], "counter");
  EXPECT_EQ(e.types["t_latency_seconds"], "histogram");
  EXPECT_EQ(e.Sum("t_calls_total", {{"op", "action"}}), 3);
  EXPECT_EQ(e.Sum("t_calls_total", {{"op", "we\"ird\\op\nx"}}), 1);
  EXPECT_EQ(e.Sum("t_depth"), 2.5);
  EXPECT_EQ(e.Sum("t_latency_seconds_bucket", {{"le", "0.1"}}), 1);
  EXPECT_EQ(e.Sum("t_latency_seconds_bucket", {{"le", "1"}}), 2);
  EXPECT_EQ(e.Sum("t_latency_seconds_bucket", {{"le", "+Inf"}}), 3);
  EXPECT_EQ(e.Sum("t_latency_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(e.Sum("t_latency_seconds_sum"), 7.55);
}

TEST(MetricsRegistryTest, ParserRejectsBrokenExposition) {
  PromExposition e;
  std::string error;
  EXPECT_FALSE(ParsePrometheus("x{a=\"b} 1\n", &e, &error));
  EXPECT_FALSE(ParsePrometheus("1x 1\n", &e, &error));
  EXPECT_FALSE(ParsePrometheus("x 1", &e, &error));  // no final newline
  PromExposition h;
  EXPECT_FALSE(ParsePrometheus(
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", &h,
      &error));
}

TEST(JsonLogFormatterTest, EveryLineIsValidJsonWithGtidAndBranch) {
  spdlog::details::log_msg msg(
      "treatyd", spdlog::level::warn,
      "gtid=g-1 branch=hotel compensate failed: \"500\"\n\tbody \\ \x01 \xff");
  const std::string line = JsonLogLine(msg);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  json j = json::parse(line);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["logger"], "treatyd");
  EXPECT_EQ(j["gtid"], "g-1");
  EXPECT_EQ(j["branch"], "hotel");
  EXPECT_NE(j["msg"].get<std::string>().find("\"500\"\n\tbody \\ \x01"), std::string::npos);
  EXPECT_EQ(j["time"].get<std::string>().back(), 'Z');
}

class OpsApiTest : public ApiTest {
 protected:
  PromExposition Scrape() {
    auto r = HttpFetch("GET", server_->http_url() + "/metrics");
    EXPECT_TRUE(r.ok());
    if (!r.ok()) return {};
    EXPECT_EQ(r->status, 200);
    return MustParse(r->body);
  }
};

TEST_P(OpsApiTest, MetricsMoveAsTransactionsRun) {
  PromExposition before = Scrape();
  EXPECT_EQ(before.Sum("treaty_transactions_started_total"), 0);
  EXPECT_EQ(before.Sum("treaty_cluster_members", {{"state", "alive"}}), 1);
  EXPECT_EQ(before.Sum("treaty_log_store_up"), 1);

  auto ok =
      Post("/v1/sagas", {{"gtid", "m-ok"}, {"wait", true}, {"steps", {Step("a"), Step("b")}}});
  ASSERT_EQ(ok.body["state"], "COMMITTED") << ok.raw;
  participant_->SetRule("b", "action", Rule{{409}});
  auto bad =
      Post("/v1/sagas", {{"gtid", "m-bad"}, {"wait", true}, {"steps", {Step("a"), Step("b")}}});
  ASSERT_EQ(bad.body["state"], "ABORTED") << bad.raw;
  // A stuck one: compensation keeps failing -> needs attention.
  participant_->SetRule("c", "action", Rule{{409}});
  participant_->SetRule("a", "compensate", Rule{{500}});
  auto stuck = Post("/v1/sagas", {{"gtid", "m-stuck"}, {"steps", {Step("a"), Step("c")}}});
  ASSERT_EQ(stuck.status, 201) << stuck.raw;
  PromExposition after;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    after = Scrape();
    if (after.Sum("treaty_transactions_needing_attention", {{"kind", "saga"}}) == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(after.Sum("treaty_transactions_started_total", {{"kind", "saga"}}), 3);
  EXPECT_EQ(
      after.Sum("treaty_transactions_finished_total", {{"kind", "saga"}, {"outcome", "committed"}}),
      1);
  EXPECT_EQ(
      after.Sum("treaty_transactions_finished_total", {{"kind", "saga"}, {"outcome", "aborted"}}),
      1);
  EXPECT_EQ(after.Sum("treaty_transactions_needing_attention", {{"kind", "saga"}}), 1);
  EXPECT_EQ(after.Sum("treaty_transactions_in_flight", {{"kind", "saga"}}), 1);
  EXPECT_EQ(after.Sum("treaty_transactions", {{"state", "COMMITTED"}}), 1);
  EXPECT_GE(after.Sum("treaty_branch_calls_total", {{"op", "action"}, {"outcome", "ok"}}), 4);
  EXPECT_EQ(
      after.Sum("treaty_branch_calls_total", {{"op", "action"}, {"outcome", "business_failure"}}),
      2);
  EXPECT_GE(
      after.Sum("treaty_branch_calls_total", {{"op", "compensate"}, {"outcome", "transient"}}), 3);
  EXPECT_GE(after.Sum("treaty_branch_call_retries_total", {{"op", "compensate"}}), 3);
  EXPECT_GE(after.Sum("treaty_participant_call_duration_seconds_count", {{"op", "action"}}), 6);
  EXPECT_GE(after.Sum("treaty_log_write_duration_seconds_count"), 3);
  EXPECT_GE(after.Sum("treaty_log_writes_total", {{"result", "ok"}}), 6);
  EXPECT_EQ(after.Sum("treaty_active_drivers"), 1);

  // /v1/stats agrees, and the stuck one is listed for the dashboard.
  auto stats = Get("/v1/stats");
  ASSERT_EQ(stats.status, 200) << stats.raw;
  EXPECT_EQ(stats.body["needs_attention"], 1);
  EXPECT_EQ(stats.body["in_flight"], 1);
  EXPECT_EQ(stats.body["by_state"]["COMMITTED"], 1);
  ASSERT_EQ(stats.body["throughput_per_minute"].size(), 15u);
  int64_t started = 0;
  for (const auto& m : stats.body["throughput_per_minute"]) started += m["started"].get<int64_t>();
  EXPECT_EQ(started, 3);
  auto list = Get("/v1/transactions?needs_attention=true");
  ASSERT_EQ(list.body["items"].size(), 1u);
  EXPECT_EQ(list.body["items"][0]["gtid"], "m-stuck");

  // Fix the participant, retry: it finishes and the gauge drops.
  participant_->SetRule("a", "compensate", Rule{{200}});
  auto retry = Post("/v1/transactions/m-stuck/retry", json::object());
  EXPECT_EQ(retry.status, 200) << retry.raw;
  EXPECT_EQ(WaitTerminal("m-stuck")["state"], "ABORTED");
  PromExposition done = Scrape();
  EXPECT_EQ(done.Sum("treaty_transactions_needing_attention"), 0);
  EXPECT_EQ(done.Sum("treaty_transactions_finished_total", {{"outcome", "aborted"}}), 2);
}

TEST_P(OpsApiTest, ServesTheEmbeddedDashboard) {
  for (const std::string path : {"/", "/ui/dashboard.js", "/ui/dashboard.css"}) {
    auto r = HttpFetch("GET", server_->http_url() + path);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_GT(r->body.size(), 500u) << path;
  }
  auto index = HttpFetch("GET", server_->http_url() + "/");
  EXPECT_NE(index->body.find("<title>Treaty dashboard</title>"), std::string::npos);
  EXPECT_EQ(HttpFetch("GET", server_->http_url() + "/ui/nope.js")->status, 404);
}

TEST_P(OpsApiTest, LogLevelChangesAtRunTime) {
  const auto was = spdlog::get_level();
  auto put = HttpFetch("PUT", server_->http_url() + "/v1/admin/log-level", R"({"level":"debug"})");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->status, 200) << put->body;
  EXPECT_EQ(spdlog::get_level(), spdlog::level::debug);
  EXPECT_EQ(json::parse(Get("/v1/admin/log-level").raw)["level"], "debug");
  auto bad = HttpFetch("PUT", server_->http_url() + "/v1/admin/log-level", R"({"level":"loud"})");
  EXPECT_EQ(bad->status, 400);
  spdlog::set_level(was);
}

INSTANTIATE_TEST_SUITE_P(Engines, OpsApiTest, ::testing::Values("sqlite", "postgres"),
                         EngineParamName);

// Readiness follows the database: a PostgreSQL of its own, stopped and restarted.
TEST(ReadinessTest, ReadyzFlipsWhenPostgresStopsAndRecovers) {
  MiniPostgres pg;
  ASSERT_TRUE(pg.Start().ok());
  ASSERT_TRUE(pg.CreateDatabase("treaty_ready").ok());
  ServerOptions o;
  o.store_uri = pg.Uri("treaty_ready");
  o.http_port = 0;
  o.heartbeat_ms = 200;
  o.lease_ms = 60000;  // do not declare ourselves dead while the database is away
  Server server(o);
  ASSERT_TRUE(server.Start().ok());
  auto readyz = [&] {
    auto r = HttpFetch("GET", server.http_url() + "/readyz", "", {}, 15000);
    return r.ok() ? r->status : -1;
  };
  auto wait_for = [&](int want, int timeout_s) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    int got = readyz();
    while (got != want && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      got = readyz();
    }
    return got;
  };
  EXPECT_EQ(readyz(), 200);
  EXPECT_EQ(HttpFetch("GET", server.http_url() + "/healthz")->status, 200);
  ASSERT_TRUE(pg.Stop().ok());
  EXPECT_EQ(wait_for(503, 20), 503);
  EXPECT_EQ(HttpFetch("GET", server.http_url() + "/healthz")->status, 200);  // process still up
  auto metrics = HttpFetch("GET", server.http_url() + "/metrics", "", {}, 15000);
  ASSERT_TRUE(metrics.ok());
  PromExposition down = MustParse(metrics->body);
  EXPECT_EQ(down.Sum("treaty_log_store_up"), 0);
  EXPECT_GE(down.Sum("treaty_log_store_errors_total", {{"op", "read"}}), 1);
  ASSERT_TRUE(pg.Restart().ok());
  EXPECT_EQ(wait_for(200, 30), 200);
  server.Stop();
}

}  // namespace
}  // namespace treaty::testing
