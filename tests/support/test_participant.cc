#include "support/test_participant.h"

#include <algorithm>

#include <cstdio>
#include <cstdlib>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

namespace treaty {

TestParticipant::TestParticipant() : TestParticipant(Options{}) {}

TestParticipant::TestParticipant(Options options) {
  HttpServerOptions server_options;
  server_options.host = "127.0.0.1";
  server_options.port = 0;
  server_options.idle_timeout_ms = options.idle_timeout_ms;
  server_ = std::make_unique<HttpServer>(io_, server_options,
                                         [this](HttpRequest req, HttpResponder respond) {
                                           Handle(std::move(req), std::move(respond));
                                         });
  Status st = server_->Start();
  if (!st.ok()) {
    std::fprintf(stderr, "TestParticipant: %s\n", st.ToString().c_str());
    std::abort();
  }
  auto work =
      std::make_shared<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
          io_.get_executor());
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    threads_.emplace_back([this, work] { io_.run(); });
  }
}

TestParticipant::~TestParticipant() {
  server_->Stop();
  io_.stop();
  for (auto& t : threads_) t.join();
  server_.reset();
}

uint16_t TestParticipant::port() const { return server_->port(); }

std::string TestParticipant::Url(const std::string& branch, const std::string& op) const {
  return "http://127.0.0.1:" + std::to_string(port()) + "/" + branch + "/" + op;
}

void TestParticipant::SetRule(const std::string& branch, const std::string& op, Rule rule) {
  if (rule.statuses.empty()) rule.statuses.push_back(200);
  std::lock_guard<std::mutex> lock(mu_);
  rules_[{branch, op}] = std::move(rule);
}

void TestParticipant::ClearRules() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
}

void TestParticipant::Handle(HttpRequest req, HttpResponder respond) {
  Call call;
  call.at = std::chrono::steady_clock::now();
  call.path = req.path;
  call.body = req.body;
  call.remote = req.remote;
  call.headers = req.headers;
  call.gtid = req.Header("treaty-gtid");
  call.branch = req.Header("treaty-branch");
  call.op = req.Header("treaty-op");
  call.idempotency_key = req.Header("idempotency-key");
  call.traceparent = req.Header("traceparent");
  call.payload = "null";
  auto json = nlohmann::json::parse(req.body, nullptr, false);
  if (json.is_object()) {
    auto field = [&](const char* name, std::string* out) {
      if (out->empty() && json.contains(name) && json[name].is_string()) *out = json[name];
    };
    field("gtid", &call.gtid);
    field("branch", &call.branch);
    field("op", &call.op);
    if (json.contains("payload")) call.payload = json["payload"].dump();
  }
  // Path fallback: /<branch>/<op>
  if (call.branch.empty() || call.op.empty()) {
    auto slash = req.path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      if (call.op.empty()) call.op = req.path.substr(slash + 1);
      if (call.branch.empty()) {
        auto prev = req.path.rfind('/', slash - 1);
        call.branch = req.path.substr(prev + 1, slash - prev - 1);
      }
    }
  }

  Rule rule;
  size_t index;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = rules_.find({call.branch, call.op}); it != rules_.end()) rule = it->second;
    int n = deliveries_[{call.gtid, call.branch, call.op}]++;
    call.status = rule.statuses[std::min<size_t>(n, rule.statuses.size() - 1)];
    remotes_.insert(call.remote);
    index = calls_.size();
    calls_.push_back(std::move(call));
  }
  cv_.notify_all();
  if (rule.delay_ms <= 0) return Answer(index, rule, std::move(respond));
  auto timer = std::make_shared<boost::asio::steady_timer>(io_);
  timer->expires_after(std::chrono::milliseconds(rule.delay_ms));
  timer->async_wait([this, timer, index, rule, respond = std::move(respond)](auto) {
    Answer(index, rule, respond);
  });
}

void TestParticipant::Answer(size_t index, const Rule& rule, HttpResponder respond) {
  int status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Call& call = calls_[index];
    status = call.status;
    if (status >= 200 && status < 300) {
      std::string key = call.idempotency_key.empty() ? call.gtid + "/" + call.branch + "/" + call.op
                                                     : call.idempotency_key;
      if (applied_keys_.insert(key).second) ++effects_[{call.gtid, call.branch, call.op}];
    }
  }
  cv_.notify_all();
  respond(HttpResponse{status, "application/json", rule.body, {}});
}

std::vector<TestParticipant::Call> TestParticipant::Calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

int TestParticipant::CallCount(const std::string& gtid, const std::string& branch,
                               const std::string& op) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = deliveries_.find({gtid, branch, op});
  return it == deliveries_.end() ? 0 : it->second;
}

int TestParticipant::EffectCount(const std::string& gtid, const std::string& branch,
                                 const std::string& op) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = effects_.find({gtid, branch, op});
  return it == effects_.end() ? 0 : it->second;
}

int TestParticipant::ConnectionCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(remotes_.size());
}

bool TestParticipant::WaitFor(const std::function<bool(const std::vector<Call>&)>& pred,
                              std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return pred(calls_); });
}

bool TestParticipant::WaitForCalls(size_t count, std::chrono::milliseconds timeout) {
  return WaitFor([count](const std::vector<Call>& calls) { return calls.size() >= count; },
                 timeout);
}

bool TestParticipant::WaitForCall(const std::string& gtid, const std::string& branch,
                                  const std::string& op, std::chrono::milliseconds timeout) {
  return WaitFor(
      [&](const std::vector<Call>& calls) {
        return std::any_of(calls.begin(), calls.end(), [&](const Call& c) {
          return c.gtid == gtid && c.branch == branch && c.op == op;
        });
      },
      timeout);
}

}  // namespace treaty
