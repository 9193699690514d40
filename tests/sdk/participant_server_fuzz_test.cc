// Deterministic fuzz of the SDK's HTTP participant server
// (docs/input-rules.md): fixed seeds, a few thousand raw requests against a
// real ParticipantServer on loopback: random methods and paths, Treaty-*
// headers with invalid UTF-8 and control bytes, random and mutated JSON
// bodies, deep nesting, lying and huge Content-Lengths, bogus chunking.
//
// Properties checked:
//   - the server stays up (it runs in this process: a crash fails the test);
//   - every answer is well-formed HTTP with a 2xx, 4xx or 5xx status, and a
//     request that is framed correctly always gets one;
//   - no handler is invoked with a gtid / branch / op that breaks the
//     identifier rules, nor with a payload deeper than the depth limit;
//   - afterwards a valid call still succeeds.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/json_input.h"
#include "common/text.h"
#include "sdk/raw_http.h"
#include "treaty/participant_server.h"

namespace treaty::testing {
namespace {

namespace sdk = treaty::sdk;

constexpr uint64_t kSeeds[] = {1, 20240601, 0xC0FFEE};
constexpr int kCasesPerSeed = 1500;

// One generated request and whether it is framed correctly (so an answer
// is owed): a known method, a Content-Length that matches the body, and no
// CR, LF or NUL inside the request line or a header.
struct FuzzCase {
  std::string bytes;
  bool framed = true;
};

class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed) {}

  FuzzCase Next() {
    FuzzCase c;
    std::string method, path, body;
    std::map<std::string, std::string> headers;
    if (Pick(3) == 0) {
      NearlyValid(&method, &path, &headers, &body);
    } else {
      method = Method(&c);
      path = Path(&c);
      headers = TreatyHeaders();
      body = Body();
    }
    for (const auto& [name, value] : headers) {
      if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) c.framed = false;
    }
    std::string out = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
    switch (Pick(10)) {
      case 0:  // no length: the body is read as the next request
        if (!body.empty()) c.framed = false;
        break;
      case 1:  // a huge declared length, far over the body limit
        out += "Content-Length: " + std::string(1 + Pick(12), '9') + "\r\n";
        c.framed = false;
        break;
      case 2:  // lies: longer or shorter than the body
        out += "Content-Length: " + std::to_string(body.size() + 1 + Pick(100)) + "\r\n";
        c.framed = false;
        break;
      case 3:
        out += "Content-Length: " + std::string(Pick(2) ? "-1" : "12abc") + "\r\n";
        c.framed = false;
        break;
      case 4: {  // chunked, sometimes bogus
        out += "Transfer-Encoding: chunked\r\n\r\n";
        char size[32];
        std::snprintf(size, sizeof size, "%zx", body.size() + (Pick(3) == 0 ? 7 : 0));
        out += std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
        c.framed = false;
        c.bytes = out;
        return c;
      }
      default:
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    out += "\r\n" + body;
    c.bytes = std::move(out);
    return c;
  }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::string RandomBytes(size_t max_len, bool printable) {
    std::string s(Pick(max_len + 1), '\0');
    for (char& ch : s) ch = static_cast<char>(printable ? 0x21 + Pick(0x5E) : Pick(256));
    return s;
  }

  // Bytes that may break a header line or the identifier rules.
  std::string NastyText() {
    static const std::vector<std::string> kNasty = {"\xff",
                                                    "\xc0\xaf",
                                                    "\xed\xa0\x80",
                                                    "\xc2\x85",
                                                    "\x01",
                                                    "\x7f",
                                                    "\x1b[31m",
                                                    " ",
                                                    "/",
                                                    "?",
                                                    "#",
                                                    "%",
                                                    "\\",
                                                    ".",
                                                    "..",
                                                    "\t",
                                                    "\xe2\x80\xae",
                                                    "\0",
                                                    "\r",
                                                    "\n",
                                                    "\r\nX-Injected: 1"};
    std::string s;
    for (size_t i = 0, n = 1 + Pick(3); i < n; ++i) {
      s += Pick(2) ? kNasty[Pick(kNasty.size())] : RandomBytes(6, true);
    }
    return s;
  }

  std::string Identifier() {
    static const std::vector<std::string> kGood = {
        "g1",         "trip-7",  "flight", "hotel", "rm",  "action",
        "compensate", "prepare", "commit", "abort", "a:b", std::string(128, 'x')};
    switch (Pick(6)) {
      case 0:
        return NastyText();
      case 1:
        return std::string(129 + Pick(200), 'y');
      case 2:
        return "";
      default:
        return kGood[Pick(kGood.size())];
    }
  }

  // A valid delivery (body fields, headers, or both agreeing), then at
  // most one small change, so that the fuzz also reaches the handlers.
  void NearlyValid(std::string* method, std::string* path,
                   std::map<std::string, std::string>* headers, std::string* body) {
    static const std::vector<std::pair<std::string, std::string>> kRoutes = {
        {"flight", "action"}, {"flight", "compensate"}, {"hotel", "action"},
        {"rm", "prepare"},    {"rm", "commit"},         {"rm", "abort"}};
    const auto& [name, op] = kRoutes[Pick(kRoutes.size())];
    const std::string gtid = "g-" + std::to_string(Pick(1000));
    *method = "POST";
    *path = "/" + name + "/" + op;
    const std::string payload = Pick(2) ? Json(0) : "{\"seat\":\"1A\"}";
    const bool in_headers = Pick(2), in_body = !in_headers || Pick(2);
    *body = in_body ? "{\"gtid\":\"" + gtid + "\",\"branch\":\"" + name + "\",\"op\":\"" + op +
                          "\",\"payload\":" + payload + "}"
                    : "{\"payload\":" + payload + "}";
    if (in_headers) {
      (*headers)["Treaty-Gtid"] = gtid;
      (*headers)["Treaty-Branch"] = name;
      (*headers)["Treaty-Op"] = op;
      (*headers)["Idempotency-Key"] = gtid + "/" + name + "/" + op;
    }
    switch (Pick(8)) {
      case 0:
        (*headers)["Treaty-Gtid"] = Identifier();
        break;
      case 1:
        (*headers)["Treaty-Op"] = Identifier();
        break;
      case 2:
        (*headers)["Idempotency-Key"] = Identifier();
        break;
      case 3:
        *body = Mutate(*body);
        break;
      case 4:
        *body = "{\"gtid\":\"" + gtid + "\",\"op\":\"" + op + "\",\"payload\":" + Deep() + "}";
        break;
      default:
        break;  // unchanged
    }
  }

  std::string Method(FuzzCase* c) {
    switch (Pick(12)) {
      case 0:
        return "GET";
      case 1:
        return "PUT";
      case 2:
        return "HEAD";
      case 3:
        return "DELETE";
      case 4:
        c->framed = false;
        return "P\xffST";
      case 5:
        c->framed = false;
        return RandomBytes(8, false);
      default:
        return "POST";
    }
  }

  std::string Path(FuzzCase* c) {
    static const std::vector<std::string> kPaths = {"/flight/book",
                                                    "/flight/cancel",
                                                    "/hotel/book",
                                                    "/rm/prepare",
                                                    "/rm/commit",
                                                    "/rm/abort",
                                                    "/",
                                                    "/nope/x",
                                                    "/%ff/book",
                                                    "/fl%00ight/book",
                                                    "/fl%0aight",
                                                    "/%2e%2e/book",
                                                    "/flight?x=1",
                                                    "*"};
    switch (Pick(8)) {
      case 0:
        c->framed = false;
        return "/" + RandomBytes(40, false);
      case 1:
        return "/" + std::string(Pick(3000), 'a');
      default:
        return kPaths[Pick(kPaths.size())];
    }
  }

  std::map<std::string, std::string> TreatyHeaders() {
    std::map<std::string, std::string> h;
    for (const char* name :
         {"Treaty-Gtid", "Treaty-Branch", "Treaty-Op", "Idempotency-Key", "traceparent"}) {
      if (Pick(2)) continue;
      std::string value = Identifier();
      if (Pick(5) == 0) value = "g1/flight/action";
      h[name] = value;
    }
    if (Pick(8) == 0) h["X-Junk"] = NastyText();
    return h;
  }

  std::string Json(int depth) {
    if (depth > 3) return Pick(2) ? "1" : "\"s\"";
    switch (Pick(8)) {
      case 0:
        return "null";
      case 1:
        return "true";
      case 2:
        return std::to_string(static_cast<int64_t>(rng_()));
      case 3:
        return "\"str\\u00e9\"";
      case 4:
        return "[" + Json(depth + 1) + "," + Json(depth + 1) + "]";
      case 5:
        return "{\"k\":" + Json(depth + 1) + "}";
      case 6:
        return "1e400";
      default:
        return "\"x\"";
    }
  }

  std::string Deep() {
    static const std::vector<size_t> kDepths = {62, 63, 64, 65, 1000, 100000};
    size_t n = kDepths[Pick(kDepths.size())];
    if (Pick(2)) return std::string(n, '[') + std::string(n, ']');
    std::string s;
    for (size_t i = 0; i < n; ++i) s += "{\"a\":";
    s += "1";
    s += std::string(n, '}');
    return s;
  }

  std::string TreatyBody() {
    std::string body = "{";
    bool first = true;
    for (const char* key : {"gtid", "branch", "op"}) {
      if (Pick(4) == 0) continue;
      if (!first) body += ",";
      first = false;
      body += std::string("\"") + key + "\":";
      switch (Pick(8)) {
        case 0:
          body += Json(0);
          break;
        case 1:
          body += "\"\\u0000\"";
          break;
        case 2:
          body += "\"" + NastyText() + "\"";
          break;  // raw bytes inside a string
        default:
          body += "\"" + Identifier() + "\"";
      }
    }
    if (Pick(2)) {
      if (!first) body += ",";
      body += "\"payload\":" + (Pick(4) == 0 ? Deep() : Json(0));
    }
    return body + "}";
  }

  std::string Mutate(std::string s) {
    for (size_t i = 0, n = 1 + Pick(4); i < n && !s.empty(); ++i) {
      size_t at = Pick(s.size());
      switch (Pick(4)) {
        case 0:
          s[at] = static_cast<char>(Pick(256));
          break;
        case 1:
          s.erase(at, 1 + Pick(4));
          break;
        case 2:
          s.insert(at, NastyText());
          break;
        default:
          s.resize(at);
          break;
      }
    }
    return s;
  }

  std::string Body() {
    switch (Pick(10)) {
      case 0:
        return "";
      case 1:
        return RandomBytes(200, false);
      case 2:
        return Deep();
      case 3:
        return Json(0);
      case 4:
      case 5:
        return Mutate(TreatyBody());
      case 6:  // sometimes over the 1 MiB body limit
        return std::string(1 + Pick(3), '"') + std::string(Pick(8) == 0 ? 2 << 20 : Pick(100), 'z');
      default:
        return TreatyBody();
    }
  }

  std::mt19937_64 rng_;
};

bool IsIdentifier(const std::string& s) { return treaty::ValidateIdentifier(s, "x").ok(); }

TEST(ParticipantServerFuzzTest, HostileRequestsNeverCrashOrReachHandlersInvalid) {
  std::atomic<int> invoked{0}, invalid{0};
  auto record = [&](const sdk::CallContext& ctx) {
    ++invoked;
    if (!IsIdentifier(ctx.gtid) || !IsIdentifier(ctx.branch) || !IsIdentifier(ctx.op) ||
        ctx.idempotency_key != ctx.gtid + "/" + ctx.branch + "/" + ctx.op ||
        !treaty::ParseJson(ctx.payload, "payload").ok()) {
      ++invalid;
    }
  };
  sdk::ParticipantServer server;
  auto step = [&](const sdk::CallContext& ctx) {
    record(ctx);
    return treaty::Status::Ok();
  };
  server.AddSagaStep("flight", step, step);
  server.AddSagaStep("hotel", step, step);
  server.AddResourceManager(
      "rm",
      [&](const sdk::CallContext& ctx) -> treaty::Result<sdk::Vote> {
        record(ctx);
        return sdk::Vote::kYes;
      },
      step, step);
  auto started = server.Start();
  ASSERT_TRUE(started.ok()) << started.ToString();

  std::map<int, int> statuses;
  int unanswered = 0;
  for (uint64_t seed : kSeeds) {
    Generator gen(seed);
    for (int i = 0; i < kCasesPerSeed; ++i) {
      FuzzCase c = gen.Next();
      RawResponse r = RawExchange(server.http_port(), c.bytes);
      const std::string where = "seed " + std::to_string(seed) + " case " + std::to_string(i) +
                                ": " + EscapeControl(Excerpt(c.bytes, 300));
      ASSERT_TRUE(r.connected) << "the server is down after " << where;
      ASSERT_FALSE(r.timed_out) << where;
      if (!r.answered) {
        EXPECT_FALSE(c.framed) << "no answer to a well-framed request, " << where;
        ++unanswered;
        continue;
      }
      ASSERT_TRUE(r.well_formed) << where << "\nanswer: " << EscapeControl(Excerpt(r.raw, 300));
      const int klass = r.status / 100;
      EXPECT_TRUE(klass == 2 || klass == 4 || klass == 5) << r.status << " for " << where;
      statuses[r.status]++;
    }
  }
  EXPECT_EQ(invalid.load(), 0) << "handlers invoked with input that breaks the rules";
  // The generator must reach the handlers, and refuse much more often.
  EXPECT_GT(invoked.load(), 200);
  EXPECT_GT(statuses[400], 1000);
  std::string summary;
  for (auto [status, n] : statuses)
    summary += std::to_string(status) + ":" + std::to_string(n) + " ";
  std::cout << "statuses " << summary << "unanswered:" << unanswered
            << " handler calls:" << invoked.load() << "\n";

  // Still serving.
  RawResponse ok =
      RawExchange(server.http_port(), RawPost("/flight/book", R"({"gtid":"after","op":"action"})"));
  ASSERT_TRUE(ok.well_formed) << ok.raw;
  EXPECT_EQ(ok.status, 200) << ok.body;
}

}  // namespace
}  // namespace treaty::testing
