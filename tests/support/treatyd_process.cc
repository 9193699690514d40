#include "support/treatyd_process.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "http/http_client.h"

namespace treaty::testing {

TreatydProcess::TreatydProcess(std::string dir, std::string name, TreatydOptions options)
    : dir_(std::move(dir)), name_(std::move(name)), options_(std::move(options)) {}

void TreatydProcess::Pause() {
  proc_->Signal(SIGSTOP);
  paused_ = true;
}

void TreatydProcess::Resume() {
  proc_->Signal(SIGCONT);
  paused_ = false;
}

std::string TreatydProcess::http_addr() const {
  // A wildcard listener is shown with the host name (ServerOptions::advertise_http_host).
  std::string host = options_.listen_host;
  char name[256] = {};
  if ((host == "0.0.0.0" || host == "::") && gethostname(name, sizeof(name) - 1) == 0 && name[0]) {
    host = name;
  }
  return host + ":" + std::to_string(port_);
}

Status TreatydProcess::Start() {
  // A port picked here may be taken by another process before treatyd binds
  // it (tests run in parallel): then treatyd exits at once and is started
  // again on a fresh port. A port given by the caller (a restart) is kept.
  const bool picked_here = port_ == 0;
  Status last = Status::Unavailable(name_ + " was not started");
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (picked_here) port_ = FreePort();
    last = StartOnce();
    if (last.ok() || !picked_here || proc_->running()) return last;
  }
  return last;
}

Status TreatydProcess::StartOnce() {
  url_ = std::string(options_.https ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  std::vector<std::string> argv = {BinaryPath("treatyd"),
                                   "--store",
                                   options_.store,
                                   "--http",
                                   options_.listen_host + ":" + std::to_string(port_),
                                   "--thrift",
                                   options_.thrift,
                                   "--node-name",
                                   name_,
                                   "--heartbeat-ms",
                                   std::to_string(options_.heartbeat_ms),
                                   "--lease-ms",
                                   std::to_string(options_.lease_ms),
                                   "--retry-max-backoff-ms",
                                   std::to_string(options_.retry_max_backoff_ms),
                                   "--drain-timeout-ms",
                                   std::to_string(options_.drain_timeout_ms),
                                   "--log-level",
                                   "info"};
  if (options_.claim_batch > 0) {
    argv.push_back("--claim-batch");
    argv.push_back(std::to_string(options_.claim_batch));
  }
  for (const auto& e : options_.extra) argv.push_back(e);
  proc_ = std::make_unique<Subprocess>(argv, dir_ + "/" + name_ + ".log");
  if (Status s = proc_->Start(); !s.ok()) return s;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = HttpFetch("GET", url_ + "/healthz", "", {}, 500, &options_.tls);
    // Ours only if it still runs (another process may hold the port).
    if (r.ok() && r->status == 200 && proc_->running()) return Status::Ok();
    if (!proc_->running() || proc_->Wait(0) >= 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Status::Unavailable(name_ + " did not come up:\n" + proc_->Log());
}

std::string TreatydProcess::CoordinatorId() const {
  std::map<std::string, std::string> headers;
  if (!options_.token.empty()) headers["Authorization"] = "Bearer " + options_.token;
  auto r = HttpFetch("GET", url_ + "/v1/cluster", "", headers, 2000, &options_.tls);
  if (!r.ok() || r->status != 200) return "";
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  if (doc.is_discarded()) return "";
  for (const auto& c : doc["coordinators"]) {
    if (c.value("http", "") == http_addr() && c.value("state", "") != "dead") {
      return c.value("id", "");
    }
  }
  return "";
}

}  // namespace treaty::testing
