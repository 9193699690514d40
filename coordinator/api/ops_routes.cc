#include "api/ops_routes.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "api/access_gate.h"
#include "api/dashboard_assets.h"
#include "api/http_answers.h"
#include "api/openapi.h"
#include "common/json_input.h"
#include "engine/states.h"
#include "http/http_server.h"

namespace treaty {
namespace {

using nlohmann::json;

bool ServeAsset(std::string_view name, HttpResponder& respond) {
  const DashboardAsset* a = FindDashboardAsset(name);
  if (!a) return false;
  HttpResponse r;
  r.content_type = std::string(a->content_type);
  r.body = std::string(a->body);
  r.headers.push_back({"Cache-Control", "no-cache"});  // the gate adds the security headers
  respond(std::move(r));
  return true;
}

}  // namespace

OpsRoutes::OpsRoutes(CoordinatorMetrics* metrics, TxnService* service, LogWriter* writer,
                     TxnQueries* queries, bool metrics_open)
    : metrics_(metrics),
      service_(service),
      writer_(writer),
      queries_(queries),
      metrics_open_(metrics_open) {}

void OpsRoutes::AddRoutes(Router* router) {
  const auto asset = [](const std::string& name, const RouteCall& call, HttpResponder& respond) {
    if (!ServeAsset(name, respond)) respond(ErrorResponse(NoRoute(call.req)));
  };
  for (const char* index : {"/", "/index.html"}) {
    router->Add({"GET", "HEAD"}, index, RouteAccess::Open(),
                [asset](const RouteCall& call, HttpResponder& respond) {
                  asset("index.html", call, respond);
                });
  }
  router->Add({"GET", "HEAD"}, "/ui/{file...}", RouteAccess::Open(),
              [asset](const RouteCall& call, HttpResponder& respond) {
                asset(call.params["file"], call, respond);
              });
  router->Add({"GET", "HEAD"}, "/metrics",
              metrics_open_ ? RouteAccess::Open() : RouteAccess::Needs(Role::kRead),
              [this](const RouteCall&, HttpResponder& respond) { Metrics(std::move(respond)); });
  router->Add({"GET", "HEAD"}, "/v1/stats", RouteAccess::Needs(Role::kRead),
              [this](const RouteCall&, HttpResponder& respond) { Stats(std::move(respond)); });
  // The OpenAPI document is public (docs/openapi.json) but needs read like the
  // other reads: strangers learn nothing of what this listener serves.
  router->Add({"GET", "HEAD"}, "/v1/openapi.json", RouteAccess::Needs(Role::kRead),
              [](const RouteCall&, HttpResponder& respond) {
                HttpResponse r;  // application/json
                r.body = std::string(OpenApiDocument());
                respond(std::move(r));
              });
  // Reading the level is audited only when refused; every change is.
  const RouteHandler log_level = [this](const RouteCall& call, HttpResponder& respond) {
    LogLevel(call.req, call.who, respond);
  };
  router->Add({"GET", "HEAD"}, "/v1/admin/log-level",
              RouteAccess::Audited(Role::kAdmin, "log-level", /*when_admitted=*/false), log_level);
  router->Add({"PUT"}, "/v1/admin/log-level",
              RouteAccess::Audited(Role::kAdmin, "log-level", /*when_admitted=*/true), log_level);
}

void OpsRoutes::Snapshot(bool with_coordinators,
                         std::function<void(CoordinatorMetrics::Snapshot)> done) {
  CoordinatorMetrics::Snapshot s;
  s.active_drivers = service_->active_drivers();
  s.log_queue_depth = static_cast<int64_t>(writer_->queue_depth());
  s.log_stalled = writer_->stalled();
  queries_->CountByState([this, s = std::move(s), with_coordinators,
                          done = std::move(done)](Result<std::vector<StateCount>> counts) mutable {
    if (!counts.ok()) {
      metrics_->OnStoreError("read", counts.status());
      done(std::move(s));
      return;
    }
    s.counts = std::move(*counts);
    if (!with_coordinators) {
      s.store_ok = true;
      done(std::move(s));
      return;
    }
    queries_->Coordinators([this, s = std::move(s), done = std::move(done)](
                               Result<std::vector<CoordinatorRow>> members) mutable {
      if (!members.ok()) {
        metrics_->OnStoreError("read", members.status());
      } else {
        s.coordinators = std::move(*members);
        s.store_ok = true;
      }
      done(std::move(s));
    });
  });
}

void OpsRoutes::Metrics(HttpResponder respond) {
  Snapshot(true, [this, respond = std::move(respond)](CoordinatorMetrics::Snapshot s) {
    AnswerGuarded(respond, "GET /metrics", [&] {
      metrics_->Refresh(std::move(s));
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = metrics_->Render();
      respond(std::move(r));
    });
  });
}

void OpsRoutes::Stats(HttpResponder respond) {
  Snapshot(false, [this, respond = std::move(respond)](CoordinatorMetrics::Snapshot s) {
    AnswerGuarded(respond, "GET /v1/stats", [&] { AnswerStats(s, respond); });
  });
}

void OpsRoutes::AnswerStats(const CoordinatorMetrics::Snapshot& s, const HttpResponder& respond) {
  if (!s.store_ok) {
    respond(ErrorResponse(Status::Unavailable("the log store did not answer")));
    return;
  }
  json counts = json::array();
  json by_state = json::object(), by_kind = json::object();
  int64_t in_flight = 0, attention = 0;
  for (const StateCount& c : s.counts) {
    counts.push_back({{"kind", c.kind},
                      {"state", c.state},
                      {"needs_attention", c.needs_attention},
                      {"count", c.count}});
    by_state[c.state] = by_state.value(c.state, int64_t{0}) + c.count;
    by_kind[c.kind] = by_kind.value(c.kind, int64_t{0}) + c.count;
    if (!states::IsTerminal(c.state)) {
      in_flight += c.count;
      if (c.needs_attention) attention += c.count;
    }
  }
  json minutes = json::array();
  for (const ThroughputMinute& m : metrics_->RecentThroughput()) {
    minutes.push_back({{"start_ms", m.start_ms},
                       {"started", m.started},
                       {"committed", m.committed},
                       {"aborted", m.aborted},
                       {"calls", m.calls},
                       {"failed_calls", m.failed_calls}});
  }
  json out = {{"counts", counts},
              {"by_state", by_state},
              {"by_kind", by_kind},
              {"in_flight", in_flight},
              {"needs_attention", attention},
              {"active_drivers", s.active_drivers},
              {"throughput_per_minute", minutes}};
  respond(JsonResponse(200, DumpJson(out)));
}

void OpsRoutes::LogLevel(const HttpRequest& req, const Identity& who, HttpResponder& respond) {
  if (req.method == "PUT") {
    Result<json> body = ParseJson(req.body, "the request body");
    if (!body.ok()) {
      respond(ErrorResponse(body.status()));
      return;
    }
    const std::string level =
        body->is_object() && body->contains("level") && (*body)["level"].is_string()
            ? (*body)["level"].get<std::string>()
            : "";
    // "warning" is how GET names "warn" (spdlog's name), so a level read can be set back.
    static const char* kLevels[] = {"trace",   "debug", "info",     "warn",
                                    "warning", "error", "critical", "off"};
    bool known = false;
    for (const char* l : kLevels) known = known || level == l;
    if (!known) {
      respond(ErrorResponse(Status::InvalidArgument(
          "body must be {\"level\": trace|debug|info|warn|error|critical|off}")));
      return;
    }
    spdlog::set_level(spdlog::level::from_str(level));
    spdlog::warn("log level set to {} by {}", level, ActorOf(who, req));
  }
  const auto name = spdlog::level::to_string_view(spdlog::get_level());
  respond(JsonResponse(200, DumpJson({{"level", std::string(name.data(), name.size())}})));
}

}  // namespace treaty
