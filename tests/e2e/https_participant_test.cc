// https:// participants end to end: a real treatyd (SQLite log) trusting a
// CA made at test time (--participant-ca) and signing its calls
// (--participant-hmac-key), and the SDK's ParticipantServer serving HTTPS
// with that key in signing_keys (an unsigned or wrongly signed call would be
// answered 401 and never complete). A saga and a 2PC over https:// commit
// with each handler called once, over pooled keep-alive connections.
//
// Coordinator and test-support headers come before the SDK's (see
// participant-sdk/include/treaty/status.h on the inline namespace).

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "http/http_client.h"
#include "support/subprocess.h"
#include "support/test_pki.h"
#include "support/treatyd_process.h"
#include "treaty/participant_server.h"

namespace treaty::testing {
namespace {

using nlohmann::json;
namespace sdk = treaty::sdk;

// Local ports of this machine's TCP sockets (any state but LISTEN, IPv4 and
// IPv6) whose remote port is `port`: the client ends of the connections made
// to `port` lately (a closed one stays in TIME_WAIT for a minute).
std::set<int> ClientPortsTo(int port) {
  std::set<int> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(table);
    std::string line;
    std::getline(f, line);  // header
    while (std::getline(f, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      if (state == "0A") continue;  // LISTEN
      const int remote_port = std::stoi(remote.substr(remote.rfind(':') + 1), nullptr, 16);
      if (remote_port == port)
        out.insert(std::stoi(local.substr(local.rfind(':') + 1), nullptr, 16));
    }
  }
  return out;
}

class HttpsParticipantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("treaty-https-participant");
    auto pki = TestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status().ToString();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    auto cert = pki_->Issue("localhost", "participant");
    ASSERT_TRUE(cert.ok()) << cert.status().ToString();
    const std::string key = "0123456789abcdef0123456789abcdef-shared";
    const std::string key_file = dir_ + "/participant-hmac.key";
    std::ofstream(key_file) << key << "\n";  // one trailing newline is not part of the key

    sdk::ParticipantServerOptions options;
    options.tls_cert_file = cert->cert;
    options.tls_key_file = cert->key;
    options.signing_keys = {key};
    participant_ = std::make_unique<sdk::ParticipantServer>(options);
    for (const char* step : {"flight", "hotel"}) {
      participant_->AddSagaStep(step, Count(), Count());
    }
    for (const char* branch : {"debit", "credit"}) {
      participant_->AddResourceManager(
          branch,
          [this](const sdk::CallContext& ctx) -> treaty::Result<sdk::Vote> {
            Note(ctx);
            return sdk::Vote::kYes;
          },
          Count(), Count());
    }
    auto started = participant_->Start();
    ASSERT_TRUE(started.ok()) << started.ToString();
    ASSERT_EQ(participant_->http_url().rfind("https://", 0), 0u) << participant_->http_url();
    earlier_ = ClientPortsTo(participant_->http_port());  // someone else's, on a reused port

    TreatydOptions treatyd;
    treatyd.store = "sqlite:" + dir_ + "/t.db";
    treatyd.extra = {"--participant-ca", pki_->ca_cert(), "--participant-hmac-key", key_file};
    node_ = std::make_unique<TreatydProcess>(dir_, "treatyd", treatyd);
    auto s = node_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void TearDown() override {
    if (HasFailure() && node_) std::cerr << "===== treatyd =====\n" << node_->Log() << "\n";
    node_.reset();
    participant_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  sdk::StepHandler Count() {
    return [this](const sdk::CallContext& ctx) {
      Note(ctx);
      return treaty::Status::Ok();
    };
  }
  void Note(const sdk::CallContext& ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_[ctx.gtid + "/" + ctx.branch + "/" + ctx.op];
  }
  std::map<std::string, int> Calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // By name: SNI and the certificate's DNS name (the SDK's own URLs use 127.0.0.1).
  std::string ByName(const std::string& name, const std::string& op) const {
    return "https://localhost:" + std::to_string(participant_->http_port()) + "/" + name + "/" + op;
  }

  // Connections made to the participant since it started.
  size_t Connections() const {
    size_t n = 0;
    for (int port : ClientPortsTo(participant_->http_port())) n += earlier_.count(port) ? 0 : 1;
    return n;
  }

  std::pair<int, json> Post(const std::string& path, const json& body) {
    auto r = HttpFetch("POST", node_->url() + path, body.dump(), {}, 10000);
    if (!r.ok()) return {0, json{{"error", r.status().ToString()}}};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  // Waits (up to 20 s) for a terminal state; returns the last state seen.
  std::string WaitForEnd(const std::string& gtid) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::string state;
    while (std::chrono::steady_clock::now() < end) {
      auto r = HttpFetch("GET", node_->url() + "/v1/transactions/" + gtid, "", {}, 2000);
      if (r.ok() && r->status == 200) {
        json body = json::parse(r->body, nullptr, false);
        state = body.is_object() ? body.value("state", "") : "";
        if (state == "COMMITTED" || state == "ABORTED" || state == "COMPENSATED") return state;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return state;
  }

  std::string dir_;
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<sdk::ParticipantServer> participant_;
  std::unique_ptr<TreatydProcess> node_;
  std::mutex mu_;
  std::map<std::string, int> calls_;  // "gtid/branch/op" -> deliveries; guarded by mu_
  std::set<int> earlier_;
};

TEST_F(HttpsParticipantTest, SagaAndTwoPhaseCommitOverHttps) {
  json steps = json::array();
  for (const std::string name : {"flight", "hotel"}) {
    steps.push_back({{"name", name},
                     {"action", ByName(name, "action")},
                     {"compensate", ByName(name, "compensate")}});
  }
  auto [status, body] = Post("/v1/sagas", {{"gtid", "trip-1"}, {"steps", steps}});
  ASSERT_EQ(status, 201) << body.dump();
  EXPECT_EQ(WaitForEnd("trip-1"), "COMMITTED");
  // Keep-alive: the two actions, one after the other, over one connection.
  EXPECT_EQ(Connections(), 1u);

  std::tie(status, body) = Post("/v1/2pc", {{"gtid", "transfer-1"}});
  ASSERT_EQ(status, 201) << body.dump();
  for (const std::string name : {"debit", "credit"}) {
    json branch = {{"name", name},
                   {"prepare", participant_->Url(name, "prepare")},
                   {"commit", participant_->Url(name, "commit")},
                   {"abort", participant_->Url(name, "abort")}};
    std::tie(status, body) = Post("/v1/2pc/transfer-1/branches", branch);
    ASSERT_EQ(status, 201) << body.dump();
  }
  std::tie(status, body) = Post("/v1/2pc/transfer-1/commit", json::object());
  ASSERT_EQ(status, 200) << body.dump();
  EXPECT_EQ(WaitForEnd("transfer-1"), "COMMITTED");

  const std::map<std::string, int> want = {
      {"trip-1/flight/action", 1},     {"trip-1/hotel/action", 1},
      {"transfer-1/debit/prepare", 1}, {"transfer-1/credit/prepare", 1},
      {"transfer-1/debit/commit", 1},  {"transfer-1/credit/commit", 1}};
  EXPECT_EQ(Calls(), want);
  // The branches' URLs name 127.0.0.1, another pool than the steps'
  // (localhost): the two prepares may run at once on two connections, the
  // commits reuse them.
  EXPECT_LE(Connections(), 3u);
}

}  // namespace
}  // namespace treaty::testing
