// HttpParticipantCaller with requests no submission can produce any more but
// a log written by an older release can: URLs
// and names are given to the caller directly, bypassing spec validation. A
// raw TCP listener records the exact bytes that reach the wire.

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/ip/tcp.hpp>

#include "common/limits.h"
#include "common/text.h"
#include "http/http_participant_caller.h"
#include "http/io_runner.h"
#include "support/test_participant.h"

namespace treaty {
namespace {

using namespace std::chrono_literals;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Accepts connections on 127.0.0.1 and records every byte each one sends. It
// answers the first request of a connection (headers, then Content-Length
// bytes of body) with 200 "{}" and "Connection: close", then reads until the
// peer closes. Connections are served one at a time on its own thread.
class RawListener {
 public:
  RawListener() : acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~RawListener() {
    stop_ = true;
    thread_.join();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // The bytes of every connection that has been closed by the peer so far.
  std::vector<std::string> Connections() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  // Blocks until `n` connections have been fully received (or 10 s).
  bool WaitForConnections(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return done_.size() >= n; });
  }

 private:
  // Waits up to 100 ms for `fd` to be readable.
  static bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 100) > 0;
  }

  void Run() {
    const int listen_fd = acceptor_.native_handle();
    while (!stop_) {
      if (!Readable(listen_fd)) continue;
      const int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) continue;
      std::string bytes;
      bool answered = false;
      for (int idle = 0; !stop_ && idle < 100;) {  // 10 s without a byte: give up
        if (!Readable(fd)) {
          ++idle;
          continue;
        }
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;  // the peer closed
        idle = 0;
        bytes.append(buf, static_cast<size_t>(n));
        if (!answered && RequestComplete(bytes)) {
          static const std::string kAnswer =
              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
              "Connection: close\r\n\r\n{}";
          (void)!::send(fd, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL);
          answered = true;
        }
      }
      ::close(fd);
      std::lock_guard<std::mutex> lock(mu_);
      done_.push_back(std::move(bytes));
      cv_.notify_all();
    }
  }

  // True once `bytes` hold a header block and the body its Content-Length announces.
  static bool RequestComplete(const std::string& bytes) {
    const size_t end = bytes.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    size_t length = 0;
    const size_t cl = bytes.find("Content-Length: ");
    if (cl != std::string::npos && cl < end) length = std::stoul(bytes.substr(cl + 16));
    return bytes.size() >= end + 4 + length;
  }

  net::io_context io_;
  tcp::acceptor acceptor_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> done_;  // guarded by mu_
};

// The header block of one recorded request, split into lines.
std::vector<std::string> HeaderLines(const std::string& bytes) {
  std::vector<std::string> lines;
  const size_t end = bytes.find("\r\n\r\n");
  size_t pos = 0;
  while (pos < end) {
    size_t eol = bytes.find("\r\n", pos);
    lines.push_back(bytes.substr(pos, eol - pos));
    pos = eol + 2;
  }
  return lines;
}

// The value of header `name` (exact case, as the caller writes it), or "(absent)".
std::string Header(const std::vector<std::string>& lines, const std::string& name) {
  for (const auto& l : lines) {
    if (l.rfind(name + ": ", 0) == 0) return l.substr(name.size() + 2);
  }
  return "(absent)";
}

class ParticipantCallerInputTest : public ::testing::Test {
 protected:
  ParticipantResponse CallSync(ParticipantRequest req) {
    std::promise<ParticipantResponse> done;
    auto fut = done.get_future();
    caller_.Call(std::move(req), [&done](ParticipantResponse r) { done.set_value(r); });
    EXPECT_EQ(fut.wait_for(30s), std::future_status::ready);
    return fut.get();
  }

  ParticipantRequest Request(const std::string& url) {
    ParticipantRequest req;
    req.url = url;
    req.gtid = "g1";
    req.branch = "b";
    req.op = "action";
    req.payload_json = "{}";
    req.timeout_ms = 5000;
    return req;
  }

  std::string Base() const { return "http://127.0.0.1:" + std::to_string(listener_.port()); }

  RawListener listener_;
  IoRunner runner_{2};
  HttpParticipantCaller caller_{runner_.io(), HttpCallerOptions{}};
};

// CR/LF (or NUL, space) in a participant URL went verbatim onto the
// request line: a smuggled second request and injected headers.
TEST_F(ParticipantCallerInputTest, UrlWithControlBytesIsUncallableAndNothingIsSent) {
  const std::vector<std::string> urls = {
      Base() + "/a HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled",
      Base() + "/a\r\nX-Injected: 1",
      Base() + "/a\nX-Injected: 1",
      Base() + std::string("/a\0b", 4),
      Base() + "/a b",
  };
  for (const auto& url : urls) {
    auto r = CallSync(Request(url));
    EXPECT_EQ(r.outcome, CallOutcome::kUncallable) << EscapeControl(url);
    EXPECT_EQ(r.http_status, 0);
    EXPECT_EQ(EscapeControl(r.error), r.error) << "the error echoes no control byte";
  }
  // A well-formed call afterwards is the first and only thing the listener sees.
  ASSERT_EQ(CallSync(Request(Base() + "/b/action")).outcome, CallOutcome::kOk);
  ASSERT_TRUE(listener_.WaitForConnections(1));
  auto got = listener_.Connections();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rfind("POST /b/action HTTP/1.1\r\n", 0), 0u) << EscapeControl(got[0]);
  EXPECT_EQ(got[0].find("smuggled"), std::string::npos);
  EXPECT_EQ(got[0].find("X-Injected"), std::string::npos);
}

// Inputs 7 and 10: a gtid, branch or op holding CR/LF or NUL (recovered from
// an old log) must not end a header line: no injected header, no second
// request, no NUL on the wire.
TEST_F(ParticipantCallerInputTest, ControlBytesInNamesNeverReachTheWire) {
  auto req = Request(Base() + "/b/action");
  req.gtid = "g1\r\nX-Injected: 1";
  req.branch = std::string("b\0r", 3);
  req.op = "action\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: internal";
  req.traceparent = "00-abc\n-01";
  auto r = CallSync(req);
  ASSERT_EQ(r.outcome, CallOutcome::kOk) << r.error;
  ASSERT_TRUE(listener_.WaitForConnections(1));
  auto got = listener_.Connections();
  ASSERT_EQ(got.size(), 1u);
  const std::string& bytes = got[0];
  EXPECT_EQ(bytes.find('\0'), std::string::npos) << "a NUL reached the wire";

  // Exactly one request: its header block and its Content-Length of body.
  const size_t end = bytes.find("\r\n\r\n");
  ASSERT_NE(end, std::string::npos);
  auto lines = HeaderLines(bytes);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "POST /b/action HTTP/1.1");
  const size_t length = std::stoul(Header(lines, "Content-Length"));
  EXPECT_EQ(bytes.size(), end + 4 + length) << "bytes after the request: " << EscapeControl(bytes);
  for (const auto& l : lines) {
    EXPECT_NE(l.rfind("X-Injected", 0), 0u) << "injected header line";
    EXPECT_NE(l.rfind("GET ", 0), 0u) << "smuggled request line";
    EXPECT_NE(l.rfind("Host: internal", 0), 0u);
    for (char c : l) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << EscapeControl(l);
  }
  EXPECT_EQ(Header(lines, "Treaty-Gtid"), "g1\\x0d\\x0aX-Injected: 1");
  EXPECT_EQ(Header(lines, "Treaty-Branch"), "b\\x00r");
  EXPECT_EQ(Header(lines, "traceparent"), "00-abc\\x0a-01");
  EXPECT_EQ(Header(lines, "Idempotency-Key").find('\r'), std::string::npos);
}

// URLs ParseEndpoint refuses can never be called: kUncallable (never
// retried by the engine), nothing sent, an error naming the rule.
TEST_F(ParticipantCallerInputTest, UnparsableUrlsAreUncallable) {
  const std::string port = std::to_string(listener_.port());
  const std::vector<std::string> urls = {"http://127.0.0.1:99999/x",
                                         "http://127.0.0.1:0/x",
                                         "http://127.0.0.1:abc/x",
                                         "http://127.0.0.1:/x",
                                         "http://:" + port + "/x",
                                         "http://u@127.0.0.1:" + port + "/x",
                                         "http://[::1",
                                         "thrift://127.0.0.1:abc",
                                         "ftp://127.0.0.1/x",
                                         "thrift://127.0.0.1:" + port,
                                         ""};
  for (const auto& url : urls) {
    auto r = CallSync(Request(url));
    EXPECT_EQ(r.outcome, CallOutcome::kUncallable) << url;
    EXPECT_FALSE(r.error.empty()) << url;
  }
  ASSERT_EQ(CallSync(Request(Base() + "/b/action")).outcome, CallOutcome::kOk);
  ASSERT_TRUE(listener_.WaitForConnections(1));
  EXPECT_EQ(listener_.Connections().size(), 1u) << "only the well-formed call connected";
}

// a 503 whose body is non-ASCII text longer than the excerpt: the
// error kept is valid UTF-8, cut on a code point, bounded; NUL and invalid
// bytes in an answer never reach `error` raw.
TEST(ParticipantAnswerTextTest, ErrorExcerptIsValidUtf8AndBounded) {
  TestParticipant participant;
  IoRunner runner(2);
  HttpParticipantCaller caller(runner.io(), HttpCallerOptions{});
  std::string accents = "x";
  for (int i = 0; i < 100; ++i) accents += "\xC3\xA9";  // é
  participant.SetRule("accents", "action", {{503}, 0, accents});
  participant.SetRule("binary", "action",
                      {{500}, 0, std::string("a\0b\xFF\xC3", 5) + "\n\x1b[31m"});
  participant.SetRule("refused", "action", {{409}, 0, std::string(500, '\xE2')});
  for (const char* branch : {"accents", "binary", "refused"}) {
    ParticipantRequest req;
    req.url = participant.Url(branch, "action");
    req.gtid = "g1";
    req.branch = branch;
    req.op = "action";
    req.timeout_ms = 5000;
    std::promise<ParticipantResponse> p;
    caller.Call(req, [&](ParticipantResponse r) { p.set_value(r); });
    auto r = p.get_future().get();
    EXPECT_NE(r.outcome, CallOutcome::kOk) << branch;
    EXPECT_TRUE(IsValidUtf8(r.error)) << branch;
    EXPECT_EQ(r.error.find('\0'), std::string::npos) << branch;
    EXPECT_LE(r.error.size(), limits::kErrorExcerptBytes + 20) << branch;  // + "HTTP 503: "
  }
}

}  // namespace
}  // namespace treaty
