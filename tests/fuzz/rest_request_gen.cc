#include "rest_request_gen.h"

#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_support.h"

namespace treaty::fuzz {
namespace {

using nlohmann::json;

// JSON pointers of every value below the root of `v`.
void CollectPointers(const json& v, const std::string& at, std::vector<std::string>* out) {
  if (v.is_object()) {
    for (const auto& [key, child] : v.items()) {
      out->push_back(at + "/" + key);
      CollectPointers(child, at + "/" + key, out);
    }
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      out->push_back(at + "/" + std::to_string(i));
      CollectPointers(v[i], at + "/" + std::to_string(i), out);
    }
  }
}

// A participant URL that cannot be called, or that smuggles something.
std::string HostileUrl(FuzzRandom& r, const std::string& base) {
  const std::string port = base.substr(base.rfind(':') + 1);
  const std::vector<std::string> urls = {
      base + "/s\r\nX-Injected: 1",
      base + "/s HTTP/1.1\r\nHost: internal\r\n\r\nGET /admin",
      "http://127.0.0.1:99999/a",
      "http://127.0.0.1:0/a",
      "http://127.0.0.1:abc/a",
      "http://127.0.0.1:/a",
      "http://:" + port + "/a",
      "http://user:pw@127.0.0.1:" + port + "/a",
      "http://[::1",
      "http://[::1]:" + port + "/a",
      base + "/a%00b",
      std::string("http://127.0.0.1:") + port + "/a\0b",
      "thrift://h:abc",
      "thrift://127.0.0.1",
      "https://127.0.0.1:" + port + "/a",
      "ftp://127.0.0.1/a",
      base + "/a b",
      base + "/\xFF\xFE",
      base + "/\xC3\xA9",
      base + "/a#frag",
      "",
      "http://",
      base,
      base + "/" + std::string(2100, 'p'),
      "HTTP://127.0.0.1:" + port + "/x",
      "http://127.0.0.1:" + port + "\\@evil/x",
      "http://" + std::string(300, 'h') + ":1/x",
      "http://127.0.0.1:" + port + "/s/" + r.NastyText(),
  };
  return r.Pick(urls);
}

// Raw JSON text (possibly not JSON, not UTF-8) to put where a value was.
std::string RawValue(FuzzRandom& r, const std::string& pointer, const std::string& base,
                     std::string* note) {
  const bool url_field = pointer.ends_with("action") || pointer.ends_with("compensate") ||
                         pointer.ends_with("prepare") || pointer.ends_with("commit") ||
                         pointer.ends_with("abort");
  int choice = static_cast<int>(r.Int(0, 8));
  if (url_field && r.Chance(0.5)) choice = 9;
  std::string raw;
  switch (choice) {
    case 0:
    case 1: {
      const std::string text = r.NastyText();
      const bool escape = r.Chance(0.6);
      raw = JsonStringLiteral(text, escape);
      *note = "string " + Printable(text, 120) + (escape ? " (controls escaped)" : " (raw)");
      return raw;
    }
    case 2:
      raw = r.NastyNumber();
      *note = "number " + raw;
      return raw;
    case 3:
      raw = r.Pick(std::vector<std::string>{"true", "false", "null", "{}", "[]", "\"\"", "\"1\"",
                                            "0", "[1,2]", "{\"a\":1}", "[\"s0\"]"});
      *note = "value " + raw;
      return raw;
    case 4: {
      const int depth =
          static_cast<int>(r.Pick(std::vector<int64_t>{63, 64, 65, 100, 1000, 10000, 100000}));
      const bool objects = r.Chance(0.3);
      *note = "nesting " + std::to_string(depth) + (objects ? " objects" : " arrays");
      return DeepJson(depth, objects);
    }
    case 5: {
      const int64_t n = r.Pick(std::vector<int64_t>{1000, 65537, 200000});
      raw = "[";
      for (int64_t i = 0; i < n; ++i) raw += "0,";
      raw += "0]";
      *note = "array of " + std::to_string(n + 1);
      return raw;
    }
    case 6: {
      const int64_t n = r.Pick(std::vector<int64_t>{129, 2049, 100000, 600000});
      *note = "string of " + std::to_string(n) + " bytes";
      return JsonStringLiteral(std::string(static_cast<size_t>(n), 'a'), false);
    }
    case 7:
    case 8:
      raw = r.Pick(std::vector<std::string>{
          "\"\\u0000\"", "\"a\\u0000b\"", "\"\\ud800\"", "\"\\udc00x\"", "\"\\u001b[31mred\"",
          "\"x\\r\\nX-Injected: 1\"", "\"\\uffff\"", "\"\\u00e9\"", "\"\\\\\"", "\".\"", "\"..\"",
          "\"a/b\"", "\"%FF\"", "\"a b\"", "\"\\u007f\"", "\"\\u0085\"", "\"\\ud83d\\ude00\""});
      *note = "escaped " + raw;
      return raw;
    default: {
      const std::string url = HostileUrl(r, base);
      const bool escape = r.Chance(0.8);
      *note = "url " + Printable(url, 120) + (escape ? "" : " (raw)");
      return JsonStringLiteral(url, escape);
    }
  }
}

// Applies `count` mutations to `doc` and returns its text.
std::string MutatedJson(FuzzRandom& r, json doc, int count, const std::string& base,
                        std::vector<std::string>* notes) {
  std::map<std::string, std::string> raw;  // marker -> raw text
  for (int i = 0; i < count; ++i) {
    std::vector<std::string> pointers;
    CollectPointers(doc, "", &pointers);
    if (pointers.empty()) break;
    const std::string at = r.Pick(pointers);
    const json::json_pointer ptr(at);
    switch (r.Int(0, 9)) {
      case 0: {  // remove it
        const json::json_pointer parent = ptr.parent_pointer();
        if (doc[parent].is_object()) {
          doc[parent].erase(ptr.back());
        } else if (doc[parent].is_array()) {
          doc[parent].erase(static_cast<size_t>(std::stoul(ptr.back())));
        }
        notes->push_back(at + " removed");
        break;
      }
      case 1:  // an unknown field beside it
        if (doc[ptr.parent_pointer()].is_object()) {
          doc[ptr.parent_pointer()]["unknown_field"] = 1;
          notes->push_back(at + " + unknown_field");
        }
        break;
      default: {
        std::string note;
        const std::string marker = "@@raw" + std::to_string(raw.size()) + "@@";
        raw[marker] = RawValue(r, at, base, &note);
        doc[ptr] = marker;
        notes->push_back(at + " := " + note);
      }
    }
  }
  std::string text = doc.dump();
  for (const auto& [marker, value] : raw) {
    const std::string quoted = "\"" + marker + "\"";
    if (auto pos = text.find(quoted); pos != std::string::npos) {
      text.replace(pos, quoted.size(), value);
    }
  }
  return text;
}

json ValidSaga(FuzzRandom& r, uint64_t index, const std::string& base) {
  json steps = json::array();
  const int n = static_cast<int>(r.Int(1, 3));
  const bool concurrent = r.Chance(0.3);
  for (int i = 0; i < n; ++i) {
    const std::string name =
        r.Chance(0.8) ? "s" + std::to_string(i) : "st_" + std::to_string(i) + ".A-~";
    json step = {
        {"name", name},
        {"action", base + "/" + name + "/action"},
        {"compensate", base + "/" + name + "/compensate"},
        {"payload", {{"amount", i}, {"note", "caf\xC3\xA9"}}},
        {"retry", {{"max_attempts", 3}, {"initial_backoff_ms", 10}, {"max_backoff_ms", 50}}},
        {"timeout_ms", 2000}};
    if (concurrent && i > 0) step["after"] = json::array({steps[0]["name"]});
    steps.push_back(step);
  }
  json saga = {{"steps", steps}};
  if (r.Chance(0.9)) saga["gtid"] = RestRequestGenerator::SagaGtid(index);
  if (concurrent) saga["concurrent"] = true;
  if (r.Chance(0.2)) saga["timeout_ms"] = 30000;
  if (r.Chance(0.05)) saga["wait"] = true;
  return saga;
}

json ValidBranch(FuzzRandom& r, const std::string& base) {
  const std::string name = "b" + std::to_string(r.Int(0, 3));
  return {{"name", name},
          {"prepare", base + "/" + name + "/prepare"},
          {"commit", base + "/" + name + "/commit"},
          {"abort", base + "/" + name + "/abort"},
          {"payload", {{"k", "v"}}},
          {"timeout_ms", 2000},
          {"one_phase", r.Chance(0.5)}};
}

// A gtid for a path: an earlier case's, or hostile text, %-escaped or raw.
std::string PathGtid(FuzzRandom& r, uint64_t index, std::string* note) {
  const uint64_t earlier =
      index > 0 ? index - static_cast<uint64_t>(r.Int(1, std::min<int64_t>(60, index))) : 0;
  switch (r.Int(0, 5)) {
    case 0:
    case 1:
      return RestRequestGenerator::SagaGtid(earlier);
    case 2:
      return RestRequestGenerator::TwoPhaseGtid(earlier);
    case 3: {
      const std::string text = r.NastyText();
      *note = "gtid %-encoded " + Printable(text, 80);
      return PercentEncode(text);
    }
    case 4: {
      const std::string text = r.NastyText();
      *note = "gtid raw " + Printable(text, 80);
      return text;
    }
    default:
      return r.Pick(std::vector<std::string>{"%FF", "%00", "%C3", "a%2Fb", "%2E%2E", "..", ".", "%",
                                             "%G1", "%FF%FE", "a%00b", "%E2%82",
                                             std::string(129, 'g'), "%0D%0AX:%201", "%1B%5B31m",
                                             "%C0%AF", "%ED%A0%80", "a+b", "%20"});
  }
}

std::string QueryString(FuzzRandom& r) {
  static const std::vector<std::string> kKeys = {"cursor",     "limit",           "state",
                                                 "kind",       "gtid_prefix",     "needs_attention",
                                                 "min_age_ms", "wait_timeout_ms", "x"};
  static const std::vector<std::string> kValues = {"%FF",
                                                   "1.ff",
                                                   "%00",
                                                   "-1",
                                                   "0",
                                                   "1",
                                                   "10",
                                                   "1000",
                                                   "1001",
                                                   "abc",
                                                   "99999999999999999999",
                                                   "1e3",
                                                   "%205",
                                                   "+5",
                                                   "0x10",
                                                   "1.5",
                                                   "%",
                                                   "%%",
                                                   "a%2",
                                                   "RUNNING",
                                                   "COMMITTED",
                                                   "saga",
                                                   "2pc",
                                                   "true",
                                                   "false",
                                                   "fz",
                                                   "fz-1",
                                                   "123.abc",
                                                   "9223372036854775807.x",
                                                   "-1.-1",
                                                   "1.",
                                                   ".1",
                                                   "..",
                                                   "%C3",
                                                   "%E2%82%AC",
                                                   "_",
                                                   "%25",
                                                   "%5C",
                                                   "%27",
                                                   "%22",
                                                   "a%00b",
                                                   "1%00",
                                                   "%0D%0A",
                                                   "1.1.1",
                                                   "00000000000000000000001.2"};
  std::string q;
  for (int i = 0, n = static_cast<int>(r.Int(1, 4)); i < n; ++i) {
    if (!q.empty()) q += r.Chance(0.9) ? "&" : "&&";
    q += r.Pick(kKeys);
    if (r.Chance(0.95)) q += "=";
    switch (r.Int(0, 3)) {
      case 0:
        q += PercentEncode(r.NastyText().substr(0, 300));
        break;
      case 1:
        q += PercentEncode(r.Bytes(static_cast<size_t>(r.Int(1, 12))));
        break;
      default:
        q += r.Pick(kValues);
    }
  }
  return q;
}

// Bytes that are not allowed raw in a request line.
bool BreaksRequestLine(const std::string& s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c == 0x7F) return true;
  }
  return false;
}

}  // namespace

RestRequestGenerator::RestRequestGenerator(uint64_t seed, std::string participant_base)
    : seed_(seed), participant_base_(std::move(participant_base)) {}

std::string RestRequestGenerator::SagaGtid(uint64_t index) { return "fz-" + std::to_string(index); }

std::string RestRequestGenerator::TwoPhaseGtid(uint64_t index) {
  return "fz2-" + std::to_string(index);
}

RestCase RestRequestGenerator::Make(uint64_t index) const {
  FuzzRandom r = FuzzRandom::ForCase(seed_, index);
  const std::string& base = participant_base_;
  RestCase c;
  std::vector<std::string> notes;
  std::string method = "GET";
  std::string gtid_note;
  const int64_t route = r.Int(0, 99);
  int mutations = r.Chance(0.25) ? 0 : static_cast<int>(r.Int(1, 3));
  if (route < 35) {
    method = "POST";
    c.kind = RestCase::Kind::kSubmitSaga;
    c.target = "/v1/sagas";
    if (r.Chance(0.05)) {
      c.target +=
          "?wait_timeout_ms=" + r.Pick(std::vector<std::string>{"%FF", "-1", "abc", "500", "0"});
      if (!c.target.ends_with("=500")) notes.push_back("bad wait_timeout_ms");
    }
    c.body = MutatedJson(r, ValidSaga(r, index, base), mutations, base, &notes);
  } else if (route < 45) {
    method = "POST";
    c.kind = RestCase::Kind::kBegin2pc;
    c.target = "/v1/2pc";
    // one_phase is declared per branch; false at begin is still accepted.
    json begin = {{"gtid", TwoPhaseGtid(index)}, {"timeout_ms", 3000}};
    if (r.Chance(0.5)) begin["one_phase"] = false;
    if (r.Chance(0.1)) begin.erase("gtid");
    c.body = r.Chance(0.05) ? "" : MutatedJson(r, begin, mutations, base, &notes);
  } else if (route < 53) {
    method = "POST";
    c.target = "/v1/2pc/" + PathGtid(r, index, &gtid_note) + "/branches";
    c.body = MutatedJson(r, ValidBranch(r, base), mutations, base, &notes);
  } else if (route < 58) {
    method = "POST";
    c.target = "/v1/2pc/" + PathGtid(r, index, &gtid_note) + "/" +
               r.Pick(std::vector<std::string>{"commit", "commit", "abort", "x", "", "commit/x"});
  } else if (route < 68) {
    c.target = "/v1/transactions/" + PathGtid(r, index, &gtid_note);
  } else if (route < 72) {
    method = "POST";
    c.target = "/v1/transactions/" + PathGtid(r, index, &gtid_note) + "/" +
               r.Pick(std::vector<std::string>{"abort", "retry", "abort/x", "%FF"});
  } else if (route < 84) {
    c.target = "/v1/transactions?" + QueryString(r);
  } else if (route < 88) {
    c.target = r.Pick(std::vector<std::string>{"/v1/cluster", "/v1/stats", "/healthz", "/readyz",
                                               "/metrics", "/", "/ui/app.js", "/ui/%FF",
                                               "/ui/../../etc/passwd", "/v1/admin/log-level"});
  } else if (route < 92) {
    c.target = r.Pick(std::vector<std::string>{"/v1", "/v1/", "/v1//", "/v1/transactions/",
                                               "//v1/sagas", "/v1/sagas/", "/v1/2pc/", "*",
                                               "http://127.0.0.1/v1/cluster", "/%FF", "/v1/%00",
                                               "/v1/transactions/%FF/abort/%FF"}) +
               (r.Chance(0.3) ? "?" + QueryString(r) : "");
    method = r.Pick(std::vector<std::string>{"GET", "POST"});
    if (method == "POST") c.body = r.NastyText();
  } else if (route < 95) {
    // Random bytes, or a request line and then random bytes.
    c.bytes = r.Chance(0.5)
                  ? r.Bytes(static_cast<size_t>(r.Int(1, 2000)))
                  : "POST /v1/sagas HTTP/1.1\r\n" + r.Bytes(static_cast<size_t>(r.Int(1, 500)));
    c.complete = false;
    c.description = "random bytes " + Printable(c.bytes, 200);
    return c;
  } else {
    method = r.Pick(std::vector<std::string>{"PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "get",
                                             "BREW", "CONNECT", "TRACE", std::string(300, 'A')});
    c.target = r.Pick(std::vector<std::string>{"/v1/sagas", "/v1/2pc", "/v1/transactions",
                                               "/v1/transactions/fz-1", "/v1/cluster",
                                               "/v1/admin/log-level?level=%FF"});
    if (method == "PUT" && c.target.starts_with("/v1/admin")) c.body = "{\"level\":\"\\u0000\"}";
  }
  if (!gtid_note.empty()) notes.push_back(gtid_note);

  // Whole-body damage.
  if (!c.body.empty()) {
    switch (r.Int(0, 40)) {
      case 0:
      case 1:
      case 2:
        c.body.resize(static_cast<size_t>(r.Int(0, static_cast<int64_t>(c.body.size()) - 1)));
        notes.push_back("body truncated to " + std::to_string(c.body.size()));
        break;
      case 3:
      case 4:
        for (int i = 0, n = static_cast<int>(r.Int(1, 5)); i < n; ++i) {
          c.body[static_cast<size_t>(r.Int(0, static_cast<int64_t>(c.body.size()) - 1))] =
              static_cast<char>(r.Next() & 0xFF);
        }
        notes.push_back("body bytes flipped");
        break;
      case 5:
        c.body = r.Bytes(static_cast<size_t>(r.Int(1, 3000)));
        notes.push_back("body random bytes");
        break;
      case 6:
        c.body = r.Pick(std::vector<std::string>{"null", "[]", "\"x\"", "1", "{}", "{\"steps\":[]}",
                                                 "{\"steps\":null}", "{\"gtid\":\"\\u0000\"}"});
        notes.push_back("body " + c.body);
        break;
      case 7:
        c.body = std::string(
            static_cast<size_t>(r.Pick(std::vector<int64_t>{(1 << 20) + 1, 3 << 20})), '[');
        notes.push_back("body of " + std::to_string(c.body.size()) + " '[' (over the limit)");
        break;
      default:
        break;
    }
  }

  // Method / version / headers.
  std::string version = "HTTP/1.1";
  if (r.Chance(0.03)) {
    version = r.Pick(std::vector<std::string>{"HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1",
                                              "HTTP/1", "HTTP/1.1x"});
    if (version != "HTTP/1.0") c.complete = false;
    notes.push_back("version " + version);
  }
  if (BreaksRequestLine(c.target)) c.complete = false;
  c.head = method == "HEAD";
  std::string headers = "Host: 127.0.0.1\r\n";
  if (!c.body.empty() || method == "POST") {
    if (r.Chance(0.9)) {
      headers += "Content-Type: application/json\r\n";
    } else if (!c.body.empty()) {
      notes.push_back("no Content-Type");  // a JSON body must say so (415)
    }
  }
  bool chunked = false;
  std::string length = std::to_string(c.body.size());
  if (r.Chance(0.15)) {
    switch (r.Int(0, 11)) {
      case 0:
        if (!c.body.empty()) {
          length = std::to_string(r.Int(0, static_cast<int64_t>(c.body.size()) - 1));
          notes.push_back("Content-Length too small: " + length);
        }
        break;
      case 1:
        length = std::to_string(c.body.size() + static_cast<size_t>(r.Int(1, 1000)));
        c.complete = false;
        notes.push_back("Content-Length too large: " + length);
        break;
      case 2:
        length = r.Pick(
            std::vector<std::string>{"abc", "-1", "99999999999999999999", "1e3", "0x10", "", " 5"});
        c.complete = false;
        notes.push_back("Content-Length '" + length + "'");
        break;
      case 3:
        chunked = true;
        notes.push_back("chunked");
        break;
      case 4:
        headers += "X-Big: " + std::string(40000, 'b') + "\r\n";
        notes.push_back("40 KB header");
        break;
      case 5:
        for (int i = 0; i < 300; ++i) headers += "X-H" + std::to_string(i) + ": v\r\n";
        notes.push_back("300 headers");
        break;
      case 6: {
        const std::string v = r.NastyText().substr(0, 2000);
        headers += "X-Nasty: " + v + "\r\n";
        if (v.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) c.complete = false;
        notes.push_back("header value " + Printable(v, 80));
        break;
      }
      case 7:
        headers += "Expect: 100-continue\r\n";
        break;
      case 8:
        headers += "Connection: close\r\n";
        break;
      case 9:
        headers += "Content-Type: " + r.NastyText().substr(0, 200) + "\r\n";
        c.complete = false;  // may carry CR/LF
        notes.push_back("hostile Content-Type");
        break;
      case 10:
        headers += "X-Folded: a\r\n b\r\n";
        c.complete = false;
        notes.push_back("obs-fold");
        break;
      default:
        headers += "Content-Length: " + std::to_string(c.body.size() + 1) + "\r\n";
        c.complete = false;
        notes.push_back("two Content-Length");
    }
  }
  std::string body_bytes = c.body;
  if (chunked) {
    headers += "Transfer-Encoding: chunked\r\n";
    body_bytes.clear();
    size_t at = 0;
    while (at < c.body.size()) {
      const size_t n = std::min<size_t>(c.body.size() - at, static_cast<size_t>(r.Int(1, 70000)));
      char size[32];
      std::snprintf(size, sizeof(size), "%zx\r\n", n);
      body_bytes += size + c.body.substr(at, n) + "\r\n";
      at += n;
    }
    body_bytes += "0\r\n\r\n";
    if (r.Chance(0.3)) {
      body_bytes = "zz\r\n" + body_bytes;
      c.complete = false;
      notes.push_back("bad chunk size");
    }
  } else if (!c.body.empty() || method == "POST" || length != "0") {
    headers += "Content-Length: " + length + "\r\n";
  }
  c.bytes = method + " " + c.target + " " + version + "\r\n" + headers + "\r\n" + body_bytes;

  c.must_succeed = c.kind != RestCase::Kind::kOther && notes.empty() && c.complete;
  c.description = method.substr(0, 40) + " " + Printable(c.target, 300);
  for (const auto& n : notes) c.description += "; " + n;
  if (!c.body.empty()) {
    c.description +=
        "; body (" + std::to_string(c.body.size()) + " bytes) " + Printable(c.body, 300);
  }
  return c;
}

}  // namespace treaty::fuzz
