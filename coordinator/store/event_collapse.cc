#include "store/event_collapse.h"

#include <map>
#include <string>

namespace treaty {

std::vector<PlannedEvent> PlanEvents(const TxnWrite& w) {
  std::vector<PlannedEvent> out;
  out.reserve(w.events.size());
  // Index in `out` of the newest planned event of each branch.
  std::map<std::string, size_t> newest;
  for (const EventRow& e : w.events) {
    const int64_t at = e.at_ms ? e.at_ms : w.now_ms;
    const int64_t count = e.count > 1 ? e.count : 1;
    auto it = newest.find(e.branch);
    if (e.collapse && it != newest.end() && out[it->second].row.type == e.type) {
      EventRow& into = out[it->second].row;
      into.count += count;
      into.detail = e.detail;
      into.at_ms = at;
      continue;
    }
    PlannedEvent p;
    p.row = e;
    p.row.gtid = w.gtid;
    p.row.at_ms = at;
    p.row.count = count;
    p.row.first_at_ms = e.first_at_ms ? e.first_at_ms : at;
    p.row.collapse = false;
    p.into_stored = e.collapse && !w.create && it == newest.end();
    newest[e.branch] = out.size();
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace treaty
