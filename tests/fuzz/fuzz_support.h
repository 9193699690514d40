#pragma once

// Shared pieces of the deterministic fuzz tests (tests/fuzz/): a seeded
// random source with a catalogue of hostile text, a raw HTTP exchange that
// sends arbitrary bytes and checks that what comes back is a well-formed HTTP
// response, JSON/UTF-8 checks of answers, and a treatyd child process on a
// fresh store of either engine.
//
// Every case is generated from (seed, case index) alone, so a failure report
// ("seed S case N: ...") is enough to reproduce the input; TREATY_FUZZ_SEED
// and TREATY_FUZZ_CASES override the defaults for longer runs by hand.
//
// Not thread-safe unless stated: FuzzRandom has one owner; RawExchange and the
// check functions are stateless and may be called from any thread.

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "support/treatyd_process.h"

namespace treaty::fuzz {

// TREATY_FUZZ_SEED if set, else `fallback`.
uint64_t FuzzSeed(uint64_t fallback);
// TREATY_FUZZ_CASES if set (> 0), else `fallback`.
int FuzzCases(int fallback);

class FuzzRandom {
 public:
  explicit FuzzRandom(uint64_t seed) : rng_(seed) {}
  // A generator for case `index` of a run seeded with `seed`.
  static FuzzRandom ForCase(uint64_t seed, uint64_t index);

  uint64_t Next() { return rng_(); }
  // Uniform in [lo, hi].
  int64_t Int(int64_t lo, int64_t hi);
  bool Chance(double p);
  template <class T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Int(0, static_cast<int64_t>(v.size()) - 1))];
  }
  // `n` uniformly random bytes (any value, NUL included).
  std::string Bytes(size_t n);
  // Text that has hurt parsers, logs and databases: ill-formed UTF-8 (lone
  // continuation bytes, overlongs, surrogates, > U+10FFFF, a cut multi-byte
  // character), NUL, CR/LF, ESC sequences, DEL and C1, long non-ASCII text,
  // "." and "..", '/', '%', quotes, backslashes, long strings, random bytes.
  // Raw bytes: to embed it in JSON use JsonStringLiteral().
  std::string NastyText();
  // A number as JSON text that is out of every range or of the wrong kind
  // (1e400, -0, 2^63, 2^64, 1.5, -1, 99999999999999999999999).
  std::string NastyNumber();

 private:
  std::mt19937_64 rng_;
};

// A JSON string literal holding `raw`: bytes >= 0x20 other than '"' and '\'
// are copied verbatim (so ill-formed UTF-8 stays ill-formed on the wire);
// with `escape_controls` control bytes become \u00XX (NUL as \u0000), else
// they are copied raw too.
std::string JsonStringLiteral(std::string_view raw, bool escape_controls);
// Nested arrays (or objects {"a":...}) `depth` deep around `0`.
std::string DeepJson(int depth, bool objects);
// Every byte outside [A-Za-z0-9-_.~] as %XX.
std::string PercentEncode(std::string_view s);
// C-style escaped, cut to `max` bytes, for failure messages.
std::string Printable(std::string_view bytes, size_t max = 400);

// What came back for one request sent as raw bytes on a fresh connection.
struct RawReply {
  bool answered = false;  // a complete, well-formed HTTP response was read
  int status = 0;
  std::string content_type;
  std::string body;
  // Non-empty when bytes came back that are not one well-formed response.
  std::string malformed;
  size_t bytes_received = 0;
};

// Connects to 127.0.0.1:`port`, writes `request`, half-closes, reads until
// the server closes or `timeout_ms` passes, and parses one HTTP response.
// `head_request`: the response carries no body. A refused connection or a
// write cut short by the server is answered=false with malformed empty.
RawReply RawExchange(int port, std::string_view request, bool head_request, int timeout_ms);

// "" when `body` is valid UTF-8 and one valid JSON value; else the reason.
std::string CheckJsonBody(std::string_view body);
// As CheckJsonBody, and for a 4xx/5xx also {"error":{"code":str,"message":str}}.
std::string CheckApiAnswer(int status, std::string_view body);

// "" when treatyd's text log `log` shows outside text only escaped: valid
// UTF-8, no control byte but '\n' and '\t', and no line forged by a value
// carrying CR/LF (a line starting with one of `forged_prefixes`). Else the
// first offending line, printable.
std::string CheckLogIsClean(std::string_view log, const std::vector<std::string>& forged_prefixes);

// GET `path` (already encoded) with the blocking client; the status and body
// (status 0 when there was no answer).
struct SimpleReply {
  int status = 0;
  std::string body;
};
SimpleReply Get(const std::string& base_url, const std::string& path, int timeout_ms = 5000);
SimpleReply Post(const std::string& base_url, const std::string& path, const std::string& body,
                 int timeout_ms = 10000);

// A treatyd child on a fresh store of `engine` ("sqlite" or "postgres") in a
// fresh temp folder (deleted by the destructor unless the test failed).
class FuzzTreatyd {
 public:
  FuzzTreatyd(const std::string& engine, std::vector<std::string> extra_flags);
  ~FuzzTreatyd();
  // Starts (or restarts, on the same store and port) and waits for /healthz.
  [[nodiscard]] Status Start();
  // SIGKILL; the store is kept.
  void Kill();
  // True while the child has not exited.
  bool Alive();
  // "" when the child is alive and /healthz answers 200; else what happened,
  // with the tail of treatyd's log.
  std::string CheckHealthy();
  std::string LogTail(size_t bytes = 6000) const;
  // The whole log, raw.
  std::string Log() const;
  const std::string& url() const { return process_->url(); }
  int port() const;
  const std::string& store() const { return store_; }

 private:
  std::string dir_, store_;
  std::unique_ptr<testing::TreatydProcess> process_;
};

}  // namespace treaty::fuzz
