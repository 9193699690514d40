#pragma once

// Server: one treatyd process assembled from its parts — log store (+ group
// commit writer), engine (TxnService on an Asio strand), participant callers,
// HTTP front end and cluster membership. main.cc parses options into
// ServerOptions; integration tests build a Server in-process.
//
// Threads: `io_threads` run the io_context (HTTP server, participant calls,
// engine strand); a pool of `blocking_threads` runs store reads (TxnQueries);
// a pool of two threads runs Membership's and Retention's rounds, each on its
// own strand; the LogWriter owns its writer thread and its stall watcher.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/txn_queries.h"
#include "engine/txn_service.h"
#include "security/tls_context.h"
#include "store/log_writer.h"
#include "treaty/status.h"

namespace treaty {

class Router;

struct ServerOptions {
  std::string store_uri = "sqlite:./treaty-data/treaty.db";
  std::string http_host = "127.0.0.1";
  uint16_t http_port = 7480;  // 0 picks a free port
  // Thrift front end (CoordinatorService). treatyd's default is 7481
  // (main.cc); here 0, a free port, so in-process servers never collide.
  std::string thrift_host = "127.0.0.1";
  uint16_t thrift_port = 0;
  std::string node_name;
  // What the cluster view (GET /v1/cluster, the coordinators rows) shows as
  // this coordinator's HTTP address (--advertise-http HOST:PORT). Empty
  // host: the listen host, unless that is a wildcard (0.0.0.0, ::), then
  // this machine's host name (gethostname). Port 0: the port bound. A
  // wildcard Thrift listener is shown with the same host.
  std::string advertise_http_host;
  uint16_t advertise_http_port = 0;
  int64_t heartbeat_ms = 1000;
  int64_t lease_ms = 5000;
  int claim_batch = 100;                          // most orphaned transactions adopted per claim
  int64_t retention_ms = 7LL * 24 * 3600 * 1000;  // finished transactions kept; 0 = forever
  int purge_batch = 1000;             // most finished transactions deleted per store transaction
  int64_t purge_interval_ms = 10000;  // pause between retention runs once caught up
  int io_threads = 2;
  int blocking_threads = 4;
  size_t max_body_bytes = 1 << 20;
  // Front-end resource caps (http_server.h, thrift_server.h); main.cc fits
  // the connection caps under the process's descriptor limit.
  size_t http_max_connections = 4096;
  int http_idle_timeout_ms = 60000;
  int http_request_timeout_ms = 30000;
  int thrift_max_connections = 512;
  int thrift_idle_timeout_ms = 60000;
  int thrift_request_timeout_ms = 30000;
  int64_t drain_timeout_ms = 10000;  // SIGTERM: how long to let in-flight work finish
  // Deadline of every PostgreSQL call (store/pg_connection_pool.h); 0: none.
  // The stall threshold is writer.stall_after_ms.
  int64_t store_timeout_ms = 3000;
  // Security (docs/security.md).
  TlsServerFiles tls;            // --tls-cert/--tls-key/--tls-client-ca: HTTPS and Thrift over TLS
  std::string auth_tokens_file;  // --auth-tokens; empty: no authentication
  bool metrics_open = false;     // --metrics-open: /metrics without the read role
  bool insecure = false;         // --insecure: non-loopback listeners without authentication
  std::vector<std::string> allowed_hosts;      // --allowed-hosts: Host header allow-list
  bool thrift_enabled = true;                  // --thrift off
  std::vector<std::string> participant_allow;  // --participant-allow entries
  TlsClientFiles participant_tls;         // --participant-ca/--participant-cert/--participant-key
  std::string participant_hmac_key_file;  // --participant-hmac-key: sign participant calls
  std::string audit_log_file;             // --audit-log; empty: the main log only
  TxnServiceOptions service;
  LogWriterOptions writer;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens and migrates the store, joins the cluster, starts serving and
  // resumes orphaned work. Unavailable / InvalidArgument with a clear
  // message if the store or the address cannot be used.
  Status Start();
  // What `treatyd --check-config` runs: every check Start makes before it
  // opens the store (the store URI as CheckStoreUri in store/open_log_store.h
  // reads it, tokens file, TLS files, the exposure rule, participant
  // allow-list, allowed hosts, signing key), without binding, opening the
  // store or creating the audit log (only its directory is checked for
  // writing). InvalidArgument naming the option when one would stop Start.
  // Blocks on file reads only; safe from any thread.
  static Status CheckOptions(const ServerOptions& options);
  uint16_t http_port() const;
  uint16_t thrift_port() const;
  std::string http_url() const;
  // Changes if the coordinator re-registers after being declared dead.
  std::string coordinator_id() const;
  TxnService* service();
  // The one read service (null before Start has opened the store).
  TxnQueries* queries();
  // The HTTP listener's route table, read-only (null before Start has built
  // the REST front end); lives as long as this Server.
  const Router* router() const;

  // SIGHUP: re-reads the TLS certificates, the tokens file and reopens the
  // audit log. Work in flight is not disturbed; a file that fails to load
  // keeps the old one, and the error is returned (and logged).
  Status Reload();

  // Graceful shutdown: refuse new work (REST 503, Thrift Unavailable), let in-flight transactions
  // finish for up to drain_timeout_ms, hand the rest back, deregister, stop.
  Status Drain();
  // Immediate stop without handing anything back (as if the process died,
  // except that in-flight HTTP answers are cut). For tests.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace treaty
