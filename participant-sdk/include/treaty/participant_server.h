#pragma once

// ParticipantServer: serves a service's saga steps and 2PC resource managers
// to Treaty coordinators with one call (docs/2pc.md "What participants receive").
//
//   treaty::ParticipantServer server({.http_port = 7500});
//   server.AddSagaStep("flight", BookFlight, CancelFlight);
//   server.AddResourceManager("debit", debit_rm);   // e.g. a PgResourceManager
//   server.Start();                                  // serves until Stop()
//
// Routing: POST {http_url}/{name} or {http_url}/{name}/{anything}; the op
// comes from the JSON body's "op" (else the Treaty-Op header). Url(name, op)
// gives the conventional URL {http_url}/{name}/{op} to put in a saga or
// branch.
//
// Outcome mapping (handlers are never trusted to speak HTTP):
//   OK                          -> 200 (prepare: {"vote":"yes"} or {"vote":"readonly"})
//   Status::BusinessFailure, InvalidArgument, Conflict
//                               -> 409, a final refusal (prepare: vote NO; an
//                                  action is compensated, a one-phase commit
//                                  aborts; a two-phase commit or an abort is
//                                  retried by the coordinator, which flags it)
//   Vote::kNo                   -> 409 {"vote":"no"}
//   any other Status, or an exception thrown by a handler
//                               -> 500, transient: the coordinator retries
//   unknown name / op           -> 404; a request breaking the input rules -> 400
// Error bodies are {"error":{"code":ErrorCodeName(code),"message":...}}, the
// coordinator's spelling ("business_failure", "invalid_argument", ...).
//
// One-phase commit: a commit with the body's "one_phase": true or the header
// Treaty-One-Phase: true (Thrift: ParticipantCall.one_phase) reaches
// ResourceManager::Commit with ctx.one_phase set; the commit must then do
// the branch's whole work, or refuse (BusinessFailure: 409 / FAILED, the
// transaction aborts). The coordinator sends it only to a branch enlisted
// with one_phase (Client BranchSpec::one_phase). "one_phase" must be a
// boolean, agree with the header, and be true only on a commit (else 400).
//
// Input rules (docs/input-rules.md; the coordinator's, from the same code):
// every request is untrusted and none reaches a handler unless
//   - its body is at most `max_body_bytes` (else 413) and is one JSON object
//     nested at most 64 levels deep, valid UTF-8 (else 400);
//   - gtid, branch and op, each from the body ("gtid", "branch", "op") or
//     the Treaty-Gtid / Treaty-Branch / Treaty-Op header, are identifiers:
//     1..128 bytes of printable ASCII other than '/', '?', '#', '%', '\',
//     not "." or "..". gtid and op are required; branch defaults to the
//     URL's name. When body and header both carry one, they must agree;
//   - an Idempotency-Key header, if present, is "{gtid}/{branch}/{op}";
// else 400 {"error":{"code":"invalid_argument","message":...}} naming the
// field, never echoing its bytes. A traceparent that is not lower-case hex
// and dashes is dropped. The server answers every request (or closes the
// connection) and keeps serving; a handler that throws gets a 500 and one
// log line (spdlog, control characters escaped). Over Thrift the same rules
// hold (and the payload's depth): a call that breaks them is answered with
// a TApplicationException and never reaches a handler.
//
// Thrift: with `thrift_port` set, Start() also serves ParticipantService
// (idl/participant.thrift; framed transport, binary protocol) on
// thrift_url() = "thrift://HOST:PORT", the same handlers found by the call's
// branch name. Same mapping: OK -> OK (prepare: vote YES or READONLY);
// BusinessFailure, InvalidArgument, Conflict or Vote::kNo -> FAILED
// (prepare: vote NO); any other Status, a thrown exception or an unknown
// branch / op -> RETRY with the reason as message. The call's one_phase
// flag becomes ctx.one_phase, as over HTTP.
//
// Trusting the caller (docs/security.md): three options, each off when
// empty, all for the HTTP listener. The Thrift listener authenticates no
// caller (neither TLS nor signatures): every peer that can connect to it is
// served and its calls reach handlers, so make the Thrift port reachable by
// coordinators only (it listens on http_host: bind that to a private
// address or firewall the port). All that bounds an unauthenticated peer
// there are the thrift_* limits below: it can hold up to
// thrift_max_connections connections (a thread each) for
// thrift_idle_timeout_ms each.
//   - tls_cert_file / tls_key_file: HTTPS only; http_url() is https://.
//     With tls_client_ca_file, a client must present a certificate that
//     chains to it (the coordinator's --participant-cert) or the TLS
//     handshake fails. Files are read once, by Start().
//   - signing_keys: every request must carry a Treaty-Signature header made
//     with one of the keys (the coordinator's --participant-hmac-key; several
//     during a rotation) over method, target, body and a timestamp at most
//     300 s from this machine's clock; else 401
//     {"error":{"code":"unauthenticated",...}}.
//   - allowed_client_cns (with tls_client_ca_file): the client certificate's
//     subject CN must be one of them; else 403 {"error":{"code":"forbidden"}}.
// These checks come before the input rules (401 before 403; only the body
// size limit, 413, comes first); a refused request never reaches a handler.
// Before a request is authenticated: the TLS handshake (with
// tls_client_ca_file, a client without a good certificate never gets to send
// one); then the request is read in full (at most max_body_bytes) and waits
// for a handler thread, on which the signature and CN are checked.
//
// Threads: HTTP I/O runs on `io_threads`; handlers run on a pool of
// `handler_threads` (Thrift: a thread per connection, up to
// thrift_max_connections, and at most `handler_threads` Thrift handlers at
// once; participant-sdk/README.md) and may block (database work). Handlers
// for different deliveries run concurrently, including duplicates of the
// same delivery: use a Barrier or PgResourceManager for exactly-once effects.
// Register handlers before Start(); registration after Start is not allowed.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "treaty/call_context.h"
#include "treaty/status.h"

namespace treaty {
inline namespace sdk {

enum class Vote { kYes, kNo, kReadOnly };

const char* VoteName(Vote vote);  // "yes", "no", "readonly"

// A 2PC (or TCC) branch's resource manager. Implementations must be
// thread-safe and idempotent (Commit/Abort are retried until they succeed).
// Commit must not answer OK unless the branch's work is committed: after a
// prepare, or, with ctx.one_phase, by doing the work itself now. A commit
// for a branch never prepared (and not one-phase) is a protocol violation:
// answer Conflict (409), which the coordinator never takes as committed.
class ResourceManager {
 public:
  virtual ~ResourceManager() = default;
  // Do the work and hold it ready to commit. kNo (or a BusinessFailure)
  // votes no; another error is transient (the coordinator retries prepare).
  virtual Result<Vote> Prepare(const CallContext& ctx) = 0;
  virtual Status Commit(const CallContext& ctx) = 0;
  // Also called for a branch that never prepared (presumed abort): succeed.
  virtual Status Abort(const CallContext& ctx) = 0;
};

using StepHandler = std::function<Status(const CallContext& ctx)>;
using PrepareHandler = std::function<Result<Vote>(const CallContext& ctx)>;

struct ParticipantServerOptions {
  std::string http_host = "127.0.0.1";
  uint16_t http_port = 0;  // 0 picks a free port; see http_port()
  // Also serve Thrift on http_host:thrift_port (0 picks a free port; see
  // thrift_port()). Unset: no Thrift.
  std::optional<uint16_t> thrift_port;
  int io_threads = 1;
  int handler_threads = 8;
  // Largest HTTP request body accepted, in bytes; a larger one is answered
  // 413 without reaching a handler (nor being read to the end).
  size_t max_body_bytes = 1 << 20;
  // Called after each delivery with the status the handler returned (for
  // logging and tests). Runs on a handler thread.
  std::function<void(const CallContext&, const Status&)> on_call;
  // HTTPS for the HTTP listener (PEM files; see "Trusting the caller").
  // tls_key_file and tls_client_ca_file need tls_cert_file.
  std::string tls_cert_file, tls_key_file, tls_client_ca_file;
  // Keys whose Treaty-Signature is accepted (each at least 32 bytes); empty:
  // requests need no signature.
  std::vector<std::string> signing_keys;
  // Client certificate CNs accepted (needs tls_client_ca_file); empty: any
  // certificate from the client CA.
  std::vector<std::string> allowed_client_cns;
  // The Thrift listener's limits (with thrift_port; each at least 1, else
  // Start() fails with InvalidArgument). They bound what any peer can hold
  // (see "Trusting the caller"; docs/protocol.md "Over Thrift").
  // Connections open at once, a thread each; one accepted over the cap is
  // closed at once (the coordinator's call fails and is retried).
  int thrift_max_connections = 512;
  // A connection on which nothing arrives this long while a request is
  // awaited (or that does not take its answer this long) is closed, in ms.
  int thrift_idle_timeout_ms = 60000;
  // A request frame must be complete this long after its first byte, else
  // its connection is closed, in ms. Time spent in the handler not counted.
  int thrift_request_timeout_ms = 30000;
};

class ParticipantServer {
 public:
  explicit ParticipantServer(ParticipantServerOptions options = {});
  ~ParticipantServer();  // Stop()
  ParticipantServer(const ParticipantServer&) = delete;
  ParticipantServer& operator=(const ParticipantServer&) = delete;

  // A saga step `name` with its action and compensation.
  void AddSagaStep(const std::string& name, StepHandler action, StepHandler compensate);
  // A 2PC branch `name` (shared: one manager may serve several names).
  void AddResourceManager(const std::string& name, std::shared_ptr<ResourceManager> rm);
  // The same, from three functions (TCC: try, confirm, cancel).
  void AddResourceManager(const std::string& name, PrepareHandler prepare, StepHandler commit,
                          StepHandler abort);

  // Binds and starts serving (HTTP, and Thrift if asked). Unavailable if an
  // address cannot be bound; InvalidArgument if the TLS files cannot be
  // used, a signing key is shorter than 32 bytes, a thrift_* limit is below
  // 1, or an option needs one that is missing; InvalidArgument when already
  // started or once stopped (a server is started at most once: make a new
  // one). Then nothing is served.
  Status Start();
  // Stops accepting and waits for the handlers already running: blocks
  // about as long as the longest of them. A request whose handler has not
  // started when Stop() begins (queued for a handler thread) never runs:
  // over Thrift it is answered RETRY, over HTTP 503 (or its connection is
  // closed); the coordinator takes either as transient and retries later or
  // at another replica. A running handler's answer reaches its caller before
  // the connections close. Idempotent.
  void Stop();

  uint16_t http_port() const;
  std::string http_url() const;  // "http://127.0.0.1:PORT" ("https://..." with TLS)
  std::string Url(const std::string& name, const std::string& op) const;
  // 0 / "" unless Thrift is being served.
  uint16_t thrift_port() const;
  std::string thrift_url() const;  // "thrift://127.0.0.1:PORT": any step or branch name

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdk
}  // namespace treaty
