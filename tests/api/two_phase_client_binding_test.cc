// A 2PC transaction is bound to the client that began it (docs/2pc.md
// "Client calls", docs/security.md "Roles"): an in-process Server on SQLite
// with a tokens file holding two submit clients, `shop` and `payments`. Only
// shop, which began the transaction, may enlist, commit, abort or repeat its
// begin; payments gets 403 and changes nothing. The binding is stored in the
// transaction's spec and holds after a restart. A begin body cannot name the
// client. Operators keep their own routes.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/server.h"
#include "http/http_client.h"
#include "security/authenticator.h"
#include "support/store_env.h"
#include "support/subprocess.h"
#include "support/test_participant.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
using Rule = TestParticipant::Rule;

std::string TokenOf(const std::string& name) { return "token-of-" + name + "-0123456789"; }

struct Reply {
  int status = 0;
  json body;
  std::string raw;
};

class TwoPhaseClientBindingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-2pc-client");
    std::ofstream tokens(dir_ + "/tokens");
    for (const auto& [name, roles] : std::map<std::string, std::string>{
             {"shop", "submit"}, {"payments", "submit"}, {"viewer", "read"}, {"ops", "operate"}}) {
      tokens << name << " " << roles << " " << Sha256Hex(TokenOf(name)) << "\n";
    }
    tokens.close();
    std::filesystem::permissions(
        dir_ + "/tokens", std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    options_.store_uri = FreshStoreUri("sqlite", dir_);
    options_.http_port = 0;
    options_.heartbeat_ms = 200;
    options_.lease_ms = 1000;
    options_.auth_tokens_file = dir_ + "/tokens";
    participant_ = std::make_unique<TestParticipant>();
  }
  void TearDown() override {
    server_.reset();
    participant_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  // Starts (or restarts) the server on the same store.
  void Start() {
    server_.reset();
    server_ = std::make_unique<Server>(options_);
    Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  Reply As(const std::string& client, const std::string& method, const std::string& path,
           const json& body = nullptr) {
    std::map<std::string, std::string> headers = {{"Authorization", "Bearer " + TokenOf(client)}};
    std::string text;
    if (!body.is_null()) {
      text = body.dump();
      headers["Content-Type"] = "application/json";
    }
    auto r = HttpFetch(method, server_->http_url() + path, text, headers, 20000);
    Reply out;
    EXPECT_TRUE(r.ok()) << method << " " << path << ": " << r.status().ToString();
    if (!r.ok()) return out;
    out.status = r->status;
    out.raw = r->body;
    out.body = json::parse(r->body, nullptr, false);
    return out;
  }
  json Branch(const std::string& name) {
    return {{"name", name},
            {"prepare", participant_->Url(name, "prepare")},
            {"commit", participant_->Url(name, "commit")},
            {"abort", participant_->Url(name, "abort")}};
  }
  json Txn(const std::string& gtid) { return As("viewer", "GET", "/v1/transactions/" + gtid).body; }
  // A 403 "forbidden" that says the transaction is another client's.
  static void ExpectForbidden(const Reply& r, const std::string& what) {
    EXPECT_EQ(r.status, 403) << what << ": " << r.raw;
    const json error = r.body.is_object() ? r.body.value("error", json::object()) : json::object();
    EXPECT_EQ(error.value("code", ""), "forbidden") << what;
    EXPECT_NE(error.value("message", "").find("was begun by another client"), std::string::npos)
        << what << ": " << r.raw;
  }

  std::string dir_;
  ServerOptions options_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<TestParticipant> participant_;
};

TEST_F(TwoPhaseClientBindingTest, OnlyTheClientThatBeganItMayDriveIt) {
  Start();
  ASSERT_EQ(As("shop", "POST", "/v1/2pc", {{"gtid", "order-1"}}).status, 201);
  ASSERT_EQ(As("shop", "POST", "/v1/2pc/order-1/branches", Branch("stock")).status, 201);

  ExpectForbidden(As("payments", "POST", "/v1/2pc/order-1/branches", Branch("pay")), "enlist");
  ExpectForbidden(As("payments", "POST", "/v1/2pc/order-1/commit"), "commit");
  ExpectForbidden(As("payments", "POST", "/v1/2pc/order-1/abort"), "abort");
  ExpectForbidden(As("payments", "POST", "/v1/2pc", {{"gtid", "order-1"}}), "same begin");
  ExpectForbidden(As("payments", "POST", "/v1/2pc", {{"gtid", "order-1"}, {"timeout_ms", 5}}),
                  "other begin");

  json txn = Txn("order-1");
  EXPECT_EQ(txn["state"], "ACTIVE") << txn;
  ASSERT_EQ(txn["branches"].size(), 1u) << txn;
  EXPECT_EQ(txn["branches"][0]["name"], "stock");
  EXPECT_TRUE(participant_->Calls().empty()) << "a refused call reached a participant";

  // The owner repeats its begin (200), then commits.
  EXPECT_EQ(As("shop", "POST", "/v1/2pc", {{"gtid", "order-1"}}).status, 200);
  Reply commit = As("shop", "POST", "/v1/2pc/order-1/commit");
  ASSERT_EQ(commit.status, 200) << commit.raw;
  EXPECT_TRUE(commit.body["state"] == "COMMITTING" || commit.body["state"] == "COMMITTED")
      << commit.raw;
  ASSERT_TRUE(participant_->WaitForCall("order-1", "stock", "commit", std::chrono::seconds(20)));
  EXPECT_EQ(participant_->CallCount("order-1", "stock", "prepare"), 1);
}

TEST_F(TwoPhaseClientBindingTest, ABeginBodyCannotNameTheClient) {
  Start();
  Reply r = As("payments", "POST", "/v1/2pc", {{"gtid", "order-2"}, {"client", "shop"}});
  EXPECT_EQ(r.status, 400) << r.raw;
  EXPECT_NE(r.raw.find("'client'"), std::string::npos) << r.raw;
  EXPECT_EQ(As("viewer", "GET", "/v1/transactions/order-2").status, 404);
}

// The binding is stored with the transaction: after a restart, from the log
// (before this coordinator adopts it) and from the restored driver alike.
// Operators keep their route.
TEST_F(TwoPhaseClientBindingTest, BindingHoldsAfterARestart) {
  participant_->SetRule("stock", "abort", Rule{{500}});  // stays ABORTING after recovery
  Start();
  ASSERT_EQ(As("shop", "POST", "/v1/2pc", {{"gtid", "order-3"}}).status, 201);
  ASSERT_EQ(As("shop", "POST", "/v1/2pc/order-3/branches", Branch("stock")).status, 201);
  EXPECT_EQ(Txn("order-3").value("spec", json()).value("client", ""), "shop") << Txn("order-3");

  server_->Stop();  // no hand-back: like a crash
  Start();
  ExpectForbidden(As("payments", "POST", "/v1/2pc/order-3/abort"), "abort after restart");

  // Once adopted (presumed abort: ABORTING), shop's abort is answered here.
  Reply mine;
  for (int i = 0; i < 200; ++i) {
    mine = As("shop", "POST", "/v1/2pc/order-3/abort");
    if (mine.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(mine.status, 200) << mine.raw;
  EXPECT_EQ(mine.body["state"], "ABORTING") << mine.raw;
  ExpectForbidden(As("payments", "POST", "/v1/2pc/order-3/abort"), "abort of the adopted one");
  ExpectForbidden(As("payments", "POST", "/v1/2pc/order-3/commit"), "commit of the adopted one");

  Reply forced = As("ops", "POST", "/v1/transactions/order-3/retry", json::object());
  EXPECT_EQ(forced.status, 200) << "operators keep their routes: " << forced.raw;
}

}  // namespace
}  // namespace treaty::testing
