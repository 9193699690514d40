#include "thrift/coordinator_handler.h"

#include "thrift/rpc_convert.h"

#include <future>
#include <memory>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "api/operator_input.h"
#include "common/json_input.h"
#include "common/text.h"
#include "common/trace_context.h"
#include "engine/states.h"
#include "engine/two_phase_spec.h"
#include "store/list_cursor.h"

namespace treaty {
namespace {

using nlohmann::json;

// The caller's name for the 2PC client binding (TxnService::Begin2pc):
// empty with authentication off.
std::string ClientName(const Identity& who) {
  return who.method == AuthMethod::kNone ? std::string() : who.name;
}

void CheckGtid(const std::string& gtid, const SpecLimits& limits) {
  if (auto s = ValidateGtid(gtid, limits.max_gtid_length); !s.ok()) ThrowStatus(s);
}

// The audit record of an operator action, before the caller and the result are known.
AuditRecord ActionRecord(std::string action, std::string gtid, std::string reason,
                         std::string branch = "", std::string detail = "") {
  AuditRecord r;
  r.action = std::move(action);
  r.gtid = std::move(gtid);
  r.reason = std::move(reason);
  r.branch = std::move(branch);
  r.detail = std::move(detail);
  return r;
}

// What an audit record may hold of a caller's string (the audit log escapes
// it; this bounds its length before any check has run).
std::string AuditText(const std::string& s) { return Excerpt(s, 1024); }

}  // namespace

CoordinatorHandler::CoordinatorHandler(ServiceProvider service, CoordinatorHandlerOptions options,
                                       std::shared_ptr<ThriftConnection> connection)
    : service_(std::move(service)),
      options_(std::move(options)),
      connection_(connection ? std::move(connection) : std::make_shared<ThriftConnection>()) {}

bool CoordinatorHandler::AuthenticateCertificate(std::string_view common_name) {
  if (!options_.auth || common_name.empty()) return false;
  auto identity = options_.auth->ForCertificate(common_name);
  if (!identity) return false;
  connection_->identity = std::move(*identity);
  return true;
}

void CoordinatorHandler::authenticate(const std::string& token) {
  Guarded("authenticate", [&] {
    if (!options_.auth) return;  // open coordinator: a token changes nothing
    if (auto identity = options_.auth->ForToken(token)) {
      connection_->identity = std::move(*identity);
      return;
    }
    connection_->identity.reset();
    if (++connection_->failed_authentications >= kMaxFailedAuthentications) {
      connection_->close = true;
      ThrowStatus(Status::Unauthenticated("invalid token; the connection is closed after " +
                                          std::to_string(kMaxFailedAuthentications) +
                                          " failed attempts"));
    }
    ThrowStatus(Status::Unauthenticated("invalid token"));
  });
}

Identity CoordinatorHandler::Require(Role role, const char* method) {
  if (!options_.auth) return Identity{"anonymous", RoleSet::All(), AuthMethod::kNone};
  std::optional<Identity>& bound = connection_->identity;
  if (!bound) {
    ThrowStatus(Status::Unauthenticated(
        "authentication required: call authenticate(token) first, or connect with a client "
        "certificate the coordinator knows"));
  }
  // The tokens file may have been reloaded since the connection authenticated.
  auto now = options_.auth->ForName(bound->name);
  if (!now) {
    const std::string name = bound->name;
    bound.reset();
    ThrowStatus(Status::Unauthenticated("the client '" + name +
                                        "' is no longer known to this coordinator; "
                                        "authenticate again"));
  }
  bound->roles = now->roles;
  if (!bound->roles.Has(role)) {
    ThrowStatus(Status::PermissionDenied("'" + bound->name + "' may not call " + method +
                                         ": it needs the '" + RoleName(role) + "' role"));
  }
  return *bound;
}

TxnService* CoordinatorHandler::Service() const {
  TxnService* s = service_();
  if (!s) ThrowStatus(Status::Unavailable("the coordinator is starting; retry"));
  return s;
}

TxnQueries* CoordinatorHandler::Queries() const {
  if (!options_.queries) ThrowStatus(Status::Unavailable("the coordinator is starting; retry"));
  return options_.queries;
}

void CoordinatorHandler::CheckAcceptsNewWork() const {
  if (options_.readiness == nullptr) return;
  // As in REST: answer now rather than after the log writer's retry window
  // (the client retries; the gtid makes that safe).
  if (Status s = options_.readiness->AdmitNewWork(); !s.ok()) ThrowStatus(s);
}

void CoordinatorHandler::submitSaga(rpc::TxnStatus& out, const rpc::SagaRequest& req) {
  Guarded("submitSaga", [&] {
    Require(Role::kSubmit, "submitSaga");
    CheckAcceptsNewWork();
    // Every string is checked by the REST parser: identifiers
    // (ValidateIdentifier), URLs (ParseEndpoint), payloads (ParseJson above).
    auto spec = ParseSagaSpec(SagaJson(req), options_.limits);
    if (!spec.ok()) ThrowStatus(spec.status());
    spec->trace = TraceFromHeaders(req.__isset.traceparent ? req.traceparent : "",
                                   req.__isset.tracestate ? req.tracestate : "");
    const bool wait = req.__isset.wait && req.wait;
    FillStatus(out, Await<SubmitResult>(options_.call_timeout_ms, [&](auto done) {
                 Service()->SubmitSaga(std::move(*spec), wait, 0, std::move(done));
               }));
  });
}

void CoordinatorHandler::begin2pc(rpc::TxnStatus& out, const rpc::Begin2pcRequest& req) {
  Guarded("begin2pc", [&] {
    const Identity who = Require(Role::kSubmit, "begin2pc");
    CheckAcceptsNewWork();
    json body = json::object();
    if (req.__isset.gtid) body["gtid"] = req.gtid;
    if (req.__isset.timeout_ms) body["timeout_ms"] = req.timeout_ms;
    if (req.__isset.one_phase) body["one_phase"] = req.one_phase;
    TwoPhaseLimits limits;
    limits.max_gtid_length = options_.limits.max_gtid_length;
    auto spec = ParseTwoPhaseSpec(body, limits);
    if (!spec.ok()) ThrowStatus(spec.status());
    spec->client = ClientName(who);
    spec->trace = TraceFromHeaders(req.__isset.traceparent ? req.traceparent : "",
                                   req.__isset.tracestate ? req.tracestate : "");
    FillStatus(out, Await<SubmitResult>(options_.call_timeout_ms, [&](auto done) {
                 Service()->Begin2pc(std::move(*spec), std::move(done));
               }));
  });
}

void CoordinatorHandler::registerBranch(rpc::TxnStatus& out, const std::string& gtid,
                                        const rpc::Branch2pc& branch) {
  Guarded("registerBranch", [&] {
    const Identity who = Require(Role::kSubmit, "registerBranch");
    CheckGtid(gtid, options_.limits);
    json body = {{"name", branch.name},
                 {"prepare", branch.prepare},
                 {"commit", branch.commit},
                 {"abort", branch.abort}};
    if (branch.__isset.payload) body["payload"] = PayloadJson(branch.payload, "'payload'");
    if (branch.__isset.timeout_ms) body["timeout_ms"] = branch.timeout_ms;
    if (branch.__isset.one_phase) body["one_phase"] = branch.one_phase;
    TwoPhaseLimits limits;
    limits.max_name_length = options_.limits.max_name_length;
    auto spec = ParseBranchSpec(body, limits);
    if (!spec.ok()) ThrowStatus(spec.status());
    FillStatus(out, Await<SubmitResult>(options_.call_timeout_ms, [&](auto done) {
                 Service()->RegisterBranch(gtid, std::move(*spec), ClientName(who),
                                           std::move(done));
               }));
  });
}

void CoordinatorHandler::commit2pc(rpc::TxnStatus& out, const std::string& gtid) {
  Guarded("commit2pc", [&] {
    const Identity who = Require(Role::kSubmit, "commit2pc");
    CheckGtid(gtid, options_.limits);
    FillStatus(out, Await<SubmitResult>(options_.call_timeout_ms, [&](auto done) {
                 Service()->Commit2pc(gtid, ClientName(who), std::move(done));
               }));
  });
}

void CoordinatorHandler::abort2pc(rpc::TxnStatus& out, const std::string& gtid) {
  Guarded("abort2pc", [&] {
    const Identity who = Require(Role::kSubmit, "abort2pc");
    CheckGtid(gtid, options_.limits);
    FillStatus(out, Await<SubmitResult>(options_.call_timeout_ms, [&](auto done) {
                 Service()->Abort2pc(gtid, ClientName(who), std::move(done));
               }));
  });
}

void CoordinatorHandler::getTransaction(rpc::Transaction& out, const std::string& gtid) {
  Guarded("getTransaction", [&] {
    Require(Role::kRead, "getTransaction");
    CheckGtid(gtid, options_.limits);
    TxnDetail d = Await<TxnDetail>(options_.call_timeout_ms,
                                   [&](auto done) { Queries()->Get(gtid, true, std::move(done)); });
    FillDetail(out, d);
  });
}

void CoordinatorHandler::listTransactions(rpc::TxnPage& out, const rpc::ListRequest& req) {
  Guarded("listTransactions", [&] {
    Require(Role::kRead, "listTransactions");
    ListFilter f;
    if (req.__isset.state && !req.state.empty()) {
      if (auto s = ValidateIdentifier(req.state, "'state'"); !s.ok()) ThrowStatus(s);
      f.state = req.state;
    }
    if (req.__isset.kind && !req.kind.empty()) {
      if (!ParseTxnKind(req.kind)) {
        ThrowStatus(Status::InvalidArgument("'kind' must be saga or 2pc"));
      }
      f.kind = req.kind;
    }
    if (req.__isset.needs_attention) f.needs_attention = req.needs_attention;
    if (req.__isset.paused) f.paused = req.paused;
    if (req.__isset.limit) {
      if (req.limit < 1 || req.limit > options_.max_list_limit) {
        ThrowStatus(Status::InvalidArgument("'limit' must be from 1 to " +
                                            std::to_string(options_.max_list_limit)));
      }
      f.limit = req.limit;
    }
    if (req.__isset.cursor && !req.cursor.empty()) {
      // Exactly what a previous page returned, as in REST.
      if (!DecodeListCursor(req.cursor).ok()) {
        ThrowStatus(Status::InvalidArgument("'cursor' must be a next_cursor returned earlier"));
      }
      f.cursor = req.cursor;
    }
    TxnPage page = Await<TxnPage>(options_.call_timeout_ms,
                                  [&](auto done) { Queries()->List(f, std::move(done)); });
    for (const auto& row : page.items) {
      rpc::Transaction t;
      FillRow(t, row);
      out.items.push_back(std::move(t));
    }
    out.next_cursor = page.next;
  });
}

void CoordinatorHandler::RunOperatorAction(const char* method, AuditRecord record,
                                           rpc::TxnStatus& out, bool reason_required,
                                           const std::function<void()>& check,
                                           const OperatorStart& start) {
  const std::string gtid = record.gtid;
  const std::string reason = record.reason;
  // The caller as far as known before the checks (a refused caller too).
  const std::optional<Identity>& bound = connection_->identity;
  record.actor = !options_.auth ? "anonymous" : bound ? bound->name : "(unauthenticated)";
  record.method = !options_.auth ? "none" : bound ? AuthMethodName(bound->method) : "none";
  record.peer = connection_->peer.empty() ? "thrift" : "thrift " + connection_->peer;
  record.gtid = AuditText(record.gtid);
  record.branch = AuditText(record.branch);
  record.detail = AuditText(record.detail);
  record.reason = AuditText(record.reason);
  const auto audit = [&](int result) {
    if (!options_.audit) return;
    record.result = result;
    options_.audit->Record(record);
  };
  WithResult(audit, [&] {
    Guarded(method, [&] {
      const Identity who = Require(Role::kOperate, method);
      record.actor = who.name;
      record.method = AuthMethodName(who.method);
      CheckGtid(gtid, options_.limits);
      if (check) check();
      if (auto s = CheckReason(reason, reason_required); !s.ok()) ThrowStatus(s);
      FillOperatorStatus(
          out, Await<SubmitResult>(options_.call_timeout_ms, [&](auto done) {
            start(Service(), OperatorRequest{who.name + "@thrift", reason}, std::move(done));
          }));
    });
  });
}

void CoordinatorHandler::retryTransaction(rpc::TxnStatus& out, const std::string& gtid,
                                          const std::string& reason) {
  RunOperatorAction("retryTransaction", ActionRecord("retry", gtid, reason), out, false, {},
                    [&](TxnService* svc, auto who, auto done) {
                      svc->Retry(gtid, std::move(who), std::move(done));
                    });
}

void CoordinatorHandler::abortTransaction(rpc::TxnStatus& out, const std::string& gtid,
                                          const std::string& reason) {
  RunOperatorAction("abortTransaction", ActionRecord("abort", gtid, reason), out, false, {},
                    [&](TxnService* svc, auto who, auto done) {
                      svc->ForceAbort(gtid, std::move(who), std::move(done));
                    });
}

void CoordinatorHandler::pauseTransaction(rpc::TxnStatus& out, const std::string& gtid,
                                          const std::string& reason) {
  RunOperatorAction("pauseTransaction", ActionRecord("pause", gtid, reason), out, false, {},
                    [&](TxnService* svc, auto who, auto done) {
                      svc->Pause(gtid, std::move(who), std::move(done));
                    });
}

void CoordinatorHandler::resumeTransaction(rpc::TxnStatus& out, const std::string& gtid,
                                           const std::string& reason) {
  RunOperatorAction("resumeTransaction", ActionRecord("resume", gtid, reason), out, false, {},
                    [&](TxnService* svc, auto who, auto done) {
                      svc->Resume(gtid, std::move(who), std::move(done));
                    });
}

void CoordinatorHandler::resolveBranch(rpc::TxnStatus& out, const std::string& gtid,
                                       const std::string& branch, const std::string& outcome,
                                       const std::string& reason) {
  const auto check = [&] {
    if (auto s = CheckBranchName(branch, options_.limits.max_name_length); !s.ok()) ThrowStatus(s);
    if (auto s = CheckOutcome(outcome); !s.ok()) ThrowStatus(s);
  };
  RunOperatorAction("resolveBranch", ActionRecord("resolve", gtid, reason, branch, outcome), out,
                    true, check, [&](TxnService* svc, auto who, auto done) {
                      svc->Resolve(gtid, branch, outcome, std::move(who), std::move(done));
                    });
}

}  // namespace treaty
