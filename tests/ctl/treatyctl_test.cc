// treatyctl against a real in-process coordinator (SQLite) and a real HTTP
// participant: the binary is run as a child and its output and exit status
// checked, including fail-over past a dead first coordinator URL.

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "api/server.h"
#include "support/subprocess.h"
#include "support/test_participant.h"

namespace treaty::testing {
namespace {

using nlohmann::json;

struct RunResult {
  int code = -1;
  std::string out;
};

class TreatyctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-ctl");
    ServerOptions o;
    o.store_uri = "sqlite:" + dir_ + "/t.db";
    o.http_port = 0;
    o.heartbeat_ms = 200;
    o.lease_ms = 1000;
    server_ = std::make_unique<Server>(o);
    ASSERT_TRUE(server_->Start().ok());
    dead_ = "http://127.0.0.1:" + std::to_string(FreePort());
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Runs treatyctl with `args` (shell-quoted by the caller) against `coordinators`.
  RunResult Run(const std::string& args, std::string coordinators = "") {
    if (coordinators.empty()) coordinators = server_->http_url();
    std::string cmd =
        BinaryPath("treatyctl") + " --coordinator '" + coordinators + "' " + args + " 2>&1";
    RunResult r;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }

  std::string dir_, dead_;
  std::unique_ptr<Server> server_;
  TestParticipant participant_;
};

TEST_F(TreatyctlTest, TwoPhaseLifecycle) {
  auto r = Run("2pc begin --gtid c1 --timeout-ms 30000");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "c1 ACTIVE\n");
  for (std::string b : {"a", "b"}) {
    r = Run("2pc enlist c1 --name " + b + " --prepare " + participant_.Url(b, "prepare") +
            " --commit " + participant_.Url(b, "commit") + " --abort " +
            participant_.Url(b, "abort") + " --payload '{\"x\":1}'");
    EXPECT_EQ(r.code, 0) << r.out;
  }
  r = Run("2pc commit c1");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "c1 COMMITTED\n");
  r = Run("get c1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["state"], "COMMITTED");
  EXPECT_EQ(doc["branches"].size(), 2u);
  r = Run("get c1");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("BRANCH"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("history:"), std::string::npos) << r.out;
  r = Run("list --kind 2pc");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("GTID", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("c1"), std::string::npos) << r.out;
  r = Run("list --json --limit 5");
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(json::parse(r.out)["items"].size(), 1u);
  // Enlisting after the decision, aborting a committed one: refused (1).
  r = Run("2pc enlist c1 --name z --prepare http://x/p --commit http://x/c --abort http://x/a");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("409"), std::string::npos) << r.out;
  EXPECT_EQ(Run("abort c1").code, 1);
  // And a 2PC aborted by the client.
  EXPECT_EQ(Run("2pc begin --gtid c2").code, 0);
  r = Run("2pc abort c2");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ABORT"), std::string::npos) << r.out;
}

TEST_F(TreatyctlTest, SagaSubmitRetryAndCluster) {
  json saga = {{"gtid", "s1"},
               {"steps",
                {{{"name", "a"},
                  {"action", participant_.Url("a", "action")},
                  {"compensate", participant_.Url("a", "compensate")}}}}};
  std::ofstream(dir_ + "/saga.json") << saga.dump();
  auto r = Run("saga submit " + dir_ + "/saga.json --wait");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "s1 COMMITTED\n");
  EXPECT_EQ(Run("retry s1").code, 1);  // finished: conflict
  r = Run("cluster");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find(server_->coordinator_id()), std::string::npos) << r.out;
  r = Run("cluster --json");
  EXPECT_EQ(json::parse(r.out)["coordinators"].size(), 1u);
}

TEST_F(TreatyctlTest, ErrorsAndExitCodes) {
  auto r = Run("get no-such-gtid");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not_found"), std::string::npos) << r.out;
  EXPECT_EQ(Run("frobnicate").code, 2);
  EXPECT_EQ(Run("2pc enlist g --name a").code, 2);  // missing required URLs
  EXPECT_EQ(Run("list --kind bogus").code, 2);
  EXPECT_EQ(Run("saga submit /nonexistent.json").code, 2);
  r = Run("2pc begin --gtid 'bad gtid'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("400"), std::string::npos) << r.out;
  r = Run("list", dead_);
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.out.find("no coordinator reachable"), std::string::npos) << r.out;
}

TEST_F(TreatyctlTest, FailsOverPastADeadCoordinator) {
  auto r = Run("2pc begin --gtid f1", dead_ + "," + server_->http_url());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "f1 ACTIVE\n");
  setenv("TREATY_COORDINATOR", (dead_ + "," + server_->http_url()).c_str(), 1);
  std::string cmd = BinaryPath("treatyctl") + " get f1 --json > /dev/null 2>&1";
  EXPECT_EQ(WEXITSTATUS(system(cmd.c_str())), 0);
  unsetenv("TREATY_COORDINATOR");
}

}  // namespace
}  // namespace treaty::testing
