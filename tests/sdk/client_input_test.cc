// treaty::Client against a coordinator that answers garbage:
// not JSON, JSON nested 100,000 levels deep, ill-formed UTF-8, fields of the
// wrong type. Every call returns a clean Status; none crashes or throws.
// Also: the Client refuses gtids that are not identifiers and payloads
// nested too deeply before sending anything.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "http/http_server.h"
#include "http/io_runner.h"
#include "treaty/client.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;

// Answers every request with the (status, body) set by the test, and
// counts requests. Thread-safe.
class ScriptedCoordinator {
 public:
  ScriptedCoordinator() {
    server_ = std::make_unique<HttpServer>(io_.io(), HttpServerOptions{},
                                           [this](HttpRequest, HttpResponder respond) {
                                             HttpResponse r;
                                             {
                                               std::lock_guard<std::mutex> l(mu_);
                                               ++requests_;
                                               r.status = status_;
                                               r.body = body_;
                                             }
                                             respond(std::move(r));
                                           });
    auto s = server_->Start();
    if (!s.ok()) ADD_FAILURE() << s.ToString();
  }
  ~ScriptedCoordinator() { server_->Stop(); }

  void Answer(int status, std::string body) {
    std::lock_guard<std::mutex> l(mu_);
    status_ = status;
    body_ = std::move(body);
  }
  int requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

 private:
  IoRunner io_{1};
  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  int status_ = 200;  // guarded by mu_
  std::string body_;  // guarded by mu_
  int requests_ = 0;  // guarded by mu_
};

class ClientInputTest : public ::testing::Test {
 protected:
  sdk::Client MakeClient() {
    return sdk::Client({.coordinators = {coordinator_.url()},
                        .request_timeout_ms = 5000,
                        .max_attempts = 2,
                        .backoff_ms = 1,
                        .failover_timeout_ms = 100});
  }

  ScriptedCoordinator coordinator_;
};

const std::string kDeep = std::string(100000, '[') + std::string(100000, ']');

TEST_F(ClientInputTest, GarbageSuccessAnswersGiveUnavailableNamingTheProblem) {
  sdk::Client client = MakeClient();
  struct Case {
    std::string body, names;
  };
  for (const Case& c :
       {Case{"<html>hello</html>", "not valid JSON"}, Case{"{\"gtid\":\"g1\"", "not valid JSON"},
        Case{"{\"a\":" + kDeep + "}", "deeper than 64"}, Case{kDeep, "deeper than 64"},
        Case{"{\"state\":\"\xff\"}", "not valid JSON"}, Case{"[1,2,3]", "not a JSON object"},
        Case{"", "not valid JSON"}}) {
    coordinator_.Answer(200, c.body);
    auto r = client.Get("g1");
    ASSERT_FALSE(r.ok()) << c.names;
    EXPECT_EQ(r.status().code(), treaty::StatusCode::kUnavailable);
    EXPECT_NE(r.status().message().find(c.names), std::string::npos) << r.status().message();
    auto saga = client.SubmitSaga({.gtid = "g1", .steps = {}});
    EXPECT_EQ(saga.status().code(), treaty::StatusCode::kUnavailable) << c.names;
    auto commit = client.Commit("g1");
    EXPECT_EQ(commit.status().code(), treaty::StatusCode::kUnavailable) << c.names;
  }
}

TEST_F(ClientInputTest, FieldsOfTheWrongTypeReadAsAbsent) {
  sdk::Client client = MakeClient();
  // Used to throw nlohmann::type_error out of the Client.
  coordinator_.Answer(200, R"({"gtid":5,"state":["x"],"kind":{},"needs_attention":"yes",
      "branches":[1,"b",{"name":7,"attempts":"many","last_error":{"a":1}},{"name":"ok","state":"DONE","attempts":3}]})");
  auto t = client.Get("g1");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->gtid, "");
  EXPECT_EQ(t->state, "");
  EXPECT_FALSE(t->needs_attention);
  ASSERT_EQ(t->branches.size(), 4u);
  EXPECT_EQ(t->branches[2].attempts, 0);
  EXPECT_EQ(t->branches[3].name, "ok");
  EXPECT_EQ(t->branches[3].attempts, 3);

  auto s = client.SubmitSaga({.gtid = "g1", .steps = {}});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->gtid, "");
}

TEST_F(ClientInputTest, ErrorAnswersAreCutAndMadeValidUtf8) {
  sdk::Client client = MakeClient();
  coordinator_.Answer(404, std::string(5000, 'x') + "\xff");
  auto r = client.Get("g1");
  ASSERT_EQ(r.status().code(), treaty::StatusCode::kNotFound);
  EXPECT_LE(r.status().message().size(), 200u);

  coordinator_.Answer(400, R"({"error":{"message":7}})");
  EXPECT_EQ(client.Get("g1").status().code(), treaty::StatusCode::kInvalidArgument);
  coordinator_.Answer(409, R"({"error":"conflict"})");
  EXPECT_EQ(client.Get("g1").status().code(), treaty::StatusCode::kConflict);
  coordinator_.Answer(500, kDeep);
  auto deep = client.Get("g1");
  EXPECT_EQ(deep.status().code(), treaty::StatusCode::kUnavailable);
  EXPECT_LE(deep.status().message().size(), 400u);
}

TEST_F(ClientInputTest, GtidsThatAreNotIdentifiersAreRefusedBeforeSending) {
  sdk::Client client = MakeClient();
  coordinator_.Answer(200, R"({"gtid":"g","state":"COMMITTED"})");
  for (const std::string& gtid : {std::string("a/../b"), std::string("a?x=1"), std::string("\xff"),
                                  std::string("a b"), std::string(129, 'g'), std::string("..")}) {
    EXPECT_EQ(client.Get(gtid).status().code(), treaty::StatusCode::kInvalidArgument);
    EXPECT_EQ(client.Commit(gtid).status().code(), treaty::StatusCode::kInvalidArgument);
    EXPECT_EQ(client.Abort(gtid).status().code(), treaty::StatusCode::kInvalidArgument);
    EXPECT_EQ(client.Enlist(gtid, {.name = "b"}).code(), treaty::StatusCode::kInvalidArgument);
    EXPECT_EQ(client.Begin(gtid).status().code(), treaty::StatusCode::kInvalidArgument);
    EXPECT_EQ(client.SubmitSaga({.gtid = gtid}).status().code(),
              treaty::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(coordinator_.requests(), 0);
}

TEST_F(ClientInputTest, PayloadsNestedTooDeeplyAreRefusedBeforeSending) {
  sdk::Client client = MakeClient();
  sdk::SagaSpec saga{.gtid = "g1"};
  saga.steps.push_back(
      {.name = "s", .action = "http://h/a", .compensate = "http://h/c", .payload = kDeep});
  auto r = client.SubmitSaga(saga);
  EXPECT_EQ(r.status().code(), treaty::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("deeper than 32"), std::string::npos) << r.status().message();
  EXPECT_EQ(client.Enlist("g1", {.name = "b", .payload = kDeep}).code(),
            treaty::StatusCode::kInvalidArgument);
  EXPECT_EQ(coordinator_.requests(), 0);
  // Text that is not JSON is still sent as a JSON string (unchanged rule).
  coordinator_.Answer(200, R"({"gtid":"g1","state":"RUNNING"})");
  saga.steps[0].payload = "plain text";
  auto ok = client.SubmitSaga(saga);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->state, "RUNNING");
}

}  // namespace
}  // namespace treaty::testing
