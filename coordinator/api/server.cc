#include "api/server.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include "api/access_gate.h"
#include "api/control_socket.h"
#include "api/coordinator_metrics.h"
#include "api/ops_routes.h"
#include "api/rest_api.h"
#include "cluster/membership.h"
#include "cluster/retention.h"
#include "common/asio_task_runner.h"
#include "common/exception_guard.h"
#include "common/host_port.h"
#include "common/text.h"
#include "engine/readiness.h"
#include "engine/routing_caller.h"
#include "engine/txn_queries.h"
#include "http/http_participant_caller.h"
#include "http/http_server.h"
#include "security/audit_log.h"
#include "security/authenticator.h"
#include "security/participant_policy.h"
#include "security/request_signature.h"
#include "security/tls_context.h"
#include "store/log_store.h"
#include "store/open_log_store.h"
#include "store/pg_log_store.h"
#include "store/sqlite_backup.h"
#include "store/sqlite_log_store.h"
#include "thrift/thrift_participant_caller.h"
#include "thrift/thrift_server.h"

namespace treaty {
namespace {

// The engine's TxnLog over the group-commit LogWriter.
class WriterTxnLog : public TxnLog {
 public:
  explicit WriterTxnLog(LogWriter* writer) : writer_(writer) {}
  void Write(TxnWrite write, Callback done) override {
    writer_->Submit(std::move(write), std::move(done));
  }

 private:
  LogWriter* writer_;
};

// Whether `host` (a listen address) is reachable only from this machine.
bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

// Whether `host` (a listen address) accepts connections on every address.
bool IsWildcardHost(const std::string& host) {
  if (host.empty()) return true;
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_unspecified();
}

// The host other coordinators and operators are shown for a listener on
// `listen_host`: `advertised` if given, the listen host if it names one
// address, else this machine's host name (the wildcard if it has none).
std::string ShownHost(const std::string& listen_host, const std::string& advertised) {
  if (!advertised.empty()) return advertised;
  if (!IsWildcardHost(listen_host)) return listen_host;
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return listen_host;
  return name;
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  boost::asio::io_context io;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  boost::asio::thread_pool blocking_pool;
  std::vector<std::thread> io_threads;
  std::unique_ptr<AsioTaskRunner> engine_runner;
  std::unique_ptr<AsioTaskRunner> blocking_runner;
  // Membership and Retention run on a strand each of their own pool, so a
  // long purge or a busy read pool never delays a heartbeat.
  boost::asio::thread_pool cluster_pool{2};
  std::unique_ptr<AsioTaskRunner> membership_runner;
  std::unique_ptr<AsioTaskRunner> retention_runner;
  std::unique_ptr<LogStore> store;
  std::unique_ptr<CoordinatorMetrics> metrics;  // before its users: destroyed after them
  // Fed by the writer and the readiness probe, read by Readiness and the
  // Thrift front end.
  StoreHealth store_health;
  // Set by Drain(), read by Readiness (REST) and the Thrift front end.
  std::atomic<bool> draining{false};
  std::unique_ptr<LogWriter> writer;
  std::unique_ptr<WriterTxnLog> txn_log;
  std::unique_ptr<HttpParticipantCaller> caller;
  std::unique_ptr<ThriftParticipantCaller> thrift_caller;
  std::unique_ptr<RoutingCaller> routing_caller;  // http:// or thrift://
  std::unique_ptr<TxnQueries> queries;            // every read of REST, the ops routes and Thrift
  std::unique_ptr<TxnService> service;
  std::unique_ptr<Readiness> readiness;  // /readyz and the 503 of new work; before rest
  std::unique_ptr<AccessGate> gate;      // before rest: destroyed after it
  std::unique_ptr<RestApi> rest;
  std::unique_ptr<OpsRoutes> ops;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<ThriftServer> thrift;
  std::atomic<TxnService*> thrift_service{nullptr};  // set once the service exists
  std::unique_ptr<Membership> membership;
  std::unique_ptr<Retention> retention;
  // Security (docs/security.md); each null when its option is off.
  std::shared_ptr<Authenticator> auth;
  std::shared_ptr<ServerTls> tls;
  std::shared_ptr<ParticipantPolicy> participant_policy;  // never null once started
  std::shared_ptr<AuditLog> audit;                        // never null once started
  // `treatyd backup` of a running SQLite log (null on PostgreSQL); after
  // `io` and `store`: destroyed before them.
  std::unique_ptr<ControlSocket> control;
  bool stopped = false;

  // Builds the security objects from the options; InvalidArgument naming
  // the option when a file cannot be used or the listeners would be open to
  // the network without authentication.
  Status SetUpSecurity();
  // Opens the control socket of a SQLite log (api/control_socket.h); logs
  // why not and goes on without it.
  void StartControlSocket(SqliteLogStore* sqlite);

  explicit Impl(ServerOptions o)
      : options(std::move(o)), blocking_pool(static_cast<size_t>(options.blocking_threads)) {}

  void StopThreads() {
    if (stopped) return;
    stopped = true;
    if (control) control->Stop();  // cancels a running backup: the store stays until then
    if (http) http->Stop();
    if (thrift) thrift->Stop();
    if (membership) (void)membership->Stop(false);
    if (retention) retention->Stop();
    cluster_pool.join();
    work.reset();
    io.stop();
    for (auto& t : io_threads) {
      if (t.joinable()) t.join();
    }
    blocking_pool.join();
    if (writer) writer->Stop();
  }
};

Status Server::Impl::SetUpSecurity() {
  if (!options.auth_tokens_file.empty()) {
    auto a = Authenticator::Load(options.auth_tokens_file);
    if (!a.ok()) return a.status();
    auth = std::move(*a);
  }
  const bool exposed = !IsLoopbackHost(options.http_host) ||
                       (options.thrift_enabled && !IsLoopbackHost(options.thrift_host));
  if (exposed && !auth) {
    if (!options.insecure) {
      return Status::InvalidArgument(
          "a listener is bound to a non-loopback address without authentication: anyone who "
          "reaches it could start, read and abort transactions. Give --auth-tokens FILE (see "
          "docs/security.md), bind to 127.0.0.1, or accept the risk with --insecure");
    }
    spdlog::warn(
        "--insecure: serving a non-loopback address without authentication; anyone who reaches "
        "it can start, read and abort transactions");
  }
  if (options.tls.enabled()) {
    auto t = ServerTls::Load(options.tls);
    if (!t.ok()) return t.status();
    tls = std::move(*t);
  }
  auto policy = ParticipantPolicy::Create(options.participant_allow);
  if (!policy.ok()) return policy.status();
  participant_policy = std::move(*policy);
  auto audit_log = AuditLog::Open(options.audit_log_file);
  if (!audit_log.ok()) return audit_log.status();
  audit = std::move(*audit_log);
  AccessGateOptions gate_opts;
  gate_opts.auth = auth;
  gate_opts.audit = audit;
  gate_opts.allowed_hosts = options.allowed_hosts;
  gate_opts.listener_loopback = IsLoopbackHost(options.http_host);
  gate_opts.tls = tls != nullptr;
  auto access_gate = AccessGate::Create(std::move(gate_opts));
  if (!access_gate.ok()) return access_gate.status();
  gate = std::move(*access_gate);
  return Status::Ok();
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Status Server::CheckOptions(const ServerOptions& options) {
  // The store URI as Start's OpenLogStore checks it first (no connection).
  if (Status s = CheckStoreUri(options.store_uri); !s.ok()) return s;
  ServerOptions probe_options = options;
  probe_options.audit_log_file.clear();  // checked below, without creating it
  Impl probe(std::move(probe_options));
  if (Status s = probe.SetUpSecurity(); !s.ok()) return s;
  if (auto client_tls = MakeClientTlsContext(options.participant_tls); !client_tls.ok()) {
    return Status::InvalidArgument("--participant-ca/--participant-cert/--participant-key: " +
                                   client_tls.status().message());
  }
  if (!options.participant_hmac_key_file.empty()) {
    auto key = LoadSigningKey(options.participant_hmac_key_file, "--participant-hmac-key");
    if (!key.ok()) return key.status();
  }
  if (!options.audit_log_file.empty()) {
    const std::filesystem::path file(options.audit_log_file);
    const std::string dir = file.has_parent_path() ? file.parent_path().string() : ".";
    const bool exists = access(options.audit_log_file.c_str(), F_OK) == 0;
    const char* what = exists ? options.audit_log_file.c_str() : dir.c_str();
    if (access(what, W_OK) != 0) {
      return Status::InvalidArgument(std::string("--audit-log: cannot write '") +
                                     EscapeControl(what) + "': " + std::strerror(errno));
    }
  }
  return Status::Ok();
}

void Server::Impl::StartControlSocket(SqliteLogStore* sqlite) {
  Result<std::string> log = SqliteLogPathOf(options.store_uri);
  if (!log.ok() || *log == ":memory:") return;
  auto backup = [sqlite, log = *log](const std::string& dest, bool force,
                                     const std::atomic<bool>& cancel) {
    SqliteBackupOptions backup_options;
    backup_options.force = force;
    backup_options.cancel = &cancel;
    SqliteConnectionLender lend = [sqlite](const std::function<Status(sqlite3*)>& use) {
      return sqlite->LendConnection(use);
    };
    return BackupLiveSqliteLog(log, lend, dest, backup_options);
  };
  control = std::make_unique<ControlSocket>(io, SqliteControlSocketPath(*log), std::move(backup));
  // Serving goes on without it: `treatyd backup` then says it cannot reach this process.
  if (Status s = control->Start(); !s.ok()) {
    spdlog::error("{}; online backups (treatyd backup) are off", s.message());
    control.reset();
  }
}

Server::~Server() { Stop(); }

Status Server::Start() {
  Impl& m = *impl_;
  if (auto s = m.SetUpSecurity(); !s.ok()) return s;
  auto store = OpenLogStore(m.options.store_uri);
  if (!store.ok()) return store.status();
  m.store = std::move(*store);
  // Migrate() runs without the store's call deadline (it may take minutes).
  auto* pg = dynamic_cast<PgLogStore*>(m.store.get());
  if (auto s = m.store->Migrate(); !s.ok()) return s;
  if (pg) pg->set_call_timeout_ms(m.options.store_timeout_ms);
  if (pg && m.options.store_timeout_ms <= 0) {
    spdlog::warn(
        "store calls have no deadline (--store-timeout-ms 0): a stalled log can hold requests "
        "and a drain without bound");
  }

  m.engine_runner = std::make_unique<AsioTaskRunner>(boost::asio::make_strand(m.io), "engine task");
  m.blocking_runner =
      std::make_unique<AsioTaskRunner>(m.blocking_pool.get_executor(), "blocking task");
  m.membership_runner =
      std::make_unique<AsioTaskRunner>(boost::asio::make_strand(m.cluster_pool), "membership task");
  m.retention_runner =
      std::make_unique<AsioTaskRunner>(boost::asio::make_strand(m.cluster_pool), "retention task");
  m.queries = std::make_unique<TxnQueries>(m.store.get(), m.blocking_runner.get());
  m.metrics = std::make_unique<CoordinatorMetrics>();
  LogWriterOptions writer_opts = m.options.writer;
  writer_opts.on_batch = [metrics = m.metrics.get()](size_t n, int64_t us, const Status& s) {
    metrics->OnLogBatch(n, us, s);
  };
  writer_opts.health = &m.store_health;
  writer_opts.lanes = static_cast<size_t>(m.store->WriteConcurrency());
  m.writer = std::make_unique<LogWriter>(m.store.get(), writer_opts);
  m.txn_log = std::make_unique<WriterTxnLog>(m.writer.get());
  HttpCallerOptions caller_opts;
  auto client_tls = MakeClientTlsContext(m.options.participant_tls);
  if (!client_tls.ok()) {
    return Status::InvalidArgument("--participant-ca/--participant-cert/--participant-key: " +
                                   client_tls.status().message());
  }
  caller_opts.tls = std::move(*client_tls);
  if (!m.options.participant_hmac_key_file.empty()) {
    auto key = LoadSigningKey(m.options.participant_hmac_key_file, "--participant-hmac-key");
    if (!key.ok()) return key.status();
    caller_opts.signing_key = std::move(*key);
  }
  caller_opts.policy = m.participant_policy;
  m.caller = std::make_unique<HttpParticipantCaller>(m.io, caller_opts);
  ThriftCallerOptions thrift_caller_opts;
  thrift_caller_opts.tls = m.options.participant_tls;
  thrift_caller_opts.policy = m.participant_policy;
  m.thrift_caller = std::make_unique<ThriftParticipantCaller>(thrift_caller_opts);
  m.routing_caller = std::make_unique<RoutingCaller>(m.caller.get(), m.thrift_caller.get());

  HttpServerOptions http_opts;
  http_opts.host = m.options.http_host;
  http_opts.port = m.options.http_port;
  http_opts.max_body_bytes = m.options.max_body_bytes;
  http_opts.max_connections = m.options.http_max_connections;
  http_opts.idle_timeout_ms = m.options.http_idle_timeout_ms;
  http_opts.request_timeout_ms = m.options.http_request_timeout_ms;
  http_opts.tls = m.tls;
  // The handler needs the RestApi, which needs the service, which needs the
  // coordinator id from Join: bind late through the Impl.
  m.http = std::make_unique<HttpServer>(m.io, http_opts, [&m](HttpRequest req, HttpResponder r) {
    m.rest->Handle(std::move(req), std::move(r));
  });

  // Bind now (requests are served once the io threads run, below) so the
  // cluster row can carry the real address.
  if (auto s = m.http->Start(); !s.ok()) return s;
  m.participant_policy->AddOwnListener(m.options.http_host, m.http->port());
  // Readiness: /readyz and the admission of new work, for both front ends.
  ReadinessDeps readiness;
  readiness.queries = m.queries.get();
  readiness.blocking = m.blocking_runner.get();
  readiness.draining = &m.draining;
  readiness.health = &m.store_health;
  // The write probe: this coordinator's heartbeat, a small committed write.
  readiness.write_probe = [&m] { return m.store->Heartbeat(m.membership->id()); };
  m.readiness = std::make_unique<Readiness>(std::move(readiness));
  ThriftServerOptions thrift_opts;
  thrift_opts.host = m.options.thrift_host;
  thrift_opts.port = m.options.thrift_port;
  thrift_opts.max_frame_bytes = m.options.max_body_bytes;
  thrift_opts.max_connections = m.options.thrift_max_connections;
  thrift_opts.idle_timeout_ms = m.options.thrift_idle_timeout_ms;
  thrift_opts.request_timeout_ms = m.options.thrift_request_timeout_ms;
  thrift_opts.handler.readiness = m.readiness.get();
  thrift_opts.handler.queries = m.queries.get();
  thrift_opts.handler.auth = m.auth;
  thrift_opts.handler.audit = m.audit;
  thrift_opts.tls = m.options.tls;
  if (m.options.thrift_enabled) {
    m.thrift =
        std::make_unique<ThriftServer>([&m] { return m.thrift_service.load(); }, thrift_opts);
    if (auto s = m.thrift->Start(); !s.ok()) return s;
    m.participant_policy->AddOwnListener(m.options.thrift_host, m.thrift->port());
  }

  MembershipOptions mem;
  mem.node_name = m.options.node_name;
  const std::string shown_host = ShownHost(m.options.http_host, m.options.advertise_http_host);
  mem.http_addr = FormatHostPort(
      shown_host, m.options.advertise_http_port ? m.options.advertise_http_port : m.http->port());
  if (m.thrift) {
    mem.thrift_addr =
        FormatHostPort(IsWildcardHost(m.options.thrift_host) ? shown_host : m.options.thrift_host,
                       m.thrift->port());
  }
  mem.heartbeat_ms = m.options.heartbeat_ms;
  mem.lease_ms = m.options.lease_ms;
  mem.claim_batch = m.options.claim_batch;
  m.membership = std::make_unique<Membership>(m.store.get(), m.membership_runner.get(), mem);
  if (auto s = m.membership->Join(); !s.ok()) return s;

  TxnServiceDeps deps;
  deps.engine_runner = m.engine_runner.get();
  deps.blocking_runner = m.blocking_runner.get();
  deps.caller = m.routing_caller.get();
  deps.log = m.txn_log.get();
  deps.store = m.store.get();
  deps.owner = m.membership->id();
  deps.observer = m.metrics.get();
  deps.participant_policy = m.participant_policy.get();
  deps.lease_held = [&m](const std::string& owner) { return m.membership->LeaseHeld(owner); };
  m.service = std::make_unique<TxnService>(deps, m.options.service);
  m.thrift_service = m.service.get();
  m.rest = std::make_unique<RestApi>(m.service.get(), m.queries.get(), m.readiness.get(),
                                     m.blocking_runner.get(), RestApiOptions{});
  m.ops = std::make_unique<OpsRoutes>(m.metrics.get(), m.service.get(), m.writer.get(),
                                      m.queries.get(), m.options.metrics_open);
  m.rest->set_access_gate(m.gate.get());
  m.ops->AddRoutes(m.rest->router());

  // The control socket listens before the io threads serve anything: once
  // /healthz answers, `treatyd backup` can reach this process (and the
  // socket is already 0600).
  if (auto* sqlite = dynamic_cast<SqliteLogStore*>(m.store.get())) m.StartControlSocket(sqlite);
  m.work =
      std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
          m.io.get_executor());
  for (int i = 0; i < std::max(1, m.options.io_threads); ++i) {
    m.io_threads.emplace_back([&m] {
      // The last guard of the io threads: a handler's exception is logged and
      // the thread goes back to serving (io_context::run may be resumed).
      while (!RunGuarded("io handler", [&m] { m.io.run(); })) {
      }
    });
  }
  m.membership->Start(m.service.get());
  RetentionOptions retention;
  retention.retention_ms = m.options.retention_ms;
  retention.batch = m.options.purge_batch;
  retention.interval_ms = m.options.purge_interval_ms;
  retention.on_purged = [metrics = m.metrics.get()](int64_t n) { metrics->OnPurged(n); };
  m.retention =
      std::make_unique<Retention>(m.store.get(), m.retention_runner.get(), std::move(retention));
  m.retention->Start();
  spdlog::info(
      "treatyd serving {}://{} and thrift {} on store {} as coordinator {}{}",
      m.tls ? "https" : "http", FormatHostPort(m.options.http_host, m.http->port()),
      m.thrift ? FormatHostPort(m.options.thrift_host, m.thrift->port()) : std::string("off"),
      m.store->Engine(), m.membership->id(),
      m.auth ? "; authentication on" : "; authentication off");
  return Status::Ok();
}

uint16_t Server::http_port() const { return impl_->http ? impl_->http->port() : 0; }

uint16_t Server::thrift_port() const { return impl_->thrift ? impl_->thrift->port() : 0; }

std::string Server::http_url() const {
  return std::string(impl_->tls ? "https://" : "http://") +
         FormatHostPort(impl_->options.http_host, http_port());
}

Status Server::Reload() {
  Impl& m = *impl_;
  Status first;
  auto note = [&first](const char* what, Status s) {
    if (s.ok()) return;
    spdlog::error("reload: {} kept as it was: {}", what, s.ToString());
    if (first.ok()) first = std::move(s);
  };
  if (m.tls) note("the HTTPS certificate", m.tls->Reload());
  if (m.thrift) note("the Thrift TLS certificate", m.thrift->ReloadTls());
  if (m.auth) note("the tokens file", m.auth->Reload());
  if (m.audit) note("the audit log", m.audit->Reopen());
  if (first.ok()) spdlog::info("reload: certificates, tokens and the audit log re-read");
  return first;
}

std::string Server::coordinator_id() const { return impl_->membership->id(); }

TxnService* Server::service() { return impl_->service.get(); }

TxnQueries* Server::queries() { return impl_->queries.get(); }

const Router* Server::router() const { return impl_->rest ? impl_->rest->router() : nullptr; }

Status Server::Drain() {
  Impl& m = *impl_;
  if (m.stopped || !m.service) return Status::Ok();
  spdlog::info("draining: refusing new work, letting in-flight transactions finish");
  m.draining = true;  // Readiness and the Thrift front end refuse new work
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(m.options.drain_timeout_ms);
  // Stop adopting more work, then wait for what is in memory.
  (void)m.membership->Stop(false);
  while (m.service->active_drivers() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int64_t left = m.service->active_drivers();
  // What was written behind goes to the log before the hand-back, so the
  // adopter neither resends nor compensates it (bounded: a stalled log).
  auto flushed = std::make_shared<std::promise<void>>();
  m.service->FlushAll([flushed] { flushed->set_value(); });
  (void)flushed->get_future().wait_for(std::chrono::seconds(5));
  m.service->DropAllAndReown("");
  // Wait (bounded) until the engine has done it: clients held by `wait` are
  // answered by then (TxnWaiters::ExpireAll), before the listeners close.
  auto dropped = std::make_shared<std::promise<void>>();
  m.engine_runner->Post([dropped] { dropped->set_value(); });
  (void)dropped->get_future().wait_for(std::chrono::seconds(5));
  m.writer->Stop();  // every accepted write is durable before we hand back
  Status s = m.membership->Stop(true);
  if (s.ok()) {
    spdlog::info("drained ({} transactions handed back to peers)", left);
  } else {
    spdlog::error(
        "drain: could not hand {} unfinished transactions back ({}); peers adopt them once this "
        "coordinator's lease expires",
        left, s.ToString());
  }
  m.StopThreads();
  return s;
}

void Server::Stop() { impl_->StopThreads(); }

}  // namespace treaty
