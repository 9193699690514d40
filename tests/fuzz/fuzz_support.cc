#include "fuzz_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "http/http_client.h"
#include "support/store_env.h"
#include "support/subprocess.h"

namespace treaty::fuzz {
namespace http = boost::beast::http;

uint64_t FuzzSeed(uint64_t fallback) {
  const char* v = std::getenv("TREATY_FUZZ_SEED");
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

int FuzzCases(int fallback) {
  const char* v = std::getenv("TREATY_FUZZ_CASES");
  const int n = v && *v ? std::atoi(v) : 0;
  return n > 0 ? n : fallback;
}

FuzzRandom FuzzRandom::ForCase(uint64_t seed, uint64_t index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32)};
  FuzzRandom r(0);
  r.rng_.seed(seq);
  return r;
}

int64_t FuzzRandom::Int(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
}

bool FuzzRandom::Chance(double p) { return std::bernoulli_distribution(p)(rng_); }

std::string FuzzRandom::Bytes(size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng_() & 0xFF);
  return s;
}

std::string FuzzRandom::NastyText() {
  static const std::vector<std::string> kPieces = {"\xFF",
                                                   "\xFE",
                                                   "\x80",
                                                   "\xBF",
                                                   "\xC3",
                                                   "\xC0\xAF",
                                                   "\xE0\x80\xAF",
                                                   "\xED\xA0\x80",
                                                   "\xED\xBF\xBF",
                                                   "\xF4\x90\x80\x80",
                                                   "\xF8\x88\x80\x80\x80",
                                                   "\xE2\x82",
                                                   "\xF0\x9F\x98",
                                                   std::string("\0", 1),
                                                   "a\0b",
                                                   "\r\n",
                                                   "\n",
                                                   "\r",
                                                   "\x1b[31m",
                                                   "\x1b]0;owned\x07",
                                                   "\x1b[2J",
                                                   "\x7f",
                                                   "\xC2\x85",
                                                   "\xC2\x9B",
                                                   "\t",
                                                   "\b",
                                                   ".",
                                                   "..",
                                                   "/",
                                                   "%",
                                                   "%FF",
                                                   "%00",
                                                   "\"",
                                                   "\\",
                                                   "'",
                                                   "{",
                                                   "}",
                                                   "[",
                                                   "]",
                                                   ",",
                                                   ":",
                                                   "<script>",
                                                   "é",
                                                   "\xE2\x80\xAE",
                                                   "\xEF\xBB\xBF",
                                                   "\xF0\x9F\x98\x80",
                                                   "\xEF\xBF\xBF",
                                                   "\xE2\x80\xA8",
                                                   " ",
                                                   "#",
                                                   "?",
                                                   "&",
                                                   "=",
                                                   "+",
                                                   "@",
                                                   "${x}",
                                                   "%s%n",
                                                   "\\u0000",
                                                   "'; DROP TABLE transactions; --",
                                                   "{}",
                                                   "null",
                                                   "NaN"};
  std::string out;
  switch (Int(0, 9)) {
    case 0:  // a few pieces
    case 1:
    case 2: {
      const int n = static_cast<int>(Int(1, 6));
      for (int i = 0; i < n; ++i) {
        if (Chance(0.5)) out += static_cast<char>('a' + Int(0, 25));
        out += Pick(kPieces);
      }
      return out;
    }
    case 3:  // ordinary non-ASCII text past the 200-byte excerpt, cut anywhere
      out = "x";
      for (int i = 0, n = static_cast<int>(Int(90, 400)); i < n; ++i) out += "é";
      if (Chance(0.3)) {  // cut anywhere, usually inside a character
        out.resize(static_cast<size_t>(Int(150, static_cast<int64_t>(out.size()))));
      }
      return out;
    case 4:  // long CJK / emoji text
      for (int i = 0, n = static_cast<int>(Int(50, 3000)); i < n; ++i) {
        out += Chance(0.5) ? "\xE4\xB8\xAD" : "\xF0\x9F\x98\x80";
      }
      return out;
    case 5:  // random bytes
      return Bytes(static_cast<size_t>(Int(0, 300)));
    case 6: {  // long ASCII, around the identifier and URL limits
      static const std::vector<int> kLengths = {127, 128, 129, 200, 2047, 2048, 2049, 70000};
      return std::string(static_cast<size_t>(Pick(kLengths)), static_cast<char>('a' + Int(0, 25)));
    }
    case 7:  // empty or blank
      return Pick(std::vector<std::string>{"", " ", "\t", "\n"});
    case 8: {  // control bytes
      for (int i = 0, n = static_cast<int>(Int(1, 20)); i < n; ++i) {
        out += static_cast<char>(Int(0, 31));
      }
      return out;
    }
    default:
      return Pick(kPieces);
  }
}

std::string FuzzRandom::NastyNumber() {
  static const std::vector<std::string> kNumbers = {"1e400",
                                                    "-1e400",
                                                    "-0",
                                                    "9223372036854775807",
                                                    "9223372036854775808",
                                                    "18446744073709551616",
                                                    "-9223372036854775809",
                                                    "99999999999999999999999",
                                                    "1.5",
                                                    "-1",
                                                    "0",
                                                    "2147483648",
                                                    "-2147483649",
                                                    "1e-400",
                                                    "4294967296",
                                                    "0.0000001",
                                                    "3600001",
                                                    "86400001"};
  return Pick(kNumbers);
}

std::string JsonStringLiteral(std::string_view raw, bool escape_controls) {
  std::string out = "\"";
  for (unsigned char c : raw) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 && escape_controls) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string DeepJson(int depth, bool objects) {
  std::string out;
  out.reserve(static_cast<size_t>(depth) * (objects ? 6 : 2) + 1);
  for (int i = 0; i < depth; ++i) out += objects ? "{\"a\":" : "[";
  out += "0";
  for (int i = 0; i < depth; ++i) out += objects ? "}" : "]";
  return out;
}

std::string PercentEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string Printable(std::string_view bytes, size_t max) {
  std::string out;
  for (unsigned char c : bytes) {
    if (out.size() >= max) {
      out += "...(" + std::to_string(bytes.size()) + " bytes)";
      break;
    }
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    }
  }
  return out;
}

RawReply RawExchange(int port, std::string_view request, bool head_request, int timeout_ms) {
  RawReply reply;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return reply;
  }
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (413, 400) and close before reading it all
    sent += static_cast<size_t>(n);
  }
  shutdown(fd, SHUT_WR);
  std::string in;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;  // closed, reset or timed out
    in.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  reply.bytes_received = in.size();
  if (in.empty()) return reply;

  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(64u << 20);
  parser.header_limit(1u << 20);
  if (head_request) parser.skip(true);
  boost::beast::error_code ec;
  size_t used = 0;
  while (!parser.is_done() && used < in.size()) {
    const size_t n = parser.put(boost::asio::buffer(in.data() + used, in.size() - used), ec);
    used += n;
    if (ec == http::error::need_more) {
      ec = {};
      if (n == 0) break;
      continue;
    }
    if (ec) break;
  }
  if (!ec && !parser.is_done()) parser.put_eof(ec);
  if (ec || !parser.is_done()) {
    reply.malformed = "not one well-formed HTTP response (" +
                      (ec ? ec.message() : std::string("incomplete")) + "): " + Printable(in, 300);
    return reply;
  }
  const auto& msg = parser.get();
  reply.answered = true;
  reply.status = static_cast<int>(msg.result_int());
  reply.content_type = std::string(msg[http::field::content_type]);
  reply.body = msg.body();
  return reply;
}

std::string CheckJsonBody(std::string_view body) {
  if (!IsValidUtf8(body)) return "body is not valid UTF-8: " + Printable(body, 300);
  if (!nlohmann::json::accept(body)) return "body is not valid JSON: " + Printable(body, 300);
  return "";
}

std::string CheckApiAnswer(int status, std::string_view body) {
  if (std::string why = CheckJsonBody(body); !why.empty()) return why;
  if (status >= 400) {
    const auto doc = nlohmann::json::parse(body);
    const bool shaped = doc.is_object() && doc.contains("error") && doc["error"].is_object() &&
                        doc["error"].value("code", nlohmann::json()).is_string() &&
                        doc["error"].value("message", nlohmann::json()).is_string();
    if (!shaped) return "error answer is not {\"error\":{code,message}}: " + Printable(body, 300);
  }
  return "";
}

std::string CheckLogIsClean(std::string_view log, const std::vector<std::string>& forged_prefixes) {
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string_view::npos) end = log.size();
    const std::string_view line = log.substr(start, end - start);
    const std::string where = "log line " + Printable(line, 300);
    if (!IsValidUtf8(line)) return where + " is not valid UTF-8";
    for (unsigned char c : line) {
      if ((c < 0x20 && c != '\t') || c == 0x7F) return where + " has a raw control byte";
    }
    for (const auto& prefix : forged_prefixes) {
      if (line.starts_with(prefix)) return where + " is forged";
    }
    start = end + 1;
  }
  return "";
}

SimpleReply Get(const std::string& base_url, const std::string& path, int timeout_ms) {
  auto r = HttpFetch("GET", base_url + path, "", {}, timeout_ms);
  if (!r.ok()) return {};
  return {r->status, r->body};
}

SimpleReply Post(const std::string& base_url, const std::string& path, const std::string& body,
                 int timeout_ms) {
  auto r =
      HttpFetch("POST", base_url + path, body, {{"Content-Type", "application/json"}}, timeout_ms);
  if (!r.ok()) return {};
  return {r->status, r->body};
}

FuzzTreatyd::FuzzTreatyd(const std::string& engine, std::vector<std::string> extra_flags) {
  dir_ = testing::MakeTempDir("treaty-fuzz");
  store_ = testing::FreshStoreUri(engine, dir_);
  testing::TreatydOptions options;
  options.store = store_;
  options.extra = std::move(extra_flags);
  process_ = std::make_unique<testing::TreatydProcess>(dir_, "treatyd", options);
}

FuzzTreatyd::~FuzzTreatyd() {
  Kill();
  if (!::testing::Test::HasFailure()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  } else {
    std::fprintf(stderr, "fuzz: treatyd's folder kept: %s\n", dir_.c_str());
  }
}

Status FuzzTreatyd::Start() {
  if (store_.empty()) return Status::Unavailable("no store");
  return process_->Start();
}

void FuzzTreatyd::Kill() {
  if (process_->running()) process_->proc().Kill();
}

bool FuzzTreatyd::Alive() { return process_->running() && process_->proc().Wait(0) < 0; }

int FuzzTreatyd::port() const {
  const std::string& u = process_->url();
  return std::atoi(u.substr(u.rfind(':') + 1).c_str());
}

std::string FuzzTreatyd::LogTail(size_t bytes) const {
  std::string log = process_->Log();
  if (log.size() > bytes) log = "..." + log.substr(log.size() - bytes);
  std::string out;
  for (size_t start = 0; start < log.size();) {  // line by line, keeping the newlines
    size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    out += Printable(std::string_view(log).substr(start, end - start), 2000) + "\n";
    start = end + 1;
  }
  return out;
}

std::string FuzzTreatyd::Log() const { return process_->Log(); }

std::string FuzzTreatyd::CheckHealthy() {
  if (!Alive()) return "treatyd exited; log tail:\n" + LogTail();
  SimpleReply r = Get(url(), "/healthz", 5000);
  if (r.status != 200) {
    return "/healthz answered " + std::to_string(r.status) + "; log tail:\n" + LogTail();
  }
  return "";
}

}  // namespace treaty::fuzz
