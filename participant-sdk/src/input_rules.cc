#include "input_rules.h"

#include <utility>

#include "common/json_input.h"
#include "common/text.h"

namespace treaty_sdk_detail {

std::string IdentifierError(std::string_view value, std::string_view field) {
  treaty::Status s = treaty::ValidateIdentifier(value, field);
  return s.ok() ? std::string() : s.message();
}

std::string CallContextError(const treaty::CallContext& ctx) {
  for (auto [value, field] : {std::pair<std::string_view, std::string_view>{ctx.gtid, "'gtid'"},
                              {ctx.branch, "'branch'"},
                              {ctx.op, "'op'"}}) {
    if (std::string e = IdentifierError(value, field); !e.empty()) return e;
  }
  return "";
}

ParsedJson ParseJsonInput(std::string_view text, std::string_view what, int max_depth) {
  auto parsed = treaty::ParseJson(text, what, max_depth);
  if (!parsed.ok()) return {nullptr, parsed.status().message()};
  return {std::move(*parsed), ""};
}

bool IsJsonSyntax(std::string_view text) {
  try {
    return nlohmann::json::accept(text.begin(), text.end());
  } catch (const std::exception&) {
    return false;
  }
}

std::string DumpJson(const nlohmann::json& value) { return treaty::DumpJson(value); }

std::string ToValidUtf8(std::string_view s) { return treaty::ToValidUtf8(s); }

std::string Excerpt(std::string_view s, size_t max_bytes) { return treaty::Excerpt(s, max_bytes); }

std::string EscapeControl(std::string_view s) { return treaty::EscapeControl(s); }

}  // namespace treaty_sdk_detail
