#include "engine/two_phase_spec.h"

#include "common/json_input.h"
#include "common/text.h"
#include "engine/participant_urls.h"

#include <set>

namespace treaty {
namespace {

using nlohmann::json;

Status Invalid(const std::string& m) { return Status::InvalidArgument(m); }

Status CheckKnownFields(const json& body, const std::set<std::string>& known,
                        const std::string& where) {
  for (const auto& [key, value] : body.items()) {
    if (!known.count(key)) return Invalid(where + "unknown field '" + key + "'");
  }
  return Status::Ok();
}

Status ReadUrl(const json& body, const char* key, bool check, std::string* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    return Invalid(std::string("missing required field '") + key + "'");
  }
  if (!it->is_string()) return Invalid(std::string("'") + key + "' must be a string");
  *out = it->get<std::string>();
  return check ? CheckParticipantUrl(*out, std::string("'") + key + "'", /*policy=*/nullptr)
               : Status::Ok();
}

Status ReadTimeout(const json& body, int64_t min, int64_t max, int64_t* out) {
  auto it = body.find("timeout_ms");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_number_integer()) return Invalid("'timeout_ms' must be an integer");
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return Invalid("'timeout_ms' must be between " + std::to_string(min) + " and " +
                   std::to_string(max));
  }
  *out = v;
  return Status::Ok();
}

// An optional boolean; absent or null leaves *out unchanged.
Status ReadBool(const json& body, const char* key, bool* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return Invalid(std::string("'") + key + "' must be true or false");
  *out = it->get<bool>();
  return Status::Ok();
}

}  // namespace

Result<TwoPhaseSpec> ParseTwoPhaseSpec(const json& body, const TwoPhaseLimits& limits) {
  if (!body.is_object()) return Invalid("the request body must be a JSON object");
  std::set<std::string> known = {"gtid", "timeout_ms", "one_phase"};
  if (limits.stored) {
    known.insert("client");  // set from the caller's identity, never by a body
    known.insert("trace");   // set from the request's headers, never by a body
  }
  if (auto s = CheckKnownFields(body, known, ""); !s.ok()) return s;
  TwoPhaseSpec spec;
  if (auto it = body.find("gtid"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return Invalid("'gtid' must be a string");
    spec.gtid = it->get<std::string>();
    if (auto s = ValidateGtid(spec.gtid, limits.max_gtid_length); !s.ok() && !limits.stored) {
      return s;
    }
  }
  if (auto s = ReadTimeout(body, 1, limits.max_timeout_ms, &spec.timeout_ms); !s.ok()) return s;
  if (auto s = ReadBool(body, "one_phase", &spec.legacy_one_phase); !s.ok()) return s;
  if (spec.legacy_one_phase && !limits.stored) {
    return Invalid(
        "'one_phase' cannot be true at begin: one_phase is declared per branch at enlistment "
        "(POST /v1/2pc/{gtid}/branches)");
  }
  if (auto it = body.find("client"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return Invalid("'client' must be a string");
    spec.client = it->get<std::string>();
  }
  if (auto it = body.find("trace"); it != body.end() && !it->is_null()) {
    auto trace = TraceFromJson(*it);
    if (!trace.ok()) return trace.status();
    spec.trace = std::move(*trace);
  }
  return spec;
}

Result<BranchSpec> ParseBranchSpec(const json& body, const TwoPhaseLimits& limits) {
  if (!body.is_object()) return Invalid("the request body must be a JSON object");
  if (auto s = CheckKnownFields(
          body, {"name", "prepare", "commit", "abort", "payload", "timeout_ms", "one_phase"}, "");
      !s.ok()) {
    return s;
  }
  BranchSpec b;
  auto name = body.find("name");
  if (name == body.end() || name->is_null()) return Invalid("missing required field 'name'");
  if (!name->is_string()) return Invalid("'name' must be a string");
  b.name = name->get<std::string>();
  if (auto s = ValidateIdentifier(b.name, "'name'"); !s.ok() && !limits.stored) return s;
  if (b.name.size() > limits.max_name_length) {
    return Invalid("'name' must be 1 to " + std::to_string(limits.max_name_length) + " bytes long");
  }
  const bool check = !limits.stored;
  if (auto s = ReadUrl(body, "prepare", check, &b.prepare); !s.ok()) return s;
  if (auto s = ReadUrl(body, "commit", check, &b.commit); !s.ok()) return s;
  if (auto s = ReadUrl(body, "abort", check, &b.abort); !s.ok()) return s;
  if (auto it = body.find("payload"); it != body.end()) {
    if (!limits.stored && JsonDepth(*it) > limits::kMaxPayloadDepth) {
      return Invalid("'payload' nests arrays/objects deeper than " +
                     std::to_string(limits::kMaxPayloadDepth) + " levels");
    }
    b.payload = DumpJson(*it);
  }
  if (auto s = ReadTimeout(body, 1, limits.max_timeout_ms, &b.timeout_ms); !s.ok()) return s;
  if (auto s = ReadBool(body, "one_phase", &b.one_phase); !s.ok()) return s;
  return b;
}

json ToJson(const TwoPhaseSpec& spec) {
  json out = {{"timeout_ms", spec.timeout_ms}};
  if (spec.legacy_one_phase) out["one_phase"] = true;
  if (!spec.client.empty()) out["client"] = spec.client;
  if (!spec.trace.empty()) out["trace"] = ToJson(spec.trace);
  return out;
}

json ToJson(const BranchSpec& b) {
  json out = {{"prepare", b.prepare},
              {"commit", b.commit},
              {"abort", b.abort},
              {"payload", json::parse(b.payload, nullptr, false)}};
  if (b.timeout_ms > 0) out["timeout_ms"] = b.timeout_ms;
  if (b.one_phase) out["one_phase"] = true;
  return out;
}

}  // namespace treaty
