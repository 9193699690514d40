// HTTP bodies stay within their limit whatever the peer declares (fuzz
// finding: "Content-Length: 999999999999" with body bytes in the same write
// made Beast 1.74 reserve ~1 TB). A raw TCP peer on loopback sends the
// header and the first body bytes in one write, against the participant
// caller, HttpFetch (also the SDK's client transport) and HttpServer. Each
// case checks the call fails cleanly with the limit named and that the
// process's peak resident memory (VmHWM) grew by at most 64 MiB.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "http/http_client.h"
#include "http/http_participant_caller.h"
#include "http/http_server.h"
#include "http/io_runner.h"

namespace treaty {
namespace {

using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr int64_t kMaxGrowthKiB = 64 * 1024;

// A field of /proc/self/status in KiB ("VmHWM", "VmRSS"); -1 if absent.
int64_t ProcStatusKiB(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

// Fails the test if peak resident memory grows by more than kMaxGrowthKiB
// between construction and Check().
class MemoryBound {
 public:
  MemoryBound() : hwm_(ProcStatusKiB("VmHWM")) { EXPECT_GT(hwm_, 0); }
  void Check() const {
    const int64_t grown = ProcStatusKiB("VmHWM") - hwm_;
    EXPECT_LE(grown, kMaxGrowthKiB) << "peak RSS grew by " << grown << " KiB";
    EXPECT_LE(ProcStatusKiB("VmRSS") - hwm_, kMaxGrowthKiB);
  }

 private:
  const int64_t hwm_;
};

// Accepts connections on 127.0.0.1; on each, reads until the end of the
// request header, then sends `head` in ONE write. If `repeat` is set it then
// sends it again and again (up to 256 times) until the peer goes away.
// Afterwards it reads until the peer closes. One connection at a time.
class CannedPeer {
 public:
  explicit CannedPeer(std::string head, std::string repeat = "")
      : head_(std::move(head)),
        repeat_(std::move(repeat)),
        acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~CannedPeer() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()) + "/p"; }

 private:
  static bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 100) > 0;
  }
  static bool SendAll(int fd, const std::string& bytes) {
    for (size_t off = 0; off < bytes.size();) {
      ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  void Serve(int fd) {
    std::string got;
    char buf[4096];
    for (int idle = 0; !stop_ && idle < 100 && got.find("\r\n\r\n") == std::string::npos;) {
      if (!Readable(fd)) {
        ++idle;
        continue;
      }
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      got.append(buf, static_cast<size_t>(n));
    }
    if (!SendAll(fd, head_)) return;
    for (int i = 0; !repeat_.empty() && !stop_ && i < 256; ++i) {
      if (!SendAll(fd, repeat_)) return;
    }
    for (int idle = 0; !stop_ && idle < 100;) {  // until the peer closes (or 10 s)
      if (!Readable(fd)) {
        ++idle;
        continue;
      }
      if (::recv(fd, buf, sizeof buf, 0) <= 0) return;
    }
  }
  void Run() {
    const int listen_fd = acceptor_.native_handle();
    while (!stop_) {
      if (!Readable(listen_fd)) continue;
      const int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) continue;
      Serve(fd);
      ::close(fd);
    }
  }

  const std::string head_, repeat_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string ResponseDeclaring(const std::string& content_length) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + content_length + "\r\n\r\n" +
         std::string(1000, 'x');
}
const std::string kChunkedHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
// One chunk of 1 MiB.
std::string MiBChunk() { return "100000\r\n" + std::string(1 << 20, 'x') + "\r\n"; }
// A single chunk declaring 1 TiB, 1000 bytes of it sent with the header.
std::string HugeChunkResponse() {
  return kChunkedHead + "10000000000\r\n" + std::string(1000, 'x');
}

// ---------------------------------------------------------------------------
// HttpParticipantCaller (limit 8 MiB).

class CallerBodyLimitTest : public ::testing::Test {
 protected:
  ParticipantResponse Call(const std::string& url) {
    ParticipantRequest req;
    req.url = url;
    req.gtid = "g1";
    req.branch = "b1";
    req.op = "action";
    req.timeout_ms = 20000;
    std::promise<ParticipantResponse> done;
    auto fut = done.get_future();
    caller_.Call(std::move(req), [&done](ParticipantResponse r) { done.set_value(r); });
    EXPECT_EQ(fut.wait_for(30s), std::future_status::ready);
    return fut.get();
  }
  void ExpectRefused(const std::string& url) {
    MemoryBound bound;
    auto r = Call(url);
    EXPECT_EQ(r.outcome, CallOutcome::kTransient) << r.error;  // retryable, like any failed call
    EXPECT_NE(r.error.find("larger than 8388608 bytes"), std::string::npos) << r.error;
    bound.Check();
  }

  IoRunner runner_{2};
  HttpParticipantCaller caller_{runner_.io(), HttpCallerOptions{}};
};

TEST_F(CallerBodyLimitTest, DeclaredTeraByteWithBodyBytesIsRefused) {
  CannedPeer peer(ResponseDeclaring("999999999999"));
  ExpectRefused(peer.url());
}

TEST_F(CallerBodyLimitTest, DeclaredFourGigabytesWithBodyBytesIsRefused) {
  CannedPeer peer(ResponseDeclaring("4000000000"));
  ExpectRefused(peer.url());
}

TEST_F(CallerBodyLimitTest, HugeChunkIsRefused) {
  CannedPeer peer(HugeChunkResponse());
  ExpectRefused(peer.url());
}

TEST_F(CallerBodyLimitTest, EndlessChunkedBodyIsRefused) {
  CannedPeer peer(kChunkedHead, MiBChunk());
  ExpectRefused(peer.url());
}

TEST_F(CallerBodyLimitTest, AnswerWithinTheLimitStillWorks) {
  CannedPeer peer("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + std::string(1000000, ' '));
  auto r = Call(peer.url());
  EXPECT_EQ(r.outcome, CallOutcome::kOk) << r.error;
  EXPECT_EQ(r.http_status, 200);
}

// ---------------------------------------------------------------------------
// HttpFetch (limit 64 MiB): HttpClient, which the SDK's REST transport also uses.

void ExpectFetchRefused(const CannedPeer& peer) {
  MemoryBound bound;
  auto r = HttpFetch("POST", peer.url(), "{}", {}, 20000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().message();
  EXPECT_NE(r.status().message().find("larger than 67108864 bytes"), std::string::npos)
      << r.status().message();
  bound.Check();
}

TEST(FetchBodyLimitTest, DeclaredTeraByteWithBodyBytesIsRefused) {
  CannedPeer peer(ResponseDeclaring("999999999999"));
  ExpectFetchRefused(peer);
}

TEST(FetchBodyLimitTest, DeclaredFourGigabytesWithBodyBytesIsRefused) {
  CannedPeer peer(ResponseDeclaring("4000000000"));
  ExpectFetchRefused(peer);
}

TEST(FetchBodyLimitTest, HugeChunkIsRefused) {
  CannedPeer peer(HugeChunkResponse());
  ExpectFetchRefused(peer);
}

TEST(FetchBodyLimitTest, ResponseWithinTheLimitStillWorks) {
  CannedPeer peer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  auto r = HttpFetch("GET", peer.url(), "", {}, 20000);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->body, "hello");
}

// ---------------------------------------------------------------------------
// HttpServer (max_body_bytes 1 MiB): requests whose header and first body
// bytes arrive in one write.

class ServerBodyLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions opts;
    opts.host = "127.0.0.1";
    opts.port = 0;
    opts.max_body_bytes = 1 << 20;
    server_ = std::make_unique<HttpServer>(
        runner_.io(), opts, [this](HttpRequest req, HttpResponder respond) {
          ++handled_;
          respond(HttpResponse{200, "text/plain", "ok " + std::to_string(req.body.size()), {}});
        });
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override { server_->Stop(); }

  // Sends `request` in one write and returns everything the server answers
  // until it closes the connection (or 10 s pass).
  std::string Exchange(const std::string& request) {
    net::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server_->port()));
    EXPECT_EQ(net::write(s, net::buffer(request)), request.size());
    s.shutdown(tcp::socket::shutdown_send);  // the server may drain; then it closes
    std::string got;
    char buf[4096];
    pollfd p{s.native_handle(), POLLIN, 0};
    for (int idle = 0; idle < 100;) {
      if (::poll(&p, 1, 100) <= 0) {
        ++idle;
        continue;
      }
      boost::system::error_code ec;
      size_t n = s.read_some(net::buffer(buf), ec);
      if (ec) break;
      got.append(buf, n);
    }
    return got;
  }

  void ExpectTooLarge(const std::string& request) {
    MemoryBound bound;
    std::string answer = Exchange(request);
    EXPECT_EQ(answer.rfind("HTTP/1.1 413", 0), 0u) << answer.substr(0, 200);
    EXPECT_EQ(handled_.load(), 0);
    bound.Check();
    // The server keeps serving.
    auto r = HttpFetch("POST", "http://127.0.0.1:" + std::to_string(server_->port()) + "/x", "{}",
                       {}, 10000);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "ok 2");
  }

  IoRunner runner_{2};
  std::unique_ptr<HttpServer> server_;
  std::atomic<int> handled_{0};
};

std::string RequestDeclaring(const std::string& content_length) {
  return "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: " + content_length + "\r\n\r\n" +
         std::string(1000, 'x');
}

TEST_F(ServerBodyLimitTest, DeclaredTeraByteWithBodyBytesGets413) {
  ExpectTooLarge(RequestDeclaring("999999999999"));
}

TEST_F(ServerBodyLimitTest, DeclaredFourGigabytesWithBodyBytesGets413) {
  ExpectTooLarge(RequestDeclaring("4000000000"));
}

// Body bytes that look like header fields must not be read as such.
TEST_F(ServerBodyLimitTest, BodyShapedLikeHeadersGets413) {
  ExpectTooLarge(
      "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999\r\n\r\n"
      "X-Smuggled: 1\r\n\r\n");
}

TEST_F(ServerBodyLimitTest, HugeChunkGets413) {
  ExpectTooLarge(
      "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "10000000000\r\n" +
      std::string(1000, 'x'));
}

TEST_F(ServerBodyLimitTest, ChunkedBodyOverTheLimitGets413) {
  std::string request = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 2; ++i) request += MiBChunk();
  request += "0\r\n\r\n";
  ExpectTooLarge(request);
}

}  // namespace
}  // namespace treaty
