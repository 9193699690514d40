#pragma once

// RestRequestGenerator: the inputs of rest_fuzz_test. Case `index` of a run
// with seed `seed` is always the same bytes. A case is one raw HTTP request:
// a method, a target on one of treatyd's routes (or beside them) with
// %-escapes such as %FF and %00, query strings with garbage, headers (wrong
// or missing Content-Length, chunked framing, huge or hostile values) and a
// body: a valid saga / 2PC body with fields mutated (wrong types, ill-formed
// UTF-8, \u0000, control characters, huge numbers, nesting up to 100,000
// deep, huge arrays, long strings), truncated, or random bytes.
//
// Valid bodies point their participant URLs at `participant_base`
// ("http://127.0.0.1:PORT"), so an accepted saga can finish. Stateless after
// construction; Make() may be called from any thread.

#include <cstdint>
#include <string>

namespace treaty::fuzz {

struct RestCase {
  enum class Kind { kOther, kSubmitSaga, kBegin2pc };
  Kind kind = Kind::kOther;
  std::string bytes;        // the request as it goes on the wire
  std::string target;       // raw request target
  std::string body;         // the body inside `bytes` (before any framing)
  std::string description;  // printable: method, target, what was mutated
  // A syntactically complete request with sound framing: an answer is owed.
  // False for truncated requests, broken framing and random bytes, where the
  // server may also just close the connection.
  bool complete = true;
  bool head = false;  // HEAD: the answer has no body
  // An unmutated saga submission or 2PC begin: must be accepted (2xx).
  bool must_succeed = false;
};

class RestRequestGenerator {
 public:
  RestRequestGenerator(uint64_t seed, std::string participant_base);
  RestCase Make(uint64_t index) const;

  // The gtid case `index` submits when it is a valid-looking saga / 2PC.
  static std::string SagaGtid(uint64_t index);
  static std::string TwoPhaseGtid(uint64_t index);

 private:
  uint64_t seed_;
  std::string participant_base_;
};

}  // namespace treaty::fuzz
