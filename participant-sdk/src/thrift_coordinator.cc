#include "thrift_coordinator.h"

#include <memory>

#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <thrift/transport/TTransportException.h>
#include <nlohmann/json.hpp>

#include "CoordinatorService.h"
#include "common/endpoint.h"
#include "input_rules.h"
#include "thrift/thrift_limits.h"

namespace treaty_sdk_detail {

namespace at = apache::thrift;
namespace rpc = treaty::rpc;
using nlohmann::json;

namespace {

// The coordinator's strings are outside input too: DumpJson cannot throw on
// ill-formed UTF-8 (it becomes U+FFFD).
FetchReply Answer(int http_status, const json& body) {
  FetchReply r;
  r.http_status = http_status;
  r.body = DumpJson(body);
  return r;
}

FetchReply ErrorAnswer(int http_status, const std::string& message) {
  json error = {{"message", Excerpt(message, 1024)}};
  if (http_status == 401) error["code"] = "unauthenticated";
  if (http_status == 403) error["code"] = "forbidden";
  return Answer(http_status, {{"error", std::move(error)}});
}

FetchReply Failed(FetchError error, const std::string& message) {
  FetchReply r;
  r.error = error;
  r.error_message = message;
  return r;
}

json StatusJson(const rpc::TxnStatus& s) { return {{"gtid", s.gtid}, {"state", s.state}}; }

json TransactionJson(const rpc::Transaction& t) {
  json j = {{"gtid", t.gtid},
            {"kind", t.kind},
            {"state", t.state},
            {"owner", t.owner},
            {"needs_attention", t.needs_attention},
            {"deadline_ms", t.deadline_ms},
            {"attempts", t.attempts},
            {"created_at_ms", t.created_at_ms},
            {"updated_at_ms", t.updated_at_ms}};
  // Depth-limited: a deep spec would overflow the stack when dumped.
  auto spec = ParseJsonInput(t.spec, "spec");
  j["spec"] = spec.ok() ? std::move(spec.value) : json(ToValidUtf8(t.spec));
  j["branches"] = json::array();
  for (const auto& b : t.branches) {
    j["branches"].push_back({{"name", b.name},
                             {"idx", b.idx},
                             {"state", b.state},
                             {"attempts", b.attempts},
                             {"last_error", b.last_error},
                             {"next_attempt_at_ms", b.next_attempt_at_ms},
                             {"updated_at_ms", b.updated_at_ms}});
  }
  j["history"] = json::array();
  for (const auto& e : t.history) {
    j["history"].push_back({{"id", e.id},
                            {"at_ms", e.at_ms},
                            {"branch", e.branch},
                            {"type", e.type},
                            {"detail", e.detail}});
  }
  return j;
}

std::string PayloadText(const json& obj) {
  auto it = obj.find("payload");
  return it == obj.end() ? "null" : it->dump();
}

rpc::SagaRequest SagaRequest(const json& body) {
  rpc::SagaRequest req;
  if (body.contains("gtid")) req.__set_gtid(body["gtid"].get<std::string>());
  if (body.contains("timeout_ms")) req.__set_timeout_ms(body["timeout_ms"].get<int64_t>());
  if (body.contains("concurrent")) req.__set_concurrent(body["concurrent"].get<bool>());
  if (body.contains("wait")) req.__set_wait(body["wait"].get<bool>());
  for (const auto& s : body["steps"]) {
    rpc::SagaStep step;
    step.name = s["name"].get<std::string>();
    step.action = s["action"].get<std::string>();
    step.compensate = s["compensate"].get<std::string>();
    step.__set_payload(PayloadText(s));
    if (s.contains("after")) step.__set_after(s["after"].get<std::vector<std::string>>());
    if (s.contains("timeout_ms")) step.__set_timeout_ms(s["timeout_ms"].get<int64_t>());
    if (s.contains("retry")) {
      const json& r = s["retry"];
      rpc::RetryPolicy p;
      if (r.contains("max_attempts")) p.__set_max_attempts(r["max_attempts"].get<int32_t>());
      if (r.contains("initial_backoff_ms")) {
        p.__set_initial_backoff_ms(r["initial_backoff_ms"].get<int64_t>());
      }
      if (r.contains("max_backoff_ms")) p.__set_max_backoff_ms(r["max_backoff_ms"].get<int64_t>());
      step.__set_retry_policy(p);
    }
    req.steps.push_back(std::move(step));
  }
  return req;
}

// "/v1/2pc/{gtid}/{what}" -> gtid, what.
bool SplitTwoPhasePath(const std::string& path, std::string* gtid, std::string* what) {
  const std::string prefix = "/v1/2pc/";
  if (path.rfind(prefix, 0) != 0) return false;
  std::string rest = path.substr(prefix.size());
  auto slash = rest.rfind('/');
  if (slash == std::string::npos || slash == 0) return false;
  *gtid = rest.substr(0, slash);
  *what = rest.substr(slash + 1);
  return true;
}

// Runs the CoordinatorService call for (method, path); throws what the
// client throws.
FetchReply Invoke(rpc::CoordinatorServiceClient& c, const std::string& method,
                  const std::string& path, const json& body) {
  rpc::TxnStatus status;
  std::string gtid, what;
  if (method == "POST" && path == "/v1/sagas") {
    c.submitSaga(status, SagaRequest(body));
    return Answer(200, StatusJson(status));
  }
  if (method == "POST" && path == "/v1/2pc") {
    rpc::Begin2pcRequest req;
    if (body.contains("gtid")) req.__set_gtid(body["gtid"].get<std::string>());
    if (body.contains("timeout_ms")) req.__set_timeout_ms(body["timeout_ms"].get<int64_t>());
    if (body.contains("one_phase")) req.__set_one_phase(body["one_phase"].get<bool>());
    c.begin2pc(status, req);
    return Answer(200, StatusJson(status));
  }
  if (method == "POST" && SplitTwoPhasePath(path, &gtid, &what)) {
    if (what == "branches") {
      rpc::Branch2pc b;
      b.name = body["name"].get<std::string>();
      b.prepare = body["prepare"].get<std::string>();
      b.commit = body["commit"].get<std::string>();
      b.abort = body["abort"].get<std::string>();
      b.__set_payload(PayloadText(body));
      if (body.contains("one_phase")) b.__set_one_phase(body["one_phase"].get<bool>());
      c.registerBranch(status, gtid, b);
      return Answer(200, StatusJson(status));
    }
    if (what == "commit") {
      c.commit2pc(status, gtid);
      return Answer(200, StatusJson(status));
    }
    if (what == "abort") {
      c.abort2pc(status, gtid);
      return Answer(200, StatusJson(status));
    }
  }
  const std::string get_prefix = "/v1/transactions/";
  if (method == "GET" && path.rfind(get_prefix, 0) == 0) {
    rpc::Transaction t;
    c.getTransaction(t, path.substr(get_prefix.size()));
    return Answer(200, TransactionJson(t));
  }
  return Failed(FetchError::kInvalidArgument, "no Thrift call for " + method + " " + path);
}

}  // namespace

bool IsThriftUrl(const std::string& url) { return url.rfind("thrift://", 0) == 0; }

FetchReply ThriftFetch(const std::string& method, const std::string& url, const std::string& path,
                       const std::string& body, int timeout_ms, const std::string& token) {
  // The coordinator's own URL parser, so the SDK calls what treatyd accepts.
  const treaty::Result<treaty::Endpoint> endpoint = treaty::ParseEndpoint(url);
  if (!endpoint.ok() || endpoint->scheme != "thrift") {
    return Failed(FetchError::kInvalidArgument, "expected thrift://HOST:PORT, got '" + url + "'");
  }
  json parsed = body.empty() ? json::object() : json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Failed(FetchError::kInvalidArgument, "request body is not a JSON object");
  }
  try {
    // The limits of thrift_limits.h on the answer: one that exceeds them
    // fails the call (kUnavailable), it never costs more memory.
    auto socket = std::make_shared<at::transport::TSocket>(endpoint->host, endpoint->port,
                                                           treaty::ThriftConfiguration());
    socket->setConnTimeout(std::min(timeout_ms, 5000));
    socket->setRecvTimeout(timeout_ms);
    socket->setSendTimeout(timeout_ms);
    socket->setNoDelay(true);
    auto transport =
        std::make_shared<at::transport::TFramedTransport>(socket, treaty::ThriftConfiguration());
    rpc::CoordinatorServiceClient client(treaty::LimitedBinaryProtocol(transport));
    transport->open();
    FetchReply r;
    try {
      if (!token.empty()) client.authenticate(token);
      r = Invoke(client, method, path, parsed);
    } catch (const rpc::Unauthenticated& e) {
      r = ErrorAnswer(401, e.message);
    } catch (const rpc::Forbidden& e) {
      r = ErrorAnswer(403, e.message);
    } catch (const rpc::InvalidRequest& e) {
      r = ErrorAnswer(400, e.message);
    } catch (const rpc::NotFound& e) {
      r = ErrorAnswer(404, e.message);
    } catch (const rpc::Conflict& e) {
      r = ErrorAnswer(409, e.message);
    } catch (const rpc::Unavailable& e) {
      r = ErrorAnswer(503, e.message);
    }
    transport->close();
    return r;
  } catch (const json::exception& e) {
    return Failed(FetchError::kInvalidArgument,
                  std::string("request body: ") + Excerpt(e.what(), 200));
  } catch (const at::transport::TTransportException& e) {
    const bool timed_out = e.getType() == at::transport::TTransportException::TIMED_OUT;
    return Failed(timed_out ? FetchError::kTimedOut : FetchError::kUnavailable,
                  url + ": " + Excerpt(e.what(), 200));
  } catch (const std::exception& e) {
    // TApplicationException, protocol errors, a refused answer: the
    // coordinator could not answer this call; another may.
    return Failed(FetchError::kUnavailable, url + ": " + Excerpt(e.what(), 200));
  }
}

}  // namespace treaty_sdk_detail
