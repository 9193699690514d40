#pragma once

// Fixture of the REST integration tests: a real treaty::Server (HTTP on a
// loopback port) on a fresh store of the test's engine, a scriptable
// participant, and small HTTP/JSON helpers.

#include <gtest/gtest.h>

#include <memory>
#include <string>

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
  // Polls GET until the transaction is terminal (or `timeout_ms`).
  nlohmann::json WaitTerminal(const std::string& gtid, int timeout_ms = 20000);

  ServerOptions options_;
  std::string dir_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<TestParticipant> participant_;
};

std::string EngineParamName(const ::testing::TestParamInfo<std::string>& info);

}  // namespace treaty::testing
