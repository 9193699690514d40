#pragma once

// ParticipantCaller: how the engine reaches a participant (docs/2pc.md "What
// participants receive", "Participant protocol"). Implementations:
// HttpParticipantCaller (http:// and https://, pooled keep-alive
// connections), ThriftParticipantCaller (thrift:// and thrifts://), and
// RoutingCaller, which dispatches on the URL's scheme. Tests use fakes.

#include <cstdint>
#include <functional>
#include <string>

namespace treaty {

struct ParticipantRequest {
  std::string url;  // the step's or branch's endpoint for this op
  std::string gtid;
  std::string branch;        // step / branch name
  std::string op;            // action, compensate, prepare, commit, abort
  std::string payload_json;  // JSON text; "null" when none was given
  std::string traceparent;   // W3C trace context to propagate (a new span id per call)
  std::string tracestate;    // the submitter's W3C tracestate, unchanged; "" = none (not sent)
  int64_t timeout_ms = 10000;
  // 2PC one-phase commit (op "commit" without a prior prepare): the
  // participant prepares and commits at once; 409 means it refused.
  bool one_phase = false;
};

enum class CallOutcome {
  kOk,               // 2xx (prepare: a yes or readonly vote)
  kBusinessFailure,  // 409: business failure / no vote; never retried for action/prepare
  kTransient,        // anything else: other status, time-out, refused connection
  // The call cannot be made and never will be: its URL does not parse
  // (ParseEndpoint) or its scheme has no caller. Nothing was sent; never
  // retried. Only a log written by an older release can hold such a URL.
  kUncallable,
};

struct ParticipantResponse {
  CallOutcome outcome = CallOutcome::kTransient;
  bool readonly_vote = false;  // prepare answered 2xx with {"vote":"readonly"}
  int http_status = 0;         // 0 when no HTTP answer was received
  // A configuration error, not a passing fault: the participant answered
  // HTTP 404, 405 or 410, its host name did not resolve, or (Thrift) it does
  // not know the method. Outcome stays kTransient (retried at the capped
  // backoff) and the transaction is flagged needs_attention at once.
  bool config_error = false;
  std::string error;  // human-readable reason for a non-OK outcome (valid UTF-8)
  int64_t latency_ms = 0;
};

// "ok", "business failure: HTTP 409: ..." or "transient failure (HTTP 503)":
// how a call's outcome reads in history events and last_error. Valid UTF-8
// without NUL, at most limits::kErrorExcerptBytes bytes, whatever `error` holds.
std::string DescribeResponse(const ParticipantResponse& response);

class ParticipantCaller {
 public:
  using Callback = std::function<void(ParticipantResponse)>;
  virtual ~ParticipantCaller() = default;

  // Starts one call; `done` is invoked exactly once, on any thread, after the
  // call finished or failed (never inline from within Call). Never throws.
  virtual void Call(ParticipantRequest request, Callback done) = 0;
};

}  // namespace treaty
