#pragma once

// TreatydProcess: one `treatyd` run as a real child process for cluster fault
// and security tests (kill -9, SIGSTOP/SIGCONT, SIGTERM, SIGHUP). It picks a
// free HTTP port (Thrift on port 0), logs to <dir>/<name>.log, waits for
// /healthz on Start() and finds its own coordinator id through GET
// /v1/cluster. With `https`, the child is expected to serve TLS (its
// --tls-cert/--tls-key given in `extra`) and the harness's own requests
// trust `tls`.
//
// Not thread-safe; one owner. The destructor SIGKILLs a still-running child.

#include <memory>
#include <string>
#include <vector>

#include "security/tls_context.h"
#include "support/subprocess.h"
#include "treaty/status.h"

namespace treaty::testing {

struct TreatydOptions {
  std::string store;  // --store URI
  int heartbeat_ms = 200;
  int lease_ms = 1500;
  int retry_max_backoff_ms = 200;
  int drain_timeout_ms = 10000;
  int claim_batch = 0;                    // 0: treatyd's default
  std::string listen_host = "127.0.0.1";  // --http HOST (e.g. 0.0.0.0); requests go to 127.0.0.1
  std::string thrift = "127.0.0.1:0";     // --thrift value ("off" for none)
  bool https = false;                     // url() is https://; requests verify with `tls`
  TlsClientFiles tls;                     // CA (and client certificate) for the harness's requests
  std::string token;                      // bearer token for CoordinatorId() (auth on)
  std::vector<std::string> extra;         // more flags
};

class TreatydProcess {
 public:
  TreatydProcess(std::string dir, std::string name, TreatydOptions options);

  // Starts the child and waits (up to 15 s) until /healthz answers 200. On
  // the first start the port is picked free; should another process take it
  // first (the child exits at once), it is started again on a new port, up
  // to 3 times. Later starts (a restart) keep the port.
  [[nodiscard]] Status Start();
  Subprocess& proc() { return *proc_; }
  bool running() const { return proc_ && proc_->running(); }
  // SIGSTOP / SIGCONT (a long GC-like pause); paused() until Resume().
  void Pause();
  void Resume();
  bool paused() const { return paused_; }
  const std::string& name() const { return name_; }
  // http://127.0.0.1:PORT (https:// with options.https)
  const std::string& url() const { return url_; }
  // "HOST:PORT" as the cluster table shows it: LISTEN_HOST, or the host
  // name for a wildcard listen host (0.0.0.0, ::).
  std::string http_addr() const;
  int port() const { return port_; }
  // The id of the live coordinator row with this process's address, or "".
  std::string CoordinatorId() const;
  std::string Log() const { return proc_ ? proc_->Log() : ""; }

 private:
  Status StartOnce();
  std::string dir_, name_, url_;
  int port_ = 0;
  TreatydOptions options_;
  std::unique_ptr<Subprocess> proc_;
  bool paused_ = false;
};

}  // namespace treaty::testing
