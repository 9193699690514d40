#pragma once

// ClusterFixture: shared parts of the multi-coordinator fault tests
// (cluster_test.cc, replication_test.cc): treatyd processes on one store, a
// slow scriptable participant, saga submission, waiting for terminal states,
// and the protocol checks every fault test ends with.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_participant.h"
#include "support/treatyd_process.h"

namespace treaty::testing {

using Clock = std::chrono::steady_clock;

class ClusterFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts `n` coordinators named c0..c{n-1} on `store`.
  void StartCoordinators(int n, const TreatydOptions& options);
  // A three-step saga (flight, hotel, car); `fails` makes the last step a
  // business failure (409), so the saga compensates.
  nlohmann::json Saga(const std::string& gtid, bool fails) const;
  // POST /v1/sagas to `url`; the HTTP status, or 0 when no answer came.
  int Submit(const std::string& url, const nlohmann::json& saga, int timeout_ms = 3000) const;
  // GET /v1/transactions/{gtid} from any running coordinator.
  std::optional<nlohmann::json> Get(const std::string& gtid) const;
  // Waits until every gtid is terminal; returns the final documents. Fails
  // the test when `timeout` passes first. `finished_at` (optional) gets the
  // moment each one was first seen terminal.
  std::map<std::string, nlohmann::json> WaitTerminal(
      const std::set<std::string>& gtids, std::chrono::milliseconds timeout,
      std::map<std::string, Clock::time_point>* finished_at = nullptr) const;
  // The protocol checks: no effect twice; a committed saga applied every
  // action once and compensated nothing; an aborted saga compensated every
  // step whose action was attempted. Returns {committed, aborted}.
  std::pair<int, int> CheckOutcomes(const std::map<std::string, nlohmann::json>& final) const;
  // Ids of the coordinators that resumed `gtid` ("recovery" history events).
  static std::vector<std::string> Adopters(const nlohmann::json& txn);
  std::string LogsOfAll() const;

  std::string dir_, store_;
  TestParticipant participant_;
  std::vector<std::unique_ptr<TreatydProcess>> nodes_;
};

}  // namespace treaty::testing
