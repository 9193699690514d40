#include "common/trace_context.h"

#include <cstdint>

#include <spdlog/spdlog.h>

#include "common/text.h"

namespace treaty {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr size_t kTraceParentLength = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2
constexpr size_t kMaxTraceStateBytes = 512;
constexpr int kMaxTraceStateMembers = 32;

Status Invalid(const std::string& m) { return Status::InvalidArgument(m); }

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

// One hex field of `size` characters at `at`, followed by '-' unless it is
// the last field of a version-00 value.
Status ReadField(std::string_view value, size_t at, size_t size, const char* name,
                 std::string* out) {
  std::string_view field = value.substr(at, size);
  if (field.size() != size || !IsLowerHex(field)) {
    return Invalid(std::string("traceparent: ") + name + " must be " + std::to_string(size) +
                   " lower-case hex digits");
  }
  *out = std::string(field);
  return Status::Ok();
}

void AppendHex(uint64_t v, int digits, std::string& out) {
  for (int i = (digits - 1) * 4; i >= 0; i -= 4) out.push_back(kHex[(v >> i) & 0xf]);
}

std::string RandomHex(std::mt19937_64& rng, int words) {
  for (;;) {
    std::string out;
    for (int i = 0; i < words; ++i) AppendHex(rng(), 16, out);
    if (!AllZero(out)) return out;
  }
}

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
         c == '/' || c == '@';
}

Status CheckMember(std::string_view member, size_t index) {
  const std::string where = "tracestate: list-member " + std::to_string(index + 1);
  const size_t eq = member.find('=');
  if (eq == std::string_view::npos) return Invalid(where + " has no '='");
  std::string_view key = member.substr(0, eq);
  std::string_view val = member.substr(eq + 1);
  if (key.empty() || key.size() > 256) return Invalid(where + ": key must be 1..256 characters");
  if (!((key[0] >= 'a' && key[0] <= 'z') || (key[0] >= '0' && key[0] <= '9'))) {
    return Invalid(where + ": key must start with a lower-case letter or a digit");
  }
  for (char c : key) {
    if (!IsKeyChar(c)) return Invalid(where + ": key holds a character outside a-z 0-9 _-*/@");
  }
  if (val.empty() || val.size() > 256) return Invalid(where + ": value must be 1..256 characters");
  for (char c : val) {
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') {
      return Invalid(where + ": value holds a character outside printable ASCII or ',' or '='");
    }
  }
  if (val.back() == ' ') return Invalid(where + ": value ends in a space");
  return Status::Ok();
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<TraceParentFields> ParseTraceParent(std::string_view value) {
  TraceParentFields f;
  if (value.size() < kTraceParentLength) {
    return Invalid("traceparent: must be at least 55 characters (version-traceid-parentid-flags)");
  }
  if (auto s = ReadField(value, 0, 2, "version", &f.version); !s.ok()) return s;
  if (f.version == "ff") return Invalid("traceparent: version ff is invalid");
  if (f.version == "00" && value.size() != kTraceParentLength) {
    return Invalid("traceparent: version 00 must be exactly 55 characters");
  }
  if (value.size() > kTraceParentLength && value[kTraceParentLength] != '-') {
    return Invalid("traceparent: the flags must be followed by '-' in a longer value");
  }
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') {
    return Invalid("traceparent: fields must be separated by '-'");
  }
  if (auto s = ReadField(value, 3, 32, "trace-id", &f.trace_id); !s.ok()) return s;
  if (auto s = ReadField(value, 36, 16, "parent-id", &f.parent_id); !s.ok()) return s;
  if (auto s = ReadField(value, 53, 2, "trace-flags", &f.flags); !s.ok()) return s;
  if (AllZero(f.trace_id)) return Invalid("traceparent: trace-id is all zeros");
  if (AllZero(f.parent_id)) return Invalid("traceparent: parent-id is all zeros");
  return f;
}

Status CheckTraceState(std::string_view value) {
  if (value.size() > kMaxTraceStateBytes) {
    return Invalid("tracestate: longer than " + std::to_string(kMaxTraceStateBytes) + " bytes");
  }
  int members = 0;
  size_t index = 0;
  for (size_t start = 0; start <= value.size(); ++index) {
    size_t comma = value.find(',', start);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view member = TrimOws(value.substr(start, comma - start));
    start = comma + 1;
    if (member.empty()) continue;
    if (++members > kMaxTraceStateMembers) {
      return Invalid("tracestate: more than " + std::to_string(kMaxTraceStateMembers) +
                     " list-members");
    }
    if (auto s = CheckMember(member, index); !s.ok()) return s;
  }
  return Status::Ok();
}

TraceContext TraceFromHeaders(std::string_view traceparent, std::string_view tracestate) {
  TraceContext trace;
  if (traceparent.empty()) return trace;
  auto fields = ParseTraceParent(traceparent);
  if (!fields.ok()) {
    spdlog::debug("ignoring the caller's traceparent '{}' ({}); a new trace is started",
                  EscapeControl(Excerpt(traceparent, 80)), fields.status().message());
    return trace;
  }
  trace.trace_id = fields->trace_id;
  trace.flags = fields->flags;
  if (tracestate.empty()) return trace;
  if (auto s = CheckTraceState(tracestate); !s.ok()) {
    spdlog::debug("dropping the caller's tracestate ({})", s.message());
    return trace;
  }
  trace.tracestate = std::string(tracestate);
  return trace;
}

std::string NewTraceId(std::mt19937_64& rng) { return RandomHex(rng, 2); }

std::string NewSpanId(std::mt19937_64& rng) { return RandomHex(rng, 1); }

std::string DerivedTraceId(std::string_view key) {
  // FNV-1a, 64 bits, twice with different offsets: stable across builds
  // and releases (unlike std::hash), which is all this needs.
  auto fnv = [key](uint64_t h) {
    for (unsigned char c : key) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    return h;
  };
  std::string out;
  AppendHex(fnv(14695981039346656037ULL), 16, out);
  AppendHex(fnv(0x6c62272e07bb0142ULL), 16, out);
  if (AllZero(out)) out.back() = '1';
  return out;
}

std::string FormatTraceParent(const TraceContext& trace, std::string_view span_id) {
  std::string out = "00-";
  out += trace.trace_id;
  out += '-';
  out += span_id;
  out += '-';
  out += trace.flags;
  return out;
}

nlohmann::json ToJson(const TraceContext& trace) {
  nlohmann::json out = {{"trace_id", trace.trace_id}, {"flags", trace.flags}};
  if (!trace.tracestate.empty()) out["tracestate"] = trace.tracestate;
  return out;
}

Result<TraceContext> TraceFromJson(const nlohmann::json& stored) {
  if (!stored.is_object()) return Invalid("'trace' must be an object");
  TraceContext trace;
  for (const auto& [key, value] : stored.items()) {
    if (key != "trace_id" && key != "flags" && key != "tracestate") {
      return Invalid("'trace': unknown field '" + key + "'");
    }
    if (!value.is_string()) return Invalid("'trace." + key + "' must be a string");
  }
  trace.trace_id = stored.value("trace_id", "");
  trace.flags = stored.value("flags", "01");
  trace.tracestate = stored.value("tracestate", "");
  if (trace.trace_id.size() != 32 || !IsLowerHex(trace.trace_id) || AllZero(trace.trace_id)) {
    return Invalid("'trace.trace_id' must be 32 lower-case hex digits, not all zero");
  }
  if (trace.flags.size() != 2 || !IsLowerHex(trace.flags)) {
    return Invalid("'trace.flags' must be 2 lower-case hex digits");
  }
  return trace;
}

}  // namespace treaty
