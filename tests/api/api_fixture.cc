#include "api/api_fixture.h"

#include <chrono>
#include <filesystem>
#include <thread>

#include "http/http_client.h"
#include "support/store_env.h"
#include "support/subprocess.h"

namespace treaty::testing {

using nlohmann::json;

void ApiTest::SetUp() {
  dir_ = MakeTempDir("treaty-api");
  options_.store_uri = FreshStoreUri(GetParam(), dir_);
  ASSERT_FALSE(options_.store_uri.empty());
  options_.http_port = 0;
  options_.heartbeat_ms = 200;
  options_.lease_ms = 1000;
  options_.drain_timeout_ms = 2000;
  options_.service.engine.retry_initial_backoff_ms = 20;
  options_.service.engine.retry_max_backoff_ms = 200;
  options_.service.engine.attention_after_attempts = 3;
  options_.service.engine.default_call_timeout_ms = 5000;
  participant_ = std::make_unique<TestParticipant>();
  StartServer();
}

void ApiTest::StartServer() {
  server_.reset();
  server_ = std::make_unique<Server>(options_);
  Status s = server_->Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
}

void ApiTest::TearDown() {
  server_.reset();
  participant_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

ApiReply ApiTest::PostRaw(const std::string& path, const std::string& body) {
  ApiReply out;
  auto r = HttpFetch("POST", server_->http_url() + path, body,
                     {{"Content-Type", "application/json"}}, 60000);
  if (!r.ok()) {
    ADD_FAILURE() << "POST " << path << ": " << r.status().ToString();
    return out;
  }
  out.status = r->status;
  out.raw = r->body;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

ApiReply ApiTest::Post(const std::string& path, const json& body) {
  return PostRaw(path, body.dump());
}

ApiReply ApiTest::Get(const std::string& path) {
  ApiReply out;
  auto r = HttpFetch("GET", server_->http_url() + path, "", {}, 30000);
  if (!r.ok()) {
    ADD_FAILURE() << "GET " << path << ": " << r.status().ToString();
    return out;
  }
  out.status = r->status;
  out.raw = r->body;
  out.body = json::parse(r->body, nullptr, false);
  return out;
}

json ApiTest::Step(const std::string& name, int max_attempts) {
  return {{"name", name},
          {"action", participant_->Url(name, "action")},
          {"compensate", participant_->Url(name, "compensate")},
          {"payload", {{"step", name}}},
          {"retry",
           {{"max_attempts", max_attempts}, {"initial_backoff_ms", 20}, {"max_backoff_ms", 100}}}};
}

json ApiTest::Branch2pc(const std::string& name) {
  return {{"name", name},
          {"prepare", participant_->Url(name, "prepare")},
          {"commit", participant_->Url(name, "commit")},
          {"abort", participant_->Url(name, "abort")}};
}

json ApiTest::PollTransaction(const std::string& gtid, int timeout_ms, const std::string& what,
                              const std::function<bool(const json&)>& done) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  json last;
  while (std::chrono::steady_clock::now() < end) {
    auto r = Get("/v1/transactions/" + gtid);
    if (r.status == 200) {
      last = r.body;
      if (done(last)) return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ADD_FAILURE() << "transaction " << gtid << " not " << what << " after " << timeout_ms
                << " ms: " << last.dump();
  return last;
}

json ApiTest::WaitTerminal(const std::string& gtid, int timeout_ms) {
  return PollTransaction(gtid, timeout_ms, "terminal", [](const json& t) {
    return t["state"] == "COMMITTED" || t["state"] == "ABORTED";
  });
}

json ApiTest::WaitState(const std::string& gtid, const std::string& state, int timeout_ms) {
  return PollTransaction(gtid, timeout_ms, state,
                         [&](const json& t) { return t["state"] == state; });
}

bool ApiTest::WaitCalls(const std::string& gtid, const std::string& branch, const std::string& op,
                        int n) {
  return participant_->WaitFor(
      [&](const auto& calls) {
        int seen = 0;
        for (const auto& c : calls) seen += c.gtid == gtid && c.branch == branch && c.op == op;
        return seen >= n;
      },
      std::chrono::seconds(20));
}

std::string ApiTest::Message(const ApiReply& r) {
  return r.body.is_object() && r.body.contains("error") ? r.body["error"].value("message", "")
                                                        : r.raw;
}

bool ApiTest::HasOperatorEvent(const json& txn, const std::vector<std::string>& parts) {
  for (const auto& e : txn["history"]) {
    if (e["type"] != "operator") continue;
    const std::string detail = e["detail"];
    bool all = true;
    for (const auto& p : parts) all = all && detail.find(p) != std::string::npos;
    if (all) return true;
  }
  return false;
}

std::string EngineParamName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

}  // namespace treaty::testing
