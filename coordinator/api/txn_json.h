#pragma once

// The one rendering of transactions and of the cluster to JSON, shared by
// every HTTP route that shows them (GET /v1/transactions[/{gtid}],
// GET /v1/cluster):
//
//   row     {"gtid","kind","state","owner","needs_attention","paused",
//            "last_error","deadline_ms","next_attempt_at_ms","attempts",
//            "version","created_at_ms","updated_at_ms","spec"}
//   detail  row + "branches": [{"name","idx","state","attempts","last_error",
//            "next_attempt_at_ms","updated_at_ms","spec"}]
//            (+ "history": [{"id","at_ms","branch","type","detail","count",
//            "first_at_ms"}] when asked)
//   page    {"items": [row without "spec"], "next": cursor}
//   state   {"gtid","state"}: what a submission or an operator action answers
//   cluster {"coordinators": [{"id","node_name","http","thrift","state",
//            "started_at_ms","heartbeat_at_ms","heartbeat_age_ms","owned"}]}
//
// A stored spec is shown as JSON, or as its text when it does not parse.
// Serialized with DumpJson: never throws on data. Stateless, thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "store/log_store.h"

namespace treaty {

std::string TxnRowJson(const TxnRow& row);
std::string TxnDetailJson(const TxnDetail& detail, bool with_events);
std::string TxnPageJson(const TxnPage& page);
std::string TxnStateJson(std::string_view gtid, std::string_view state);
std::string ClusterJson(const std::vector<CoordinatorRow>& coordinators);

}  // namespace treaty
