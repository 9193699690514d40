#include "http/http_server.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "http/http_client.h"
#include "http/http_request_parsing.h"
#include "http/io_runner.h"

namespace treaty {
namespace {

using boost::asio::ip::tcp;
using namespace std::chrono_literals;

// Opens a blocking socket to 127.0.0.1:port on a private io_context.
class RawClient {
 public:
  explicit RawClient(uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  }
  void Send(const std::string& bytes) { boost::asio::write(socket_, boost::asio::buffer(bytes)); }
  // Reads until the peer closes (or an error).
  std::string ReadAll() {
    std::string out;
    boost::system::error_code ec;
    char buf[4096];
    for (;;) {
      size_t n = socket_.read_some(boost::asio::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
    }
    return out;
  }
  // Reads until `count` occurrences of "HTTP/1.1 " have arrived with complete bodies "ok<i>".
  std::string ReadUntil(const std::string& needle) {
    std::string out;
    char buf[4096];
    while (out.find(needle) == std::string::npos) {
      boost::system::error_code ec;
      size_t n = socket_.read_some(boost::asio::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
    }
    return out;
  }
  tcp::socket& socket() { return socket_; }

 private:
  boost::asio::io_context io_;
  tcp::socket socket_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpHandler handler, HttpServerOptions options = {}) {
    server_ = std::make_unique<HttpServer>(runner_.io(), options, std::move(handler));
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_NE(server_->port(), 0);
  }
  std::string Url(const std::string& target) {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + target;
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  IoRunner runner_{3};
  std::unique_ptr<HttpServer> server_;
};

TEST(HttpRequestParsingTest, DecodesPathAndQuery) {
  std::string path;
  std::map<std::string, std::string> query;
  SplitTarget("/v1/a%20b/c?x=1&y=hello+world%21&flag&x=2&z=%zz", &path, &query);
  EXPECT_EQ(path, "/v1/a b/c");
  EXPECT_EQ(query.at("x"), "1");
  EXPECT_EQ(query.at("y"), "hello world!");
  EXPECT_EQ(query.at("flag"), "");
  EXPECT_EQ(query.at("z"), "%zz");
  EXPECT_EQ(PercentDecode("a+b%2", false), "a+b%2");
  // An encoded '/' stays encoded in a path: it is never a separator.
  SplitTarget("/v1/transactions%2Fx%2fretry", &path, &query);
  EXPECT_EQ(path, "/v1/transactions%2Fx%2fretry");
  EXPECT_EQ(PercentDecode("a%2Fb", false), "a/b");
}

// A listener that cannot bind on [::1] names the address in brackets
// ("cannot bind [::1]:PORT: ..."), as every host:port the coordinator
// prints does (common/host_port.h), not "::1:PORT". Skipped without an IPv6
// loopback.
TEST(HttpServerBindTest, BindFailureOnIpv6NamesTheAddressInBrackets) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor taken(io);
  boost::system::error_code ec;
  const boost::asio::ip::tcp::endpoint any6(boost::asio::ip::address_v6::loopback(), 0);
  taken.open(any6.protocol(), ec);
  if (!ec) taken.bind(any6, ec);
  if (!ec) taken.listen(4, ec);
  if (ec) GTEST_SKIP() << "no IPv6 loopback on this machine: " << ec.message();
  const uint16_t port = taken.local_endpoint().port();
  IoRunner runner;
  HttpServerOptions options;
  options.host = "::1";
  options.port = port;
  HttpServer server(runner.io(), options, [](HttpRequest, HttpResponder r) { r({}); });
  Status s = server.Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot bind [::1]:" + std::to_string(port) + ": "), std::string::npos)
      << s.ToString();
}

TEST_F(HttpServerTest, RoutesMethodPathQueryHeadersAndBody) {
  std::mutex mu;
  HttpRequest seen;
  StartServer([&](HttpRequest req, HttpResponder respond) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen = req;
    }
    HttpResponse res;
    res.status = 201;
    res.body = R"({"echo":")" + req.path + "\"}";
    res.headers.push_back({"X-Extra", "yes"});
    respond(res);
  });
  auto res = HttpFetch("POST", Url("/v1/sagas%2Fx?limit=5&state=RUNNING%20X"), R"({"a":1})",
                       {{"X-Custom-Header", "Value"}});
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 201);
  // An encoded '/' stays encoded: data inside a segment, not a separator.
  EXPECT_EQ(res->body, R"({"echo":"/v1/sagas%2Fx"})");
  EXPECT_EQ(res->headers["x-extra"], "yes");
  EXPECT_EQ(res->headers["content-type"], "application/json");
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.target, "/v1/sagas%2Fx?limit=5&state=RUNNING%20X");
  EXPECT_EQ(seen.path, "/v1/sagas%2Fx");
  EXPECT_EQ(seen.query.at("limit"), "5");
  EXPECT_EQ(seen.query.at("state"), "RUNNING X");
  EXPECT_EQ(seen.Header("x-custom-header"), "Value");
  EXPECT_EQ(seen.body, R"({"a":1})");
  EXPECT_EQ(seen.remote.rfind("127.0.0.1:", 0), 0u);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  std::atomic<int> count{0};
  std::set<std::string> remotes;
  std::mutex mu;
  StartServer([&](HttpRequest req, HttpResponder respond) {
    {
      std::lock_guard<std::mutex> lock(mu);
      remotes.insert(req.remote);
    }
    respond({200, "text/plain", "ok" + std::to_string(count++), {}});
  });
  RawClient client(server_->port());
  // Pipelined: three requests in one write; answered in order, one at a time.
  client.Send(
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = client.ReadUntil("ok2");
  EXPECT_LT(got.find("ok0"), got.find("ok1"));
  EXPECT_LT(got.find("ok1"), got.find("ok2"));
  client.Send("GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  got = client.ReadAll();  // server closes after Connection: close
  EXPECT_NE(got.find("ok3"), std::string::npos);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(remotes.size(), 1u);
}

TEST_F(HttpServerTest, OversizedBodyGets413AndNeverReachesHandler) {
  std::atomic<int> calls{0};
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  StartServer(
      [&](HttpRequest, HttpResponder respond) {
        ++calls;
        respond({200, "text/plain", "ok", {}});
      },
      options);
  auto res = HttpFetch("POST", Url("/big"), std::string(4096, 'x'));
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 413);
  EXPECT_NE(res->body.find(R"("code":"too_large")"), std::string::npos) << res->body;
  EXPECT_EQ(calls.load(), 0);
  auto small = HttpFetch("POST", Url("/small"), std::string(100, 'x'));
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->status, 200);
}

TEST_F(HttpServerTest, GarbageGets400AndServerKeepsServing) {
  StartServer([&](HttpRequest, HttpResponder respond) { respond({200, "text/plain", "ok", {}}); });
  {
    RawClient client(server_->port());
    client.Send("\x01\x02 this is not http \r\n\r\n");
    std::string got = client.ReadAll();
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
    EXPECT_NE(got.find(R"("error")"), std::string::npos);
  }
  auto res = HttpFetch("GET", Url("/after"));
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 200);
}

TEST_F(HttpServerTest, DeferredRespondFromAnotherThread) {
  std::vector<std::thread> workers;
  std::mutex mu;
  StartServer([&](HttpRequest req, HttpResponder respond) {
    std::lock_guard<std::mutex> lock(mu);
    workers.emplace_back([respond, path = req.path] {
      std::this_thread::sleep_for(50ms);
      respond({200, "text/plain", "late" + path, {}});
    });
  });
  auto res = HttpFetch("GET", Url("/x"));
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->body, "late/x");
  std::lock_guard<std::mutex> lock(mu);
  for (auto& t : workers) t.join();
}

TEST_F(HttpServerTest, HandlerExceptionBecomes500) {
  StartServer([&](HttpRequest, HttpResponder) { throw std::runtime_error("boom"); });
  auto res = HttpFetch("GET", Url("/x"));
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 500);
  EXPECT_NE(res->body.find("boom"), std::string::npos);
}

TEST_F(HttpServerTest, ClientDisconnectMidRequestDoesNotCrash) {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::atomic<int> responded{0};
  StartServer([&](HttpRequest, HttpResponder respond) {
    std::lock_guard<std::mutex> lock(mu);
    workers.emplace_back([&, respond] {
      std::this_thread::sleep_for(100ms);
      respond({200, "text/plain", "too late", {}});
      ++responded;
    });
  });
  {
    RawClient half(server_->port());  // partial headers, then gone
    half.Send("POST /x HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
  }
  {
    RawClient waiting(server_->port());  // full request, gone before the answer
    waiting.Send("GET /y HTTP/1.1\r\nHost: x\r\n\r\n");
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(200ms);
  auto res = HttpFetch("GET", Url("/z"));
  ASSERT_TRUE(res.ok());
  std::lock_guard<std::mutex> lock(mu);
  for (auto& t : workers) t.join();
  EXPECT_EQ(responded.load(), 2);
}

TEST_F(HttpServerTest, IdleConnectionsAreClosed) {
  HttpServerOptions options;
  options.idle_timeout_ms = 100;
  StartServer(
      [&](HttpRequest, HttpResponder respond) {
        respond({200, "text/plain", "ok", {}});
      },
      options);
  RawClient client(server_->port());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client.ReadAll(), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// A flood over the cap: each refused connection gets its 503 and then drains
// for up to a second. A newcomer must still hear 503 while many are draining
// (it evicts the oldest), not a close without an answer.
TEST_F(HttpServerTest, NewcomerHears503WhileManyRefusedConnectionsDrain) {
  HttpServerOptions options;
  options.max_connections = 1;
  StartServer(
      [&](HttpRequest, HttpResponder respond) {
        respond({200, "text/plain", "ok", {}});
      },
      options);
  RawClient served(server_->port());  // holds the only slot, idle
  std::this_thread::sleep_for(50ms);
  std::vector<std::unique_ptr<RawClient>> refused;
  for (int i = 0; i < 200; ++i) refused.push_back(std::make_unique<RawClient>(server_->port()));
  auto res = HttpFetch("GET", Url("/x"), "", {}, 5000);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 503);
  // Every refused connection, evicted or not, was answered before it closed.
  for (size_t i : {size_t{0}, size_t{100}, size_t{199}}) {
    EXPECT_EQ(refused[i]->ReadAll().rfind("HTTP/1.1 503 ", 0), 0u) << "connection " << i;
  }
}

TEST_F(HttpServerTest, StopClosesOpenConnections) {
  StartServer([&](HttpRequest, HttpResponder respond) { respond({200, "text/plain", "ok", {}}); });
  RawClient client(server_->port());
  std::this_thread::sleep_for(20ms);
  server_->Stop();
  EXPECT_EQ(client.ReadAll(), "");
  auto res = HttpFetch("GET", Url("/x"), "", {}, 1000);
  EXPECT_FALSE(res.ok());
  server_->Stop();  // idempotent
}

TEST(HttpClientTest, RefusesWhatParseEndpointRefusesAndControlBytesInHeaders) {
  for (const char* url : {"nohost", "http://:80/", "http://h:99999/", "http://h:abc/",
                          "http://h/a\r\nX-Injected: 1", "http://u@h/"}) {
    auto r = HttpFetch("GET", url, "", {}, 1000);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << url;
  }
  auto header = HttpFetch("GET", "http://127.0.0.1:1/x", "", {{"X-A", "v\r\nX-B: 1"}}, 1000);
  ASSERT_FALSE(header.ok());
  EXPECT_EQ(header.status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpClientTest, FetchErrors) {
  auto refused = HttpFetch("GET", "http://127.0.0.1:1/x", "", {}, 2000);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  auto bad = HttpFetch("GET", "ftp://127.0.0.1/x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(HttpServerTest, FetchTimesOut) {
  std::vector<HttpResponder> parked;
  std::mutex mu;
  StartServer([&](HttpRequest, HttpResponder respond) {
    std::lock_guard<std::mutex> lock(mu);
    parked.push_back(std::move(respond));  // never answered during the fetch
  });
  auto res = HttpFetch("GET", Url("/slow"), "", {}, 200);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kTimedOut);
  std::lock_guard<std::mutex> lock(mu);
  for (auto& r : parked) r({200, "text/plain", "", {}});
}

}  // namespace
}  // namespace treaty
