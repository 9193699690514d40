#include "engine/saga_spec.h"

#include "common/json_input.h"
#include "common/text.h"
#include "engine/participant_urls.h"

#include <functional>
#include <map>
#include <set>

namespace treaty {
namespace {

using nlohmann::json;

Status Invalid(const std::string& m) { return Status::InvalidArgument(m); }

// Reads an optional non-negative integer field.
Status ReadInt(const json& obj, const char* key, const std::string& where, int64_t min, int64_t max,
               int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  if (!it->is_number_integer()) return Invalid(where + "'" + key + "' must be an integer");
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return Invalid(where + "'" + key + "' must be between " + std::to_string(min) + " and " +
                   std::to_string(max));
  }
  *out = v;
  return Status::Ok();
}

Status ReadString(const json& obj, const char* key, const std::string& where, bool required,
                  std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return required ? Invalid(where + "missing required field '" + key + "'") : Status::Ok();
  }
  if (!it->is_string()) return Invalid(where + "'" + key + "' must be a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

Status ParseRetry(const json& obj, const std::string& where, RetryPolicy* retry) {
  if (!obj.is_object()) return Invalid(where + "'retry' must be an object");
  int64_t v = retry->max_attempts;
  if (auto s = ReadInt(obj, "max_attempts", where + "retry.", 1, 1000, &v); !s.ok()) return s;
  retry->max_attempts = static_cast<int>(v);
  if (auto s = ReadInt(obj, "initial_backoff_ms", where + "retry.", 0, 3600000,
                       &retry->initial_backoff_ms);
      !s.ok()) {
    return s;
  }
  if (auto s = ReadInt(obj, "max_backoff_ms", where + "retry.", 0, 3600000, &retry->max_backoff_ms);
      !s.ok()) {
    return s;
  }
  if (retry->max_backoff_ms < retry->initial_backoff_ms) {
    return Invalid(where + "retry.max_backoff_ms must be >= retry.initial_backoff_ms");
  }
  return Status::Ok();
}

Status ParseStep(const json& obj, size_t i, const SpecLimits& limits, SagaStep* step) {
  std::string where = "steps[" + std::to_string(i) + "]: ";
  if (!obj.is_object()) return Invalid(where + "each step must be an object");
  if (auto s = ReadString(obj, "name", where, true, &step->name); !s.ok()) return s;
  if (auto s = ValidateIdentifier(step->name, "steps[" + std::to_string(i) + "].name");
      !s.ok() && !limits.stored) {
    return s;
  }
  if (step->name.size() > limits.max_name_length) {
    return Invalid(where + "'name' must be 1.." + std::to_string(limits.max_name_length) +
                   " bytes long");
  }
  where = "step '" + step->name + "': ";
  if (auto s = ReadString(obj, "action", where, true, &step->action); !s.ok()) return s;
  if (auto s = ReadString(obj, "compensate", where, true, &step->compensate); !s.ok()) return s;
  if (!limits.stored) {
    if (auto s = CheckStepUrls(*step, /*policy=*/nullptr); !s.ok()) return s;
  }
  if (auto it = obj.find("payload"); it != obj.end()) {
    if (!limits.stored && JsonDepth(*it) > limits::kMaxPayloadDepth) {
      return Invalid("steps[" + std::to_string(i) + "].payload nests arrays/objects deeper than " +
                     std::to_string(limits::kMaxPayloadDepth) + " levels");
    }
    step->payload = DumpJson(*it);
  }
  if (auto it = obj.find("after"); it != obj.end() && !it->is_null()) {
    if (!it->is_array()) return Invalid(where + "'after' must be an array of step names");
    for (const auto& a : *it) {
      if (!a.is_string()) return Invalid(where + "'after' must be an array of step names");
      if (auto s = ValidateIdentifier(a.get<std::string>(), where + "'after' entry");
          !s.ok() && !limits.stored) {
        return s;
      }
      step->after.push_back(a.get<std::string>());
    }
  }
  if (auto s = ReadInt(obj, "timeout_ms", where, 0, 86400000, &step->timeout_ms); !s.ok()) {
    return s;
  }
  if (auto it = obj.find("retry"); it != obj.end() && !it->is_null()) {
    if (auto s = ParseRetry(*it, where, &step->retry); !s.ok()) return s;
  }
  for (const auto& [key, _] : obj.items()) {
    static const std::set<std::string> kKnown = {"name",  "action",     "compensate", "payload",
                                                 "after", "timeout_ms", "retry"};
    if (!kKnown.count(key)) return Invalid(where + "unknown field '" + key + "'");
  }
  return Status::Ok();
}

// Rejects unknown names in `after` and cycles (depth-first search, colours).
Status CheckGraph(const SagaSpec& spec) {
  std::map<std::string, int> index;
  for (size_t i = 0; i < spec.steps.size(); ++i) {
    if (!index.emplace(spec.steps[i].name, static_cast<int>(i)).second) {
      return Invalid("duplicate step name '" + spec.steps[i].name + "'");
    }
  }
  for (const auto& step : spec.steps) {
    for (const auto& a : step.after) {
      if (!index.count(a)) {
        return Invalid("step '" + step.name + "': 'after' names unknown step '" + a + "'");
      }
      if (a == step.name) return Invalid("step '" + step.name + "' lists itself in 'after'");
    }
    if (!spec.concurrent && !step.after.empty()) {
      return Invalid("step '" + step.name + "': 'after' needs \"concurrent\": true");
    }
  }
  std::vector<int> colour(spec.steps.size(), 0);  // 0 new, 1 on stack, 2 done
  std::function<bool(int)> has_cycle = [&](int i) {
    colour[i] = 1;
    for (const auto& a : spec.steps[i].after) {
      int j = index[a];
      if (colour[j] == 1 || (colour[j] == 0 && has_cycle(j))) return true;
    }
    colour[i] = 2;
    return false;
  };
  for (size_t i = 0; i < spec.steps.size(); ++i) {
    if (colour[i] == 0 && has_cycle(static_cast<int>(i))) {
      return Invalid("the steps' 'after' lists form a cycle (through step '" + spec.steps[i].name +
                     "')");
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateGtid(const std::string& gtid, size_t max_length) {
  if (auto s = ValidateIdentifier(gtid, "'gtid'"); !s.ok()) return s;
  if (gtid.size() > max_length) {
    return Invalid("'gtid' must be 1.." + std::to_string(max_length) + " bytes long");
  }
  return Status::Ok();
}

Result<SagaSpec> ParseSagaSpec(const json& body, const SpecLimits& limits) {
  if (!body.is_object()) return Invalid("the request body must be a JSON object");
  SagaSpec spec;
  if (auto s = ReadString(body, "gtid", "", false, &spec.gtid); !s.ok()) return s;
  if ((!spec.gtid.empty() || body.contains("gtid")) && !limits.stored) {
    if (auto s = ValidateGtid(spec.gtid, limits.max_gtid_length); !s.ok()) return s;
  }
  if (auto s = ReadInt(body, "timeout_ms", "", 0, 30LL * 86400000, &spec.timeout_ms); !s.ok()) {
    return s;
  }
  if (auto it = body.find("concurrent"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return Invalid("'concurrent' must be true or false");
    spec.concurrent = it->get<bool>();
  }
  if (auto it = body.find("wait"); it != body.end() && !it->is_null() && !it->is_boolean()) {
    return Invalid("'wait' must be true or false");
  }
  auto steps = body.find("steps");
  if (steps == body.end()) return Invalid("missing required field 'steps'");
  if (!steps->is_array()) return Invalid("'steps' must be an array");
  if (steps->empty()) return Invalid("'steps' must name at least one step");
  if (steps->size() > limits.max_steps) {
    return Invalid("too many steps (" + std::to_string(steps->size()) + " > " +
                   std::to_string(limits.max_steps) + ")");
  }
  for (size_t i = 0; i < steps->size(); ++i) {
    SagaStep step;
    if (auto s = ParseStep((*steps)[i], i, limits, &step); !s.ok()) return s;
    spec.steps.push_back(std::move(step));
  }
  for (const auto& [key, _] : body.items()) {
    static const std::set<std::string> kKnown = {"gtid", "timeout_ms", "concurrent", "wait",
                                                 "steps"};
    // "trace" is set by the front end from the request's headers, never by a body.
    if (!kKnown.count(key) && !(limits.stored && key == "trace")) {
      return Invalid("unknown field '" + key + "'");
    }
  }
  if (auto it = body.find("trace"); limits.stored && it != body.end() && !it->is_null()) {
    auto trace = TraceFromJson(*it);
    if (!trace.ok()) return trace.status();
    spec.trace = std::move(*trace);
  }
  if (auto s = CheckGraph(spec); !s.ok()) return s;
  return spec;
}

json ToJson(const SagaSpec& spec) {
  json steps = json::array();
  for (const auto& s : spec.steps) {
    steps.push_back({{"name", s.name},
                     {"action", s.action},
                     {"compensate", s.compensate},
                     {"payload", json::parse(s.payload)},
                     {"after", s.after},
                     {"timeout_ms", s.timeout_ms},
                     {"retry",
                      {{"max_attempts", s.retry.max_attempts},
                       {"initial_backoff_ms", s.retry.initial_backoff_ms},
                       {"max_backoff_ms", s.retry.max_backoff_ms}}}});
  }
  json out = {{"gtid", spec.gtid},
              {"timeout_ms", spec.timeout_ms},
              {"concurrent", spec.concurrent},
              {"steps", steps}};
  if (!spec.trace.empty()) out["trace"] = ToJson(spec.trace);
  return out;
}

json WithoutTrace(json stored) {
  if (stored.is_object()) stored.erase("trace");
  return stored;
}

std::vector<int> StepDependencies(const SagaSpec& spec, size_t i) {
  std::vector<int> deps;
  if (!spec.concurrent) {
    if (i > 0) deps.push_back(static_cast<int>(i) - 1);
    return deps;
  }
  for (const auto& a : spec.steps[i].after) {
    for (size_t j = 0; j < spec.steps.size(); ++j) {
      if (spec.steps[j].name == a) deps.push_back(static_cast<int>(j));
    }
  }
  return deps;
}

}  // namespace treaty
