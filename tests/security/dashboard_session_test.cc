// DashboardSessions directly (no server): sign-in through Handle with a
// controlled clock. Each client holds at most max_sessions_per_client
// sessions and its own oldest goes first, so one token holder signing in
// again and again never signs another client out; at the global cap the
// client holding the most sessions loses its oldest.

#include "api/dashboard_session.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace treaty {
namespace {

const std::string kAliceToken = "alice-secret-token-0123456789";
const std::string kMalloryToken = "mallory-secret-token-9876543210";
const std::string kBobToken = "bob-secret-token-5555555555";

class DashboardSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto auth = Authenticator::Parse("alice operate,read " + Sha256Hex(kAliceToken) +
                                         "\nmallory read " + Sha256Hex(kMalloryToken) +
                                         "\nbob read " + Sha256Hex(kBobToken) + "\n",
                                     "tokens");
    ASSERT_TRUE(auth.ok()) << auth.status().ToString();
    auth_ = *auth;
  }

  std::unique_ptr<DashboardSessions> Make(size_t per_client, size_t total) {
    DashboardSessionOptions o;
    o.max_sessions_per_client = per_client;
    o.max_sessions = total;
    o.now_ms = [this] { return now_ms_; };
    return std::make_unique<DashboardSessions>(auth_, /*secure_cookie=*/false, o);
  }

  // Signs in with `token`; the new session's cookie value ("" on failure).
  std::string SignIn(DashboardSessions& sessions, const std::string& token) {
    ++now_ms_;
    HttpRequest req;
    req.method = "POST";
    req.path = "/v1/session";
    req.body = "{\"token\":\"" + token + "\"}";
    req.remote = "127.0.0.1:40000";
    HttpResponse res;
    HttpResponder respond = [&](HttpResponse r) { res = std::move(r); };
    sessions.Handle(req, Identity{}, respond);
    EXPECT_EQ(res.status, 200) << res.body;
    for (const auto& [name, value] : res.headers) {
      if (name != "Set-Cookie") continue;
      const std::string prefix = std::string(kSessionCookie) + "=";
      if (!value.starts_with(prefix)) continue;
      return value.substr(prefix.size(), value.find(';') - prefix.size());
    }
    return "";
  }

  std::shared_ptr<Authenticator> auth_;
  int64_t now_ms_ = 1000;
};

TEST_F(DashboardSessionTest, OneClientSigningInAgainAndAgainEvictsOnlyItsOwnSessions) {
  auto sessions = Make(/*per_client=*/4, /*total=*/10000);
  const std::string alice = SignIn(*sessions, kAliceToken);
  ASSERT_EQ(alice.size(), 64u);
  std::vector<std::string> mallory;
  for (int i = 0; i < 50; ++i) mallory.push_back(SignIn(*sessions, kMalloryToken));
  auto who = sessions->Find(alice);
  ASSERT_TRUE(who.has_value()) << "another client's sign-ins never end alice's session";
  EXPECT_EQ(who->name, "alice");
  EXPECT_EQ(sessions->size(), 5u) << "alice's one and mallory's last four";
  for (size_t i = 0; i < mallory.size(); ++i) {
    EXPECT_EQ(sessions->Find(mallory[i]).has_value(), i >= mallory.size() - 4) << i;
  }
}

TEST_F(DashboardSessionTest, AtTheGlobalCapTheClientWithTheMostSessionsLosesItsOldest) {
  auto sessions = Make(/*per_client=*/16, /*total=*/6);
  const std::string alice = SignIn(*sessions, kAliceToken);
  const std::string bob = SignIn(*sessions, kBobToken);
  std::vector<std::string> mallory;
  for (int i = 0; i < 10; ++i) mallory.push_back(SignIn(*sessions, kMalloryToken));
  EXPECT_EQ(sessions->size(), 6u);
  EXPECT_TRUE(sessions->Find(alice).has_value());
  EXPECT_TRUE(sessions->Find(bob).has_value());
  EXPECT_FALSE(sessions->Find(mallory[5]).has_value());
  EXPECT_TRUE(sessions->Find(mallory[6]).has_value());
  EXPECT_TRUE(sessions->Find(mallory[9]).has_value());
  // A new client at the cap still gets in, at mallory's expense.
  auto third = Make(/*per_client=*/16, /*total=*/3);
  const std::string a = SignIn(*third, kAliceToken);
  const std::string m1 = SignIn(*third, kMalloryToken);
  const std::string m2 = SignIn(*third, kMalloryToken);
  const std::string b = SignIn(*third, kBobToken);
  EXPECT_TRUE(third->Find(a).has_value());
  EXPECT_FALSE(third->Find(m1).has_value());
  EXPECT_TRUE(third->Find(m2).has_value());
  EXPECT_TRUE(third->Find(b).has_value());
}

}  // namespace
}  // namespace treaty
