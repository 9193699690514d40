#include "thrift/rpc_convert.h"

#include "common/json_input.h"
#include "common/limits.h"

namespace treaty {

using nlohmann::json;

void ThrowStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kTooLarge: {
      rpc::InvalidRequest e;
      e.message = ToValidUtf8(s.message());
      throw e;
    }
    case StatusCode::kNotFound: {
      rpc::NotFound e;
      e.message = ToValidUtf8(s.message());
      throw e;
    }
    case StatusCode::kConflict:
    case StatusCode::kLostOwnership: {
      rpc::Conflict e;
      e.message = ToValidUtf8(s.message());
      e.__set_code(ErrorCodeName(s.code()));  // "conflict" or "not_owner", as over REST
      throw e;
    }
    case StatusCode::kUnauthenticated: {
      rpc::Unauthenticated e;
      e.message = ToValidUtf8(s.message());
      throw e;
    }
    case StatusCode::kPermissionDenied: {
      rpc::Forbidden e;
      e.message = ToValidUtf8(s.message());
      throw e;
    }
    default: {
      rpc::Unavailable e;
      e.message = ToValidUtf8(s.ToString());
      throw e;
    }
  }
}

json PayloadJson(const std::string& text, const std::string& field) {
  auto v = ParseJson(text, field, limits::kMaxPayloadDepth);
  if (!v.ok()) ThrowStatus(v.status());
  return std::move(v).value();
}

json SagaJson(const rpc::SagaRequest& req) {
  json body = json::object();
  if (req.__isset.gtid) body["gtid"] = req.gtid;
  if (req.__isset.timeout_ms) body["timeout_ms"] = req.timeout_ms;
  if (req.__isset.concurrent) body["concurrent"] = req.concurrent;
  json steps = json::array();
  for (size_t i = 0; i < req.steps.size(); ++i) {
    const auto& s = req.steps[i];
    json step = {{"name", s.name}, {"action", s.action}, {"compensate", s.compensate}};
    if (s.__isset.payload) {
      step["payload"] = PayloadJson(s.payload, "steps[" + std::to_string(i) + "].payload");
    }
    if (s.__isset.after) step["after"] = s.after;
    if (s.__isset.timeout_ms) step["timeout_ms"] = s.timeout_ms;
    if (s.__isset.retry_policy) {
      json retry = json::object();
      const auto& r = s.retry_policy;
      if (r.__isset.max_attempts) retry["max_attempts"] = r.max_attempts;
      if (r.__isset.initial_backoff_ms) retry["initial_backoff_ms"] = r.initial_backoff_ms;
      if (r.__isset.max_backoff_ms) retry["max_backoff_ms"] = r.max_backoff_ms;
      step["retry"] = retry;
    }
    steps.push_back(std::move(step));
  }
  body["steps"] = steps;
  return body;
}

void FillStatus(rpc::TxnStatus& out, const SubmitResult& r) {
  out.gtid = r.gtid;
  out.state = r.state;
}

void FillOperatorStatus(rpc::TxnStatus& out, const SubmitResult& r) {
  FillStatus(out, r);
  out.__set_paused(r.paused);
  out.__set_finished(r.finished);
}

void FillRow(rpc::Transaction& out, const TxnRow& row) {
  out.gtid = row.gtid;
  out.kind = row.kind;
  out.state = row.state;
  out.owner = row.owner;
  out.needs_attention = row.needs_attention;
  out.deadline_ms = row.deadline_ms;
  out.attempts = row.attempts;
  out.created_at_ms = row.created_at_ms;
  out.updated_at_ms = row.updated_at_ms;
  out.spec = row.spec;
  out.__set_paused(row.paused);
  out.__set_last_error(row.last_error);
}

void FillDetail(rpc::Transaction& out, const TxnDetail& d) {
  FillRow(out, d.txn);
  for (const auto& b : d.branches) {
    rpc::BranchInfo bi;
    bi.name = b.name;
    bi.idx = b.idx;
    bi.state = b.state;
    bi.attempts = b.attempts;
    bi.last_error = b.last_error;
    bi.next_attempt_at_ms = b.next_attempt_at_ms;
    bi.spec = b.spec;
    bi.updated_at_ms = b.updated_at_ms;
    out.branches.push_back(std::move(bi));
  }
  for (const auto& e : d.events) {
    rpc::TxnEvent te;
    te.id = e.id;
    te.at_ms = e.at_ms;
    te.branch = e.branch;
    te.type = e.type;
    te.detail = e.detail;
    te.__set_count(e.count);
    te.__set_first_at_ms(e.first_at_ms > 0 ? e.first_at_ms : e.at_ms);
    out.history.push_back(std::move(te));
  }
}

}  // namespace treaty
