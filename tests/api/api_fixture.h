#pragma once

// Fixture of the REST integration tests: a real treaty::Server (HTTP on a
// loopback port) on a fresh store of the test's engine, a scriptable
// participant, and small HTTP/JSON helpers.

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/server.h"
#include "support/test_participant.h"

namespace treaty::testing {

struct ApiReply {
  int status = 0;
  nlohmann::json body;
  std::string raw;
};

class ApiTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Starts (or restarts) the server on the same store.
  void StartServer();

  ApiReply Post(const std::string& path, const nlohmann::json& body);
  ApiReply PostRaw(const std::string& path, const std::string& body);
  ApiReply Get(const std::string& path);
  // A step whose action/compensate go to the test participant.
  nlohmann::json Step(const std::string& name, int max_attempts = 3);
  // A 2PC branch whose prepare/commit/abort go to the test participant.
  nlohmann::json Branch2pc(const std::string& name);
  // Polls GET until the transaction is terminal (or `timeout_ms`).
  nlohmann::json WaitTerminal(const std::string& gtid, int timeout_ms = 20000);
  // Polls GET until the transaction is in `state` (or `timeout_ms`); returns
  // the last document read.
  nlohmann::json WaitState(const std::string& gtid, const std::string& state,
                           int timeout_ms = 20000);
  // Waits (up to 20 s) until the participant saw at least `n` calls of `op`
  // to `branch` of `gtid`.
  bool WaitCalls(const std::string& gtid, const std::string& branch, const std::string& op,
                 int n = 1);
  // The error message of an error answer (its raw body otherwise).
  static std::string Message(const ApiReply& r);
  // True if the transaction document's history holds an "operator" event
  // whose detail contains every one of `parts`.
  static bool HasOperatorEvent(const nlohmann::json& txn, const std::vector<std::string>& parts);

  ServerOptions options_;
  std::string dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<TestParticipant> participant_;

 private:
  // Polls GET until `done` holds for the document (or `timeout_ms`); a
  // failure names `what`. Returns the last document read.
  nlohmann::json PollTransaction(const std::string& gtid, int timeout_ms, const std::string& what,
                                 const std::function<bool(const nlohmann::json&)>& done);
};

std::string EngineParamName(const ::testing::TestParamInfo<std::string>& info);

}  // namespace treaty::testing
