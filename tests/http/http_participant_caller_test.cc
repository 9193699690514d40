#include "http/http_participant_caller.h"

#include <netdb.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include "http/http_server.h"
#include "http/io_runner.h"
#include "security/participant_policy.h"
#include "support/test_participant.h"

namespace treaty {
namespace {

using namespace std::chrono_literals;
using Rule = TestParticipant::Rule;

class HttpParticipantCallerTest : public ::testing::Test {
 protected:
  void MakeCaller(HttpCallerOptions options = {}) {
    caller_ = std::make_unique<HttpParticipantCaller>(runner_.io(), options);
  }
  void SetUp() override { MakeCaller(); }

  ParticipantRequest Request(const std::string& branch, const std::string& op,
                             const std::string& gtid = "g1") {
    ParticipantRequest req;
    req.url = participant_.Url(branch, op);
    req.gtid = gtid;
    req.branch = branch;
    req.op = op;
    req.payload_json = R"({"amount":5})";
    req.timeout_ms = 5000;
    return req;
  }

  ParticipantResponse CallSync(ParticipantRequest req) {
    std::promise<ParticipantResponse> done;
    auto fut = done.get_future();
    caller_->Call(std::move(req), [&done](ParticipantResponse r) { done.set_value(r); });
    EXPECT_EQ(fut.wait_for(30s), std::future_status::ready);
    return fut.get();
  }

  TestParticipant participant_;
  IoRunner runner_{2};
  std::unique_ptr<HttpParticipantCaller> caller_;
};

TEST_F(HttpParticipantCallerTest, OutcomeMapping) {
  participant_.SetRule("ok", "action", Rule{{200}, 0, "{}"});
  participant_.SetRule("ro", "prepare", Rule{{200}, 0, R"({"vote":"readonly"})"});
  participant_.SetRule("biz", "action", Rule{{409}, 0, R"({"reason":"no funds"})"});
  participant_.SetRule("err", "action", Rule{{500}, 0, "oops"});
  participant_.SetRule("busy", "action", Rule{{503}, 0, ""});

  auto ok = CallSync(Request("ok", "action"));
  EXPECT_EQ(ok.outcome, CallOutcome::kOk);
  EXPECT_FALSE(ok.readonly_vote);
  EXPECT_EQ(ok.http_status, 200);

  auto ro = CallSync(Request("ro", "prepare"));
  EXPECT_EQ(ro.outcome, CallOutcome::kOk);
  EXPECT_TRUE(ro.readonly_vote);

  auto biz = CallSync(Request("biz", "action"));
  EXPECT_EQ(biz.outcome, CallOutcome::kBusinessFailure);
  EXPECT_EQ(biz.http_status, 409);
  EXPECT_NE(biz.error.find("no funds"), std::string::npos);

  auto err = CallSync(Request("err", "action"));
  EXPECT_EQ(err.outcome, CallOutcome::kTransient);
  EXPECT_EQ(err.http_status, 500);

  auto busy = CallSync(Request("busy", "action"));
  EXPECT_EQ(busy.outcome, CallOutcome::kTransient);
  EXPECT_EQ(busy.http_status, 503);
}

TEST_F(HttpParticipantCallerTest, TimeoutIsTransientAndMeasured) {
  participant_.SetRule("slow", "action", Rule{{200}, 1000, "{}"});
  auto req = Request("slow", "action");
  req.timeout_ms = 150;
  auto res = CallSync(req);
  EXPECT_EQ(res.outcome, CallOutcome::kTransient);
  EXPECT_EQ(res.http_status, 0);
  EXPECT_NE(res.error.find("timed out"), std::string::npos) << res.error;
  EXPECT_GE(res.latency_ms, 140);
  EXPECT_LT(res.latency_ms, 900);
  // The pool recovers: the next call works.
  EXPECT_EQ(CallSync(Request("fast", "action")).outcome, CallOutcome::kOk);
}

TEST_F(HttpParticipantCallerTest, ConnectionRefusedAndBadUrls) {
  auto req = Request("x", "action");
  req.url = "http://127.0.0.1:1/x/action";
  auto refused = CallSync(req);
  EXPECT_EQ(refused.outcome, CallOutcome::kTransient);
  EXPECT_EQ(refused.http_status, 0);
  EXPECT_FALSE(refused.error.empty());

  req.url = "https://127.0.0.1:1/x";  // this caller has no TLS context
  auto https = CallSync(req);
  EXPECT_EQ(https.outcome, CallOutcome::kUncallable);
  EXPECT_NE(https.error.find("https participants need TLS configured"), std::string::npos)
      << https.error;

  req.url = "thrift://127.0.0.1:1";
  EXPECT_EQ(CallSync(req).outcome, CallOutcome::kUncallable);

  req.url = "garbage";
  EXPECT_EQ(CallSync(req).outcome, CallOutcome::kUncallable);

  req.url = "http://no-such-host.invalid:80/x";
  EXPECT_EQ(CallSync(req).outcome, CallOutcome::kTransient);
}

// 404, 405 and 410 say the URL points at nothing that will ever answer: a
// configuration error, still transient (retried). Other failures are not.
TEST_F(HttpParticipantCallerTest, ConfigErrorStatusesAreFlagged) {
  participant_.SetRule("gone", "commit", Rule{{404}, 0, "no route"});
  participant_.SetRule("verb", "commit", Rule{{405}, 0, ""});
  participant_.SetRule("retired", "commit", Rule{{410}, 0, ""});
  participant_.SetRule("down", "commit", Rule{{503}, 0, ""});
  participant_.SetRule("biz", "prepare", Rule{{409}, 0, ""});

  auto not_found = CallSync(Request("gone", "commit"));
  EXPECT_EQ(not_found.outcome, CallOutcome::kTransient);
  EXPECT_EQ(not_found.http_status, 404);
  EXPECT_TRUE(not_found.config_error);
  EXPECT_NE(not_found.error.find(
                "HTTP 404 Not Found: the URL is wrong or the participant is not deployed"),
            std::string::npos)
      << not_found.error;
  EXPECT_NE(not_found.error.find("no route"), std::string::npos) << not_found.error;

  auto not_allowed = CallSync(Request("verb", "commit"));
  EXPECT_EQ(not_allowed.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(not_allowed.config_error);
  EXPECT_NE(not_allowed.error.find("HTTP 405 Method Not Allowed"), std::string::npos);

  auto gone = CallSync(Request("retired", "commit"));
  EXPECT_EQ(gone.outcome, CallOutcome::kTransient);
  EXPECT_TRUE(gone.config_error);
  EXPECT_NE(gone.error.find("HTTP 410 Gone"), std::string::npos);

  auto unavailable = CallSync(Request("down", "commit"));
  EXPECT_EQ(unavailable.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(unavailable.config_error);

  auto no_vote = CallSync(Request("biz", "prepare"));
  EXPECT_EQ(no_vote.outcome, CallOutcome::kBusinessFailure);
  EXPECT_FALSE(no_vote.config_error);

  EXPECT_FALSE(CallSync(Request("fine", "commit")).config_error);
}

// A name that does not resolve (RFC 6761 reserves .invalid; a machine without
// DNS fails the lookup too) is a configuration error; a refused connection and
// a time-out are passing faults.
TEST_F(HttpParticipantCallerTest, UnresolvableHostIsAConfigErrorUnlikeRefusedOrTimedOut) {
  auto req = Request("x", "commit");
  req.url = "http://no-such-participant.invalid/x";
  auto dns = CallSync(req);
  EXPECT_EQ(dns.outcome, CallOutcome::kTransient);
  EXPECT_EQ(dns.http_status, 0);
  // What this machine's resolver says of the name: "no such name" is a
  // configuration error; a resolver that cannot answer now (EAI_AGAIN, e.g.
  // no DNS server reachable) is a passing fault, retried and not flagged.
  addrinfo* found = nullptr;
  const int gai = getaddrinfo("no-such-participant.invalid", "80", nullptr, &found);
  if (found) freeaddrinfo(found);
  ASSERT_NE(gai, 0) << "the resolver claims a name under .invalid exists";
  const bool no_such_name = gai == EAI_NONAME
#ifdef EAI_NODATA
                            || gai == EAI_NODATA
#endif
      ;
  EXPECT_EQ(dns.config_error, no_such_name) << "getaddrinfo: " << gai_strerror(gai);
  EXPECT_NE(dns.error.find("host 'no-such-participant.invalid' does not resolve"),
            std::string::npos)
      << dns.error;

  req.url = "http://127.0.0.1:1/x/commit";
  auto refused = CallSync(req);
  EXPECT_EQ(refused.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(refused.config_error) << refused.error;

  participant_.SetRule("slow", "commit", Rule{{200}, 2000, "{}"});
  auto slow = Request("slow", "commit");
  slow.timeout_ms = 150;
  auto timed_out = CallSync(slow);
  EXPECT_EQ(timed_out.outcome, CallOutcome::kTransient);
  EXPECT_FALSE(timed_out.config_error) << timed_out.error;
}

// The lookup runs off the io threads: while a name is being resolved, other
// calls on the same (single-threaded) io_context still complete.
TEST(HttpParticipantCallerResolveTest, LookupDoesNotHoldTheIoThread) {
  TestParticipant participant;
  IoRunner runner{1};
  HttpParticipantCaller caller(runner.io(), HttpCallerOptions{});
  std::promise<ParticipantResponse> dns_done;
  ParticipantRequest dns_req;
  dns_req.url = "http://no-such-participant.invalid/x";
  dns_req.gtid = "g";
  dns_req.branch = "x";
  dns_req.op = "commit";
  dns_req.timeout_ms = 10000;
  caller.Call(dns_req, [&](ParticipantResponse r) { dns_done.set_value(r); });
  for (int i = 0; i < 3; ++i) {
    ParticipantRequest ok = dns_req;
    ok.url = participant.Url("ok", "commit");
    ok.gtid = "g" + std::to_string(i);
    std::promise<ParticipantResponse> done;
    auto fut = done.get_future();
    caller.Call(ok, [&](ParticipantResponse r) { done.set_value(r); });
    ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(fut.get().outcome, CallOutcome::kOk);
  }
  auto fut = dns_done.get_future();
  ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(fut.get().config_error);
}

TEST_F(HttpParticipantCallerTest, DoneIsNeverInvokedInline) {
  // Inline invocation would run `done` on this thread; posted, it runs on an io thread.
  for (const char* url : {"ftp://nowhere", "garbage", "http://127.0.0.1:1/x"}) {
    std::promise<std::thread::id> where;
    auto req = Request("x", "action");
    req.url = url;
    caller_->Call(req, [&](ParticipantResponse) { where.set_value(std::this_thread::get_id()); });
    EXPECT_NE(where.get_future().get(), std::this_thread::get_id()) << url;
  }
}

TEST_F(HttpParticipantCallerTest, WireFormatMatchesSpec) {
  auto req = Request("flight", "compensate", "gtid-7");
  req.payload_json = R"({"seat":"12A","n":[1,2]})";
  req.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  ASSERT_EQ(CallSync(req).outcome, CallOutcome::kOk);
  auto calls = participant_.Calls();
  ASSERT_EQ(calls.size(), 1u);
  const auto& c = calls[0];
  EXPECT_EQ(c.path, "/flight/compensate");
  EXPECT_EQ(c.headers.at("treaty-gtid"), "gtid-7");
  EXPECT_EQ(c.headers.at("treaty-branch"), "flight");
  EXPECT_EQ(c.headers.at("treaty-op"), "compensate");
  EXPECT_EQ(c.headers.at("idempotency-key"), "gtid-7/flight/compensate");
  EXPECT_EQ(c.headers.at("traceparent"), req.traceparent);
  EXPECT_EQ(c.headers.at("content-type"), "application/json");
  EXPECT_EQ(c.headers.at("connection"), "keep-alive");
  auto body = nlohmann::json::parse(c.body);
  EXPECT_EQ(body["gtid"], "gtid-7");
  EXPECT_EQ(body["branch"], "flight");
  EXPECT_EQ(body["op"], "compensate");
  EXPECT_EQ(body["payload"], nlohmann::json::parse(req.payload_json));
  EXPECT_EQ(c.payload, nlohmann::json::parse(req.payload_json).dump());
  EXPECT_EQ(participant_.EffectCount("gtid-7", "flight", "compensate"), 1);

  // No traceparent, null payload.
  auto plain = Request("hotel", "action", "gtid-8");
  plain.payload_json = "null";
  ASSERT_EQ(CallSync(plain).outcome, CallOutcome::kOk);
  calls = participant_.Calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].headers.count("traceparent"), 0u);
  EXPECT_TRUE(nlohmann::json::parse(calls[1].body)["payload"].is_null());
}

TEST_F(HttpParticipantCallerTest, SequentialCallsReuseConnections) {
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(CallSync(Request("b", "action", "g" + std::to_string(i))).outcome, CallOutcome::kOk);
  }
  EXPECT_LE(participant_.ConnectionCount(), 2);
  EXPECT_EQ(participant_.Calls().size(), 200u);
}

TEST_F(HttpParticipantCallerTest, PoolLimitRespectedUnderManyConcurrentCalls) {
  HttpCallerOptions options;
  options.max_connections_per_host = 8;
  MakeCaller(options);
  participant_.SetRule("b", "action", Rule{{200}, 2, "{}"});
  constexpr int kCalls = 500;
  std::atomic<int> ok{0}, done{0};
  std::promise<void> all_done;
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {  // Call from several threads at once
    callers.emplace_back([&, t] {
      for (int i = t; i < kCalls; i += 4) {
        auto req = Request("b", "action", "g" + std::to_string(i));
        req.timeout_ms = 60000;
        caller_->Call(req, [&](ParticipantResponse r) {
          if (r.outcome == CallOutcome::kOk) ++ok;
          if (++done == kCalls) all_done.set_value();
        });
      }
    });
  }
  for (auto& t : callers) t.join();
  ASSERT_EQ(all_done.get_future().wait_for(60s), std::future_status::ready);
  EXPECT_EQ(ok.load(), kCalls);
  EXPECT_LE(participant_.ConnectionCount(), 8);
  EXPECT_EQ(participant_.Calls().size(), static_cast<size_t>(kCalls));
}

TEST(HttpParticipantCallerStaleTest, RetriesWhenServerClosedIdleConnection) {
  TestParticipant::Options popts;
  popts.idle_timeout_ms = 100;  // the server drops idle keep-alive connections fast
  TestParticipant participant(popts);
  IoRunner runner(2);
  HttpParticipantCaller caller(runner.io(), HttpCallerOptions{});
  auto call = [&](const std::string& gtid) {
    ParticipantRequest req;
    req.url = participant.Url("b", "action");
    req.gtid = gtid;
    req.branch = "b";
    req.op = "action";
    req.payload_json = "{}";
    std::promise<ParticipantResponse> p;
    caller.Call(req, [&](ParticipantResponse r) { p.set_value(r); });
    return p.get_future().get();
  };
  for (int i = 0; i < 3; ++i) {
    auto r = call("g" + std::to_string(i));
    EXPECT_EQ(r.outcome, CallOutcome::kOk) << r.error;
    std::this_thread::sleep_for(300ms);  // longer than the server's idle timeout
  }
  EXPECT_EQ(participant.ConnectionCount(), 3);
}

// A server that closes a keep-alive connection without answering (as if its
// idle timer fired just as the request arrived): dropping the responder
// closes the connection.
TEST(HttpParticipantCallerStaleTest, RetriesOnceOnFreshConnectionWhenReusedOneDies) {
  IoRunner runner(2);
  std::mutex mu;
  std::map<std::string, int> per_connection;  // remote -> requests seen
  std::string first_remote;
  int requests = 0;
  bool drop_new_connections = false;
  HttpServer server(runner.io(), HttpServerOptions{}, [&](HttpRequest req, HttpResponder respond) {
    std::lock_guard<std::mutex> lock(mu);
    ++requests;
    int n = ++per_connection[req.remote];
    if (first_remote.empty()) first_remote = req.remote;
    if (req.remote == first_remote && n == 2) return;  // drop: close without answering
    if (drop_new_connections) return;
    respond({200, "application/json", "{}", {}});
  });
  ASSERT_TRUE(server.Start().ok());
  HttpParticipantCaller caller(runner.io(), HttpCallerOptions{});
  auto call = [&] {
    ParticipantRequest req;
    req.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/b/action";
    req.gtid = "g";
    req.branch = "b";
    req.op = "action";
    req.timeout_ms = 5000;
    std::promise<ParticipantResponse> p;
    caller.Call(req, [&](ParticipantResponse r) { p.set_value(r); });
    return p.get_future().get();
  };
  EXPECT_EQ(call().outcome, CallOutcome::kOk);
  auto second = call();  // reused connection dies -> one retry on a fresh connection
  EXPECT_EQ(second.outcome, CallOutcome::kOk) << second.error;
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(requests, 3);
    EXPECT_EQ(per_connection.size(), 2u);
    drop_new_connections = true;
  }
  // A failure on a connection that was not reused is not retried.
  HttpParticipantCaller fresh_caller(runner.io(), HttpCallerOptions{});
  ParticipantRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/b/action";
  req.gtid = "g2";
  std::promise<ParticipantResponse> p;
  fresh_caller.Call(req, [&](ParticipantResponse r) { p.set_value(r); });
  auto third = p.get_future().get();
  EXPECT_EQ(third.outcome, CallOutcome::kTransient);
  EXPECT_EQ(third.http_status, 0);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(requests, 4);
  server.Stop();
}

// A TCP listener that counts the connections it accepts (and closes them).
class CountingListener {
 public:
  CountingListener(boost::asio::io_context& io, const std::string& host, uint16_t port = 0)
      : acceptor_(io) {
    boost::system::error_code ec;
    boost::asio::ip::tcp::endpoint at(boost::asio::ip::make_address(host), port);
    acceptor_.open(at.protocol(), ec);
    if (!ec) acceptor_.bind(at, ec);
    if (!ec) acceptor_.listen(16, ec);
    ok_ = !ec;
    if (ok_) Accept();
  }
  ~CountingListener() {
    boost::system::error_code ec;
    acceptor_.close(ec);
  }
  bool ok() const { return ok_; }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int accepted() const { return accepted_.load(); }

 private:
  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket) {
      if (ec) return;
      ++accepted_;
      Accept();
    });
  }
  boost::asio::ip::tcp::acceptor acceptor_;
  bool ok_ = false;
  std::atomic<int> accepted_{0};
};

// The SSRF guard at connect time: a policy that knows this coordinator's own
// port X denies every loopback spelling of X after resolution (an IP, a name
// resolving to loopback, a numeric form the resolver reads as 127.0.0.1,
// IPv6), and nothing is connected to.
TEST(HttpParticipantCallerPolicyTest, DeniedAddressesAreNeverConnectedTo) {
  IoRunner runner(2);
  CountingListener own(runner.io(), "127.0.0.1");
  ASSERT_TRUE(own.ok());
  const std::string port = std::to_string(own.port());
  CountingListener own_v6(runner.io(), "::1", own.port());  // absent without IPv6
  auto policy = ParticipantPolicy::Create({});
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  (*policy)->AddOwnListener("127.0.0.1", own.port());
  HttpCallerOptions options;
  options.policy = *policy;
  HttpParticipantCaller caller(runner.io(), options);
  auto call = [&](HttpParticipantCaller& c, const std::string& url) {
    ParticipantRequest req;
    req.url = url;
    req.gtid = "g";
    req.branch = "b";
    req.op = "action";
    req.timeout_ms = 2000;
    std::promise<ParticipantResponse> p;
    c.Call(req, [&](ParticipantResponse r) { p.set_value(r); });
    return p.get_future().get();
  };
  std::vector<std::string> urls = {
      "http://127.0.0.1:" + port + "/v1/2pc/victim/abort", "http://localhost:" + port + "/x",
      "http://0x7f000001:" + port + "/x", "http://2130706433:" + port + "/x"};
  if (own_v6.ok()) urls.push_back("http://[::1]:" + port + "/x");
  for (const std::string& url : urls) {
    auto r = call(caller, url);
    EXPECT_EQ(r.outcome, CallOutcome::kTransient) << url;
    EXPECT_TRUE(r.config_error) << url;
    EXPECT_EQ(r.http_status, 0) << url;
    EXPECT_NE(r.error.find("denied"), std::string::npos) << url << ": " << r.error;
  }
  EXPECT_EQ(own.accepted(), 0);
  EXPECT_EQ(own_v6.ok() ? own_v6.accepted() : 0, 0);

  // The same call through a caller without the policy does connect: the
  // count above can see a connection.
  HttpParticipantCaller unguarded(runner.io(), HttpCallerOptions{});
  ParticipantRequest req;
  req.url = "http://127.0.0.1:" + port + "/x";
  req.timeout_ms = 300;  // the listener never answers
  std::promise<ParticipantResponse> p;
  unguarded.Call(req, [&](ParticipantResponse r) { p.set_value(r); });
  EXPECT_EQ(p.get_future().get().outcome, CallOutcome::kTransient);
  EXPECT_EQ(own.accepted(), 1);
}

TEST(TestParticipantTest, StatusSequencesAndIdempotentEffects) {
  TestParticipant participant;
  participant.SetRule("b", "action", Rule{{503, 503, 200}, 0, "{}"});
  IoRunner runner(1);
  HttpParticipantCaller caller(runner.io(), HttpCallerOptions{});
  auto call = [&] {
    ParticipantRequest req;
    req.url = participant.Url("b", "action");
    req.gtid = "g";
    req.branch = "b";
    req.op = "action";
    std::promise<ParticipantResponse> p;
    caller.Call(req, [&](ParticipantResponse r) { p.set_value(r); });
    return p.get_future().get().http_status;
  };
  EXPECT_EQ(call(), 503);
  EXPECT_EQ(call(), 503);
  EXPECT_EQ(call(), 200);
  EXPECT_EQ(call(), 200);  // last repeats; a redelivery does not re-apply
  EXPECT_EQ(participant.CallCount("g", "b", "action"), 4);
  EXPECT_EQ(participant.EffectCount("g", "b", "action"), 1);
  EXPECT_TRUE(participant.WaitForCalls(4, 1s));
  EXPECT_FALSE(participant.WaitForCalls(5, 50ms));
}

}  // namespace
}  // namespace treaty
