// Router (api/router.h): literal and captured segments, the rest capture,
// percent-encoding, trailing slashes, empty segments, HEAD only where listed,
// no path vs wrong method, hostile paths, the table as Routes lists it, and
// RuleFor (the access a request needs: its route's, a GET's for HEAD, else
// authentication only).

#include "api/router.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace treaty {
namespace {

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Add({"GET"}, "/healthz", "healthz", RouteAccess::Probe());
    Add({"GET"}, "/v1/transactions/{gtid}", "get", RouteAccess::Needs(Role::kRead));
    Add({"POST"}, "/v1/transactions/{gtid}/retry", "retry",
        RouteAccess::Audited(Role::kOperate, "retry", true));
    Add({"POST"}, "/v1/transactions/{gtid}/branches/{branch}/resolve", "resolve",
        RouteAccess::Audited(Role::kOperate, "resolve", true));
    Add({"GET", "HEAD"}, "/ui/{file...}", "ui", RouteAccess::Open());
    Add({"GET", "HEAD"}, "/", "index", RouteAccess::Open());
    Add({}, "/v1/session", "session", RouteAccess::Authenticated());
  }

  void Add(std::initializer_list<std::string_view> methods, std::string_view pattern,
           std::string name, RouteAccess access) {
    router_.Add(methods, pattern, std::move(access),
                [this, name](const RouteCall& call, HttpResponder&) {
                  hit_ = name;
                  gtid_ = call.params["gtid"];
                  branch_ = call.params["branch"];
                  file_ = call.params["file"];
                });
  }

  // The name of the route that took METHOD PATH, or "404"/"405".
  std::string Route(const std::string& method, const std::string& path) {
    HttpRequest req;
    req.method = method;
    req.path = path;
    hit_.clear();
    HttpResponder respond = [](HttpResponse) {};
    switch (
        router_.Dispatch(req, Identity{"anonymous", RoleSet::All(), AuthMethod::kNone}, respond)) {
      case Router::Outcome::kMatched:
        return hit_;
      case Router::Outcome::kNoPath:
        return "404";
      case Router::Outcome::kWrongMethod:
        return "405";
    }
    return "?";
  }

  Router router_;
  std::string hit_, gtid_, branch_, file_;
};

TEST_F(RouterTest, LiteralsMatchExactly) {
  EXPECT_EQ(Route("GET", "/healthz"), "healthz");
  EXPECT_EQ(Route("GET", "/HEALTHZ"), "404");
  EXPECT_EQ(Route("GET", "/healthzz"), "404");
  EXPECT_EQ(Route("GET", "/"), "index");
}

TEST_F(RouterTest, CapturesAreHandedToTheHandler) {
  EXPECT_EQ(Route("GET", "/v1/transactions/trip-42"), "get");
  EXPECT_EQ(gtid_, "trip-42");
  EXPECT_EQ(Route("POST", "/v1/transactions/trip-42/branches/hotel/resolve"), "resolve");
  EXPECT_EQ(gtid_, "trip-42");
  EXPECT_EQ(branch_, "hotel");
  EXPECT_EQ(Route("GET", "/ui/js/app.js"), "ui");
  EXPECT_EQ(file_, "js/app.js");
}

TEST_F(RouterTest, EncodedSlashIsDataNotASeparator) {
  // The HTTP server keeps %2F encoded in the decoded path.
  // One segment "x%2Fretry": the GET route's path, never the retry route.
  EXPECT_EQ(Route("POST", "/v1/transactions/x%2Fretry"), "405");
  EXPECT_EQ(Route("GET", "/v1/transactions/x%2Fretry"), "get");
  EXPECT_EQ(gtid_, "x%2Fretry");
}

TEST_F(RouterTest, TrailingSlashNeverFillsACapture) {
  EXPECT_EQ(Route("GET", "/v1/transactions/"), "404");
  EXPECT_EQ(Route("GET", "/v1/transactions/g/"), "404");
  EXPECT_EQ(Route("GET", "/healthz/"), "404");
  EXPECT_EQ(Route("POST", "/v1/transactions/g/retry/"), "404");
  // The rest capture takes an empty rest (its handler decides).
  EXPECT_EQ(Route("GET", "/ui/"), "ui");
  EXPECT_EQ(file_, "");
}

TEST_F(RouterTest, EmptyInnerSegmentIsCapturedEmpty) {
  EXPECT_EQ(Route("POST", "/v1/transactions//retry"), "retry");
  EXPECT_EQ(gtid_, "");
  EXPECT_EQ(Route("POST", "/v1/transactions/g/branches//resolve"), "resolve");
  EXPECT_EQ(branch_, "");
}

TEST_F(RouterTest, HeadOnlyWhereListed) {
  EXPECT_EQ(Route("HEAD", "/ui/index.js"), "ui");
  EXPECT_EQ(Route("HEAD", "/"), "index");
  EXPECT_EQ(Route("HEAD", "/healthz"), "405");
  EXPECT_EQ(Route("HEAD", "/v1/transactions/g"), "405");
}

TEST_F(RouterTest, NoPathAgainstWrongMethod) {
  EXPECT_EQ(Route("POST", "/healthz"), "405");
  EXPECT_EQ(Route("GET", "/v1/transactions/g/retry"), "405");
  EXPECT_EQ(Route("DELETE", "/v1/transactions/g/pause"), "404");
  EXPECT_EQ(Route("GET", "/v1/nothing"), "404");
  // A route without methods takes every method.
  EXPECT_EQ(Route("PATCH", "/v1/session"), "session");
}

TEST_F(RouterTest, HostilePathsMatchNothingUnexpected) {
  EXPECT_EQ(Route("GET", ""), "404");
  EXPECT_EQ(Route("GET", "healthz"), "404");
  EXPECT_EQ(Route("GET", "//healthz"), "404");
  EXPECT_EQ(Route("GET", "/v1/transactions/../../healthz"), "404");
  EXPECT_EQ(Route("GET", "/v1/transactions/.."), "get");  // a capture; ValidateGtid judges it
  EXPECT_EQ(Route("GET", "/v1/transactions/a\nb"), "get");
  EXPECT_EQ(Route("GET", std::string("/healthz\0x", 10)), "404");
  EXPECT_EQ(Route("GET", "/" + std::string(100000, '/')), "404");
  EXPECT_EQ(Route("GET", "/v1/transactions/" + std::string(100000, 'a')), "get");
  EXPECT_EQ(gtid_.size(), 100000u);
  EXPECT_EQ(Route("G\xffT", "/healthz"), "405");
}

TEST_F(RouterTest, RoutesListsTheTableAsAdded) {
  const std::vector<Router::RouteInfo> routes = router_.Routes();
  ASSERT_EQ(routes.size(), 7u);
  EXPECT_EQ(routes[0].pattern, "/healthz");
  EXPECT_EQ(routes[0].methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(routes[3].pattern, "/v1/transactions/{gtid}/branches/{branch}/resolve");
  EXPECT_EQ(routes[4].pattern, "/ui/{file...}");
  EXPECT_EQ(routes[4].methods, (std::vector<std::string>{"GET", "HEAD"}));
  EXPECT_EQ(routes[6].pattern, "/v1/session");
  EXPECT_TRUE(routes[6].methods.empty());  // any method
}

// RuleFor: what the AccessGate asks of the table.
TEST_F(RouterTest, RuleForIsTheMatchedRoutesAccessWithItsCaptures) {
  Router::Rule rule = router_.RuleFor("POST", "/v1/transactions/g1/branches/b2/resolve");
  EXPECT_EQ(rule.access.kind, RouteAccess::Kind::kRole);
  EXPECT_EQ(rule.access.role, Role::kOperate);
  EXPECT_EQ(rule.access.audit_action, "resolve");
  EXPECT_TRUE(rule.access.audit_when_admitted);
  EXPECT_EQ(rule.params["gtid"], "g1");
  EXPECT_EQ(rule.params["branch"], "b2");
  rule = router_.RuleFor("POST", "/v1/transactions//retry");  // the handler refuses the gtid
  EXPECT_EQ(rule.access.role, Role::kOperate);
  EXPECT_EQ(rule.params["gtid"], "");
  EXPECT_EQ(router_.RuleFor("GET", "/ui/app.js").access.kind, RouteAccess::Kind::kOpen);
  EXPECT_EQ(router_.RuleFor("PATCH", "/v1/session").access.kind, RouteAccess::Kind::kAuthenticated);
}

TEST_F(RouterTest, RuleForHeadOnAGetOnlyRouteIsTheGets) {
  Router::Rule rule = router_.RuleFor("HEAD", "/v1/transactions/g1");
  EXPECT_EQ(rule.access.kind, RouteAccess::Kind::kRole);
  EXPECT_EQ(rule.access.role, Role::kRead);
  EXPECT_EQ(rule.params["gtid"], "g1");
  EXPECT_EQ(Route("HEAD", "/v1/transactions/g1"), "405");  // still not served
  rule = router_.RuleFor("HEAD", "/healthz");
  EXPECT_EQ(rule.access.kind, RouteAccess::Kind::kOpen);
  EXPECT_TRUE(rule.access.any_host);
  // HEAD where no GET is served either: as an unknown route.
  EXPECT_EQ(router_.RuleFor("HEAD", "/v1/transactions/g/retry").access.kind,
            RouteAccess::Kind::kAuthenticated);
}

TEST_F(RouterTest, RuleForUnknownRoutesIsAuthenticationOnly) {
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/nothing"},
                                                        {"DELETE", "/v1/transactions/x"},
                                                        {"GET", "/v1/transactions/g/retry"},
                                                        {"GET", "/v1/transactions/"},
                                                        {"GET", ""},
                                                        {"OPTIONS", "*"},
                                                        {"GET", "/ui"}}) {
    const Router::Rule rule = router_.RuleFor(method, path);
    EXPECT_EQ(rule.access.kind, RouteAccess::Kind::kAuthenticated) << method << " " << path;
    EXPECT_FALSE(rule.access.any_host) << method << " " << path;
    EXPECT_EQ(rule.access.audit_action, "") << method << " " << path;
    EXPECT_EQ(rule.params.size(), 0u) << method << " " << path;
  }
  // A probe's path stays exempt from the Host allow-list whatever the method.
  const Router::Rule post = router_.RuleFor("POST", "/healthz");
  EXPECT_EQ(post.access.kind, RouteAccess::Kind::kAuthenticated);
  EXPECT_TRUE(post.access.any_host);
  EXPECT_FALSE(router_.RuleFor("GET", "/healthz/").access.any_host);
}

TEST_F(RouterTest, RuleForTakesTheFirstRouteOfItsMethod) {
  router_.Add({"POST"}, "/v1/thing", RouteAccess::Open(), [](const RouteCall&, HttpResponder&) {});
  router_.Add({"GET"}, "/v1/thing", RouteAccess::Needs(Role::kAdmin),
              [](const RouteCall&, HttpResponder&) {});
  EXPECT_EQ(router_.RuleFor("POST", "/v1/thing").access.kind, RouteAccess::Kind::kOpen);
  EXPECT_EQ(router_.RuleFor("GET", "/v1/thing").access.role, Role::kAdmin);
  EXPECT_EQ(router_.RuleFor("HEAD", "/v1/thing").access.role, Role::kAdmin);
  EXPECT_EQ(router_.RuleFor("PUT", "/v1/thing").access.kind, RouteAccess::Kind::kAuthenticated);
}

TEST(PathParamsTest, UnknownNameIsEmpty) {
  PathParams p;
  p.Add("gtid", "g");
  EXPECT_EQ(p["gtid"], "g");
  EXPECT_EQ(p["branch"], "");
}

}  // namespace
}  // namespace treaty
