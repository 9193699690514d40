#pragma once

// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent`
// and `tracestate` a client sends with a submission, and the trace every
// participant call of that transaction then carries.
//
//   traceparent: VERSION "-" TRACE-ID "-" PARENT-ID "-" FLAGS
//                2 hex     32 hex       16 hex        2 hex    (lower-case)
//   e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//
// Parsing follows the specification strictly: lower-case hex only; version
// "ff" is invalid; version "00" is exactly 55 characters; a later version is
// read by its first four fields (at least 55 characters, and a '-' after the
// flags if longer); an all-zero trace id or parent id is invalid.
//
// A transaction keeps ONE trace: the caller's trace id and flags when a
// valid traceparent came with the submission, else a new random trace id
// with flags "01". It is stored with the transaction's spec in the log
// (ToJson/TraceFromJson), so a coordinator that adopts it after a crash
// continues the same trace. Each participant call gets a NEW random span
// id (FormatTraceParent with NewSpanId) and always version "00".
//
// Thread-safety: pure functions; the ones taking `rng` use it unsynchronized
// (the caller's generator, e.g. the engine strand's).

#include <random>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "treaty/status.h"

namespace treaty {

// The trace of one transaction.
struct TraceContext {
  std::string trace_id;      // 32 lower-case hex digits, not all zero; "" = none yet
  std::string flags = "01";  // 2 lower-case hex digits: the caller's trace-flags, unchanged
  std::string tracestate;    // the caller's tracestate, passed through unchanged; "" = none

  bool empty() const { return trace_id.empty(); }
  bool operator==(const TraceContext&) const = default;
};

// The four fields of a valid traceparent header value.
struct TraceParentFields {
  std::string version;    // "00", or a later version read by its first four fields
  std::string trace_id;   // 32 lower-case hex, not all zero
  std::string parent_id;  // 16 lower-case hex, not all zero
  std::string flags;      // 2 lower-case hex
};

// Parses a traceparent value (no surrounding whitespace). InvalidArgument
// naming the problem ("traceparent: trace-id is all zeros", ...).
Result<TraceParentFields> ParseTraceParent(std::string_view value);

// Checks a tracestate value: at most 512 bytes, at most 32 comma-separated
// list-members, each `key=value` with a key of lower-case letters, digits
// and `_-*/@` (starting with a letter or digit) and a value of printable
// ASCII without `,` and `=` that does not end in a space; empty members
// (",,") and spaces or tabs around members are allowed. InvalidArgument
// naming the problem.
Status CheckTraceState(std::string_view value);

// The trace of a submission from its request headers (`traceparent`,
// `tracestate`; "" when absent): the caller's trace id and flags, with its
// tracestate when that one is valid. Empty (no trace: the engine makes one)
// when traceparent is absent or invalid. An invalid header never fails the
// request: it is logged at debug level with the reason, and ignored (an
// invalid tracestate alone is dropped; tracestate without a valid
// traceparent is ignored).
TraceContext TraceFromHeaders(std::string_view traceparent, std::string_view tracestate);

// A random trace id (32 lower-case hex, never all zero).
std::string NewTraceId(std::mt19937_64& rng);
// A random span id (16 lower-case hex, never all zero).
std::string NewSpanId(std::mt19937_64& rng);
// A trace id derived from `key` alone (the same key always gives the same
// id; never all zero): for a transaction logged before traces were stored.
std::string DerivedTraceId(std::string_view key);

// "00-<trace_id>-<span_id>-<flags>". `trace` must not be empty.
std::string FormatTraceParent(const TraceContext& trace, std::string_view span_id);

// The stored form: {"trace_id", "flags", "tracestate"?} (tracestate only
// when set).
nlohmann::json ToJson(const TraceContext& trace);
// Reads the stored form back; InvalidArgument naming the field when the
// object or a field is malformed.
Result<TraceContext> TraceFromJson(const nlohmann::json& stored);

}  // namespace treaty
