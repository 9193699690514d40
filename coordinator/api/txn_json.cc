#include "api/txn_json.h"

#include <nlohmann/json.hpp>

#include "common/json_input.h"
#include "common/limits.h"

namespace treaty {
namespace {

using nlohmann::json;

// A stored spec as JSON; the stored text itself when it does not parse. The
// depth limit is generous (stored specs wrap payloads that were themselves
// limited at submission) but keeps serialization's recursion bounded.
json StoredJson(const std::string& text) {
  if (text.empty()) return nullptr;
  Result<json> parsed = ParseJson(text, "the stored spec", 2 * limits::kMaxJsonDepth);
  return parsed.ok() ? std::move(*parsed) : json(text);
}

json RowJson(const TxnRow& r, bool with_spec) {
  json out = {{"gtid", r.gtid},
              {"kind", r.kind},
              {"state", r.state},
              {"owner", r.owner},
              {"needs_attention", r.needs_attention},
              {"paused", r.paused},
              {"last_error", r.last_error},
              {"deadline_ms", r.deadline_ms},
              {"next_attempt_at_ms", r.next_attempt_at_ms},
              {"attempts", r.attempts},
              {"version", r.version},
              {"created_at_ms", r.created_at_ms},
              {"updated_at_ms", r.updated_at_ms}};
  if (with_spec) out["spec"] = StoredJson(r.spec);
  return out;
}

}  // namespace

std::string TxnRowJson(const TxnRow& row) { return DumpJson(RowJson(row, true)); }

std::string TxnDetailJson(const TxnDetail& d, bool with_events) {
  json out = RowJson(d.txn, true);
  json branches = json::array();
  for (const auto& b : d.branches) {
    branches.push_back({{"name", b.name},
                        {"idx", b.idx},
                        {"state", b.state},
                        {"attempts", b.attempts},
                        {"last_error", b.last_error},
                        {"next_attempt_at_ms", b.next_attempt_at_ms},
                        {"updated_at_ms", b.updated_at_ms},
                        {"spec", StoredJson(b.spec)}});
  }
  out["branches"] = std::move(branches);
  if (with_events) {
    json history = json::array();
    for (const auto& e : d.events) {
      history.push_back({{"id", e.id},
                         {"at_ms", e.at_ms},
                         {"branch", e.branch},
                         {"type", e.type},
                         {"detail", e.detail},
                         {"count", e.count},
                         {"first_at_ms", e.first_at_ms > 0 ? e.first_at_ms : e.at_ms}});
    }
    out["history"] = std::move(history);
  }
  return DumpJson(out);
}

std::string TxnPageJson(const TxnPage& page) {
  json items = json::array();
  for (const auto& row : page.items) items.push_back(RowJson(row, false));
  return DumpJson({{"items", std::move(items)}, {"next", page.next}});
}

std::string TxnStateJson(std::string_view gtid, std::string_view state) {
  return DumpJson({{"gtid", gtid}, {"state", state}});
}

std::string ClusterJson(const std::vector<CoordinatorRow>& coordinators) {
  json members = json::array();
  for (const auto& c : coordinators) {
    members.push_back({{"id", c.id},
                       {"node_name", c.node_name},
                       {"http", c.http_addr},
                       {"thrift", c.thrift_addr},
                       {"state", c.state},
                       {"started_at_ms", c.started_at_ms},
                       {"heartbeat_at_ms", c.heartbeat_at_ms},
                       {"heartbeat_age_ms", c.heartbeat_age_ms},
                       {"owned", c.owned}});
  }
  return DumpJson({{"coordinators", std::move(members)}});
}

}  // namespace treaty
