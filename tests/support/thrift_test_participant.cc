#include "support/thrift_test_participant.h"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include <thrift/TOutput.h>
#include <thrift/concurrency/ThreadFactory.h>
#include <thrift/concurrency/ThreadManager.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TNonblockingServer.h>
#include <thrift/transport/TNonblockingServerSocket.h>

#include "ParticipantService.h"

namespace treaty {

namespace at = apache::thrift;

struct ThriftTestParticipant::Impl : public rpc::ParticipantServiceIf {
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Rule> rules;      // "branch/op", guarded by mu
  std::vector<Call> calls;                // guarded by mu
  std::map<std::string, int> deliveries;  // "gtid/branch/op", guarded by mu
  std::shared_ptr<at::concurrency::ThreadManager> workers;
  std::unique_ptr<at::server::TNonblockingServer> server;
  std::thread loop;
  std::atomic<bool> loop_done{false};
  uint16_t port = 0;

  void Handle(rpc::ParticipantReply& out, const std::string& op, const rpc::ParticipantCall& c) {
    Rule rule;
    int n = 0;
    {
      std::lock_guard<std::mutex> l(mu);
      calls.push_back({c.gtid, c.branch, op, c.payload, c.idempotency_key, c.traceparent,
                       c.__isset.one_phase && c.one_phase});
      if (auto it = rules.find(c.branch + "/" + op); it != rules.end()) rule = it->second;
      n = deliveries[c.gtid + "/" + c.branch + "/" + op]++;
    }
    cv.notify_all();
    if (rule.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(rule.delay_ms));
    Reply r = rule.replies.empty() ? Reply::kOk
                                   : rule.replies[std::min<size_t>(n, rule.replies.size() - 1)];
    switch (r) {
      case Reply::kOk:
        out.outcome = rpc::Outcome::OK;
        if (op == "prepare") {
          out.__set_vote(rule.vote == Vote::kNo         ? rpc::Vote::NO
                         : rule.vote == Vote::kReadOnly ? rpc::Vote::READONLY
                                                        : rpc::Vote::YES);
        }
        break;
      case Reply::kFailed:
        out.outcome = rpc::Outcome::FAILED;
        out.__set_message("scripted failure");
        break;
      case Reply::kRetry:
        out.outcome = rpc::Outcome::RETRY;
        out.__set_message("scripted retry");
        break;
      case Reply::kThrow:
        throw std::runtime_error("scripted exception");
    }
  }

  void action(rpc::ParticipantReply& o, const rpc::ParticipantCall& c) override {
    Handle(o, "action", c);
  }
  void compensate(rpc::ParticipantReply& o, const rpc::ParticipantCall& c) override {
    Handle(o, "compensate", c);
  }
  void prepare(rpc::ParticipantReply& o, const rpc::ParticipantCall& c) override {
    Handle(o, "prepare", c);
  }
  void commit(rpc::ParticipantReply& o, const rpc::ParticipantCall& c) override {
    Handle(o, "commit", c);
  }
  void abort(rpc::ParticipantReply& o, const rpc::ParticipantCall& c) override {
    Handle(o, "abort", c);
  }
};

ThriftTestParticipant::ThriftTestParticipant() : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  at::GlobalOutput.setOutputFunction([](const char*) {});  // quiet in tests
  // The processor holds the handler; keep the Impl alive through a no-op deleter.
  std::shared_ptr<rpc::ParticipantServiceIf> handler(&m, [](rpc::ParticipantServiceIf*) {});
  auto processor = std::make_shared<rpc::ParticipantServiceProcessor>(handler);
  auto protocol = std::make_shared<at::protocol::TBinaryProtocolFactory>();
  m.workers = at::concurrency::ThreadManager::newSimpleThreadManager(3);
  m.workers->threadFactory(std::make_shared<at::concurrency::ThreadFactory>());
  m.workers->start();
  auto socket = std::make_shared<at::transport::TNonblockingServerSocket>("127.0.0.1", 0);
  m.server =
      std::make_unique<at::server::TNonblockingServer>(processor, protocol, socket, m.workers);
  // Register and serve on one thread (see ThriftServer::Start).
  std::promise<void> bound;
  auto bound_future = bound.get_future();
  m.loop = std::thread([&m, &bound] {
    try {
      m.server->registerEvents(nullptr);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ThriftTestParticipant cannot bind: %s\n", e.what());
      std::abort();
    }
    m.port = static_cast<uint16_t>(m.server->getListenPort());
    bound.set_value();
    try {
      m.server->serve();
    } catch (const std::exception&) {
    }
    m.loop_done = true;
  });
  bound_future.wait();
}

ThriftTestParticipant::~ThriftTestParticipant() {
  Impl& m = *impl_;
  while (!m.loop_done) {
    m.server->stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  m.loop.join();
  m.server.reset();
  m.workers->stop();
}

uint16_t ThriftTestParticipant::port() const { return impl_->port; }

std::string ThriftTestParticipant::Url() const {
  return "thrift://127.0.0.1:" + std::to_string(port());
}

void ThriftTestParticipant::SetRule(const std::string& branch, const std::string& op, Rule rule) {
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->rules[branch + "/" + op] = std::move(rule);
}

std::vector<ThriftTestParticipant::Call> ThriftTestParticipant::Calls() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->calls;
}

int ThriftTestParticipant::CallCount(const std::string& gtid, const std::string& branch,
                                     const std::string& op) const {
  std::lock_guard<std::mutex> l(impl_->mu);
  int n = 0;
  for (const auto& c : impl_->calls) n += c.gtid == gtid && c.branch == branch && c.op == op;
  return n;
}

bool ThriftTestParticipant::WaitFor(const std::function<bool(const std::vector<Call>&)>& pred,
                                    std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(impl_->mu);
  return impl_->cv.wait_for(l, timeout, [&] { return pred(impl_->calls); });
}

}  // namespace treaty
