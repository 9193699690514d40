// Treaty client API over Thrift: CoordinatorService mirrors the REST API
// (docs/api.md, docs/2pc.md "Client calls", docs/input-rules.md).
//
// Served by treatyd on --thrift HOST:PORT (default 127.0.0.1:7481) with the
// framed transport and the binary protocol; over TLS when treatyd has
// --tls-cert (a client certificate is then required with --tls-client-ca).
//
// Authentication (docs/security.md): with --auth-tokens, a connection first
// calls authenticate(token), or connects with a verified client certificate
// whose subject CN the tokens file names; until then every other method
// throws Unauthenticated. Each method needs the role of the REST route it
// mirrors, else Forbidden: submit for submitSaga, begin2pc, registerBranch,
// commit2pc, abort2pc; read for getTransaction, listTransactions; operate
// for the operator actions. A client that sees neither exception in its
// generated code (built from an older IDL) gets a TApplicationException.
//
// Versioning: this is version 1 (API_VERSION). Changes are additive only:
// new optional fields get new ids, new methods and exceptions are appended;
// field ids and names are never reused or renamed. A breaking change would
// be a new service (CoordinatorServiceV2) served beside this one.
//
// Conventions: struct fields are named as the REST JSON fields; `payload`
// is JSON text in a string ("null" or absent when none); times are
// milliseconds; states are the REST strings (ACTIVE, PREPARING, COMMITTING,
// COMMITTED, ABORTING, ABORTED, RUNNING, COMPENSATING).

namespace cpp treaty.rpc
namespace py treaty.coordinator
namespace java io.treaty.coordinator
namespace go treaty

const i32 API_VERSION = 1

// --- Errors (REST: 400, 404, 409, 503; 401 and 403 below) ---

// The request is malformed or out of range; retrying it unchanged will not help.
exception InvalidRequest {
  1: string message
}

// No transaction with that gtid (for a 2PC participant: presume aborted).
exception NotFound {
  1: string message
}

// The request contradicts what is logged: a gtid reused with a different
// body, enlisting after commit started, aborting after the commit decision,
// or a transaction driven by another coordinator.
//
// `code` tells two cases apart, as REST's 409 error codes do (docs/api.md
// "Errors"): "conflict" for all of the above; "not_owner" when this
// coordinator lost the transaction to a peer while acting on it (what it
// did may or may not stand: retry the same call on any coordinator, which
// answers once a peer has taken the transaction over). Absent from an older
// coordinator: read it as "conflict". Clients must read an unknown value as
// "conflict" too.
exception Conflict {
  1: string message
  2: optional string code
}

// The coordinator cannot serve now (log store down, draining); retry, on
// another coordinator if you have one.
exception Unavailable {
  1: string message
}

// Authentication is on (--auth-tokens) and this connection has no
// identity: call authenticate(token) first, or connect with a client
// certificate the coordinator's tokens file names (REST: 401).
exception Unauthenticated {
  1: string message
}

// The connection's identity lacks the role the method needs; the message
// names it (REST: 403).
exception Forbidden {
  1: string message
}

// --- Sagas ---

struct RetryPolicy {
  1: optional i32 max_attempts
  2: optional i64 initial_backoff_ms
  3: optional i64 max_backoff_ms
}

struct SagaStep {
  1: required string name
  2: required string action        // http://... or thrift://host:port
  3: required string compensate
  4: optional string payload       // JSON text
  5: optional list<string> after   // with concurrent: names this step waits for
  6: optional i64 timeout_ms
  7: optional RetryPolicy retry_policy  // REST "retry" (a reserved word in Thrift)
}

struct SagaRequest {
  1: optional string gtid          // absent: the coordinator makes a UUID
  2: required list<SagaStep> steps
  3: optional i64 timeout_ms
  4: optional bool concurrent
  5: optional bool wait            // answer once terminal (bounded by the server)
  // W3C trace context (REST: the traceparent and tracestate headers): a
  // valid traceparent makes every participant call carry its trace id and
  // flags; absent or invalid, a new trace is started (never an error).
  6: optional string traceparent
  7: optional string tracestate
}

// --- 2PC ---

struct Begin2pcRequest {
  1: optional string gtid
  2: optional i64 timeout_ms       // default 60000: undecided after this -> aborted
  // Only false (or absent) is accepted: one-phase commit is declared per
  // branch at enlistment (Branch2pc.one_phase); true is InvalidRequest.
  3: optional bool one_phase
  // W3C trace context, as in SagaRequest.
  4: optional string traceparent
  5: optional string tracestate
}

struct Branch2pc {
  1: required string name
  2: required string prepare
  3: required string commit
  4: required string abort
  5: optional string payload       // JSON text
  6: optional i64 timeout_ms       // per call
  // The participant supports one-phase commit: used only when this is the
  // transaction's single branch at commit. Default false (full two-phase).
  7: optional bool one_phase
}

// --- Answers ---

struct TxnStatus {
  1: string gtid
  2: string state
  3: optional bool paused          // operator actions: an operator paused its calls
  4: optional bool finished        // operator actions: terminal at answer time
}

struct BranchInfo {
  1: string name
  2: i32 idx
  3: string state
  4: i32 attempts
  5: string last_error
  6: i64 next_attempt_at_ms
  7: string spec                   // JSON: URLs and payload
  8: i64 updated_at_ms
}

struct TxnEvent {
  1: i64 id
  2: i64 at_ms
  3: string branch
  4: string type
  5: string detail
  // Repeats collapsed into this event (retries of one branch) and when the
  // first happened; at_ms is the latest.
  6: optional i64 count
  7: optional i64 first_at_ms
}

struct Transaction {
  1: string gtid
  2: string kind                   // saga | 2pc
  3: string state
  4: string owner
  5: bool needs_attention
  6: i64 deadline_ms
  7: i32 attempts
  8: i64 created_at_ms
  9: i64 updated_at_ms             // last change of state, owner or flags; a step's
                                   // progress shows in its branch's updated_at_ms
  10: string spec                  // JSON of the submission
  11: list<BranchInfo> branches    // empty in listTransactions
  12: list<TxnEvent> history       // empty in listTransactions
  13: optional bool paused         // an operator paused its participant calls
  14: optional string last_error   // the latest failed call's excerpt; "" once finished
}

struct ListRequest {
  1: optional string state
  2: optional string kind
  3: optional bool needs_attention
  4: optional i32 limit
  5: optional string cursor
  6: optional bool paused
}

struct TxnPage {
  1: list<Transaction> items
  2: string next_cursor            // REST "next" (reserved in Thrift); empty: no further page
}

service CoordinatorService {
  // POST /v1/sagas
  TxnStatus submitSaga(1: SagaRequest req)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // POST /v1/2pc
  TxnStatus begin2pc(1: Begin2pcRequest req)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // POST /v1/2pc/{gtid}/branches
  TxnStatus registerBranch(1: string gtid, 2: Branch2pc branch)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // POST /v1/2pc/{gtid}/commit: the decision, once durable
  TxnStatus commit2pc(1: string gtid)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // POST /v1/2pc/{gtid}/abort
  TxnStatus abort2pc(1: string gtid)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // GET /v1/transactions/{gtid}
  Transaction getTransaction(1: string gtid)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // GET /v1/transactions
  TxnPage listTransactions(1: ListRequest req)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // Operator actions (docs/operations.md "Operator actions"). `reason`:
  // free text, valid UTF-8 without control characters, at most 1024 bytes;
  // optional ("" none) except for resolveBranch. Conflict says why an action
  // cannot apply in the transaction's current state.
  //
  // POST /v1/transactions/{gtid}/retry
  TxnStatus retryTransaction(1: string gtid, 2: string reason)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // POST /v1/transactions/{gtid}/abort (operator force abort)
  TxnStatus abortTransaction(1: string gtid, 2: string reason)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // POST /v1/transactions/{gtid}/pause
  TxnStatus pauseTransaction(1: string gtid, 2: string reason)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // POST /v1/transactions/{gtid}/resume
  TxnStatus resumeTransaction(1: string gtid, 2: string reason)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // POST /v1/transactions/{gtid}/branches/{branch}/resolve: the operator
  // fixed the branch out of band; outcome COMPENSATED, COMMITTED or ABORTED;
  // reason required.
  TxnStatus resolveBranch(1: string gtid, 2: string branch, 3: string outcome, 4: string reason)
      throws (1: InvalidRequest invalid, 2: NotFound not_found, 3: Conflict conflict,
              4: Unavailable unavailable, 5: Unauthenticated unauthenticated,
              6: Forbidden forbidden)
  // Binds the identity whose bearer token is `token` to this connection
  // (REST: "Authorization: Bearer TOKEN"); every later call on the
  // connection runs as it. A wrong token unbinds any identity and throws
  // Unauthenticated; after 5 wrong tokens the server closes the connection.
  // With authentication off it succeeds and changes nothing.
  void authenticate(1: string token) throws (5: Unauthenticated unauthenticated)
}
