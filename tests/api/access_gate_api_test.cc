// The AccessGate over real HTTP (docs/security.md "Roles", "Dashboard"): an
// in-process Server on SQLite started with a tokens file holding one client
// per role and one with every role. Every REST route x every role: 401
// without credentials, 403 without the route's role, neither with it; the
// open routes; /metrics open or closed; the Host allow-list; the CSRF rules
// (a text/plain POST, a foreign Origin) leave nothing changed; the dashboard's
// session cookie (sign in, use, Origin required, sign out, failures
// throttled); the security headers on answers and refusals; the operator
// event's actor and the audit file's record.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "api/server.h"
#include "http/http_client.h"
#include "security/authenticator.h"
#include "support/store_env.h"
#include "support/subprocess.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Headers = std::map<std::string, std::string>;

// Client name -> its single role ("" for the one with every role).
const std::map<std::string, std::string> kClients = {
    {"sub", "submit"}, {"rd", "read"}, {"op", "operate"}, {"adm", "admin"}, {"root", ""}};

std::string TokenOf(const std::string& name) { return "token-of-" + name + "-0123456789"; }

struct Route {
  std::string method, path, body;
  std::string role;  // "" open
};

// Every REST route with its role (the table of docs/security.md "Roles").
// Bodies are valid enough to pass the gate; routes act on gtids that do not
// exist, so an admitted call answers 400/404, never a change.
std::vector<Route> AllRoutes(const std::string& log_level) {
  return {
      {"GET", "/v1/transactions", "", "read"},
      {"GET", "/v1/transactions/no-such-1", "", "read"},
      {"GET", "/v1/cluster", "", "read"},
      {"GET", "/v1/stats", "", "read"},
      {"GET", "/v1/openapi.json", "", "read"},
      {"GET", "/metrics", "", "read"},
      {"GET", "/v1/session", "", "read"},
      {"POST", "/v1/sagas", "{}", "submit"},
      {"POST", "/v1/2pc", R"({})", "submit"},
      {"POST", "/v1/2pc/no-such-1/branches", "{}", "submit"},
      {"POST", "/v1/2pc/no-such-1/commit", "", "submit"},
      {"POST", "/v1/2pc/no-such-1/abort", "", "submit"},
      {"POST", "/v1/transactions/no-such-1/retry", "{}", "operate"},
      {"POST", "/v1/transactions/no-such-1/abort", "", "operate"},
      {"POST", "/v1/transactions/no-such-1/pause", R"({"reason":"r"})", "operate"},
      {"POST", "/v1/transactions/no-such-1/resume", "", "operate"},
      {"POST", "/v1/transactions/no-such-1/branches/b/resolve",
       R"({"outcome":"COMMITTED","reason":"by hand"})", "operate"},
      {"GET", "/v1/admin/log-level", "", "admin"},
      {"PUT", "/v1/admin/log-level", R"({"level":")" + log_level + R"("})", "admin"},
  };
}

class AccessGateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-gate");
    std::ofstream tokens(dir_ + "/tokens");
    tokens << "# one client per role, and one with all\n";
    for (const auto& [name, role] : kClients) {
      tokens << name << " " << (role.empty() ? "submit,read,operate,admin" : role) << " "
             << Sha256Hex(TokenOf(name)) << "\n";
    }
    tokens.close();
    options_.store_uri = FreshStoreUri("sqlite", dir_);
    options_.http_port = 0;
    options_.heartbeat_ms = 200;
    options_.lease_ms = 1000;
    options_.auth_tokens_file = dir_ + "/tokens";
    options_.audit_log_file = dir_ + "/audit.log";
  }
  void TearDown() override {
    server_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  void Start() {
    server_ = std::make_unique<Server>(options_);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::string Origin() const { return "http://127.0.0.1:" + std::to_string(server_->http_port()); }

  HttpClientResponse Call(const std::string& method, const std::string& path,
                          const std::string& body = "", Headers headers = {}) {
    auto r = HttpFetch(method, server_->http_url() + path, body, headers, 20000);
    EXPECT_TRUE(r.ok()) << method << " " << path << ": " << r.status().ToString();
    return r.ok() ? *r : HttpClientResponse{};
  }
  HttpClientResponse As(const std::string& client, const std::string& method,
                        const std::string& path, const std::string& body = "",
                        Headers headers = {}) {
    headers["Authorization"] = "Bearer " + TokenOf(client);
    return Call(method, path, body, std::move(headers));
  }
  std::string Level() {
    return json::parse(As("root", "GET", "/v1/admin/log-level").body, nullptr, false)["level"];
  }
  std::vector<json> AuditLines() {
    std::ifstream in(options_.audit_log_file);
    std::vector<json> out;
    for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
    return out;
  }

  ServerOptions options_;
  std::string dir_;
  std::unique_ptr<Server> server_;
};

TEST_F(AccessGateTest, EveryRouteNeedsItsRole) {
  Start();
  const std::string level = Level();
  for (const Route& route : AllRoutes(level)) {
    const std::string what = route.method + " " + route.path;
    auto anonymous = Call(route.method, route.path, route.body);
    EXPECT_EQ(anonymous.status, 401) << what << ": " << anonymous.body;
    EXPECT_EQ(anonymous.headers["www-authenticate"], "Bearer realm=\"treaty\"") << what;
    EXPECT_EQ(json::parse(anonymous.body, nullptr, false)["error"]["code"], "unauthenticated");
    auto wrong =
        Call(route.method, route.path, route.body, {{"Authorization", "Bearer not-a-known-token"}});
    EXPECT_EQ(wrong.status, 401) << what;
    for (const auto& [client, role] : kClients) {
      auto r = As(client, route.method, route.path, route.body);
      if (role.empty() || role == route.role) {
        EXPECT_NE(r.status, 401) << what << " as " << client << ": " << r.body;
        EXPECT_NE(r.status, 403) << what << " as " << client << ": " << r.body;
      } else {
        EXPECT_EQ(r.status, 403) << what << " as " << client << ": " << r.body;
        json error = json::parse(r.body, nullptr, false)["error"];
        EXPECT_EQ(error["code"], "forbidden") << what;
        EXPECT_NE(error["message"].get<std::string>().find("'" + route.role + "' role"),
                  std::string::npos)
            << r.body;
        EXPECT_EQ(error["required_role"], route.role) << r.body;
      }
    }
  }
  EXPECT_EQ(Level(), level);
}

TEST_F(AccessGateTest, OpenRoutesAndUnknownRoutes) {
  Start();
  for (const char* path : {"/healthz", "/readyz", "/", "/index.html", "/ui/dashboard.js"}) {
    auto r = Call("GET", path);
    EXPECT_EQ(r.status, 200) << path << ": " << r.body;
  }
  // Probes by IP address work whatever the Host.
  EXPECT_EQ(Call("GET", "/healthz", "", {{"Host", "10.1.2.3:9"}}).status, 200);
  // A stranger cannot tell which routes exist.
  EXPECT_EQ(Call("GET", "/v1/no-such-route").status, 401);
  EXPECT_EQ(Call("DELETE", "/v1/transactions/x").status, 401);
  EXPECT_EQ(As("rd", "GET", "/v1/no-such-route").status, 404);
  EXPECT_EQ(As("sub", "DELETE", "/v1/transactions/x").status, 404);
  // A probe's path is exempt from the Host allow-list whatever the method; a
  // method it does not serve is then an unknown route like any other.
  EXPECT_EQ(Call("POST", "/healthz", "", {{"Host", "10.1.2.3:9"}}).status, 401);
  EXPECT_EQ(As("rd", "POST", "/readyz", "", {{"Host", "10.1.2.3:9"}}).status, 404);
  // The sign-in's methods are its routes': another one needs credentials.
  EXPECT_EQ(Call("PUT", "/v1/session").status, 401);
  EXPECT_EQ(As("sub", "PUT", "/v1/session").status, 404);
}

TEST_F(AccessGateTest, MetricsOpenOnlyWhenAsked) {
  Start();
  EXPECT_EQ(Call("GET", "/metrics").status, 401);
  EXPECT_EQ(As("rd", "GET", "/metrics").status, 200);
  server_.reset();
  options_.metrics_open = true;
  Start();
  auto r = Call("GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("treaty_"), std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/stats").status, 401);  // only /metrics opens
}

TEST_F(AccessGateTest, HostAllowList) {
  Start();
  const std::string port = std::to_string(server_->http_port());
  auto evil = As("root", "GET", "/v1/stats", "", {{"Host", "evil.example"}});
  EXPECT_EQ(evil.status, 421) << evil.body;
  EXPECT_EQ(json::parse(evil.body, nullptr, false)["error"]["code"], "misdirected_request");
  EXPECT_EQ(Call("GET", "/", "", {{"Host", "evil.example:" + port}}).status, 421);
  EXPECT_EQ(As("root", "GET", "/v1/stats", "", {{"Host", "127.0.0.1:" + port}}).status, 200);
  EXPECT_EQ(As("root", "GET", "/v1/stats", "", {{"Host", "LOCALHOST:" + port}}).status, 200);
  EXPECT_EQ(As("root", "GET", "/v1/stats", "", {{"Host", "[::1]:" + port}}).status, 200);

  server_.reset();
  options_.allowed_hosts = {"coord.example", "10.0.0.5:8443"};
  Start();
  EXPECT_EQ(As("root", "GET", "/v1/stats", "", {{"Host", "coord.example:" + port}}).status, 200);
  EXPECT_EQ(As("root", "GET", "/v1/stats", "", {{"Host", "10.0.0.5:8443"}}).status, 200);
  EXPECT_EQ(As("root", "GET", "/v1/stats", "", {{"Host", "10.0.0.5:8444"}}).status, 421);
  EXPECT_EQ(As("root", "GET", "/v1/stats").status, 421);  // 127.0.0.1 is no longer listed

  server_.reset();
  options_.allowed_hosts = {"bad host!"};
  server_ = std::make_unique<Server>(options_);
  Status s = server_->Start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("--allowed-hosts"), std::string::npos);
}

TEST_F(AccessGateTest, CsrfRulesChangeNothing) {
  Start();
  ASSERT_EQ(As("sub", "POST", "/v1/2pc", R"({"gtid":"csrf-1"})").status, 201);
  // A form's text/plain POST (what a cross-site page can send without a
  // preflight) is refused before it reaches the route.
  for (const char* action : {"retry", "pause", "abort"}) {
    auto r = As("root", "POST", std::string("/v1/transactions/csrf-1/") + action, "{}",
                {{"Content-Type", "text/plain"}});
    EXPECT_EQ(r.status, 415) << action << ": " << r.body;
    EXPECT_EQ(json::parse(r.body, nullptr, false)["error"]["code"], "unsupported_media_type");
  }
  auto txn = json::parse(As("rd", "GET", "/v1/transactions/csrf-1").body);
  EXPECT_EQ(txn["state"], "ACTIVE");
  EXPECT_EQ(txn["paused"], false);
  for (const auto& e : txn["history"]) EXPECT_NE(e["type"], "operator") << txn.dump();

  // A foreign Origin is refused even with a valid token.
  const std::string level = Level();
  const std::string other = level == "off" ? "critical" : "off";
  auto put = As("adm", "PUT", "/v1/admin/log-level", R"({"level":")" + other + R"("})",
                {{"Origin", "http://evil.example"}});
  EXPECT_EQ(put.status, 403) << put.body;
  EXPECT_EQ(Level(), level);
  EXPECT_EQ(As("op", "POST", "/v1/transactions/csrf-1/pause", "{}", {{"Origin", "null"}}).status,
            403);
  // The same requests, same-origin and JSON, pass.
  auto ok = As("op", "POST", "/v1/transactions/csrf-1/pause", R"({"reason":"gate test"})",
               {{"Origin", Origin()}, {"Content-Type", "application/json; charset=utf-8"}});
  EXPECT_EQ(ok.status, 200) << ok.body;
  txn = json::parse(As("rd", "GET", "/v1/transactions/csrf-1").body);
  EXPECT_EQ(txn["paused"], true);
  bool named = false;
  for (const auto& e : txn["history"]) {
    const std::string detail = e["detail"];
    if (e["type"] == "operator" && detail.find("pause by op@127.0.0.1:") != std::string::npos) {
      named = true;
    }
  }
  EXPECT_TRUE(named) << txn.dump();
}

TEST_F(AccessGateTest, AuditRecordsAllowedAndRefusedActions) {
  Start();
  ASSERT_EQ(As("sub", "POST", "/v1/2pc", R"({"gtid":"audit-1"})").status, 201);
  EXPECT_EQ(As("op", "POST", "/v1/transactions/audit-1/pause", R"({"reason":"db upgrade"})").status,
            200);
  EXPECT_EQ(As("rd", "POST", "/v1/transactions/audit-1/resume", "").status, 403);
  EXPECT_EQ(Call("POST", "/v1/transactions/audit-1/abort", "").status, 401);
  EXPECT_EQ(As("adm", "PUT", "/v1/admin/log-level", R"({"level":")" + Level() + R"("})").status,
            200);
  EXPECT_EQ(As("rd", "GET", "/v1/transactions/audit-1").status, 200);  // not an operator action
  std::vector<json> lines = AuditLines();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["actor"], "op");
  EXPECT_EQ(lines[0]["method"], "token");
  EXPECT_EQ(lines[0]["action"], "pause");
  EXPECT_EQ(lines[0]["gtid"], "audit-1");
  EXPECT_EQ(lines[0]["reason"], "db upgrade");
  EXPECT_EQ(lines[0]["result"], 200);
  EXPECT_EQ(lines[0]["peer"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
  EXPECT_EQ(lines[1]["actor"], "rd");
  EXPECT_EQ(lines[1]["action"], "resume");
  EXPECT_EQ(lines[1]["result"], 403);
  EXPECT_EQ(lines[2]["action"], "abort");
  EXPECT_EQ(lines[2]["result"], 401);
  EXPECT_EQ(lines[3]["actor"], "adm");
  EXPECT_EQ(lines[3]["action"], "log-level");
  EXPECT_EQ(lines[3]["result"], 200);
}

TEST_F(AccessGateTest, DashboardSessionCookie) {
  Start();
  auto in =
      Call("POST", "/v1/session", json({{"token", TokenOf("op")}}).dump(), {{"Origin", Origin()}});
  ASSERT_EQ(in.status, 200) << in.body;
  EXPECT_EQ(json::parse(in.body)["name"], "op");
  EXPECT_EQ(json::parse(in.body)["roles"], json::array({"operate"}));
  const std::string set_cookie = in.headers["set-cookie"];
  EXPECT_NE(set_cookie.find("HttpOnly"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("SameSite=Strict"), std::string::npos) << set_cookie;
  EXPECT_NE(set_cookie.find("Path=/"), std::string::npos) << set_cookie;
  EXPECT_EQ(set_cookie.find("Secure"), std::string::npos) << "plain HTTP: " << set_cookie;
  const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  ASSERT_EQ(cookie.rfind("treaty_session=", 0), 0u);
  ASSERT_EQ(As("sub", "POST", "/v1/2pc", R"({"gtid":"cookie-1"})").status, 201);

  // The cookie authenticates; its client's roles apply.
  EXPECT_EQ(Call("GET", "/v1/transactions", "", {{"Cookie", cookie}}).status, 403);  // no read
  EXPECT_EQ(Call("GET", "/v1/session", "", {{"Cookie", "a=b; " + cookie}}).status, 403);
  // State-changing with the cookie: Origin required and matching.
  auto no_origin = Call("POST", "/v1/transactions/cookie-1/pause", "{}", {{"Cookie", cookie}});
  EXPECT_EQ(no_origin.status, 403) << no_origin.body;
  EXPECT_EQ(Call("POST", "/v1/transactions/cookie-1/pause", "{}",
                 {{"Cookie", cookie}, {"Origin", "http://127.0.0.1:1"}})
                .status,
            403);
  auto same_origin = Call("POST", "/v1/transactions/cookie-1/pause", "{}",
                          {{"Cookie", cookie}, {"Origin", Origin()}});
  EXPECT_EQ(same_origin.status, 200) << same_origin.body;
  auto txn = json::parse(As("rd", "GET", "/v1/transactions/cookie-1").body);
  EXPECT_EQ(txn["paused"], true);

  // A reader's session can read, and says who it is.
  auto reader = Call("POST", "/v1/session", json({{"token", TokenOf("rd")}}).dump());
  ASSERT_EQ(reader.status, 200);
  const std::string rcookie =
      reader.headers["set-cookie"].substr(0, reader.headers["set-cookie"].find(';'));
  EXPECT_EQ(Call("GET", "/v1/transactions", "", {{"Cookie", rcookie}}).status, 200);
  auto me = json::parse(Call("GET", "/v1/session", "", {{"Cookie", rcookie}}).body);
  EXPECT_EQ(me["name"], "rd");
  EXPECT_EQ(me["method"], "session");

  // Sign-out ends the session and clears the cookie.
  auto out = Call("DELETE", "/v1/session", "", {{"Cookie", rcookie}, {"Origin", Origin()}});
  EXPECT_EQ(out.status, 200);
  EXPECT_NE(out.headers["set-cookie"].find("Max-Age=0"), std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/transactions", "", {{"Cookie", rcookie}}).status, 401);
  EXPECT_EQ(Call("GET", "/v1/session", "", {{"Cookie", rcookie}}).status, 401);
  EXPECT_EQ(Call("GET", "/v1/session", "", {{"Cookie", cookie}}).status, 403);  // other session
  // A text/plain sign-in (a cross-site form) is refused.
  EXPECT_EQ(Call("POST", "/v1/session", json({{"token", TokenOf("rd")}}).dump(),
                 {{"Content-Type", "text/plain"}})
                .status,
            415);
}

TEST_F(AccessGateTest, FailedSignInsAreThrottled) {
  Start();
  for (int i = 0; i < 10; ++i) {
    auto r = Call("POST", "/v1/session", R"({"token":"guess-)" + std::to_string(i) + R"("})");
    ASSERT_EQ(r.status, 401) << i << ": " << r.body;
    EXPECT_TRUE(r.headers["set-cookie"].empty());
  }
  auto limited = Call("POST", "/v1/session", json({{"token", TokenOf("root")}}).dump());
  EXPECT_EQ(limited.status, 429) << limited.body;
  EXPECT_EQ(limited.headers["retry-after"], "60");
  // Bearer tokens are not affected.
  EXPECT_EQ(As("rd", "GET", "/v1/stats").status, 200);
}

TEST_F(AccessGateTest, SecurityHeadersOnEveryAnswer) {
  Start();
  const std::string port = std::to_string(server_->http_port());
  struct Case {
    HttpClientResponse r;
    const char* what;
  };
  std::vector<Case> cases = {
      {Call("GET", "/"), "dashboard"},
      {Call("GET", "/ui/dashboard.js"), "script"},
      {Call("GET", "/healthz"), "probe"},
      {As("rd", "GET", "/v1/stats"), "API answer"},
      {Call("GET", "/v1/stats"), "401"},
      {As("sub", "GET", "/v1/stats"), "403"},
      {As("rd", "GET", "/v1/nope"), "404"},
      {As("rd", "GET", "/v1/stats", "", {{"Host", "evil.example:" + port}}), "421"},
      {As("root", "POST", "/v1/sagas", "x", {{"Content-Type", "text/plain"}}), "415"},
  };
  for (auto& [r, what] : cases) {
    EXPECT_NE(r.headers["content-security-policy"].find("frame-ancestors 'none'"),
              std::string::npos)
        << what;
    EXPECT_NE(r.headers["content-security-policy"].find("default-src 'self'"), std::string::npos)
        << what;
    EXPECT_EQ(r.headers["x-frame-options"], "DENY") << what;
    EXPECT_EQ(r.headers["x-content-type-options"], "nosniff") << what;
    EXPECT_EQ(r.headers["referrer-policy"], "no-referrer") << what;
    EXPECT_TRUE(r.headers["strict-transport-security"].empty()) << what << ": plain HTTP";
  }
  EXPECT_EQ(cases[3].r.headers["cache-control"], "no-store");
  EXPECT_EQ(cases[4].r.headers["cache-control"], "no-store");
}

TEST_F(AccessGateTest, AuthenticationOffKeepsTheQuickStart) {
  options_.auth_tokens_file.clear();
  Start();
  EXPECT_EQ(Call("GET", "/v1/stats").status, 200);
  auto me = json::parse(Call("GET", "/v1/session").body);
  EXPECT_EQ(me["name"], "anonymous");
  EXPECT_EQ(me["method"], "none");
  EXPECT_EQ(me["roles"].size(), 4u);
  ASSERT_EQ(Call("POST", "/v1/2pc", R"({"gtid":"open-1"})").status, 201);
  auto pause = Call("POST", "/v1/transactions/open-1/pause", R"({"reason":"x"})");
  EXPECT_EQ(pause.status, 200) << pause.body;
  // The CSRF rules hold without authentication too.
  EXPECT_EQ(
      Call("POST", "/v1/transactions/open-1/resume", "{}", {{"Content-Type", "text/plain"}}).status,
      415);
  EXPECT_EQ(
      Call("POST", "/v1/transactions/open-1/resume", "{}", {{"Origin", "http://evil.example"}})
          .status,
      403);
  EXPECT_EQ(json::parse(Call("GET", "/v1/transactions/open-1").body)["paused"], true);
  EXPECT_EQ(Call("GET", "/", "", {{"Host", "evil.example"}}).status, 421);
  std::vector<json> lines = AuditLines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["actor"], "anonymous");
  EXPECT_EQ(lines[0]["method"], "none");
}

}  // namespace
}  // namespace treaty::testing
