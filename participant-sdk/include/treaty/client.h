#pragma once

// treaty::Client: submits sagas and drives 2PC transactions on a Treaty
// cluster over REST or Thrift (README "Submitting a saga", docs/2pc.md "Client calls").
//
//   treaty::Client client({.coordinators = {"http://10.0.0.1:7480", "http://10.0.0.2:7480"}});
//   treaty::SagaSpec saga;
//   saga.steps.push_back({.name = "flight", .action = ".../flight/action",
//                         .compensate = ".../flight/compensate", .payload = R"({"seat":"1A"})"});
//   auto r = client.SubmitSaga(saga, /*wait=*/true);
//   if (r.ok()) std::cout << r->gtid << " " << r->state << "\n";
//
// Fail-over (one loop for every transport; participant-sdk/README.md
// "Client: transports and fail-over"). The client
// is sticky: every call starts at the coordinator that answered last (the
// first one listed at the start) and moves on to the next in list order
// when that one cannot serve it, so load follows health, not round robin.
// What moves a call on is the typed outcome of an attempt, never the text
// of a message:
//
//   attempt's outcome                          the loop
//   not sent (refused, no route, TLS refused)  next coordinator
//   sent, no answer (time-out, reset, close),  next coordinator: the outcome
//     or an answer that is no coordinator's      is unknown, but every call
//                                                 below is safe to repeat
//   unavailable / timed_out / internal (503,   next coordinator (draining,
//     504, 500)                                  not ready, store down)
//   not_owner (409)                            next one, waiting for a takeover
//   conflict (409) to Enlist/Commit/Abort      from the transaction's owner,
//                                                or from every coordinator:
//                                                Conflict; else next one,
//                                                waiting for a takeover
//   conflict to SubmitSaga/Begin/Get           Conflict
//   invalid_argument, too_large (400, 413)     InvalidArgument
//   not_found (404)                            NotFound
//   unauthenticated (401), forbidden (403)     Unauthenticated / PermissionDenied
//                                                at once: the next coordinator
//                                                would refuse the same credentials
//
// Bounds: at most `max_attempts` attempts per call, each bounded by
// `request_timeout_ms` (a waiting SubmitSaga adds the coordinator's hold:
// `wait_ms` over REST, which sends it as `wait_timeout_ms`; over Thrift,
// which cannot send it, max(`wait_ms`, 30 s), treatyd's default hold); after
// every full round over the list the loop sleeps `backoff_ms`, doubling up
// to 5 s. While a coordinator has said that another one owns the 2PC
// transaction, the loop goes on past `max_attempts` until
// `failover_timeout_ms` has passed since the call started (the owner's
// lease must run out and another coordinator take it over; with
// treatyd's defaults that takes a few seconds), then answers Unavailable.
// Unavailable names the last failure when no coordinator answered.
//
// Re-sending after an unknown outcome. Every call carries a gtid and the
// coordinators de-duplicate by it, so each call is safe to send again:
//   SubmitSaga  the client makes the gtid before the first attempt (when
//               the spec has none), so every attempt carries the same one;
//               the same gtid with the same body answers the existing saga
//               (which ran once), another body Conflict.
//   Begin       the same gtid with the same options answers the existing
//               transaction.
//   Enlist      the same branch name with the same spec is "enlisted again
//               (same spec; no change)".
//   Commit      a repeated commit answers once the decision is durable,
//   Abort       a repeated abort likewise; neither acts twice. When an
//               earlier attempt's answer was lost and the transaction has
//               finished meanwhile, the coordinator answers the repeat with
//               Conflict ("already COMMITTED"); the client then reads the
//               state and answers it as the lost attempt would have
//               (Commit: COMMITTED/COMMITTING/ABORTED/ABORTING; Abort:
//               ABORTED/ABORTING; an Abort finding it committed stays Conflict).
//   Get         reads only.
// A 2PC transaction is driven by the coordinator that began it: Enlist,
// Commit and Abort go to that one first (the client remembers which
// answered Begin) and, when it is gone, keep trying the others, which
// refuse with Conflict until one takes the transaction over.
//
// Connections stay open between calls (HTTP/1.1 keep-alive; a Thrift
// connection stays open and authenticated): up to `keepalive_connections`
// idle connections per coordinator, each closed after `keepalive_idle_ms`
// unused; one the coordinator closed is noticed before reuse and replaced
// by a fresh one.
//
// Transport per coordinator address: "http://host:port" speaks REST,
// "https://host:port" REST over TLS (the coordinator's certificate checked
// against ClientOptions::ca_file and its host name),
// "thrift://host:port" speaks CoordinatorService (idl/coordinator.thrift;
// framed, binary; treatyd's --thrift address), "thrifts://host:port" the
// same over TLS (treatyd started with --tls-cert; checked as https://); all
// may be mixed in one list. A certificate that is refused ("the server's
// certificate was refused: certificate has expired") or a TLS connection the
// coordinator refuses (no client certificate under --tls-client-ca) never
// reached it: the next coordinator is tried, and the call answers
// Unavailable naming why when none accepts. Same calls, answers and
// fail-over either way (Thrift's typed exceptions stand for the codes
// above: InvalidRequest invalid_argument, NotFound, Conflict (conflict, or
// not_owner when its `code` says so; an older coordinator sends no code:
// conflict), Unavailable, Unauthenticated, Forbidden).
// Input rules (docs/input-rules.md): a gtid must be an identifier (1..128
// bytes of printable ASCII other than '/', '?', '#', '%', '\\'), and a
// payload that is JSON may nest at most 64 levels; else InvalidArgument
// before anything is sent. A coordinator's answer is untrusted too: a 2xx
// whose body is not a JSON object (not JSON, ill-formed UTF-8, nested
// deeper than 64 levels) counts as a failed attempt (the next coordinator
// is tried; Unavailable says why when none answers properly), and error
// messages are cut to 200 bytes of valid UTF-8. Every message a Status of
// the client carries from outside (a coordinator's message, a connection
// error) has its control characters escaped as in log lines (\n, \xNN;
// docs/input-rules.md "Text"), so it is safe to log as it is.
// Thread-safe (calls from many threads share the connection pools, each
// call on its own connection); every call blocks, at most as the bounds
// above allow.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "treaty/status.h"

namespace treaty {
inline namespace sdk {

struct ClientOptions {
  std::vector<std::string> coordinators = {"http://127.0.0.1:7480"};
  int request_timeout_ms = 10000;   // per request (a waiting submit adds its own wait)
  int max_attempts = 6;             // tries across coordinators per call
  int backoff_ms = 100;             // between full rounds over the list, doubling up to 5 s
  int failover_timeout_ms = 20000;  // 2PC: how long to wait for a takeover of a dead owner
  // Authentication (docs/security.md): a bearer token sent with every call
  // (REST: "Authorization: Bearer TOKEN"; Thrift: authenticate(TOKEN) once
  // per connection). Empty: none. A coordinator that refuses it answers
  // Unauthenticated (401) or PermissionDenied (403); neither is retried on
  // another coordinator.
  std::string token;
  // TLS to "https://" and "thrifts://" coordinators: the CA bundle that
  // signs them (empty: the system's trust store) and an optional client
  // certificate and key (PEM files) for coordinators that require one
  // (--tls-client-ca).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Keep-alive: idle connections kept open per coordinator (0: a fresh
  // connection per call), and how long one may stay unused before it is
  // closed (below treatyd's 60 s idle limit, so the client closes first).
  int keepalive_connections = 4;
  int keepalive_idle_ms = 30000;
};

struct StepRetry {
  int max_attempts = 0;  // 0: the coordinator's default
  int initial_backoff_ms = 0;
  int max_backoff_ms = 0;
};

struct SagaStepSpec {
  std::string name;
  std::string action;              // URL
  std::string compensate;          // URL
  std::string payload = "null";    // JSON text
  std::vector<std::string> after;  // with SagaSpec::concurrent
  int64_t timeout_ms = 0;          // 0: default
  StepRetry retry;
};

// W3C Trace Context (docs/api.md, POST /v1/sagas "Headers") to continue in
// the coordinator's calls to participants: the same trace id and flags, a new
// span id per call. Both "" (the default): the coordinator starts a trace.
// Inside a participant handler, CallContext::traceparent passes the caller's
// trace on. Each value: printable ASCII, traceparent at most 128 bytes and
// tracestate at most 512 (else InvalidArgument naming it); a value that is
// printable but not a valid traceparent is ignored by the coordinator, which
// then starts a trace of its own (never an error).
struct TraceContext {
  std::string traceparent;
  std::string tracestate;
};

struct SagaSpec {
  std::string gtid;  // "" = the client makes one
  int64_t timeout_ms = 0;
  bool concurrent = false;
  std::vector<SagaStepSpec> steps;
  TraceContext trace;  // REST: the traceparent/tracestate headers; Thrift: SagaRequest fields
};

struct BranchSpec {
  std::string name;
  std::string prepare, commit, abort;  // URLs
  std::string payload = "null";        // JSON text
  // The participant supports one-phase commit (enlistment field
  // "one_phase"): when this is the transaction's only branch, the coordinator
  // skips the prepare and sends one commit flagged one_phase, which must do
  // the whole work (CallContext::one_phase; PgResourceManager does). Default:
  // prepare, then commit, also for a single branch.
  bool one_phase = false;
};

// What a coordinator answered about a transaction.
struct TxnStatus {
  std::string gtid;
  std::string state;  // RUNNING, COMMITTED, ACTIVE, COMMITTING, ABORTING, ABORTED, ...
  bool terminal() const { return state == "COMMITTED" || state == "ABORTED"; }
};

struct BranchInfo {
  std::string name;
  std::string state;
  int64_t attempts = 0;
  std::string last_error;
};

struct TransactionInfo {
  std::string gtid, kind, state;
  bool needs_attention = false;
  std::vector<BranchInfo> branches;
  std::string json;  // the coordinator's whole answer (history included)
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // POST /v1/sagas. With `wait`, answers once the saga is terminal, or with
  // its current state when `wait_ms` passes first (over Thrift, which cannot
  // tell the coordinator `wait_ms`, when treatyd's hold of up to 30 s ends).
  // Conflict when the gtid was used with another body.
  Result<TxnStatus> SubmitSaga(const SagaSpec& saga, bool wait = false, int wait_ms = 30000);

  // 2PC: begin (ACTIVE), enlist branches, then commit or abort. Commit
  // answers once the decision is durable (COMMITTED/COMMITTING or
  // ABORTED/ABORTING). Every branch is prepared before it is committed,
  // also a single one, unless it declared BranchSpec::one_phase (Begin
  // sends "one_phase": false, so a coordinator of an older release does
  // not commit a single branch in one phase either).
  // `trace`: as SagaSpec::trace, for the branches' prepare/commit/abort calls.
  Result<TxnStatus> Begin(const std::string& gtid = "", int64_t timeout_ms = 0,
                          const TraceContext& trace = {});
  Status Enlist(const std::string& gtid, const BranchSpec& branch);
  Result<TxnStatus> Commit(const std::string& gtid);
  Result<TxnStatus> Abort(const std::string& gtid);

  // GET /v1/transactions/{gtid}; NotFound if no coordinator knows it.
  Result<TransactionInfo> Get(const std::string& gtid);
  // Polls until the transaction is terminal; TimedOut after `timeout_ms`.
  Result<TxnStatus> WaitForOutcome(const std::string& gtid, int timeout_ms = 30000);

  // A fresh random (version 4) UUID, as used for gtids.
  static std::string NewGtid();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdk
}  // namespace treaty
