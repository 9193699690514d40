#pragma once

// SagaSpec: a validated saga submission (POST /v1/sagas: docs/api.md "Sagas",
// docs/input-rules.md). ParseSagaSpec rejects, with a message naming the problem: a body that is
// not an object, missing or mistyped fields, no steps, duplicate step names,
// unknown names in `after`, cycles, non-http(s)/thrift URLs, negative
// timeouts or retry settings out of range. ToJson gives the normalized form
// (defaults filled in, `wait` dropped) that is stored as the transaction's
// spec and compared on re-submission.
//
// The trace (SagaSpec.trace) is not part of the body: the front end sets it
// from the request's traceparent/tracestate (common/trace_context.h), the
// driver gives it a new trace id when none came, and ToJson stores it as
// "trace" so it survives adoption. A body naming "trace" is refused as an
// unknown field; only a stored spec carries it. It is not compared on
// re-submission (WithoutTrace).

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/trace_context.h"
#include "treaty/status.h"

namespace treaty {

struct RetryPolicy {
  int max_attempts = 5;
  int64_t initial_backoff_ms = 100;
  int64_t max_backoff_ms = 10000;
};

struct SagaStep {
  std::string name;
  std::string action;            // URL
  std::string compensate;        // URL
  std::string payload = "null";  // JSON text
  std::vector<std::string> after;
  int64_t timeout_ms = 0;  // 0: the coordinator's default call time-out
  RetryPolicy retry;
};

struct SagaSpec {
  std::string gtid;        // empty: the server makes one
  int64_t timeout_ms = 0;  // 0: no saga deadline
  bool concurrent = false;
  std::vector<SagaStep> steps;
  // The W3C trace its participant calls carry (empty: not set yet).
  TraceContext trace;
};

struct SpecLimits {
  size_t max_steps = 256;
  size_t max_name_length = 128;
  size_t max_gtid_length = 128;
  // True for a spec read back from the log (Restore): names, gtid and URLs
  // are not re-checked against today's rules, because a log written by an
  // older release may hold ones they refuse and the transaction must still
  // be driven to its end. The callers refuse a URL they cannot call at call
  // time (CallOutcome::kUncallable) and escape names on the wire and in logs.
  bool stored = false;
};

Result<SagaSpec> ParseSagaSpec(const nlohmann::json& body, const SpecLimits& limits = {});
nlohmann::json ToJson(const SagaSpec& spec);
// `stored` (a ToJson form) without its "trace": what a re-submission is
// compared on, so that the same body sent again under another trace is the
// same submission.
nlohmann::json WithoutTrace(nlohmann::json stored);

// Dependencies of step `i` as indexes: its `after` list when concurrent, else
// the previous step (none for the first).
std::vector<int> StepDependencies(const SagaSpec& spec, size_t i);

// Checks a gtid given by a client: the identifier rules of common/text.h
// (ValidateIdentifier) and at most `max_length` bytes.
Status ValidateGtid(const std::string& gtid, size_t max_length);

}  // namespace treaty
