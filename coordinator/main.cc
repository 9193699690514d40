// treatyd: the Treaty coordinator. `treatyd [options]` serves; `treatyd
// migrate --store URI` applies pending migrations and exits.

#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "api/server.h"
#include "common/endpoint.h"
#include "common/json_log_formatter.h"
#include "common/text_log_formatter.h"
#include "store/log_store.h"

namespace {

void SetUpLogging(const std::string& level, const std::string& format) {
  auto logger = spdlog::stderr_color_mt("treatyd");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
  if (format == "json") {
    // One valid JSON object per line (the message escaped); see json_log_formatter.h.
    spdlog::set_formatter(std::make_unique<treaty::JsonLogFormatter>());
  } else {
    // One message per line: control characters escaped (see text_log_formatter.h).
    spdlog::set_formatter(treaty::MakeTextLogFormatter());
  }
}

// Raises the soft descriptor limit to the hard one, then lowers the
// connection caps if both front ends at their caps would leave fewer than
// kSpareDescriptors for the store, participant calls and log files.
void FitConnectionCaps(treaty::ServerOptions& opts) {
  constexpr uint64_t kSpareDescriptors = 256;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  if (lim.rlim_cur == RLIM_INFINITY) return;
  const uint64_t limit = lim.rlim_cur;
  const uint64_t wanted = opts.http_max_connections + uint64_t(opts.thrift_max_connections);
  if (wanted + kSpareDescriptors <= limit) return;
  const uint64_t room = limit > 2 * kSpareDescriptors ? limit - kSpareDescriptors : limit / 2;
  opts.http_max_connections = std::max<uint64_t>(1, room * opts.http_max_connections / wanted);
  opts.thrift_max_connections = static_cast<int>(
      std::max<uint64_t>(1, room * uint64_t(opts.thrift_max_connections) / wanted));
  spdlog::warn(
      "descriptor limit {} leaves room for fewer connections than asked: serving at most {} HTTP "
      "and {} Thrift connections (raise ulimit -n to keep the configured caps)",
      limit, opts.http_max_connections, opts.thrift_max_connections);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"treatyd: Treaty distributed transaction coordinator"};
  app.set_config("--config", "", "Read options from a TOML/INI file");
  treaty::ServerOptions opts;
  std::string http = "127.0.0.1:7480";
  std::string thrift = "127.0.0.1:7481";
  std::string log_level = "info";
  std::string log_format = "text";
  app.add_option("--store", opts.store_uri, "sqlite:PATH or a PostgreSQL URI/conninfo")
      ->envname("TREATY_STORE")
      ->capture_default_str();
  app.add_option("--http", http, "HTTP listen address HOST:PORT (port 0 picks one)")
      ->envname("TREATY_HTTP")
      ->capture_default_str();
  app.add_option("--thrift", thrift, "Thrift listen address HOST:PORT (port 0 picks one)")
      ->envname("TREATY_THRIFT")
      ->capture_default_str();
  app.add_option("--node-name", opts.node_name, "Name shown in the cluster view")
      ->envname("TREATY_NODE_NAME");
  app.add_option("--heartbeat-ms", opts.heartbeat_ms, "Membership heartbeat interval")
      ->envname("TREATY_HEARTBEAT_MS")
      ->check(CLI::Range(50, 600000))
      ->capture_default_str();
  app.add_option("--lease-ms", opts.lease_ms, "A peer silent this long is declared dead")
      ->envname("TREATY_LEASE_MS")
      ->check(CLI::Range(200, 3600000))
      ->capture_default_str();
  int64_t retention_hours = 168;
  app.add_option("--retention-hours", retention_hours,
                 "Finished transactions are deleted after this long (0 keeps them)")
      ->envname("TREATY_RETENTION_HOURS")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  app.add_option("--purge-batch", opts.purge_batch,
                 "Most finished transactions deleted per store transaction by retention")
      ->envname("TREATY_PURGE_BATCH")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--purge-interval-ms", opts.purge_interval_ms,
                 "Pause between retention runs once the backlog is purged")
      ->envname("TREATY_PURGE_INTERVAL_MS")
      ->check(CLI::Range(10, 86400000))
      ->capture_default_str();
  app.add_option("--claim-batch", opts.claim_batch,
                 "Most orphaned transactions adopted per heartbeat (survivors share the rest)")
      ->envname("TREATY_CLAIM_BATCH")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn, error (change at run time: PUT /v1/admin/log-level)")
      ->envname("TREATY_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")
      ->envname("TREATY_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--max-body-bytes", opts.max_body_bytes, "Largest accepted request body")
      ->envname("TREATY_MAX_BODY_BYTES")
      ->check(CLI::Range(1024, 64 << 20))
      ->capture_default_str();
  app.add_option("--io-threads", opts.io_threads, "Threads running network I/O and the engine")
      ->envname("TREATY_IO_THREADS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--attention-after", opts.service.engine.attention_after_attempts,
                 "Failed attempts of one branch (action, compensate, commit, abort) before "
                 "needs_attention")
      ->envname("TREATY_ATTENTION_AFTER")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--retry-max-backoff-ms", opts.service.engine.retry_max_backoff_ms,
                 "Cap of the backoff between compensation / phase-2 retries")
      ->envname("TREATY_RETRY_MAX_BACKOFF_MS")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  app.add_option("--stuck-after-ms", opts.service.engine.stuck_after_ms,
                 "A transaction its deadline sent into abort/compensation and still unfinished "
                 "this long after the deadline is flagged needs_attention (one decided before "
                 "its deadline: at the deadline). 0: no past-deadline flags")
      ->envname("TREATY_STUCK_AFTER_MS")
      ->check(CLI::Range(0, 86400000))
      ->capture_default_str();
  app.add_option("--call-timeout-ms", opts.service.engine.default_call_timeout_ms,
                 "Participant call time-out when a step sets none")
      ->envname("TREATY_CALL_TIMEOUT_MS")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  app.add_option("--drain-timeout-ms", opts.drain_timeout_ms,
                 "On SIGTERM, how long in-flight transactions may finish before hand-back")
      ->envname("TREATY_DRAIN_TIMEOUT_MS")
      ->check(CLI::Range(0, 3600000))
      ->capture_default_str();
  app.add_option("--store-timeout-ms", opts.store_timeout_ms,
                 "Deadline of every PostgreSQL call; past it the connection is cut and the call "
                 "fails (outcome unknown, retried). 0: none (not recommended: a stalled log then "
                 "holds requests and a drain without bound)")
      ->envname("TREATY_STORE_TIMEOUT_MS")
      ->check([](const std::string& v) -> std::string {
        const long long ms = std::atoll(v.c_str());
        if (v != "0" && (ms < 100 || ms > 3600000)) return "must be 0 (none) or 100..3600000";
        return "";
      })
      ->capture_default_str();
  app.add_option(
         "--log-stall-ms", opts.writer.stall_after_ms,
         "A log batch waiting longer than this for a commit is a stall: new work is refused "
         "(503) and /readyz fails until writes complete")
      ->envname("TREATY_LOG_STALL_MS")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  app.add_option("--http-max-connections", opts.http_max_connections,
                 "HTTP connections served at once; more are answered 503 and closed")
      ->envname("TREATY_HTTP_MAX_CONNECTIONS")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--http-idle-timeout-ms", opts.http_idle_timeout_ms,
                 "An HTTP connection that sends nothing this long is closed")
      ->envname("TREATY_HTTP_IDLE_TIMEOUT_MS")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  app.add_option("--http-request-timeout-ms", opts.http_request_timeout_ms,
                 "A request must be complete this long after its first byte, else it is cut")
      ->envname("TREATY_HTTP_REQUEST_TIMEOUT_MS")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  app.add_option("--thrift-max-connections", opts.thrift_max_connections,
                 "Thrift connections open at once (a thread each); more are closed at once")
      ->envname("TREATY_THRIFT_MAX_CONNECTIONS")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--thrift-idle-timeout-ms", opts.thrift_idle_timeout_ms,
                 "A Thrift connection silent this long (between or inside requests) is closed")
      ->envname("TREATY_THRIFT_IDLE_TIMEOUT_MS")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  app.add_option("--thrift-request-timeout-ms", opts.thrift_request_timeout_ms,
                 "A Thrift frame must be complete this long after its first byte, else it is cut")
      ->envname("TREATY_THRIFT_REQUEST_TIMEOUT_MS")
      ->check(CLI::Range(100, 3600000))
      ->capture_default_str();
  auto* migrate = app.add_subcommand("migrate", "Apply pending migrations to --store and exit");
  migrate->fallthrough();  // `treatyd migrate --store URI`, as documented
  CLI11_PARSE(app, argc, argv);

  opts.retention_ms = retention_hours * 3600 * 1000;
  SetUpLogging(log_level, log_format);
  auto http_addr = treaty::ParseHostPort(http, "--http");
  if (!http_addr.ok()) {
    std::cerr << "treatyd: " << http_addr.status().message() << "\n";
    return 2;
  }
  auto thrift_addr = treaty::ParseHostPort(thrift, "--thrift");
  if (!thrift_addr.ok()) {
    std::cerr << "treatyd: " << thrift_addr.status().message() << "\n";
    return 2;
  }
  opts.http_host = http_addr->host;
  opts.http_port = http_addr->port;
  opts.thrift_host = thrift_addr->host;
  opts.thrift_port = thrift_addr->port;

  if (migrate->parsed()) {
    auto store = treaty::OpenLogStore(opts.store_uri);
    if (!store.ok()) {
      std::cerr << "treatyd: cannot open store: " << store.status().ToString() << "\n";
      return 1;
    }
    auto s = (*store)->Migrate();
    if (!s.ok()) {
      std::cerr << "treatyd: migration failed, nothing applied: " << s.ToString() << "\n";
      return 1;
    }
    std::cout << "migrations applied to " << (*store)->Engine() << " store\n";
    return 0;
  }

  // Block the signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  FitConnectionCaps(opts);
  treaty::Server server(opts);
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << "treatyd: cannot start: " << s.ToString() << "\n";
    return 1;
  }
  std::printf("treatyd listening on %s and thrift %s:%u (coordinator %s)\n",
              server.http_url().c_str(), opts.thrift_host.c_str(), server.thrift_port(),
              server.coordinator_id().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  auto s = server.Drain();
  if (!s.ok()) {
    spdlog::error("shutdown: {}", s.ToString());
    return 1;
  }
  return 0;
}
