// treatyctl against a real in-process coordinator (SQLite) and a real HTTP
// participant: the binary is run as a child and its output and exit status
// checked, including fail-over past a dead first coordinator URL.

#include <sys/wait.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/server.h"
#include "sdk/loopback_coordinator.h"
#include "security/authenticator.h"
#include "support/subprocess.h"
#include "support/test_participant.h"
#include "support/test_pki.h"

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

  // Runs treatyctl with `args` (shell-quoted by the caller) against
  // `coordinators`, with `env` ("NAME=value ...") in its environment.
  RunResult Run(const std::string& args, std::string coordinators = "",
                const std::string& env = "") {
    if (coordinators.empty()) coordinators = server_->http_url();
    std::string cmd = env + " " + BinaryPath("treatyctl") + " --coordinator '" + coordinators +
                      "' " + args + " 2>&1";
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

// A saga file without a gtid whose submission times out on one coordinator
// and is sent again to the next must not start a second saga: treatyctl
// names the gtid before the first attempt, so the retry is a re-submission.
TEST_F(TreatyctlTest, SubmitWithoutGtidFailingOverStartsOneSaga) {
  participant_.SetRule("slow", "action", TestParticipant::Rule{{200}, 2500});
  json saga = {{"steps",
                {{{"name", "slow"},
                  {"action", participant_.Url("slow", "action")},
                  {"compensate", participant_.Url("slow", "compensate")}}}}};
  std::ofstream(dir_ + "/nogtid.json") << saga.dump();
  const std::string url = server_->http_url();
  auto r =
      Run("--request-timeout-ms 1000 saga submit " + dir_ + "/nogtid.json --wait", url + "," + url);
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("gtid is "), std::string::npos) << r.out;
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  auto list = Run("list --json");
  ASSERT_EQ(list.code, 0) << list.out;
  EXPECT_EQ(json::parse(list.out)["items"].size(), 1u) << list.out;
  size_t actions = 0;
  for (const auto& c : participant_.Calls()) actions += c.op == "action";
  EXPECT_EQ(actions, 1u);
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

// A coordinator that answers 503 (draining, store unavailable, overloaded:
// "retry on any coordinator", docs/api.md) is passed over like a dead one;
// when every coordinator answers 503 its message is shown.
TEST_F(TreatyctlTest, FailsOverPastACoordinatorAnswering503) {
  LoopbackCoordinator draining;
  draining.SetBehavior(
      {.status = 503,
       .body = R"({"error":{"code":"unavailable","message":"this coordinator is draining"}})"});
  auto r = Run("2pc begin --gtid f503", draining.url() + "," + server_->http_url());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "f503 ACTIVE\n");
  EXPECT_EQ(draining.requests().size(), 1u);
  r = Run("get f503", draining.url());
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("this coordinator is draining"), std::string::npos) << r.out;
}

// A coordinator's answer of an unexpected shape or with control bytes is
// reported, escaped and cut; treatyctl neither aborts nor writes the raw bytes
// to the terminal. Before: `{"error":{"code":5}}` ended in std::terminate
// (exit 134), and a non-JSON error body reached stderr as it came.
TEST_F(TreatyctlTest, HostileAnswersAreReportedNotObeyed) {
  LoopbackCoordinator odd;
  odd.SetBehavior({.status = 409, .body = R"({"error":{"code":5,"message":["x"]}})"});
  auto r = Run("get g1", odd.url());
  EXPECT_EQ(r.code, 1) << r.out;
  odd.SetBehavior({.status = 403, .body = R"({"error":{"code":"forbidden","message":7}})"});
  r = Run("get g1", odd.url());
  EXPECT_EQ(r.code, 1) << r.out;
  odd.SetBehavior({.status = 200, .body = R"({"gtid":["a"],"state":{"x":1},"paused":"yes"})"});
  r = Run("2pc begin --gtid g1", odd.url());
  EXPECT_EQ(r.code, 0) << r.out;
  odd.SetBehavior(
      {.status = 503, .body = "\x1b[31mred\x07\x1b]0;title\x07" + std::string(5000, 'x')});
  r = Run("get g1", odd.url());
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x07'), std::string::npos) << r.out;
  EXPECT_LT(r.out.size(), 1000u) << r.out;
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

// The operator commands' arguments and exit codes (usage 2, refused 1, ok 0).
TEST_F(TreatyctlTest, OperatorCommandsAndExitCodes) {
  EXPECT_EQ(Run("resolve g1 b1 --as COMMITTED").code, 2) << "reason required";
  EXPECT_EQ(Run("resolve g1 b1 --reason 'fixed'").code, 2) << "--as required";
  EXPECT_EQ(Run("resolve g1 b1 --as DONE --reason 'fixed'").code, 2);
  EXPECT_EQ(Run("resolve g1 b1 --as COMMITTED --reason ''").code, 2);
  EXPECT_EQ(Run("resolve g1 --as COMMITTED --reason 'fixed'").code, 2) << "branch missing";
  EXPECT_EQ(Run("pause").code, 2);
  EXPECT_EQ(Run("retry g1 --reason \"$(printf 'two\\nlines')\"").code, 2);
  EXPECT_EQ(Run("abort g1 --reason \"$(head -c 1025 /dev/zero | tr '\\0' r)\"").code, 2);
  for (const std::string cmd :
       {"pause nobody", "resume nobody --reason 'x'", "retry nobody", "abort nobody --reason 'x'",
        "resolve nobody b1 --as ABORTED --reason 'fixed by hand'"}) {
    auto r = Run(cmd);
    EXPECT_EQ(r.code, 1) << cmd << ": " << r.out;
    EXPECT_NE(r.out.find("404"), std::string::npos) << cmd << ": " << r.out;
  }
  // A reason reaches the server: a running saga is retried with it.
  participant_.SetRule("slow", "action", TestParticipant::Rule{{503}});
  json saga = {{"gtid", "s2"},
               {"steps",
                {{{"name", "slow"},
                  {"action", participant_.Url("slow", "action")},
                  {"compensate", participant_.Url("slow", "compensate")},
                  {"retry", {{"max_attempts", 1000}, {"max_backoff_ms", 100}}}}}}};
  std::ofstream(dir_ + "/slow.json") << saga.dump();
  ASSERT_EQ(Run("saga submit " + dir_ + "/slow.json").code, 0);
  auto r = Run("retry s2 --reason 'participant redeployed'");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "s2 RUNNING\n");
  r = Run("list --paused");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("s2"), std::string::npos) << r.out;
  r = Run("list");
  EXPECT_NE(r.out.find("FLAGS"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LAST ERROR"), std::string::npos) << r.out;
  // A resolve that does not apply is the server's 409, printed, exit 1.
  r = Run("resolve s2 slow --as COMMITTED --reason 'fixed by hand'");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("409"), std::string::npos) << r.out;
  EXPECT_EQ(Run("abort s2 --reason 'customer cancelled'").code, 0);
}

TEST_F(TreatyctlTest, EnlistOnePhaseDeclaresIt) {
  ASSERT_EQ(Run("2pc begin --gtid o1").code, 0);
  EXPECT_EQ(Run("2pc begin --gtid o2 --no-one-phase").code, 0) << "still accepted";
  auto r = Run("2pc enlist o1 --name a --prepare " + participant_.Url("a", "prepare") +
               " --commit " + participant_.Url("a", "commit") + " --abort " +
               participant_.Url("a", "abort") + " --one-phase");
  ASSERT_EQ(r.code, 0) << r.out;
  r = Run("get o1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  json doc = json::parse(r.out);
  ASSERT_EQ(doc["branches"].size(), 1u);
  EXPECT_EQ(doc["branches"][0]["spec"].value("one_phase", false), true) << r.out;
}

// The views, against a canned coordinator answer (a TestParticipant serving
// fixed JSON): collapsed retries, flags and a long, hostile last error.
TEST_F(TreatyctlTest, ViewsShowFlagsLastErrorAndCollapsedRetries) {
  TestParticipant fake;
  const std::string hostile = "HTTP 503: \x1b[31mred\n" + std::string(300, 'e');
  json txn = {
      {"gtid", "v1"},
      {"kind", "2pc"},
      {"state", "COMMITTING"},
      {"owner", "c1"},
      {"needs_attention", true},
      {"paused", true},
      {"last_error", hostile},
      {"branches",
       {{{"name", "acct"}, {"state", "COMMITTING"}, {"attempts", 30}, {"last_error", hostile}}}},
      {"history",
       {{{"id", 1},
         {"at_ms", 1764530000000},
         {"branch", "acct"},
         {"type", "retry"},
         {"detail", "commit failed: HTTP 404"},
         {"count", 30},
         {"first_at_ms", 1764529520000}},
        {{"id", 2},
         {"at_ms", 1764530001000},
         {"branch", ""},
         {"type", "operator"},
         {"detail", "pause by anonymous@127.0.0.1:5: maintenance"},
         {"count", 1},
         {"first_at_ms", 1764530001000}}}}};
  fake.SetRule("transactions", "v1", TestParticipant::Rule{{200}, 0, txn.dump()});
  json page = {{"items", {txn}}, {"next", ""}};
  page["items"][0].erase("branches");
  page["items"][0].erase("history");
  fake.SetRule("v1", "transactions", TestParticipant::Rule{{200}, 0, page.dump()});
  const std::string url = "http://127.0.0.1:" + std::to_string(fake.port());

  auto r = Run("get v1", url);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("(PAUSED)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(NEEDS ATTENTION)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("retry x30 (2025-11-30 19:05:20.000 UTC .. 2025-11-30 19:13:20.000 UTC): "
                       "commit failed: HTTP 404"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("operator: pause by anonymous@127.0.0.1:5: maintenance"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "terminal escape passed through";

  r = Run("list", url);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("attention,paused"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("HTTP 503: \\x1b[31mred\\n"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "terminal escape passed through";
  EXPECT_EQ(r.out.find(std::string(100, 'e')), std::string::npos) << "not truncated: " << r.out;
  EXPECT_NE(r.out.find("..."), std::string::npos) << r.out;
}

// --json is accepted before or after every command and prints the answer's
// JSON (raw ms times); text shows times in UTC with the zone.
TEST_F(TreatyctlTest, JsonBeforeOrAfterEveryCommandAndReadableTimes) {
  auto r = Run("2pc begin --gtid j1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["state"], "ACTIVE") << r.out;
  r = Run("--json 2pc enlist j1 --name a --prepare " + participant_.Url("a", "prepare") +
          " --commit " + participant_.Url("a", "commit") + " --abort " +
          participant_.Url("a", "abort"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["branch"], "a") << r.out;
  r = Run("--json pause j1 --reason 'maintenance'");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["paused"], true) << r.out;
  r = Run("resume j1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["gtid"], "j1") << r.out;
  r = Run("2pc commit j1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["state"], "COMMITTED") << r.out;
  for (const std::string cmd : {"--json get j1", "get j1 --json"}) {
    r = Run(cmd);
    ASSERT_EQ(r.code, 0) << cmd << ": " << r.out;
    json doc = json::parse(r.out);
    EXPECT_TRUE(doc["created_at_ms"].is_number_integer()) << r.out;
  }
  for (const std::string cmd : {"--json list", "list --json", "--json cluster", "cluster --json"}) {
    r = Run(cmd);
    ASSERT_EQ(r.code, 0) << cmd << ": " << r.out;
    EXPECT_TRUE(json::parse(r.out).is_object()) << cmd << ": " << r.out;
  }
  EXPECT_EQ(Run("2pc begin --gtid j2").code, 0);
  r = Run("--json 2pc abort j2");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(json::parse(r.out)["state"].get<std::string>().find("ABORT"), std::string::npos);
  // Text: created/updated/deadline and the list's UPDATED column in UTC.
  r = Run("get j1");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::regex utc(R"(created:  \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} UTC\n)");
  EXPECT_TRUE(std::regex_search(r.out, utc)) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\n  \d{4}-\d{2}-\d{2} [0-9:.]{12} UTC  )")))
      << "history times: " << r.out;
  r = Run("list");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("UPDATED"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(j1 .* \d{2}:\d{2}:\d{2}\.\d{3} UTC)")))
      << r.out;
}

// list pages with --cursor: the text names the cursor of the next page,
// --json carries it as "next", and the pages together hold every row once.
TEST_F(TreatyctlTest, ListPagesWithTheCursor) {
  for (std::string g : {"p1", "p2", "p3", "p4", "p5"}) {
    ASSERT_EQ(Run("2pc begin --gtid " + g).code, 0);
  }
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto r = Run("list --limit 2" + (cursor.empty() ? "" : " --cursor '" + cursor + "'"));
    ASSERT_EQ(r.code, 0) << r.out;
    ++pages;
    for (std::string g : {"p1", "p2", "p3", "p4", "p5"}) {
      if (r.out.find(g + " ") != std::string::npos) {
        EXPECT_TRUE(seen.insert(g).second) << g;
      }
    }
    const std::string kNext = "next page: --cursor ";
    const size_t at = r.out.find(kNext);
    cursor = at == std::string::npos
                 ? ""
                 : r.out.substr(at + kNext.size(), r.out.find('\n', at) - at - kNext.size());
    if (pages == 1) {
      ASSERT_FALSE(cursor.empty()) << r.out;
      auto first = Run("--json list --limit 2");
      EXPECT_EQ(json::parse(first.out)["next"], cursor) << first.out;
    }
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen.size(), 5u);
  auto bad = Run("list --cursor 'not-a-cursor'");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("cursor"), std::string::npos) << bad.out;
}

// Exit codes tell a waited outcome: 4 for ABORTED (saga --wait, 2pc commit),
// 5 when the wait ran out; --help lists every code.
TEST_F(TreatyctlTest, ExitCodesOfWaitedOutcomes) {
  participant_.SetRule("nope", "action", TestParticipant::Rule{{409}});
  json saga = {{"gtid", "x1"},
               {"steps",
                {{{"name", "nope"},
                  {"action", participant_.Url("nope", "action")},
                  {"compensate", participant_.Url("nope", "compensate")}}}}};
  std::ofstream(dir_ + "/x1.json") << saga.dump();
  auto r = Run("saga submit " + dir_ + "/x1.json --wait");
  EXPECT_EQ(r.code, 4) << r.out;
  EXPECT_EQ(r.out, "x1 ABORTED\n");
  r = Run("--json saga submit " + dir_ + "/x1.json --wait");  // the same saga again
  EXPECT_EQ(r.code, 4) << r.out;
  EXPECT_EQ(json::parse(r.out)["state"], "ABORTED") << r.out;
  EXPECT_EQ(Run("saga submit " + dir_ + "/x1.json").code, 0) << "not waited: accepted is 0";

  participant_.SetRule("no", "prepare", TestParticipant::Rule{{409}});
  ASSERT_EQ(Run("2pc begin --gtid x2").code, 0);
  ASSERT_EQ(
      Run("2pc enlist x2 --name no --prepare " + participant_.Url("no", "prepare") + " --commit " +
          participant_.Url("no", "commit") + " --abort " + participant_.Url("no", "abort"))
          .code,
      0);
  r = Run("2pc commit x2");
  EXPECT_EQ(r.code, 4) << r.out;
  EXPECT_NE(r.out.find("x2 ABORT"), std::string::npos) << r.out;

  // A wait that ran out (202, still RUNNING), from a canned coordinator.
  TestParticipant fake;
  fake.SetRule("v1", "sagas",
               TestParticipant::Rule{{202}, 0, R"({"gtid":"x3","state":"RUNNING"})"});
  r = Run("saga submit " + dir_ + "/x1.json --wait",
          "http://127.0.0.1:" + std::to_string(fake.port()));
  EXPECT_EQ(r.code, 5) << r.out;
  EXPECT_EQ(r.out, "x3 RUNNING\n");

  r = Run("--help");
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* line :
       {"0  done", "1  the coordinator refused", "2  usage error", "3  no coordinator reachable",
        "4  saga submit --wait, 2pc commit", "5  saga submit --wait: the wait ran out"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  }
}

// `completion bash` prints a script bash accepts (bash -n) whose function
// completes subcommands, nested ones and options through compgen.
TEST_F(TreatyctlTest, ShellCompletion) {
  auto r = Run("completion bash");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string script = dir_ + "/treatyctl.bash";
  std::ofstream(script) << r.out;
  EXPECT_EQ(WEXITSTATUS(system(("bash -n " + script).c_str())), 0) << r.out;
  // Completes the last word of `line` (COMP_CWORD = its index).
  auto complete = [&](const std::string& words) {
    const std::string cmd = "bash -c 'source " + script + "; COMP_WORDS=(" + words +
                            "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _treatyctl; "
                            "echo \"${COMPREPLY[*]}\"' 2>&1";
    RunResult out;
    FILE* p = popen(cmd.c_str(), "r");
    std::array<char, 4096> buf;
    size_t n;
    while (p && (n = fread(buf.data(), 1, buf.size(), p)) > 0) out.out.append(buf.data(), n);
    if (p) pclose(p);
    return out.out;
  };
  EXPECT_EQ(complete("treatyctl 2p"), "2pc\n");
  EXPECT_EQ(complete("treatyctl li"), "list\n");
  EXPECT_EQ(complete("treatyctl 2pc c"), "commit\n");
  EXPECT_EQ(complete("treatyctl --json 2pc e"), "enlist\n");
  EXPECT_EQ(complete("treatyctl saga s"), "submit\n");
  EXPECT_EQ(complete("treatyctl list --cu"), "--cursor\n");
  EXPECT_EQ(complete("treatyctl get g1 --js"), "--json\n");
  EXPECT_EQ(complete("treatyctl completion z"), "zsh\n");
  std::string top = complete("treatyctl \"\"");
  std::replace(top.begin(), top.end(), '\n', ' ');
  for (const char* cmd : {"saga", "2pc", "get", "list", "retry", "abort", "pause", "resume",
                          "resolve", "cluster", "completion"}) {
    EXPECT_NE((" " + top).find(std::string(" ") + cmd + " "), std::string::npos) << top;
  }
  r = Run("completion zsh");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("bashcompinit"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("complete -F _treatyctl treatyctl"), std::string::npos) << r.out;
  EXPECT_EQ(Run("completion fish").code, 2);
}

// Issue: `treatyctl abort` of a COMPENSATING saga printed the state and
// exited 0, doing nothing. The server refuses (409, "already compensating");
// treatyctl prints that and exits 1. (Needs the engine's ForceAbort refusal.)
TEST_F(TreatyctlTest, AbortOfACompensatingSagaIsRefused) {
  participant_.SetRule("pay", "action", TestParticipant::Rule{{409}});
  participant_.SetRule("book", "compensate", TestParticipant::Rule{{500}});
  json saga = {{"gtid", "k1"}, {"steps", json::array()}};
  for (std::string name : {"book", "pay"}) {
    saga["steps"].push_back({{"name", name},
                             {"action", participant_.Url(name, "action")},
                             {"compensate", participant_.Url(name, "compensate")}});
  }
  std::ofstream(dir_ + "/k1.json") << saga.dump();
  ASSERT_EQ(Run("saga submit " + dir_ + "/k1.json").code, 0);
  ASSERT_TRUE(participant_.WaitFor(
      [](const auto& calls) {
        for (const auto& c : calls) {
          if (c.gtid == "k1" && c.branch == "book" && c.op == "compensate") return true;
        }
        return false;
      },
      std::chrono::seconds(20)));
  auto r = Run("abort k1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("409"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("already compensating"), std::string::npos) << r.out;
}

// A coordinator with --auth-tokens: treatyctl sends --token or TREATY_TOKEN
// as a bearer token, explains a 401 and a 403, and never prints the token.
class TreatyctlAuthTest : public TreatyctlTest {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-ctl-auth");
    std::ofstream(dir_ + "/tokens") << "ops submit,read,operate " << Sha256Hex(kOpsToken) << "\n"
                                    << "viewer read " << Sha256Hex(kViewerToken) << "\n";
    ServerOptions o;
    o.store_uri = "sqlite:" + dir_ + "/t.db";
    o.http_port = 0;
    o.auth_tokens_file = dir_ + "/tokens";
    server_ = std::make_unique<Server>(o);
    auto s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  static constexpr const char* kOpsToken = "ops-secret-6f1c2a";
  static constexpr const char* kViewerToken = "viewer-secret-93be07";
};

TEST_F(TreatyctlAuthTest, NoTokenIsAClearError) {
  auto r = Run("list");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("the coordinator needs a token: --token or TREATY_TOKEN"), std::string::npos)
      << r.out;
  r = Run("--token not-a-known-token list");
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("refused the token"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("not-a-known-token"), std::string::npos) << "token printed: " << r.out;
}

TEST_F(TreatyctlAuthTest, TokenFromTheEnvironmentOrTheFlag) {
  const std::string env = std::string("TREATY_TOKEN=") + kOpsToken + " ";
  auto r = Run("2pc begin --gtid a1", "", env);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "a1 ACTIVE\n");
  r = Run(std::string("--token ") + kOpsToken + " get a1 --json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out).value("state", ""), "ACTIVE") << r.out;
  r = Run(std::string("--token ") + kViewerToken + " list");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("a1"), std::string::npos) << r.out;
}

TEST_F(TreatyctlAuthTest, AReadOnlyTokenCannotRetry) {
  ASSERT_EQ(Run(std::string("--token ") + kOpsToken + " 2pc begin --gtid r1").code, 0);
  auto r = Run("retry r1 --reason 'try again'", "", std::string("TREATY_TOKEN=") + kViewerToken);
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("token lacks the 'operate' role"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kViewerToken), std::string::npos) << "token printed: " << r.out;
}

// An https:// coordinator: verified against --ca (or TREATY_CA).
TEST(TreatyctlTlsTest, HttpsCoordinatorWithTheCa) {
  auto pki = TestPki::Create();
  ASSERT_TRUE(pki.ok()) << pki.status().ToString();
  auto cert = pki->Issue("treaty-server", "server");
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  ServerOptions o;
  o.store_uri = "sqlite:" + pki->dir() + "/t.db";
  o.http_port = 0;
  o.tls = {.cert_file = cert->cert, .key_file = cert->key};
  Server server(o);
  auto s = server.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  const std::string base = BinaryPath("treatyctl") +
                           " --coordinator https://localhost:" + std::to_string(server.http_port());
  auto run = [](const std::string& cmd) {
    RunResult r;
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  };
  auto r = run(base + " --ca " + pki->ca_cert() + " cluster");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(server.coordinator_id()), std::string::npos) << r.out;
  r = run("TREATY_CA=" + pki->ca_cert() + " " + base + " list");
  EXPECT_EQ(r.code, 0) << r.out;
  r = run(base + " cluster");  // the system store does not know the test CA
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("certificate"), std::string::npos) << r.out;
  server.Stop();
  std::error_code ec;
  std::filesystem::remove_all(pki->dir(), ec);
}

}  // namespace
}  // namespace treaty::testing
