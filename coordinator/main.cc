// treatyd: the Treaty coordinator. `treatyd [options]` serves; `treatyd
// migrate --store URI` applies pending migrations and exits; `treatyd backup
// --store sqlite:PATH --to FILE` copies a SQLite log and exits. Signals:
// SIGTERM/SIGINT drain and stop; SIGHUP re-reads the TLS certificates and
// the tokens file and reopens the audit log (docs/security.md), keeping the
// old ones when a file fails to load. Every option has a TREATY_* variable
// and may come from --config FILE (an unknown key there is an error);
// `--check-config` validates and exits. Under systemd (NOTIFY_SOCKET set) it
// reports READY=1 once listening, RELOADING=1/READY=1 around SIGHUP and
// STOPPING=1 when the drain begins (deploy/systemd/treatyd.service).

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string_view>
#include <utility>

#include <systemd/sd-daemon.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "api/control_socket.h"
#include "api/server.h"
#include "common/endpoint.h"
#include "common/json_log_formatter.h"
#include "common/text.h"
#include "common/text_log_formatter.h"
#include "common/version.h"
#include "security/config_file.h"
#include "store/log_store.h"
#include "store/sqlite_backup.h"

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
// kSpareDescriptors for the store, participant calls, log files and the
// connections over the HTTP cap being answered 503 (at most 128 at once,
// http_server.cc).
void FitConnectionCaps(treaty::ServerOptions& opts) {
  constexpr uint64_t kSpareDescriptors = 256 + 128;
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

// The security options (docs/security.md).
void AddSecurityOptions(CLI::App& app, treaty::ServerOptions& opts) {
  app.add_option("--tls-cert", opts.tls.cert_file,
                 "PEM certificate chain: HTTPS on --http and TLS on --thrift (default: plain)")
      ->envname("TREATY_TLS_CERT");
  app.add_option("--tls-key", opts.tls.key_file, "PEM private key of --tls-cert")
      ->envname("TREATY_TLS_KEY");
  app.add_option("--tls-client-ca", opts.tls.client_ca_file,
                 "PEM CA bundle: clients must present a certificate it signed (mTLS)")
      ->envname("TREATY_TLS_CLIENT_CA");
  app.add_option("--auth-tokens", opts.auth_tokens_file,
                 "Tokens file (lines NAME ROLES SHA256HEX); default: no authentication, every "
                 "caller may do everything")
      ->envname("TREATY_AUTH_TOKENS");
  app.add_flag("--metrics-open", opts.metrics_open, "Serve /metrics without the read role")
      ->envname("TREATY_METRICS_OPEN");
  app.add_flag("--insecure", opts.insecure,
               "Allow a non-loopback listener without --auth-tokens (anyone reaching it may do "
               "everything)")
      ->envname("TREATY_INSECURE");
  app.add_option("--allowed-hosts", opts.allowed_hosts,
                 "Host headers accepted, comma-separated (name or IP, optional :port, * any); "
                 "default: localhost names on a loopback listener, any otherwise")
      ->envname("TREATY_ALLOWED_HOSTS")
      ->delimiter(',');
  app.add_option("--participant-allow", opts.participant_allow,
                 "Participant addresses allowed, comma-separated (host, *.suffix, IP or CIDR, "
                 "optional :port); default: any but link-local, metadata and own listeners")
      ->envname("TREATY_PARTICIPANT_ALLOW")
      ->delimiter(',');
  app.add_option("--participant-ca", opts.participant_tls.ca_file,
                 "PEM CA bundle for https:// and thrifts:// participants (default: system store)")
      ->envname("TREATY_PARTICIPANT_CA");
  app.add_option("--participant-cert", opts.participant_tls.cert_file,
                 "PEM client certificate presented to TLS participants (default: none)")
      ->envname("TREATY_PARTICIPANT_CERT");
  app.add_option("--participant-key", opts.participant_tls.key_file,
                 "PEM private key of --participant-cert")
      ->envname("TREATY_PARTICIPANT_KEY");
  app.add_option("--participant-hmac-key", opts.participant_hmac_key_file,
                 "File with a shared key (32+ bytes): participant calls carry Treaty-Signature "
                 "(default: unsigned)")
      ->envname("TREATY_PARTICIPANT_HMAC_KEY");
  app.add_option("--audit-log", opts.audit_log_file,
                 "Append operator and admin actions as JSON lines to this file (reopened on "
                 "SIGHUP; default: main log only)")
      ->envname("TREATY_AUDIT_LOG");
}

// InvalidArgument naming the option when a file option names a file that
// cannot be read, or one of a pair is missing. What is inside the files is
// checked by Server::Start.
treaty::Status CheckSecurityFiles(const treaty::ServerOptions& opts) {
  const std::pair<const char*, const std::string*> files[] = {
      {"--tls-cert", &opts.tls.cert_file},
      {"--tls-key", &opts.tls.key_file},
      {"--tls-client-ca", &opts.tls.client_ca_file},
      {"--auth-tokens", &opts.auth_tokens_file},
      {"--participant-ca", &opts.participant_tls.ca_file},
      {"--participant-cert", &opts.participant_tls.cert_file},
      {"--participant-key", &opts.participant_tls.key_file},
      {"--participant-hmac-key", &opts.participant_hmac_key_file},
  };
  for (const auto& [option, path] : files) {
    if (path->empty()) continue;
    if (access(path->c_str(), R_OK) != 0) {
      return treaty::Status::InvalidArgument(std::string(option) + ": cannot read '" + *path +
                                             "': " + std::strerror(errno));
    }
  }
  const std::pair<const char*, const char*> pairs[] = {{"--tls-cert", "--tls-key"},
                                                       {"--participant-cert", "--participant-key"}};
  const bool given[][2] = {
      {!opts.tls.cert_file.empty(), !opts.tls.key_file.empty()},
      {!opts.participant_tls.cert_file.empty(), !opts.participant_tls.key_file.empty()}};
  for (size_t i = 0; i < 2; ++i) {
    if (given[i][0] != given[i][1]) {
      return treaty::Status::InvalidArgument(
          std::string(given[i][0] ? pairs[i].second : pairs[i].first) +
          " is missing: " + pairs[i].first + " and " + pairs[i].second + " go together");
    }
  }
  if (!opts.tls.client_ca_file.empty() && opts.tls.cert_file.empty()) {
    return treaty::Status::InvalidArgument("--tls-client-ca needs --tls-cert and --tls-key");
  }
  return treaty::Status::Ok();
}

// --advertise-http: HOST:PORT (port 0: the port bound), not a wildcard host.
treaty::Status ParseAdvertised(const std::string& text, treaty::ServerOptions& opts) {
  if (text.empty()) return treaty::Status::Ok();
  auto parsed = treaty::ParseHostPort(text, "--advertise-http");
  if (!parsed.ok()) return parsed.status();
  if (parsed->host.empty() || parsed->host == "0.0.0.0" || parsed->host == "::") {
    return treaty::Status::InvalidArgument(
        "--advertise-http: HOST must be a name or address peers can reach, not empty or a "
        "wildcard (0.0.0.0, ::)");
  }
  opts.advertise_http_host = parsed->host;
  opts.advertise_http_port = parsed->port;
  return treaty::Status::Ok();
}

// --lease-ms against --heartbeat-ms (docs/operations.md "Cluster sizing and
// lease settings"): under 3 heartbeats a coordinator's lease can run out
// between two of its own heartbeats (a slow round, clock steps), so peers
// declare each other dead in turn and move their work back and forth.
treaty::Status CheckLease(const treaty::ServerOptions& opts) {
  if (opts.lease_ms >= 3 * opts.heartbeat_ms) return treaty::Status::Ok();
  return treaty::Status::InvalidArgument(
      "--lease-ms (" + std::to_string(opts.lease_ms) +
      ") must be at least 3 times --heartbeat-ms (" + std::to_string(opts.heartbeat_ms) +
      "): a shorter lease runs out between heartbeats and coordinators declare each other dead");
}

// Tells systemd (when it started us with NOTIFY_SOCKET) how we are; a no-op
// otherwise. Failures to send are ignored: the service works without it.
void NotifySystemd(const std::string& state) { (void)sd_notify(0, state.c_str()); }

// The text of treatyd's --config file, read once by the option's own check
// (ReadConfigFileOnce) and parsed by ConfigFileFormat. Only main's thread
// uses it, during app.parse().
struct ConfigFileText {
  std::string path;  // as given
  std::string text;
  bool read = false;
};

// What CLI11 opens in place of the --config file. CLI11 (2.1) opens the path
// the option holds itself (Config::from_file, not virtual) before calling
// from_config, and offers no way to hand it text: ReadConfigFileOnce has
// already read the file, so the option's value becomes this always-openable
// empty device and from_config parses the text read. The user's file is so
// opened once, by ReadConfigFile (no FIFO swapped in meanwhile can block).
constexpr const char* kConfigHandedOver = "/dev/null";

// Reads treatyd's --config file for CLI11, in the format of ParseConfigText
// (security/config_file.h), from the text ReadConfigFileOnce read; each key
// checked against `app`'s options as it is read, so that an error names the
// line and the key as written, and each value against its option's kind
// (flag, integer, text, list). Errors are CLI::ConfigError; main() prints
// them after "--config FILE: ".
class ConfigFileFormat : public CLI::Config {
 public:
  ConfigFileFormat(const CLI::App* app, std::shared_ptr<const ConfigFileText> file)
      : app_(app), file_(std::move(file)) {}

  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override {
    return CLI::ConfigTOML().to_config(app, default_also, write_description, std::move(prefix));
  }

  // `input` is kConfigHandedOver, opened by CLI11: not read.
  std::vector<CLI::ConfigItem> from_config(std::istream& /*input*/) const override {
    if (!file_->read) throw CLI::ConfigError("the file was not read");
    auto settings = treaty::ParseConfigText(file_->text,
                                            [this](const std::string& key) { return KindOf(key); });
    if (!settings.ok()) throw CLI::ConfigError(settings.status().message());
    std::vector<CLI::ConfigItem> items;
    for (treaty::ConfigSetting& s : *settings) {
      CLI::ConfigItem item;
      item.name = std::move(s.key);
      item.inputs = std::move(s.values);
      items.push_back(std::move(item));
    }
    return items;
  }

 private:
  treaty::ConfigKeyKind KindOf(const std::string& key) const {
    const CLI::Option* op = app_->get_option_no_throw("--" + key);
    if (op == nullptr) return treaty::ConfigKeyKind::kUnknown;
    if (!op->get_configurable()) return treaty::ConfigKeyKind::kNotInFile;
    // As CLI11 tells a flag from an option taking a value, and a list
    // (std::vector) from one value; the type name is "INT", "UINT",
    // "TEXT"..., then ":" and the checks' descriptions.
    if (op->get_expected_min() == 0) return treaty::ConfigKeyKind::kFlag;
    if (op->get_expected_max() > 1) return treaty::ConfigKeyKind::kList;
    const std::string type = op->get_type_name();
    const std::string base = type.substr(0, type.find(':'));
    return base == "INT" || base == "UINT" ? treaty::ConfigKeyKind::kInteger
                                           : treaty::ConfigKeyKind::kText;
  }

  const CLI::App* const app_;
  const std::shared_ptr<const ConfigFileText> file_;
};

// --config's transform, run as soon as the option is parsed: reads the file
// once (only a regular file, opened without blocking, so that a FIFO cannot
// block the start and a device such as /dev/zero is not read without end;
// at most kMaxOptionsFileBytes) into `file`, and hands CLI11
// kConfigHandedOver to open instead. Returns "" when fine, else the reason
// (CLI11 puts "--config: " before it).
CLI::Validator ReadConfigFileOnce(std::shared_ptr<ConfigFileText> file) {
  return CLI::Validator(
      [file](std::string& path) -> std::string {
        if (file->read && path == kConfigHandedOver) return "";  // validated again
        auto read = treaty::ReadConfigFile("--config", path, treaty::kMaxOptionsFileBytes);
        if (!read.ok()) {
          std::string message = read.status().message();
          const std::string prefix = "--config: ";
          if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
          return message;
        }
        file->path = path;
        file->text = std::move(read->text);
        file->read = true;
        path = kConfigHandedOver;
        return "";
      },
      "", "config-file");
}

// Messages printed to the terminal are at most about kShownBytes.
constexpr size_t kShownBytes = 400;

// A message for the terminal built from text that may come from the command
// line or the --config file: control characters escaped, bounded.
std::string Shown(std::string_view text) {
  return treaty::EscapeControl(treaty::Excerpt(text, kShownBytes));
}

// A message whose quoted text is escaped already (ParseConfigText's):
// bounded, and a control character that is still there shown as '?'.
std::string Bounded(std::string_view text) {
  std::string out = treaty::Excerpt(text, kShownBytes);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

constexpr const char* kFooter = R"(Commands:
  treatyd [options]                      serve until SIGTERM/SIGINT (drain, then exit 0)
  treatyd migrate [--store URI]          apply pending migrations and exit
  treatyd backup --store sqlite:PATH --to FILE   copy a SQLite log and exit
  treatyd --check-config [options]       validate the options (and --config FILE), exit 0 if valid

Option sources, strongest first: the command line, --config FILE (TOML: `key = value`, the
option's long name without dashes; an unknown key is an error), TREATY_* environment variables,
the defaults shown. The sample /etc/treaty/treatyd.conf (deploy/config/treatyd.conf in the
source) lists every option with its default.

Signals: SIGTERM/SIGINT drain (new work refused, in-flight work gets --drain-timeout-ms, the rest
is handed back to peers); SIGHUP re-reads certificates and tokens and reopens the audit log.
Under systemd (Type=notify) READY=1 is sent once the listeners answer and STOPPING=1 when the
drain begins. Exit status: 0 done, 1 could not start or run, 2 bad option or configuration.
Docs: docs/operations.md.)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"treatyd: Treaty distributed transaction coordinator"};
  auto config_file = std::make_shared<ConfigFileText>();
  app.set_config("--config", "",
                 "Read options from a TOML file (`key = value`; an unknown key is an error)")
      ->transform(ReadConfigFileOnce(config_file))
      ->trigger_on_parse();  // read before CLI11 would open it
  app.config_formatter(std::make_shared<ConfigFileFormat>(&app, config_file));
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_version_flag("--version", treaty::VersionLine("treatyd"),
                       "Print the version, git commit and build type, and exit")
      ->configurable(false);
  app.get_help_ptr()->configurable(false);
  app.footer(kFooter);
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "Validate the options and the files they name, print the result and exit (the "
               "store is not opened, nothing is bound)")
      ->configurable(false);  // what to do this run, not configuration
  std::string advertise_http;
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
  app.add_option("--thrift", thrift, "Thrift listen address HOST:PORT (port 0 picks one), or off")
      ->envname("TREATY_THRIFT")
      ->capture_default_str();
  app.add_option("--node-name", opts.node_name,
                 "Name shown in the cluster view (printable ASCII, at most 128 bytes)")
      ->envname("TREATY_NODE_NAME")
      ->check([](const std::string& v) -> std::string {
        if (v.size() > 128) return "longer than 128 bytes";
        for (unsigned char c : v) {
          if (c < 0x20 || c > 0x7e) return "only printable ASCII is allowed";
        }
        return "";
      });
  app.add_option("--advertise-http", advertise_http,
                 "HOST:PORT peers and the cluster view show for this coordinator (port 0: the "
                 "port bound); default: the --http host, or this machine's host name when "
                 "--http is a wildcard (0.0.0.0, ::)")
      ->envname("TREATY_ADVERTISE_HTTP");
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
  app.add_option(
         "--claim-batch", opts.claim_batch,
         "Most orphaned transactions adopted per claim (survivors of a crash share its work)")
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
  app.add_option("--write-behind-ms", opts.service.engine.write_behind_ms,
                 "A saga step's first action goes out without waiting for the log; its progress "
                 "is logged within this many ms, or with the next decision (docs/architecture.md "
                 "\"Write-behind\"). 0: every call waits for its log write")
      ->envname("TREATY_WRITE_BEHIND_MS")
      ->check(CLI::Range(0, 10000))
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
  AddSecurityOptions(app, opts);
  auto* migrate = app.add_subcommand("migrate", "Apply pending migrations to --store and exit");
  migrate->fallthrough();  // `treatyd migrate --store URI`, as documented
  // `treatyd backup --store sqlite:PATH --to FILE [--force]`: a checked copy
  // of a SQLite log (store/sqlite_backup.h). Exit 0 done, 1 failed, 2 usage.
  auto* backup = app.add_subcommand("backup", "Copy the SQLite log of --store to --to and exit");
  backup->fallthrough();
  std::string backup_to;
  treaty::SqliteBackupOptions backup_opts;
  backup->add_option("--to", backup_to, "Backup file to write (refused if it exists)");
  backup->add_flag("--force", backup_opts.force, "Replace an existing --to file");
  backup
      ->add_option("--busy-wait-ms", backup_opts.busy_wait_ms,
                   "How long to wait for a locked log before failing")
      ->check(CLI::Range(0, 3600000))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ConfigError& e) {
    // From ConfigFileFormat: "line N: ..." naming the key, or the file's size.
    // The parser's messages are escaped already: bounded, not escaped twice.
    std::cerr << "treatyd: --config " << Shown(config_file->path) << ": " << Bounded(e.what())
              << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error (CLI11's own codes) is
    // 2, its message (which may quote a value) escaped and bounded.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "treatyd: " << Shown(e.what()) << "\nRun with --help for more information.\n";
    return 2;
  }

  // A flag's environment variable takes what a flag takes in the config
  // file, true or false: CLI11 would read "yes", "1", "on" or "" as set, so
  // TREATY_INSECURE="" could open an unauthenticated listener. Checked for
  // the server only: --help and --version have exited, migrate and backup
  // take neither flag.
  for (const char* name : {"TREATY_INSECURE", "TREATY_METRICS_OPEN"}) {
    const char* value = std::getenv(name);
    if (value == nullptr || migrate->parsed() || backup->parsed()) continue;
    const std::string v(value);
    if (v != "true" && v != "false") {
      std::cerr << "treatyd: " << name << " must be true or false, not '" << Shown(v) << "'\n";
      return 2;
    }
  }
  opts.retention_ms = retention_hours * 3600 * 1000;
  SetUpLogging(log_level, log_format);
  auto http_addr = treaty::ParseHostPort(http, "--http");
  if (!http_addr.ok()) {
    std::cerr << "treatyd: " << http_addr.status().message() << "\n";
    return 2;
  }
  opts.http_host = http_addr->host;
  opts.http_port = http_addr->port;
  opts.thrift_enabled = thrift != "off";
  if (opts.thrift_enabled) {
    auto thrift_addr = treaty::ParseHostPort(thrift, "--thrift");
    if (!thrift_addr.ok()) {
      std::cerr << "treatyd: " << thrift_addr.status().message() << "\n";
      return 2;
    }
    opts.thrift_host = thrift_addr->host;
    opts.thrift_port = thrift_addr->port;
  }
  if (auto s = ParseAdvertised(advertise_http, opts); !s.ok()) {
    std::cerr << "treatyd: " << s.message() << "\n";
    return 2;
  }
  if (auto s = CheckLease(opts); !s.ok()) {
    std::cerr << "treatyd: " << s.message() << "\n";
    return 2;
  }

  if (backup->parsed()) {
    if (backup_to.empty()) {
      std::cerr << "treatyd backup: --to FILE is required\n";
      return 2;
    }
    // A treatyd running on the log copies it itself, asked through its
    // control socket (api/control_socket.h); else the file is copied here.
    treaty::Result<treaty::SqliteBackupReport> report =
        treaty::Status::Unavailable("no backup attempted");
    bool nobody = true;
    if (auto log = treaty::SqliteLogPathOf(opts.store_uri); log.ok()) {
      std::error_code ec;
      const std::string dest = std::filesystem::absolute(backup_to, ec).lexically_normal().string();
      if (!ec) {
        constexpr int kAnswerWithinMs = 3600 * 1000;  // a copy of a very large log
        report = treaty::RequestBackup(treaty::SqliteControlSocketPath(*log), dest,
                                       backup_opts.force, kAnswerWithinMs, &nobody);
        if (!nobody)
          std::cerr << "treatyd backup: asked the running treatyd to write " << dest << "\n";
      }
    }
    if (nobody) report = treaty::BackupStore(opts.store_uri, backup_to, backup_opts);
    if (!report.ok()) {
      std::cerr << "treatyd backup: " << report.status().message() << "\n";
      return report.status().code() == treaty::StatusCode::kInvalidArgument ? 2 : 1;
    }
    std::cout << "backup written to " << backup_to << ": " << report->transactions
              << " transactions, " << report->bytes << " bytes, " << report->elapsed_ms << " ms\n";
    return 0;
  }

  if (migrate->parsed()) {
    auto store = treaty::OpenLogStore(opts.store_uri);
    if (!store.ok()) {
      std::cerr << "treatyd: cannot open store: " << store.status().ToString() << "\n";
      // A store URI that cannot be right (CheckStoreUri) is a configuration error.
      return store.status().code() == treaty::StatusCode::kInvalidArgument ? 2 : 1;
    }
    auto s = (*store)->Migrate();
    if (!s.ok()) {
      std::cerr << "treatyd: migration failed, nothing applied: " << s.ToString() << "\n";
      return 1;
    }
    std::cout << "migrations applied to " << (*store)->Engine() << " store\n";
    return 0;
  }

  if (auto s = CheckSecurityFiles(opts); !s.ok()) {
    std::cerr << "treatyd: " << s.message() << "\n";
    return 2;
  }
  if (check_config) {
    if (auto s = treaty::Server::CheckOptions(opts); !s.ok()) {
      std::cerr << "treatyd: " << s.message() << "\n";
      return 2;
    }
    std::cout << "treatyd: configuration OK\n";
    return 0;
  }

  // Block the signals in every thread; the main thread waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  FitConnectionCaps(opts);
  treaty::Server server(opts);
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << "treatyd: cannot start: " << s.ToString() << "\n";
    NotifySystemd("STATUS=cannot start: " + s.message());
    // A configuration the options cannot work with is a usage error (2);
    // anything else (the store, a port in use) is 1.
    return s.code() == treaty::StatusCode::kInvalidArgument ? 2 : 1;
  }
  const std::string thrift_text =
      opts.thrift_enabled ? treaty::FormatHostPort(opts.thrift_host, server.thrift_port()) : "off";
  std::printf("treatyd listening on %s and thrift %s (coordinator %s)\n", server.http_url().c_str(),
              thrift_text.c_str(), server.coordinator_id().c_str());
  std::fflush(stdout);
  // The listeners answer from here on (Server::Start runs the io threads).
  NotifySystemd("READY=1\nSTATUS=serving " + server.http_url() + " as coordinator " +
                server.coordinator_id());

  // SIGHUP re-reads certificates and tokens here, on the main thread (never
  // in a signal handler); work in flight goes on. SIGTERM/SIGINT drain.
  int sig = 0;
  while (sigwait(&signals, &sig) != 0 || sig == SIGHUP) {
    if (sig != SIGHUP) continue;  // sigwait failed (EINTR): wait again
    spdlog::info("received SIGHUP, reloading");
    NotifySystemd("RELOADING=1");
    (void)server.Reload();  // a failure is logged and keeps the old files
    NotifySystemd("READY=1");
    sig = 0;
  }
  spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  // The drain may take --drain-timeout-ms and the hand-back a few seconds
  // more: ask systemd for that long, whatever TimeoutStopSec says.
  NotifySystemd("STOPPING=1\nSTATUS=draining\nEXTEND_TIMEOUT_USEC=" +
                std::to_string((opts.drain_timeout_ms + 30000) * 1000));
  auto s = server.Drain();
  if (!s.ok()) {
    spdlog::error("shutdown: {}", s.ToString());
    return 1;
  }
  return 0;
}
