#pragma once

// CoordinatorHandler: the Thrift CoordinatorService (idl/coordinator.thrift)
// as a thin adapter over TxnService (work) and TxnQueries (reads), like
// RestApi is for REST. Requests are
// converted to the REST JSON shapes and validated by the same parsers
// (ParseSagaSpec, ParseTwoPhaseSpec, ParseBranchSpec), so both front ends
// accept and refuse exactly the same things.
//
// Admission: the REST front end's rule, asked of the same Readiness
// (engine/readiness.h, AdmitNewWork): new work (submitSaga, begin2pc) is
// refused with Unavailable, before anything is parsed or logged, while the
// coordinator is draining or while the log store is known to be down or
// stalled. Reads and calls on existing transactions still go through.
//
// Errors: every Status is turned into a typed Thrift exception in one place
// (ThrowStatus): InvalidArgument/TooLarge -> InvalidRequest, NotFound ->
// NotFound, Conflict/LostOwnership -> Conflict, Unauthenticated ->
// Unauthenticated, PermissionDenied -> Forbidden, everything else ->
// Unavailable. Nothing else escapes a handler method: an unexpected
// exception (a bug) becomes Unavailable and one error log line.
//
// Input rules (docs/input-rules.md): every string from Thrift is checked at
// this boundary by the REST parsers: gtids, step and branch names by the
// identifier rules (ValidateIdentifier), URLs by ParseEndpoint, payloads by
// ParseJson (valid UTF-8, depth <= 32), a list cursor by DecodeListCursor.
// A string that breaks them is InvalidRequest naming the field, whose
// message never echoes the bytes.
//
// Authentication and roles (docs/security.md): a handler serves one
// connection (ThriftServer makes one per connection) and keeps that
// connection's ThriftConnection. With options.auth null every call runs as
// Identity{"anonymous", every role} and authenticate() succeeds doing
// nothing. Otherwise the connection gets an identity from authenticate(token)
// (Authenticator::ForToken) or, over mTLS, from the verified client
// certificate's subject CN (AuthenticateCertificate, called by the server
// after the handshake). Every method then checks, before anything else (an
// unauthenticated caller learns nothing, not even that the coordinator is
// draining):
//   - no identity: Unauthenticated ("call authenticate(token) first");
//   - the identity lacks the method's role: Forbidden naming the role. The
//     roles are those of the REST routes the methods mirror: submit for
//     submitSaga, begin2pc, registerBranch, commit2pc, abort2pc; read for
//     getTransaction, listTransactions; operate for the operator actions.
// The identity's roles are re-read from the tokens file at every call
// (Authenticator::ForName): a client a reload removed loses access on its
// open connections too (Unauthenticated). A wrong token unbinds the
// identity and counts as a failure; after kMaxFailedAuthentications
// failures on one connection ThriftConnection::close is set and the server
// closes the connection once that answer is written (brute force).
//
// Operator actions run as "<name>@thrift" (the actor of their events), and
// each one, allowed or refused, writes one AuditRecord to options.audit
// (when set): actor and method of the identity ("(unauthenticated)" and
// "none" without one), peer "thrift IP:PORT", the action, gtid, branch,
// outcome and reason, and as result the status REST would have answered
// (200, 400, 401, 403, 404, 409, 503).
//
// Threading: one handler per connection; its methods run one at a time on
// that connection's thread and block (bounded by `call_timeout_ms`) until
// TxnService or TxnQueries answers; neither blocks them on I/O of its own. A handler made without a
// ThriftConnection owns one (tests).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "CoordinatorService.h"
#include "engine/readiness.h"
#include "engine/txn_queries.h"
#include "engine/txn_service.h"
#include "security/audit_log.h"
#include "security/authenticator.h"
#include "security/identity.h"

namespace treaty {

struct CoordinatorHandlerOptions {
  SpecLimits limits;
  int max_list_limit = 1000;
  int64_t call_timeout_ms = 60000;  // longest a worker waits for TxnService
  // Not owned, must outlive the handler: whether new work may be accepted
  // (Readiness::AdmitNewWork). Null: new work is never refused on that ground.
  const Readiness* readiness = nullptr;
  // Not owned, must outlive the handler: every read (getTransaction,
  // listTransactions). Null: reads fail with Unavailable.
  TxnQueries* queries = nullptr;
  // Null: authentication off (every connection may call every method, actor
  // "anonymous"). Else a connection calls authenticate(token) first, or
  // presents a client certificate whose CN the tokens file names.
  std::shared_ptr<Authenticator> auth;
  std::shared_ptr<AuditLog> audit;  // null: no audit records
};

// Failed authenticate() calls after which a connection is closed.
inline constexpr int kMaxFailedAuthentications = 5;

// The security state of one Thrift connection. Used by that connection's
// thread only.
struct ThriftConnection {
  std::string peer;                  // the client's "IP:PORT"; "" when unknown
  std::optional<Identity> identity;  // none: not authenticated (authentication on)
  int failed_authentications = 0;
  bool close = false;  // set by the handler: close the connection after this answer
};

class CoordinatorHandler : public rpc::CoordinatorServiceIf {
 public:
  // `service` returns the TxnService, or nullptr while the coordinator is
  // still starting (requests then fail with Unavailable). `connection`:
  // the connection this handler serves; null: a connection of its own.
  using ServiceProvider = std::function<TxnService*()>;
  CoordinatorHandler(ServiceProvider service, CoordinatorHandlerOptions options,
                     std::shared_ptr<ThriftConnection> connection = nullptr);

  // Binds the identity named by a verified client certificate's subject CN
  // (empty: none; nothing happens) when the tokens file names it, and
  // returns whether it did. Called once per connection, after the TLS
  // handshake, before the first call.
  bool AuthenticateCertificate(std::string_view common_name);

  void submitSaga(rpc::TxnStatus& out, const rpc::SagaRequest& req) override;
  void begin2pc(rpc::TxnStatus& out, const rpc::Begin2pcRequest& req) override;
  void registerBranch(rpc::TxnStatus& out, const std::string& gtid,
                      const rpc::Branch2pc& branch) override;
  void commit2pc(rpc::TxnStatus& out, const std::string& gtid) override;
  void abort2pc(rpc::TxnStatus& out, const std::string& gtid) override;
  void getTransaction(rpc::Transaction& out, const std::string& gtid) override;
  void listTransactions(rpc::TxnPage& out, const rpc::ListRequest& req) override;
  // Operator actions: the actor is "<identity name>@thrift"; reasons and
  // outcomes follow api/operator_input.h; each is audited (see above).
  void retryTransaction(rpc::TxnStatus& out, const std::string& gtid,
                        const std::string& reason) override;
  void abortTransaction(rpc::TxnStatus& out, const std::string& gtid,
                        const std::string& reason) override;
  void pauseTransaction(rpc::TxnStatus& out, const std::string& gtid,
                        const std::string& reason) override;
  void resumeTransaction(rpc::TxnStatus& out, const std::string& gtid,
                         const std::string& reason) override;
  void resolveBranch(rpc::TxnStatus& out, const std::string& gtid, const std::string& branch,
                     const std::string& outcome, const std::string& reason) override;
  void authenticate(const std::string& token) override;

 private:
  TxnService* Service() const;
  TxnQueries* Queries() const;
  // The caller's identity if it holds `role`; else throws Unauthenticated
  // or Forbidden (see Authentication and roles). `method` names the call.
  Identity Require(Role role, const char* method);
  // Throws Unavailable while new work must be refused (see Admission).
  void CheckAcceptsNewWork() const;
  // One operator action: checks the operate role, gtid and reason (and
  // `check`, more input checks, may be empty), runs `start` (a TxnService
  // operator action) as the caller and fills `out` with its answer; writes
  // the audit record whatever happens. `record` holds the action's fields.
  using OperatorStart =
      std::function<void(TxnService*, OperatorRequest, TxnService::Callback<SubmitResult>)>;
  void RunOperatorAction(const char* method, AuditRecord record, rpc::TxnStatus& out,
                         bool reason_required, const std::function<void()>& check,
                         const OperatorStart& start);

  ServiceProvider service_;
  CoordinatorHandlerOptions options_;
  std::shared_ptr<ThriftConnection> connection_;  // never null
};

}  // namespace treaty
