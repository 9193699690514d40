#include "chaos_participant.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "fuzz_support.h"

namespace treaty::fuzz {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

constexpr size_t kRecentAnswers = 64;

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string WithoutLineBreaks(std::string s) {
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return s;
}

std::string Body(FuzzRandom& r) {
  switch (r.Int(0, 8)) {
    case 0: {  // "x" and 100 x "é" (201 bytes)
      std::string s = "x";
      for (int i = 0; i < 100; ++i) s += "\xC3\xA9";
      return s;
    }
    case 1: {  // multi-byte characters straddling the 200-byte excerpt
      std::string s(static_cast<size_t>(r.Int(195, 200)), 'y');
      for (int i = 0; i < 10; ++i) s += r.Chance(0.5) ? "\xE2\x82\xAC" : "\xF0\x9F\x98\x80";
      return s;
    }
    case 2:
      return r.NastyText();
    case 3:
      return r.Bytes(static_cast<size_t>(r.Int(0, 600)));
    case 4:
      return "{\"error\":\"" + r.NastyText() + "\"}";
    case 5:
      return "";
    case 6:
      return "line1\r\nX-Forged: 1\r\n\x1b[31mred\x1b[0m\x1b]0;title\x07" +
             std::string("\0tail", 5);
    case 7: {
      std::string s;
      for (int i = 0, n = static_cast<int>(r.Int(100, 3000)); i < n; ++i) s += "\xE4\xB8\xAD";
      return s;
    }
    default:
      return "{\"vote\":" +
             r.Pick(std::vector<std::string>{"\"readonly\"", "\"no\"", "null", "\"\xFF\"", "1",
                                             "\"readonly\\u0000\"", DeepJson(50000, false)}) +
             "}";
  }
}

std::string StatusLine(FuzzRandom& r, int min_code = 100) {
  static const std::vector<int64_t> kCodes = {
      100, 101, 102, 199, 200, 201, 202, 204, 206, 299, 300, 301, 302, 304, 307, 400, 401,
      404, 408, 409, 410, 413, 418, 422, 429, 499, 500, 501, 502, 503, 504, 599, 600, 999};
  int64_t code = r.Pick(kCodes);
  if (code < min_code) code = 503;
  std::string reason = "X";
  if (r.Chance(0.3)) {
    reason = r.NastyText().substr(0, 300);
    if (r.Chance(0.8)) reason = WithoutLineBreaks(reason);
  }
  return "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
}

std::string Headers(FuzzRandom& r, bool* close) {
  std::string h;
  if (r.Chance(0.7)) {
    h +=
        "Content-Type: " +
        r.Pick(std::vector<std::string>{"application/json", "text/plain", "text/html; charset=\xFF",
                                        WithoutLineBreaks(r.NastyText().substr(0, 100))}) +
        "\r\n";
  }
  for (int i = 0, n = static_cast<int>(r.Int(0, 4)); i < n; ++i) {
    std::string value = r.NastyText().substr(0, 500);
    if (r.Chance(0.9)) value = WithoutLineBreaks(value);
    h += "X-Chaos-" + std::to_string(i) + ": " + value + "\r\n";
  }
  if (r.Chance(0.1)) {
    h += "Connection: close\r\n";
    *close = true;
  }
  if (r.Chance(0.05)) h += "Content-Encoding: gzip\r\n";
  if (r.Chance(0.03)) h += "Transfer-Encoding: gzip\r\n";
  return h;
}

std::string Chunked(FuzzRandom& r, const std::string& body) {
  std::string out;
  size_t at = 0;
  while (at < body.size()) {
    const size_t n = std::min<size_t>(body.size() - at, static_cast<size_t>(r.Int(1, 64)));
    char size[32];
    std::snprintf(size, sizeof(size), "%zx", n);
    out +=
        std::string(size) + (r.Chance(0.1) ? ";ext=1" : "") + "\r\n" + body.substr(at, n) + "\r\n";
    at += n;
  }
  return out + "0\r\n\r\n";
}

}  // namespace

struct ChaosParticipant::Impl {
  net::io_context io;
  tcp::acceptor acceptor{io};

  // `self` is a plain pointer: the coroutine lives inside self->io, so owning
  // it from here would be a cycle (and a leak).
  static net::awaitable<void> Accept(ChaosParticipant* owner, Impl* self) {
    for (;;) {
      tcp::socket socket(self->io);
      try {
        co_await self->acceptor.async_accept(socket, net::use_awaitable);
      } catch (const std::exception&) {
        co_return;  // closed
      }
      net::co_spawn(self->io, Serve(owner, std::move(socket)), net::detached);
    }
  }

  static net::awaitable<void> Serve(ChaosParticipant* owner, tcp::socket socket) {
    boost::beast::flat_buffer buffer;
    try {
      for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(64u << 20);
        co_await http::async_read(socket, buffer, parser, net::use_awaitable);
        const auto& req = parser.get();
        const Answer a =
            owner->Next(std::string(req["Treaty-Gtid"]), std::string(req["Treaty-Branch"]),
                        std::string(req["Treaty-Op"]));
        if (!a.bytes.empty()) {
          co_await net::async_write(socket, net::buffer(a.bytes), net::use_awaitable);
        }
        if (a.hold_ms > 0) {
          net::steady_timer timer(socket.get_executor(), std::chrono::milliseconds(a.hold_ms));
          co_await timer.async_wait(net::use_awaitable);
        }
        if (a.close) break;
      }
    } catch (const std::exception&) {
      // The coordinator closed the connection, or timed out and reset it.
    }
    boost::system::error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
  }
};

ChaosParticipant::ChaosParticipant(uint64_t seed)
    : seed_(seed), impl_(std::make_unique<Impl>()), recent_(kRecentAnswers) {
  const tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  net::co_spawn(impl_->io, Impl::Accept(this, impl_.get()), net::detached);
  thread_ = std::thread([io = &impl_->io] { io->run(); });
}

ChaosParticipant::~ChaosParticipant() {
  impl_->io.stop();
  thread_.join();
  impl_.reset();  // destroys the suspended coroutines and their sockets
}

std::string ChaosParticipant::Url(const std::string& branch, const std::string& op) const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/" + branch + "/" + op;
}

void ChaosParticipant::SetBehave(bool behave) {
  std::lock_guard<std::mutex> lock(mu_);
  behave_ = behave;
}

int64_t ChaosParticipant::calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return calls_;
}

std::map<std::string, int64_t> ChaosParticipant::kinds() const {
  std::lock_guard<std::mutex> lock(mu_);
  return kinds_;
}

std::vector<std::string> ChaosParticipant::AnswersFor(const std::string& gtid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_gtid_.find(gtid);
  return it == by_gtid_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string> ChaosParticipant::Recent(size_t n) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (size_t i = 0; i < recent_.size() && out.size() < n; ++i) {
    const std::string& line = recent_[(recent_next_ + recent_.size() - 1 - i) % recent_.size()];
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

ChaosParticipant::Answer ChaosParticipant::Next(const std::string& gtid, const std::string& branch,
                                                const std::string& op) {
  std::lock_guard<std::mutex> lock(mu_);
  const int n = ++deliveries_[gtid + "\n" + branch + "\n" + op];
  Answer a;
  if (behave_) {
    a = {"behave",
         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"};
  } else {
    a = Make(seed_, gtid, branch, op, n);
  }
  const std::string line = Printable(gtid, 60) + " " + Printable(branch, 40) + " " +
                           Printable(op, 20) + " #" + std::to_string(n) + " -> " + a.kind + ": " +
                           Printable(a.bytes, 220) + (a.close ? " [close]" : "") +
                           (a.hold_ms ? " [hold " + std::to_string(a.hold_ms) + " ms]" : "");
  ++calls_;
  ++kinds_[a.kind];
  auto& mine = by_gtid_[gtid];
  if (mine.size() < 40) mine.push_back(line);
  recent_[recent_next_] = line;
  recent_next_ = (recent_next_ + 1) % recent_.size();
  return a;
}

ChaosParticipant::Answer ChaosParticipant::Make(uint64_t seed, const std::string& gtid,
                                                const std::string& branch, const std::string& op,
                                                int n) {
  FuzzRandom r = FuzzRandom::ForCase(seed, Fnv1a(gtid + "\n" + branch + "\n" + op) ^
                                               (static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15ull));
  Answer a;
  bool close = false;
  const int64_t pick = r.Int(0, 99);
  if (pick < 12) {
    a = {"ok", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"};
  } else if (pick < 42) {
    const std::string body = Body(r);
    a.kind = "status";
    a.bytes = StatusLine(r) + Headers(r, &close) +
              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  } else if (pick < 50) {
    const std::string body = Body(r);
    a.kind = "chunked";
    a.bytes = StatusLine(r, 200) + Headers(r, &close) + "Transfer-Encoding: chunked\r\n\r\n" +
              Chunked(r, body);
  } else if (pick < 54) {
    a.kind = "chunked-bad";
    a.bytes = StatusLine(r, 200) + "Transfer-Encoding: chunked\r\n\r\n" +
              r.Pick(std::vector<std::string>{"zz\r\nabc\r\n0\r\n\r\n", "64\r\nonly ten b",
                                              "ffffffffffffffffff\r\nx", "5\r\nabcdefgh\r\n",
                                              "-1\r\n\r\n"});
    close = true;
  } else if (pick < 58) {
    const std::string body = "{}" + Body(r);
    a.kind = "length-short";
    a.bytes = StatusLine(r, 200) + "Content-Length: " + std::to_string(body.size() / 2) +
              "\r\n\r\n" + body;
  } else if (pick < 62) {
    const std::string body = Body(r);
    a.kind = "length-long";
    a.bytes = StatusLine(r, 200) + "Content-Length: " + std::to_string(body.size() + 100) +
              "\r\n\r\n" + body;
    close = true;
  } else if (pick < 66) {
    a.kind = "until-close";
    a.bytes = StatusLine(r, 200) + "Connection: close\r\n\r\n" + Body(r);
    close = true;
  } else if (pick < 70) {
    a.kind = "close";
    close = true;
  } else if (pick < 74) {
    const std::string body = Body(r);
    const std::string full = StatusLine(r) + Headers(r, &close) +
                             "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    a.kind = "cut";
    a.bytes = full.substr(0, static_cast<size_t>(r.Int(0, static_cast<int64_t>(full.size()) - 1)));
    close = true;
  } else if (pick < 77) {
    a.kind = "hold";
    a.hold_ms = static_cast<int>(r.Int(600, 1200));
    close = true;
  } else if (pick < 81) {
    a.kind = "garbage";
    a.bytes = r.Bytes(static_cast<size_t>(r.Int(1, 400)));
    close = true;
  } else if (pick < 84) {
    const std::string body = Body(r);
    a.kind = "interim";
    a.bytes = "HTTP/1.1 100 Continue\r\n\r\n" + StatusLine(r, 200) +
              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  } else if (pick < 87) {
    a.kind = "two-lengths";
    a.bytes = StatusLine(r, 200) + r.Pick(std::vector<std::string>{
                                       "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
                                       "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
                                       "Content-Length: 2, 3\r\n\r\n{}x"});
    close = true;
  } else if (pick < 92) {
    const std::string body = Body(r);
    a.kind = "vote";
    a.bytes = "HTTP/1.1 " + r.Pick(std::vector<std::string>{"200", "201", "204", "299"}) +
              " OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  } else if (pick < 94) {
    a.kind = "header-bomb";
    a.bytes = "HTTP/1.1 200 OK\r\nX-Bomb: " + std::string(100000, 'b') +
              "\r\nContent-Length: 2\r\n\r\n{}";
    close = true;
  } else if (pick < 95) {
    a.kind = "huge";
    if (r.Chance(0.25)) {
      a.bytes = "HTTP/1.1 503 X\r\nContent-Length: 9437184\r\n\r\n" + std::string(9437184, 'h');
    } else {
      a.bytes = "HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n" + std::string(1000, 'h');
      close = true;
    }
  } else {
    const std::string body = Body(r);
    a.kind = "2xx-body";
    a.bytes = "HTTP/1.1 200 OK\r\n" + Headers(r, &close) +
              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }
  a.close = close;
  return a;
}

}  // namespace treaty::fuzz
