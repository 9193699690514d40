#include "api/list_query.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "common/limits.h"
#include "common/text.h"
#include "engine/states.h"
#include "http/http_request_parsing.h"
#include "store/list_cursor.h"

namespace treaty {

namespace {

// A parameter name from the request, safe to quote in an answer or a log.
std::string ShownName(std::string_view name) { return EscapeControl(Excerpt(name, 64)); }

}  // namespace

Status CheckQueryParameters(const HttpRequest& req, std::initializer_list<std::string_view> known) {
  for (const auto& [name, value] : req.query) {
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string takes;
    for (std::string_view k : known) takes += (takes.empty() ? "" : ", ") + std::string(k);
    return Status::InvalidArgument("query parameter '" + ShownName(name) +
                                   "' is unknown; this route takes " +
                                   (takes.empty() ? std::string("none") : takes));
  }
  // req.query kept the first of repeated names: look at the raw target, as
  // SplitTarget parsed it.
  const size_t q = req.target.find('?');
  if (q == std::string::npos) return Status::Ok();
  std::string_view raw = std::string_view(req.target).substr(q + 1);
  raw = raw.substr(0, raw.find('#'));
  std::set<std::string> seen;
  while (!raw.empty()) {
    const size_t amp = raw.find('&');
    const std::string_view pair = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    if (pair.empty()) continue;
    std::string name = PercentDecode(pair.substr(0, pair.find('=')), true);
    if (!seen.insert(name).second) {
      return Status::InvalidArgument("query parameter '" + ShownName(name) +
                                     "' is given more than once; give it once");
    }
  }
  return Status::Ok();
}

Status QueryInt(const HttpRequest& req, const std::string& key, int64_t min, int64_t max,
                std::optional<int64_t>* out) {
  auto it = req.query.find(key);
  if (it == req.query.end() || it->second.empty()) return Status::Ok();
  const std::string& text = it->second;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text[0] == '+' || v < min ||
      v > max) {
    return Status::InvalidArgument("query parameter '" + key + "' must be an integer from " +
                                   std::to_string(min) + " to " + std::to_string(max));
  }
  *out = v;
  return Status::Ok();
}

Result<ListFilter> ParseListFilter(const HttpRequest& req, int max_limit, int64_t now_ms) {
  if (auto s = CheckQueryParameters(req, {"state", "kind", "needs_attention", "paused",
                                          "gtid_prefix", "min_age_ms", "limit", "cursor"});
      !s.ok()) {
    return s;
  }
  ListFilter f;
  std::optional<int64_t> limit, age;
  if (auto s = QueryInt(req, "limit", 1, max_limit, &limit); !s.ok()) return s;
  if (auto s = QueryInt(req, "min_age_ms", 0, INT64_MAX / 2, &age); !s.ok()) return s;
  if (limit) f.limit = static_cast<int>(*limit);
  if (age) f.created_before_ms = now_ms - *age;
  auto q = [&](const char* k) -> std::optional<std::string> {
    auto it = req.query.find(k);
    if (it == req.query.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
  f.state = q("state");
  f.kind = q("kind");
  f.gtid_prefix = q("gtid_prefix");
  f.cursor = q("cursor").value_or("");
  if (f.state && !ParseTxnState(*f.state)) {
    return Status::InvalidArgument(
        "query parameter 'state' must be one of RUNNING, COMPENSATING, ACTIVE, PREPARING, "
        "COMMITTING, ABORTING, COMMITTED, ABORTED");
  }
  if (f.kind && !ParseTxnKind(*f.kind)) {
    return Status::InvalidArgument("query parameter 'kind' must be saga or 2pc");
  }
  if (f.gtid_prefix) {
    bool ok = f.gtid_prefix->size() <= limits::kMaxIdentifierBytes;
    for (char c : *f.gtid_prefix) ok = ok && IsIdentifierChar(c);
    if (!ok) {
      return Status::InvalidArgument(
          "query parameter 'gtid_prefix' must be at most " +
          std::to_string(limits::kMaxIdentifierBytes) +
          " bytes of the gtid characters (printable ASCII other than space, '/', '?', '#', '%' "
          "and '\\')");
    }
  }
  if (!f.cursor.empty() && !DecodeListCursor(f.cursor).ok()) {
    return Status::InvalidArgument(
        "query parameter 'cursor' is malformed: pass back the 'next' value of the previous page");
  }
  const auto boolean = [&](const char* key, std::optional<bool>* into) -> Status {
    auto v = q(key);
    if (!v) return Status::Ok();
    if (*v != "true" && *v != "false") {
      return Status::InvalidArgument(std::string("query parameter '") + key +
                                     "' must be true or false");
    }
    *into = *v == "true";
    return Status::Ok();
  };
  if (auto s = boolean("needs_attention", &f.needs_attention); !s.ok()) return s;
  if (auto s = boolean("paused", &f.paused); !s.ok()) return s;
  return f;
}

}  // namespace treaty
