// Hostile REST inputs against a real treatyd (in-process Server,
// REST over loopback) on a real SQLite file and a real PostgreSQL: each one
// gets a well-formed 4xx naming the field, and afterwards the server still
// answers and a valid saga still commits.
//
//   input 1  gtids with invalid UTF-8 in paths and queries (used to SIGABRT)
//   input 4  bodies / payloads of 100,000 nested arrays (used to SIGSEGV)
//   input 8  participant URLs that can never be called (used to get 201)
//   input 9  a cursor that decodes to invalid UTF-8 (PostgreSQL: 500)
//   and identifiers with NUL, control characters, "." and "..".

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/api_fixture.h"
#include "common/text.h"
#include "http/http_client.h"

namespace treaty::testing {
namespace {

using nlohmann::json;

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

class InputRulesApiTest : public ApiTest {
 protected:
  ApiReply Send(const std::string& method, const std::string& target,
                const std::string& body = "") {
    ApiReply out;
    auto r = HttpFetch(method, server_->http_url() + target, body,
                       {{"Content-Type", "application/json"}}, 30000);
    if (!r.ok()) {
      ADD_FAILURE() << method << " " << target << ": " << r.status().ToString();
      return out;
    }
    out.status = r->status;
    out.raw = r->body;
    out.body = json::parse(r->body, nullptr, false);
    return out;
  }

  // The answer is a well-formed JSON error with `status` whose message names
  // `field` and is clean text (no raw invalid bytes, no control characters).
  void ExpectRefused(const ApiReply& r, int status, const std::string& field,
                     const std::string& what) {
    EXPECT_EQ(r.status, status) << what << ": " << r.raw;
    EXPECT_TRUE(IsValidUtf8(r.raw)) << what;
    ASSERT_TRUE(r.body.is_object()) << what << ": " << r.raw;
    ASSERT_TRUE(r.body.contains("error")) << what << ": " << r.raw;
    const std::string message = r.body["error"].value("message", "");
    EXPECT_NE(message.find(field), std::string::npos)
        << what << ": message does not name " << field << ": " << message;
    for (unsigned char c : message) EXPECT_FALSE(c < 0x20 || c == 0x7F) << what;
  }

  // The server still answers and a valid saga still commits.
  void ExpectServing(const std::string& after) {
    SCOPED_TRACE("after " + after);
    auto health = Get("/healthz");
    ASSERT_EQ(health.status, 200) << health.raw;
    const std::string gtid = "alive-" + std::to_string(++alive_);
    auto r = Post("/v1/sagas", {{"gtid", gtid}, {"wait", true}, {"steps", {Step("s")}}});
    ASSERT_EQ(r.status, 201) << r.raw;
    EXPECT_EQ(r.body["state"], "COMMITTED") << r.raw;
  }

  json Saga(const std::string& gtid, std::vector<json> steps) {
    return {{"gtid", gtid}, {"steps", std::move(steps)}};
  }

  json Branch(const std::string& name) {
    return {{"name", name},
            {"prepare", participant_->Url(name, "prepare")},
            {"commit", participant_->Url(name, "commit")},
            {"abort", participant_->Url(name, "abort")}};
  }

  int alive_ = 0;
};

// A gtid of invalid UTF-8 in the path or the query.
TEST_P(InputRulesApiTest, InvalidUtf8GtidInPathIs400NamingGtid) {
  struct Case {
    std::string method, target, field;
  };
  const std::vector<Case> cases = {
      {"GET", "/v1/transactions/%FF", "'gtid'"},
      {"POST", "/v1/transactions/%FF/abort", "'gtid'"},
      {"POST", "/v1/transactions/%FF/retry", "'gtid'"},
      {"GET", "/v1/transactions/a%C3", "'gtid'"},
      {"GET", "/v1/transactions/%ED%A0%80", "'gtid'"},
      {"GET", "/v1/transactions/caf%C3%A9", "'gtid'"},
      {"POST", "/v1/2pc/%FF/commit", "'gtid'"},
      {"POST", "/v1/2pc/%FF/abort", "'gtid'"},
      {"POST", "/v1/2pc/%FF/branches", "'gtid'"},
      {"GET", "/v1/transactions?cursor=%FF", "'cursor'"},
      {"GET", "/v1/transactions?gtid_prefix=%FF", "'gtid_prefix'"},
      {"GET", "/v1/transactions?state=%FF", "'state'"},
      {"GET", "/v1/transactions?kind=%FF", "'kind'"},
      {"GET", "/v1/transactions?needs_attention=%FF", "'needs_attention'"},
      {"GET", "/v1/transactions?limit=%FF", "'limit'"},
      {"GET", "/v1/transactions?min_age_ms=%FF", "'min_age_ms'"},
  };
  for (const Case& c : cases) {
    ExpectRefused(Send(c.method, c.target, "{}"), 400, c.field, c.method + " " + c.target);
    ExpectServing(c.method + " " + c.target);
  }
  // No route: still a clean 404 that does not echo the bytes.
  for (const std::string target : {"/%FF", "/v1/%FF%0A%1B", "/v1/transactions/a/%FF"}) {
    auto r = Send("GET", target);
    ExpectRefused(r, 404, "no route", "GET " + target);
    EXPECT_EQ(r.raw.find('\xFF'), std::string::npos);
    ExpectServing("GET " + target);
  }
}

// Names with NUL, control characters, "." and ".." (in paths and bodies).
TEST_P(InputRulesApiTest, BadIdentifiersAre400NamingTheField) {
  for (const std::string target :
       {"/v1/transactions/a%00b", "/v1/transactions/a%0Ab", "/v1/transactions/a%0D%0Ab",
        "/v1/transactions/a%1B%5B31m", "/v1/transactions/a%20b", "/v1/transactions/.",
        "/v1/transactions/%2E%2E", "/v1/transactions/a%25b", "/v1/transactions/a%5Cb"}) {
    ExpectRefused(Send("GET", target), 400, "'gtid'", "GET " + target);
    ExpectServing("GET " + target);
  }
  const std::vector<std::string> bad = {std::string("a\0b", 3),
                                        "a\nb",
                                        "a\rb",
                                        "a\x1b[2Jb",
                                        "a\x7f",
                                        ".",
                                        "..",
                                        "a b",
                                        "a/b",
                                        "caf\xC3\xA9",
                                        std::string(129, 'g')};
  for (const std::string& name : bad) {
    const std::string shown = EscapeControl(name).substr(0, 20);
    ExpectRefused(Post("/v1/sagas", Saga(name, {Step("s")})), 400, "'gtid'", "gtid " + shown);
    json step = Step("s");
    step["name"] = name;
    ExpectRefused(Post("/v1/sagas", Saga("bad-step", {step})), 400, "name", "step name " + shown);
    json dependent = Step("t");
    dependent["after"] = {name};
    json concurrent = Saga("bad-after", {Step("s"), dependent});
    concurrent["concurrent"] = true;
    auto after = Post("/v1/sagas", concurrent);
    EXPECT_EQ(after.status, 400) << "after " << shown << ": " << after.raw;
    ExpectRefused(Post("/v1/2pc", {{"gtid", name}}), 400, "'gtid'", "2pc gtid " + shown);
    ExpectServing("name " + shown);
  }
  // A 2PC branch name.
  ASSERT_EQ(Post("/v1/2pc", {{"gtid", "tp-names"}}).status, 201);
  for (const std::string& name : bad) {
    auto r = Post("/v1/2pc/tp-names/branches", Branch(name));
    ExpectRefused(r, 400, "name", "branch name " + EscapeControl(name).substr(0, 20));
  }
  ExpectServing("bad branch names");
}

// A cursor that is not exactly what a page returned.
TEST_P(InputRulesApiTest, MalformedCursorIs400OnEveryStore) {
  for (int i = 0; i < 3; ++i) ExpectServing("setup");
  auto page = Get("/v1/transactions?limit=1");
  ASSERT_EQ(page.status, 200) << page.raw;
  const std::string next = page.body["next"];
  ASSERT_FALSE(next.empty());
  auto second = Get("/v1/transactions?limit=1&cursor=" + next);
  ASSERT_EQ(second.status, 200) << second.raw;
  ASSERT_EQ(second.body["items"].size(), 1u);
  EXPECT_NE(second.body["items"][0]["gtid"], page.body["items"][0]["gtid"]);

  for (const std::string cursor :
       {"1.ff", "1.c3", "1.c0af", "1.eda080", "1.00", "1.610a62", "1.", "1.6", "1.zz", "abc",
        "%2B1.61", "01.61", "1.6A", "99999999999999999999.61", "%FF", "1.61%00"}) {
    ExpectRefused(Get("/v1/transactions?cursor=" + cursor), 400, "'cursor'", "cursor " + cursor);
  }
  ExpectServing("malformed cursors");
}

// 100,000 nested arrays (a 200 KB body) in every body that is JSON.
TEST_P(InputRulesApiTest, DeeplyNestedBodiesAre400AndServerStaysUp) {
  const std::string deep = Nested(100000);
  const json step = Step("a");
  const std::string saga = R"({"gtid":"deep-saga","steps":[{"name":"a","action":)" +
                           json(step["action"]).dump() + R"(,"compensate":)" +
                           json(step["compensate"]).dump() + R"(,"payload":)" + deep + "}]}";
  ASSERT_GT(saga.size(), 200000u);
  ExpectRefused(PostRaw("/v1/sagas", saga), 400, "deeper than 64", "saga payload");
  ExpectServing("deep saga payload");
  ExpectRefused(PostRaw("/v1/sagas", deep), 400, "deeper than 64", "deep saga body");
  ExpectRefused(PostRaw("/v1/sagas", std::string(100000, '[')), 400, "the request body",
                "unbalanced deep saga body");
  ExpectServing("deep saga body");

  ExpectRefused(PostRaw("/v1/2pc", R"({"gtid":"deep-2pc","x":)" + deep + "}"), 400,
                "deeper than 64", "2pc begin");
  ASSERT_EQ(Post("/v1/2pc", {{"gtid", "deep-2pc"}}).status, 201);
  const json b = Branch("b");
  const std::string branch = R"({"name":"b","prepare":)" + json(b["prepare"]).dump() +
                             R"(,"commit":)" + json(b["commit"]).dump() + R"(,"abort":)" +
                             json(b["abort"]).dump() + R"(,"payload":)" + deep + "}";
  ExpectRefused(PostRaw("/v1/2pc/deep-2pc/branches", branch), 400, "deeper than 64",
                "2pc branch payload");
  ExpectRefused(Send("PUT", "/v1/admin/log-level", R"({"level":)" + deep + "}"), 400,
                "deeper than 64", "log level");
  ExpectServing("deep 2pc and ops bodies");

  // A payload is limited on its own (32 levels), so that any envelope around
  // it (the REST body, the participant call body) stays within 64 and an
  // accepted payload can always be delivered: 32 is accepted and reaches the
  // participant, 33 is refused naming the payload, for steps and branches.
  json payload = json::array();
  for (int i = 0; i < 31; ++i) payload = json::array({payload});
  json ok = Step("a");
  ok["payload"] = payload;
  auto r = Post("/v1/sagas", {{"gtid", "deep-ok"}, {"wait", true}, {"steps", {ok}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["state"], "COMMITTED") << r.raw;
  auto d = Get("/v1/transactions/deep-ok");
  ASSERT_EQ(d.status, 200) << d.raw;
  json too_deep = Step("a");
  too_deep["payload"] = json::array({payload});
  ExpectRefused(Post("/v1/sagas", {{"gtid", "deep-33"}, {"steps", {too_deep}}}), 400,
                "steps[0].payload", "saga payload of depth 33");
  json deep_branch = Branch("b");
  deep_branch["payload"] = json::array({payload});
  ExpectRefused(Post("/v1/2pc/deep-2pc/branches", deep_branch), 400, "'payload'",
                "2pc payload of depth 33");
  deep_branch["payload"] = payload;
  EXPECT_EQ(Post("/v1/2pc/deep-2pc/branches", deep_branch).status, 201);
}

// An encoded '/' is data inside a path segment, never a separator: it can
// neither reach another route nor pass as part of a gtid.
TEST_P(InputRulesApiTest, EncodedSlashNeverSplitsThePath) {
  auto r = Post("/v1/sagas", {{"gtid", "slash-1"}, {"wait", true}, {"steps", {Step("s")}}});
  ASSERT_EQ(r.status, 201) << r.raw;
  ExpectRefused(Send("POST", "/v1/transactions%2Fslash-1%2Fretry"), 404, "no route",
                "encoded operator route");
  ExpectRefused(Send("POST", "/v1/transactions/slash-1%2Fabort"), 404, "no route",
                "encoded slash before an operator action");
  ExpectRefused(Send("GET", "/v1/transactions/a%2fb"), 400, "'gtid'", "lower-case %2f");
  auto d = Get("/v1/transactions/slash-1");
  ASSERT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["state"], "COMMITTED") << d.raw;
  ExpectServing("encoded slashes");
}

// On the REST side: participant URLs that can never be called.
TEST_P(InputRulesApiTest, UncallableParticipantUrlsAre400NamingTheField) {
  const std::string base = "http://127.0.0.1:" + std::to_string(participant_->port());
  const std::vector<std::string> urls = {
      "http://127.0.0.1:99999/a/action",
      "http://127.0.0.1:0/a/action",
      "http://127.0.0.1:abc/a/action",
      "http://127.0.0.1:/a/action",
      "http://:8080/a/action",
      "http://user:pw@127.0.0.1:8080/a/action",
      "http://[::1",
      base + std::string("/a/act\0ion", 10),
      "thrift://h:abc",
      base + "/a/action\r\nHost: internal\r\n\r\nGET /admin",
      base + "/a/action\nX: y",
      "ftp://127.0.0.1/a/action",  // https:// is callable (TLS); other schemes are not
  };
  for (const std::string& url : urls) {
    const std::string shown = EscapeControl(url);
    json action = Step("a");
    action["action"] = url;
    ExpectRefused(Post("/v1/sagas", Saga("bad-url", {action})), 400, "action", "action " + shown);
    json compensate = Step("a");
    compensate["compensate"] = url;
    ExpectRefused(Post("/v1/sagas", Saga("bad-url", {compensate})), 400, "compensate",
                  "compensate " + shown);
    ExpectServing("url " + shown);
  }
  ASSERT_EQ(Post("/v1/2pc", {{"gtid", "tp-urls"}}).status, 201);
  for (const std::string& url : urls) {
    for (const char* field : {"prepare", "commit", "abort"}) {
      json branch = Branch("b");
      branch[field] = url;
      ExpectRefused(Post("/v1/2pc/tp-urls/branches", branch), 400, field,
                    std::string(field) + " " + EscapeControl(url));
    }
  }
  // Nothing of the refused sagas was logged or called.
  EXPECT_EQ(Get("/v1/transactions/bad-url").status, 404);
  for (const auto& call : participant_->Calls()) EXPECT_NE(call.gtid, "bad-url");
  ExpectServing("2pc urls");
}

// JSON bodies that are not JSON, not UTF-8 or of the wrong shape.
TEST_P(InputRulesApiTest, MalformedBodiesAre400) {
  const std::vector<std::string> bodies = {"",
                                           "{",
                                           "[]",
                                           "null",
                                           "\"x\"",
                                           "{\"gtid\":\"\xFF\"}",
                                           "{\"steps\":[{\"name\":\"\xC0\xAF\"}]}",
                                           "{\"gtid\":\"a\",\"wait\":\"yes\",\"steps\":[]}"};
  for (const std::string& body : bodies) {
    auto r = PostRaw("/v1/sagas", body);
    EXPECT_EQ(r.status, 400) << EscapeControl(body) << ": " << r.raw;
    EXPECT_TRUE(IsValidUtf8(r.raw));
    EXPECT_TRUE(r.body.is_object()) << r.raw;
  }
  // `wait: null` is allowed by the spec and must not throw.
  json nulled = Saga("null-wait", {Step("s")});
  nulled["wait"] = nullptr;
  EXPECT_EQ(Post("/v1/sagas", nulled).status, 201);
  ExpectServing("malformed bodies");
}

INSTANTIATE_TEST_SUITE_P(Engines, InputRulesApiTest, ::testing::Values("sqlite", "postgres"),
                         EngineParamName);

}  // namespace
}  // namespace treaty::testing
