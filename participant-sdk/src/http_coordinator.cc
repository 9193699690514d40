#include "http_coordinator.h"

#include <algorithm>
#include <map>

#include "common/endpoint.h"
#include "http/http_client.h"
#include "input_rules.h"

namespace treaty_sdk_detail {

using nlohmann::json;
using treaty::StatusCode;

namespace {

constexpr size_t kMessageBytes = 200;  // error messages are cut to this

// The code of a REST answer with `http_status` (coordinator_transport.h):
// kOk for a 2xx, else the body's {"error":{"code":...}} when it names a
// StatusCode, else by the HTTP status.
StatusCode RestAnswerCode(int http_status, const json& body) {
  if (http_status >= 200 && http_status < 300) return StatusCode::kOk;
  if (body.is_object()) {
    auto error = body.find("error");
    if (error != body.end() && error->is_object()) {
      auto code = error->find("code");
      if (code != error->end() && code->is_string()) {
        const std::string& name = code->get_ref<const std::string&>();
        // ErrorCodeFromName answers kInternal for a name it does not know.
        const StatusCode known = treaty::ErrorCodeFromName(name);
        if (known != StatusCode::kOk && name == treaty::ErrorCodeName(known)) return known;
      }
    }
  }
  switch (http_status) {
    case 400:
    case 422:
      return StatusCode::kInvalidArgument;
    case 401:
      return StatusCode::kUnauthenticated;
    case 403:
      return StatusCode::kPermissionDenied;
    case 404:
      return StatusCode::kNotFound;
    case 409:
      return StatusCode::kConflict;
    case 413:
      return StatusCode::kTooLarge;
    case 502:
    case 503:
      return StatusCode::kUnavailable;
    case 504:
      return StatusCode::kTimedOut;
    default:
      return StatusCode::kInternal;
  }
}

CoordinatorReply Reply(Delivery d, std::string message) {
  CoordinatorReply r;
  r.delivery = d;
  r.message = std::move(message);
  return r;
}

class HttpCoordinator : public CoordinatorTransport {
 public:
  HttpCoordinator(std::string address, const treaty::Endpoint& endpoint,
                  std::unique_ptr<treaty::HttpClient> client, const TransportOptions& options)
      : address_(std::move(address)), client_(std::move(client)) {
    prefix_ = endpoint.target;
    if (auto q = prefix_.find('?'); q != std::string::npos) prefix_.resize(q);
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    if (!options.token.empty()) headers_["Authorization"] = "Bearer " + options.token;
  }

  CoordinatorReply SubmitSaga(const json& request, int timeout_ms, int wait_timeout_ms = 0,
                              const treaty::sdk::TraceContext& trace = {}) override {
    std::string target = "/v1/sagas";
    if (wait_timeout_ms > 0) {  // the coordinator accepts 1 - 3,600,000 (docs/api.md)
      target += "?wait_timeout_ms=" + std::to_string(std::min(wait_timeout_ms, 3600000));
    }
    return Exchange("POST", target, DumpJson(request), timeout_ms, &trace);
  }
  CoordinatorReply Begin(const json& request, int timeout_ms,
                         const treaty::sdk::TraceContext& trace = {}) override {
    return Exchange("POST", "/v1/2pc", DumpJson(request), timeout_ms, &trace);
  }
  CoordinatorReply Enlist(const std::string& gtid, const json& branch, int timeout_ms) override {
    return Exchange("POST", "/v1/2pc/" + gtid + "/branches", DumpJson(branch), timeout_ms);
  }
  CoordinatorReply Commit(const std::string& gtid, int timeout_ms) override {
    return Exchange("POST", "/v1/2pc/" + gtid + "/commit", "{}", timeout_ms);
  }
  CoordinatorReply Abort(const std::string& gtid, int timeout_ms) override {
    return Exchange("POST", "/v1/2pc/" + gtid + "/abort", "{}", timeout_ms);
  }
  CoordinatorReply Get(const std::string& gtid, int timeout_ms) override {
    return Exchange("GET", "/v1/transactions/" + gtid, "", timeout_ms);
  }
  int64_t connections_opened() const override { return client_->connections_opened(); }

 private:
  CoordinatorReply Exchange(const std::string& method, const std::string& path,
                            const std::string& body, int timeout_ms,
                            const treaty::sdk::TraceContext* trace = nullptr);
  CoordinatorReply ReadAnswer(const treaty::HttpClientResponse& res);
  // The reply for what Send returned.
  CoordinatorReply Answer(const treaty::Result<treaty::HttpClientResponse>& res,
                          const treaty::HttpSendTrace& wire);

  const std::string address_;
  const std::unique_ptr<treaty::HttpClient> client_;  // thread-safe
  std::string prefix_;                                // the address's path, without a trailing '/'
  std::map<std::string, std::string> headers_;
};

CoordinatorReply HttpCoordinator::ReadAnswer(const treaty::HttpClientResponse& res) {
  const int status = res.status;
  ParsedJson answer = ParseJsonInput(res.body, "the coordinator's answer");
  CoordinatorReply r;
  r.delivery = Delivery::kAnswered;
  r.code = RestAnswerCode(status, answer.value);
  if (r.code == StatusCode::kOk) {
    if (!answer.value.is_object()) {
      return Reply(
          Delivery::kBadAnswer,
          address_ + ": HTTP " + std::to_string(status) + " but " +
              (answer.ok() ? "the coordinator's answer is not a JSON object" : answer.error));
    }
    r.body = std::move(answer.value);
    return r;
  }
  // {"error":{"message":...}}, else an excerpt of the raw body.
  r.message = Excerpt(res.body, kMessageBytes);
  if (answer.value.is_object()) {
    auto error = answer.value.find("error");
    if (error != answer.value.end() && error->is_object()) {
      auto m = error->find("message");
      if (m != error->end() && m->is_string()) {
        r.message = Excerpt(m->get_ref<const std::string&>(), kMessageBytes);
      }
    }
  }
  return r;
}

CoordinatorReply HttpCoordinator::Exchange(const std::string& method, const std::string& path,
                                           const std::string& body, int timeout_ms,
                                           const treaty::sdk::TraceContext* trace) {
  treaty::HttpSendTrace wire;
  const std::map<std::string, std::string>* headers = &headers_;
  std::map<std::string, std::string> traced;
  if (trace && (!trace->traceparent.empty() || !trace->tracestate.empty())) {
    traced = headers_;
    if (!trace->traceparent.empty()) traced["traceparent"] = trace->traceparent;
    if (!trace->tracestate.empty()) traced["tracestate"] = trace->tracestate;
    headers = &traced;
  }
  auto res = client_->Send(method, prefix_ + path, body, *headers, timeout_ms, &wire);
  CoordinatorReply r = Answer(res, wire);
  r.resent = wire.resent;
  return r;
}

CoordinatorReply HttpCoordinator::Answer(const treaty::Result<treaty::HttpClientResponse>& res,
                                         const treaty::HttpSendTrace& wire) {
  if (res.ok()) return ReadAnswer(*res);
  const std::string why = address_ + ": " + res.status().message();
  switch (res.status().code()) {
    case StatusCode::kInvalidArgument:  // a server name no certificate can be checked against
      return Reply(Delivery::kBadConfig, why);
    case StatusCode::kTooLarge:
      return Reply(Delivery::kBadAnswer, why);
    default:
      return Reply(wire.sent ? Delivery::kNoAnswer : Delivery::kNotSent, why);
  }
}

}  // namespace

std::unique_ptr<CoordinatorTransport> MakeHttpCoordinator(const std::string& address,
                                                          const TransportOptions& options,
                                                          std::string* why) {
  auto endpoint = treaty::ParseEndpoint(address, "coordinator URL");
  if (!endpoint.ok()) {
    *why = "coordinator URL " + EscapeControl(Excerpt(address, 200)) + ": " +
           EscapeControl(endpoint.status().message());
    return nullptr;
  }
  if (endpoint->scheme != "http" && endpoint->scheme != "https") {
    *why = "coordinator URL " + EscapeControl(Excerpt(address, 200)) +
           ": the scheme must be http://, https://, thrift:// or thrifts://";
    return nullptr;
  }
  treaty::HttpClientOptions client_options;
  client_options.tls = treaty::TlsClientFiles{options.ca_file, options.cert_file, options.key_file};
  client_options.user_agent = "treaty-sdk";
  client_options.pool_size = options.pool_size;  // 0: Connection: close
  client_options.idle_ms = options.idle_ms;
  auto client = treaty::HttpClient::Open(*endpoint, std::move(client_options));
  if (!client.ok()) {
    *why = "coordinator URL " + EscapeControl(Excerpt(address, 200)) + ": " +
           EscapeControl(client.status().message());
    return nullptr;
  }
  return std::make_unique<HttpCoordinator>(address, *endpoint, std::move(*client), options);
}

}  // namespace treaty_sdk_detail
