#include "common/json_input.h"

#include <utility>
#include <vector>

namespace treaty {
namespace {

using nlohmann::json;

// nlohmann's DOM builder with a depth limit: returning false from a SAX
// callback stops the parse (nlohmann::json::sax_parse contract).
class DepthLimitedSax : public nlohmann::detail::json_sax_dom_parser<json> {
 public:
  DepthLimitedSax(json& result, int max_depth)
      : json_sax_dom_parser<json>(result, /*allow_exceptions=*/false), max_depth_(max_depth) {}

  bool start_object(std::size_t len) {
    if (++depth_ > max_depth_) return too_deep_ = true, false;
    return json_sax_dom_parser<json>::start_object(len);
  }
  bool end_object() {
    --depth_;
    return json_sax_dom_parser<json>::end_object();
  }
  bool start_array(std::size_t len) {
    if (++depth_ > max_depth_) return too_deep_ = true, false;
    return json_sax_dom_parser<json>::start_array(len);
  }
  bool end_array() {
    --depth_;
    return json_sax_dom_parser<json>::end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t position, const std::string& token, const Exception& ex) {
    error_ = ex.what();
    return json_sax_dom_parser<json>::parse_error(position, token, ex);
  }

  bool too_deep() const { return too_deep_; }
  const std::string& error() const { return error_; }

 private:
  const int max_depth_;
  int depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
};

}  // namespace

Result<json> ParseJson(std::string_view text, std::string_view what, int max_depth) {
  json result;
  DepthLimitedSax sax(result, max_depth);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &sax);
  } catch (const std::exception& e) {  // defensive: sax_parse is told not to throw
    return Status::InvalidArgument(std::string(what) + " is not valid JSON");
  }
  if (sax.too_deep()) {
    return Status::InvalidArgument(std::string(what) + " nests arrays/objects deeper than " +
                                   std::to_string(max_depth) + " levels");
  }
  if (!ok || sax.is_errored()) {
    // nlohmann's message quotes at most a short token; keep it printable.
    std::string detail = sax.error();
    for (char& c : detail) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    return Status::InvalidArgument(std::string(what) + " is not valid JSON" +
                                   (detail.empty() ? "" : ": " + detail));
  }
  return result;
}

int JsonDepth(const json& value) {
  int deepest = 0;
  std::vector<std::pair<const json*, int>> stack = {{&value, 0}};
  while (!stack.empty()) {
    auto [v, depth] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    ++depth;
    if (depth > deepest) deepest = depth;
    for (const auto& child : *v) stack.emplace_back(&child, depth);
  }
  return deepest;
}

std::string DumpJson(const json& value) {
  try {
    return value.dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (const std::exception&) {  // only allocation failure is left
    return "null";
  }
}

}  // namespace treaty
